package billingpage_test

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/apptest"
	"github.com/tollgate-billing/tollgate/internal/auth"
	"github.com/tollgate-billing/tollgate/internal/billing"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// now is the server's time in every browser test: mid-March, so that the
// month has usage behind it and days ahead.
var now = time.Date(2026, 3, 18, 12, 0, 0, 0, time.UTC)

// newTollgate starts Tollgate with stripe-mock behind it and the clock at
// now, for a browser test: without a browser it skips first.
func newTollgate(t *testing.T) *apptest.Harness {
	t.Helper()
	needBrowser(t)
	// The plans' real rate limits: the page shows them, and they hold only
	// usageGate and consumeUsage, which the page never calls.
	return apptest.New(t, apptest.Options{
		PlanRateLimits: true,
		Clock:          clock.NewFake(now),
		Env:            map[string]string{"STRIPE_SECRET_KEY": "sk_test_tollgate", "STRIPE_API_BASE": testenv.StripeMock(t)},
	})
}

// orgID creates the organisation a token for ext will act as.
func orgID(t *testing.T, h *apptest.Harness, ext, name string) string {
	t.Helper()
	id, err := h.App.Orgs.Ensure(context.Background(), ext, name, "billing@"+ext+".example")
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// subscribe puts the organisation on a paid plan the way Stripe's webhooks
// would: its customer linked, its subscription applied.
func subscribe(t *testing.T, h *apptest.Harness, org, priceID string) {
	t.Helper()
	setSubscription(t, h, org, priceID, stripe.SubscriptionStatusActive, now)
}

// cancelSubscription ends the organisation's subscription as Stripe's
// customer.subscription.deleted would, a minute after subscribe's.
func cancelSubscription(t *testing.T, h *apptest.Harness, org, priceID string) {
	t.Helper()
	setSubscription(t, h, org, priceID, stripe.SubscriptionStatusCanceled, now.Add(time.Minute))
}

// setSubscription applies the organisation's subscription in status as of at.
func setSubscription(t *testing.T, h *apptest.Harness, org, priceID string, status stripe.SubscriptionStatus, at time.Time) {
	t.Helper()
	ctx := context.Background()
	sub := &stripe.Subscription{
		ID: "sub_" + org, Customer: &stripe.Customer{ID: "cus_" + org}, Status: status,
		Created:            now.AddDate(0, -2, 0).Unix(),
		CurrentPeriodStart: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).Unix(),
		CurrentPeriodEnd:   time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC).Unix(),
		Items:              &stripe.SubscriptionItemList{Data: []*stripe.SubscriptionItem{{Price: &stripe.Price{ID: priceID}}}},
	}
	err := h.App.DB.Tx(ctx, func(tx *gorm.DB) error {
		if _, err := h.App.Billing.LinkCustomer(ctx, tx, org, "cus_"+org); err != nil {
			return err
		}
		res, err := h.App.Billing.ApplySubscription(ctx, tx, billing.SubscriptionUpdate{Sub: sub, At: at, OrgID: org})
		if err == nil && res.Outcome != billing.Applied {
			err = fmt.Errorf("subscription not applied: %s", res.Outcome)
		}
		return err
	})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
}

// recorded is what a test sent to Tollgate, summed the way the page should
// show it.
type recorded struct {
	total      map[string]int64            // meter -> this month
	daily      map[string]map[string]int64 // meter -> YYYY-MM-DD -> used that day
	byEndpoint map[string]map[string]int64 // meter -> endpoint -> this month
}

type endpointUse struct {
	endpoint string
	used     int64
}

// topEndpoints is the meter's endpoints, largest first.
func (r recorded) topEndpoints(meter string) []endpointUse {
	var out []endpointUse
	for e, used := range r.byEndpoint[meter] {
		out = append(out, endpointUse{e, used})
	}
	slices.SortFunc(out, func(a, b endpointUse) int {
		if a.used != b.used {
			return cmp.Compare(b.used, a.used)
		}
		return strings.Compare(a.endpoint, b.endpoint)
	})
	return out
}

// recordUsage sends a month of usage up to today through the public API:
// API calls on two endpoints every day, tokens on one, and storage that
// grows and shrinks.
func recordUsage(t *testing.T, h *apptest.Harness, ext string) recorded {
	t.Helper()
	rec := recorded{total: map[string]int64{}, daily: map[string]map[string]int64{}, byEndpoint: map[string]map[string]int64{}}
	var events []map[string]any
	add := func(day int, meter, endpoint string, q int64) {
		at := time.Date(2026, 3, day, 10, 0, 0, 0, time.UTC)
		events = append(events, map[string]any{
			"meter": meter, "quantity": q, "endpoint": endpoint, "timestamp": at.Format(time.RFC3339),
			"idempotencyKey": fmt.Sprintf("%s-%d-%s-%d", meter, day, endpoint, len(events)),
		})
		if rec.daily[meter] == nil {
			rec.daily[meter] = map[string]int64{}
			rec.byEndpoint[meter] = map[string]int64{}
		}
		rec.byEndpoint[meter][endpoint] += q
		rec.daily[meter][at.Format(time.DateOnly)] += q
		rec.total[meter] += q
	}
	for day := 1; day <= now.Day(); day++ {
		d := int64(day)
		add(day, "api_calls", "GET /v1/search", 2000+300*d)
		add(day, "api_calls", "POST /v1/chat", 1000+100*d)
		add(day, "llm_tokens", "POST /v1/chat", 20000+1500*d)
	}
	add(2, "storage_bytes", "PUT /v1/files", 512<<20)
	add(6, "storage_bytes", "PUT /v1/files", 1<<30)
	add(11, "storage_bytes", "DELETE /v1/files", -(256 << 20))

	const q = `mutation($in: RecordUsageInput!) { recordUsage(input: $in) { accepted rejected { index code message } } }`
	var out struct {
		RecordUsage struct {
			Accepted int
			Rejected []struct {
				Index         int
				Code, Message string
			}
		}
	}
	h.Query(ext, q, map[string]any{"in": map[string]any{"events": events}}).Decode(t, &out)
	if out.RecordUsage.Accepted != len(events) {
		t.Fatalf("recordUsage accepted %d of %d: %+v", out.RecordUsage.Accepted, len(events), out.RecordUsage.Rejected)
	}
	return rec
}

// seededInvoice is one invoice as the test stored it.
type seededInvoice struct {
	Number   string
	Total    int64
	Currency string
}

// seedInvoices stores n monthly invoices in usd as Stripe's webhooks
// would, and returns them newest first.
func seedInvoices(t *testing.T, h *apptest.Harness, org string, n int) []seededInvoice {
	t.Helper()
	currencies := make([]string, n)
	for i := range currencies {
		currencies[i] = "usd"
	}
	return seedInvoicesIn(t, h, org, currencies...)
}

// seedInvoicesIn stores one monthly invoice per currency, newest first.
func seedInvoicesIn(t *testing.T, h *apptest.Harness, org string, currencies ...string) []seededInvoice {
	t.Helper()
	n := len(currencies)
	ctx := context.Background()
	var out []seededInvoice
	err := h.App.DB.Tx(ctx, func(tx *gorm.DB) error {
		for i := range n {
			created := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC).AddDate(0, -i, 0)
			id := fmt.Sprintf("in_%s_%02d", org[:8], i)
			status := stripe.InvoiceStatusPaid
			if i == 0 {
				status = stripe.InvoiceStatusOpen
			}
			// A code Stripe never sends ("ééé") is refused on the way in
			// (internal/stripein); it stands for a row stored before that
			// check, written over a valid one.
			currency := currencies[i]
			valid := len(currency) == 3 && strings.Trim(currency, "abcdefghijklmnopqrstuvwxyz") == ""
			if !valid {
				currency = "usd"
			}
			inv := &stripe.Invoice{
				ID: id, Number: fmt.Sprintf("TG-%04d", n-i), Status: status, Currency: stripe.Currency(currency),
				Total: 4900 + int64(i)*7, AmountDue: 4900 + int64(i)*7, Created: created.Unix(),
				Customer:         &stripe.Customer{ID: "cus_" + org},
				HostedInvoiceURL: "https://invoice.stripe.com/i/acct_test/" + id,
				InvoicePDF:       "https://pay.stripe.com/invoice/acct_test/" + id + "/pdf",
			}
			if _, err := h.App.Invoices.Apply(ctx, tx, org, inv, now); err != nil {
				return err
			}
			if !valid {
				if err := tx.Table("invoices").Where("id = ?", id).Update("currency", currencies[i]).Error; err != nil {
					return err
				}
			}
			out = append(out, seededInvoice{Number: inv.Number, Total: inv.Total, Currency: currencies[i]})
		}
		return nil
	})
	if err != nil {
		t.Fatalf("seed invoices: %v", err)
	}
	return out
}

// createKey makes an API key through the domain service, as an earlier
// visit to the page would have.
func createKey(t *testing.T, h *apptest.Harness, org, name string, scopes ...auth.Scope) {
	t.Helper()
	if _, _, err := h.App.Keys.Create(context.Background(), org, auth.CreateKeyInput{Name: name, Scopes: scopes, CreatorScopes: auth.AllScopes}); err != nil {
		t.Fatal(err)
	}
}
