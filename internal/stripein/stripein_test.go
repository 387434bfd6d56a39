package stripein_test

import (
	"strings"
	"testing"

	"github.com/stripe/stripe-go/v76"

	"github.com/tollgate-billing/tollgate/internal/stripein"
)

func TestOnlyHTTPSLinksAreKept(t *testing.T) {
	for raw, keep := range map[string]bool{
		"https://invoice.stripe.com/i/acct_1/test_x":              true,
		"https://pay.stripe.com/invoice/acct_1/x/pdf":             true,
		"javascript:alert(1)":                                     false,
		"JavaScript:alert(1)":                                     false,
		"data:text/html,<script>alert(1)</script>":                false,
		"http://invoice.stripe.com/i/x":                           false,
		"https://user:pass@invoice.stripe.com/i/x":                false,
		"https:opaque":                                            false,
		"//invoice.stripe.com/i/x":                                false,
		"https://invoice.stripe.com/i/x\x00":                      false,
		"https://invoice.stripe.com/" + strings.Repeat("x", 2000): false,
		"": false,
	} {
		if got := stripein.PageURL(raw) != ""; got != keep {
			t.Errorf("PageURL(%.60q) kept %v, want %v", raw, got, keep)
		}
	}
}

// An invoice's total may be negative (credits larger than its charges);
// what it owes and what was paid may not.
func TestInvoiceAmounts(t *testing.T) {
	base := func() *stripe.Invoice {
		return &stripe.Invoice{ID: "in_1", Currency: "usd", Status: "paid", AmountDue: 100, AmountPaid: 100, Total: 100}
	}
	for _, tc := range []struct {
		name string
		edit func(*stripe.Invoice)
		ok   bool
	}{
		{"as Stripe sends it", func(*stripe.Invoice) {}, true},
		{"a credit larger than the charges", func(i *stripe.Invoice) { i.Total, i.AmountDue, i.AmountPaid = -500, 0, 0 }, true},
		{"the largest amount Stripe takes", func(i *stripe.Invoice) { i.Total = stripein.MaxAmount }, true},
		{"one more", func(i *stripe.Invoice) { i.Total = stripein.MaxAmount + 1 }, false},
		{"a negative amount due", func(i *stripe.Invoice) { i.AmountDue = -1 }, false},
		{"a negative amount paid", func(i *stripe.Invoice) { i.AmountPaid = -1 }, false},
	} {
		inv := base()
		tc.edit(inv)
		if err := stripein.Invoice(inv); (err == nil) != tc.ok {
			t.Errorf("%s: %v, want usable %v", tc.name, err, tc.ok)
		}
	}
}
