package graph_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/apptest"
	"github.com/tollgate-billing/tollgate/internal/billing"
	"github.com/tollgate-billing/tollgate/internal/invoices"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

const checkout = `mutation($in: CreateCheckoutSessionInput!) {
  createCheckoutSession(input: $in) { url sessionId userErrors { field code message } }
}`

type checkoutResult struct {
	CreateCheckoutSession struct {
		URL, SessionID *string
		UserErrors     []struct{ Field, Code, Message string }
	}
}

func withStripe(t *testing.T) *apptest.Harness {
	return apptest.New(t, apptest.Options{Env: map[string]string{
		"STRIPE_SECRET_KEY": "sk_test_tollgate", "STRIPE_API_BASE": testenv.StripeMock(t),
	}})
}

// TestCheckoutAndPortalOverGraphQL: the dashboard's view of the Stripe
// mutations — a URL to redirect to, or userErrors that say what to fix.
func TestCheckoutAndPortalOverGraphQL(t *testing.T) {
	h := withStripe(t)
	var bad checkoutResult
	h.Query("acme", checkout, map[string]any{"in": map[string]any{"plan": "free", "successUrl": "ftp://x", "cancelUrl": "https://app.example.com/" + strings.Repeat("x", 2000)}}).Decode(t, &bad)
	fields := map[string]string{}
	for _, e := range bad.CreateCheckoutSession.UserErrors {
		fields[e.Field] = e.Code
	}
	if bad.CreateCheckoutSession.URL != nil || fields["input.plan"] == "" || fields["input.successUrl"] != "INVALID_URL" || fields["input.cancelUrl"] != "TOO_LONG" {
		t.Fatalf("userErrors = %+v", bad.CreateCheckoutSession.UserErrors)
	}

	// Credentials in a return URL are refused, as in a webhook URL.
	h.Query("acme", checkout, map[string]any{"in": map[string]any{"plan": "starter", "successUrl": "https://user:pass@app.example.com/ok", "cancelUrl": "https://token@app.example.com/no"}}).Decode(t, &bad)
	fields = map[string]string{}
	for _, e := range bad.CreateCheckoutSession.UserErrors {
		fields[e.Field] = e.Code
	}
	if bad.CreateCheckoutSession.URL != nil || len(fields) != 2 || fields["input.successUrl"] != "INVALID_URL" || fields["input.cancelUrl"] != "INVALID_URL" {
		t.Fatalf("checkout with credentials in its URLs: userErrors = %+v", bad.CreateCheckoutSession.UserErrors)
	}

	var portal struct {
		CreatePortalSession struct {
			URL        *string
			UserErrors []struct{ Code string }
		}
	}
	const portalQ = `mutation { createPortalSession(input: {returnUrl: "https://app.example.com/billing"}) { url userErrors { code } } }`
	h.Query("acme", portalQ, nil).Decode(t, &portal)
	if portal.CreatePortalSession.URL != nil || len(portal.CreatePortalSession.UserErrors) != 1 || portal.CreatePortalSession.UserErrors[0].Code != "NO_BILLING_HISTORY" {
		t.Fatalf("portal before checkout = %+v", portal)
	}

	var ok checkoutResult
	h.Query("acme", checkout, map[string]any{"in": map[string]any{"plan": "starter", "successUrl": "https://app.example.com/ok", "cancelUrl": "https://app.example.com/no"}}).Decode(t, &ok)
	c := ok.CreateCheckoutSession
	if len(c.UserErrors) > 0 || c.URL == nil || !strings.HasPrefix(*c.URL, "https://") || c.SessionID == nil || *c.SessionID == "" {
		t.Fatalf("checkout = %+v", c)
	}
	var sub struct {
		Subscription struct{ HasBillingHistory bool }
	}
	// A Checkout opened and not paid is no billing history (reference 004:
	// the portal is refused to an account that never subscribed).
	h.Query("acme", `{ subscription { hasBillingHistory } }`, nil).Decode(t, &sub)
	if sub.Subscription.HasBillingHistory {
		t.Fatal("hasBillingHistory after an unpaid checkout")
	}
	portal.CreatePortalSession.URL, portal.CreatePortalSession.UserErrors = nil, nil
	h.Query("acme", portalQ, nil).Decode(t, &portal)
	if portal.CreatePortalSession.URL != nil || len(portal.CreatePortalSession.UserErrors) != 1 || portal.CreatePortalSession.UserErrors[0].Code != "NO_BILLING_HISTORY" {
		t.Fatalf("portal after an unpaid checkout = %+v", portal)
	}

	var cancel struct {
		CancelSubscription struct {
			Subscription *struct{ Status *string }
			UserErrors   []struct{ Code string }
		}
	}
	h.Query("acme", `mutation { cancelSubscription { subscription { status } userErrors { code } } }`, nil).Decode(t, &cancel)
	if ue := cancel.CancelSubscription.UserErrors; len(ue) != 1 || ue[0].Code != "NO_SUBSCRIPTION" {
		t.Fatalf("cancel without a subscription = %+v", cancel)
	}

	// A subscription, even one since canceled, is history: the portal shows
	// its invoices.
	var org struct{ Organization struct{ ID string } }
	h.Query("acme", `{ organization { id } }`, nil).Decode(t, &org)
	var customer string
	if err := h.App.DB.Raw("SELECT stripe_customer_id FROM organizations WHERE id = ?", org.Organization.ID).Scan(&customer).Error; err != nil || customer == "" {
		t.Fatalf("customer %q: %v", customer, err)
	}
	now := h.Clock.Now()
	if err := h.App.DB.Create(&billing.Subscription{
		ID: store.NewID(), OrgID: org.Organization.ID, StripeSubscriptionID: "sub_history", StripeCustomerID: customer,
		PlanID: "starter", Status: "canceled", CanceledAt: &now, CreatedAt: now, UpdatedAt: now,
	}).Error; err != nil {
		t.Fatal(err)
	}
	h.Query("acme", `{ subscription { hasBillingHistory } }`, nil).Decode(t, &sub)
	if !sub.Subscription.HasBillingHistory {
		t.Fatal("no billing history with a canceled subscription")
	}
	portal.CreatePortalSession.URL, portal.CreatePortalSession.UserErrors = nil, nil
	h.Query("acme", portalQ, nil).Decode(t, &portal)
	if portal.CreatePortalSession.URL == nil || len(portal.CreatePortalSession.UserErrors) > 0 {
		t.Fatalf("portal after a subscription = %+v", portal)
	}
}

func TestStripeMutationsWithoutAKeySayNotConfigured(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	r := h.Query("acme", checkout, map[string]any{"in": map[string]any{"plan": "starter", "successUrl": "https://a.example/ok", "cancelUrl": "https://a.example/no"}})
	if r.Code() != "STRIPE_NOT_CONFIGURED" {
		t.Fatalf("code = %q (%+v)", r.Code(), r.Errors)
	}
}

// TestInvoicesOverGraphQL: a dashboard pages through invoices with the
// cursors it is given, newest first, and can filter by status.
func TestInvoicesOverGraphQL(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	var org struct{ Organization struct{ ID string } }
	h.Query("acme", `{ organization { id } }`, nil).Decode(t, &org)
	base := h.Clock.Now().Add(-100 * time.Hour)
	for i := 0; i < 5; i++ {
		status := "paid"
		if i == 4 {
			status = "open"
		}
		num := fmt.Sprintf("INV-%d", i)
		err := h.App.DB.Create(&invoices.Invoice{
			ID: fmt.Sprintf("in_%d", i), OrgID: org.Organization.ID, Number: &num, Status: status,
			AmountDue: 4900, AmountPaid: 4900, Total: 4900, Currency: "usd",
			CreatedAt: base.Add(time.Duration(i) * time.Hour), UpdatedAt: base,
		}).Error
		if err != nil {
			t.Fatal(err)
		}
	}
	type page struct {
		Invoices struct {
			Edges []struct {
				Cursor string
				Node   struct {
					ID, Status string
					Total      int64
				}
			}
			PageInfo struct {
				HasNextPage bool
				EndCursor   *string
			}
		}
	}
	const q = `query($after: String, $status: InvoiceStatus) { invoices(first: 2, after: $after, status: $status) {
	  edges { cursor node { id status total } } pageInfo { hasNextPage endCursor } } }`
	var seen []string
	var after any
	for {
		var p page
		h.Query("acme", q, map[string]any{"after": after}).Decode(t, &p)
		for _, e := range p.Invoices.Edges {
			seen = append(seen, e.Node.ID)
		}
		if !p.Invoices.PageInfo.HasNextPage {
			break
		}
		after = *p.Invoices.PageInfo.EndCursor
	}
	if strings.Join(seen, ",") != "in_4,in_3,in_2,in_1,in_0" {
		t.Fatalf("pages gave %v", seen)
	}
	var open page
	h.Query("acme", q, map[string]any{"status": "OPEN"}).Decode(t, &open)
	if len(open.Invoices.Edges) != 1 || open.Invoices.Edges[0].Node.Status != "OPEN" || open.Invoices.Edges[0].Node.Total != 4900 {
		t.Fatalf("open invoices = %+v", open)
	}
	var other page
	h.Query("someone-else", q, nil).Decode(t, &other)
	if len(other.Invoices.Edges) != 0 {
		t.Fatal("another organisation sees our invoices")
	}
}

// TestInvoiceWithAStatusOutsideTheEnumIsNotListed: Stripe can report a
// status the schema does not have (a deleted draft is "deleted"); a client
// must never receive it as an enum value it cannot handle, so such an
// invoice is left out of the list, and the others still page normally.
func TestInvoiceWithAStatusOutsideTheEnumIsNotListed(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	var org struct{ Organization struct{ ID string } }
	h.Query("acme", `{ organization { id } }`, nil).Decode(t, &org)
	ctx := context.Background()
	at := h.Clock.Now()
	err := h.App.DB.Tx(ctx, func(tx *gorm.DB) error {
		for i, status := range []stripe.InvoiceStatus{"paid", "deleted", "open"} {
			inv := &stripe.Invoice{ID: fmt.Sprintf("in_enum_%d", i), Status: status, Currency: "usd", Total: 4900,
				Created: at.Add(time.Duration(i) * time.Minute).Unix()}
			if _, err := h.App.Invoices.Apply(ctx, tx, org.Organization.ID, inv, at); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Invoices struct {
			Nodes []struct{ ID, Status string }
		}
	}
	h.Query("acme", `{ invoices(first: 10) { nodes { id status } } }`, nil).Decode(t, &got)
	var listed []string
	for _, n := range got.Invoices.Nodes {
		listed = append(listed, n.ID+":"+n.Status)
	}
	if strings.Join(listed, ",") != "in_enum_2:OPEN,in_enum_0:PAID" {
		t.Fatalf("listed %v, want the open and the paid invoice only", listed)
	}
}

// A dashboard lists each plan's prices and sells the yearly one when asked.
func TestPlanPricesAndAYearlyCheckoutOverGraphQL(t *testing.T) {
	h := withStripe(t)
	var plans struct {
		Plans []struct {
			ID            string
			StripePriceID *string
			Prices        []struct {
				ID, Interval, Currency string
				AmountCents            int64
			}
		}
	}
	h.Query("acme", `{ plans { id stripePriceId prices { id interval amountCents currency } } }`, nil).Decode(t, &plans)
	yearly := ""
	for _, p := range plans.Plans {
		if p.ID != "growth" {
			continue
		}
		for _, pr := range p.Prices {
			if pr.Interval == "YEAR" {
				yearly = pr.ID
			}
			if pr.Interval == "MONTH" && (p.StripePriceID == nil || *p.StripePriceID != pr.ID) {
				t.Errorf("growth stripePriceId %v is not its monthly price %s", p.StripePriceID, pr.ID)
			}
		}
	}
	if yearly == "" {
		t.Fatalf("growth lists no yearly price: %+v", plans.Plans)
	}
	yearlyCheckout(t, h, "acme")
	var sub struct{ Subscription struct{ PlanMismatch bool } }
	h.Query("acme", `{ subscription { planMismatch } }`, nil).Decode(t, &sub)
	if sub.Subscription.PlanMismatch {
		t.Fatal("planMismatch is set without any subscription")
	}
}

// yearlyCheckout opens a Checkout of Growth's yearly price for org, which
// also makes its Stripe customer.
func yearlyCheckout(t *testing.T, h *apptest.Harness, org string) {
	t.Helper()
	var ok checkoutResult
	h.Query(org, checkout, map[string]any{"in": map[string]any{"plan": "growth", "interval": "YEAR",
		"successUrl": "https://app.example.com/ok", "cancelUrl": "https://app.example.com/no"}}).Decode(t, &ok)
	if c := ok.CreateCheckoutSession; len(c.UserErrors) > 0 || c.URL == nil {
		t.Fatalf("yearly checkout = %+v", c)
	}
}
