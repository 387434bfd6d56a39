package billing_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/billing"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/orgs"
	"github.com/tollgate-billing/tollgate/internal/plans"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/stripeclient/stripetest"
)

func newService(db *store.DB, sc *client.API) *billing.Service {
	return billing.NewService(db, plans.Default(), clock.Real{}, sc, stripetest.Discard())
}

func newOrg(t *testing.T, db *store.DB, email string) string {
	t.Helper()
	id, err := orgs.NewService(db, clock.Real{}).Ensure(context.Background(), "ext-"+store.NewID(), "Acme", email)
	if err != nil {
		t.Fatalf("create org: %v", err)
	}
	return id
}

// subscribe stores a subscription as a webhook would.
func subscribe(t *testing.T, db *store.DB, svc *billing.Service, orgID string, sub *stripe.Subscription, at time.Time) billing.Result {
	t.Helper()
	var res billing.Result
	err := db.Tx(context.Background(), func(tx *gorm.DB) error {
		var err error
		res, err = svc.ApplySubscription(context.Background(), tx, billing.SubscriptionUpdate{Sub: sub, At: at, OrgID: orgID})
		return err
	})
	if err != nil {
		t.Fatalf("apply subscription: %v", err)
	}
	return res
}

func stripeSub(id, customer, price string, status stripe.SubscriptionStatus) *stripe.Subscription {
	now := time.Now().UTC().Truncate(time.Second)
	return &stripe.Subscription{
		ID: id, Customer: &stripe.Customer{ID: customer}, Status: status, Created: now.Unix(),
		CurrentPeriodStart: now.Unix(), CurrentPeriodEnd: now.AddDate(0, 1, 0).Unix(),
		Items: &stripe.SubscriptionItemList{Data: []*stripe.SubscriptionItem{{Price: &stripe.Price{ID: price}}}},
	}
}

func wantFieldError(t *testing.T, err error, field, code string) {
	t.Helper()
	fe, ok := apperr.AsFieldErrors(err)
	if !ok {
		t.Fatalf("error = %v, want userErrors with %s on %q", err, code, field)
	}
	for _, f := range fe {
		if f.Field == field && f.Code == code {
			if f.Message == "" {
				t.Errorf("%s on %q has no message", code, field)
			}
			return
		}
	}
	t.Fatalf("userErrors = %+v, want %s on %q", fe, code, field)
}

func wantCode(t *testing.T, err error, code apperr.Code) *apperr.Error {
	t.Helper()
	e, ok := apperr.As(err)
	if !ok || e.Code != code {
		t.Fatalf("error = %v, want %s", err, code)
	}
	return e
}

// wantStripeOutage: Stripe failing is an outage of a dependency,
// UNAVAILABLE with the reason that names Stripe.
func wantStripeOutage(t *testing.T, err error) *apperr.Error {
	t.Helper()
	e := wantCode(t, err, apperr.Unavailable)
	if e.Extensions["reason"] != apperr.ReasonPaymentProvider {
		t.Fatalf("extensions = %v, want reason %s", e.Extensions, apperr.ReasonPaymentProvider)
	}
	return e
}

func orgRow(t *testing.T, db *store.DB, id string) orgs.Organization {
	t.Helper()
	var o orgs.Organization
	if err := db.Where("id = ?", id).Take(&o).Error; err != nil {
		t.Fatalf("load org: %v", err)
	}
	return o
}

func nowUTC() time.Time { return time.Now().UTC().Truncate(time.Second) }

// recordCheckout records, as CreateCheckoutSession does, a Checkout
// session of the organisation opened for the customer, already completed
// (closed, so the next checkout need not expire it): what lets the
// metadata.org_id of that customer's subscriptions and invoices place them
// before the customer is linked.
func recordCheckout(t *testing.T, db *store.DB, orgID, customerID string) {
	t.Helper()
	if err := billing.RecordCheckoutOpened(context.Background(), db, orgID, customerID, "starter", "price_tollgate_starter_monthly", time.Now()); err != nil {
		t.Fatalf("record checkout session: %v", err)
	}
}

// openCheckouts returns the Stripe ids of the organisation's checkout
// sessions not yet closed, oldest first ("" for one still pending).
func openCheckouts(t *testing.T, db *store.DB, orgID string) []string {
	t.Helper()
	var rows []struct{ StripeSessionID *string }
	if err := db.Table("checkout_sessions").Where("org_id = ? AND state <> ?", orgID, "closed").
		Order("created_at").Find(&rows).Error; err != nil {
		t.Fatalf("load checkout sessions: %v", err)
	}
	out := make([]string, len(rows))
	for i, r := range rows {
		if r.StripeSessionID != nil {
			out[i] = *r.StripeSessionID
		}
	}
	return out
}

// subscribedOnce gives an organisation whose Checkout opened a customer the
// billing history a paid Checkout leaves: a subscription, here since
// canceled.
func subscribedOnce(t *testing.T, db *store.DB, svc *billing.Service, orgID string) {
	t.Helper()
	customer := orgRow(t, db, orgID).StripeCustomerID
	if customer == nil {
		t.Fatal("the organisation has no Stripe customer")
	}
	subscribe(t, db, svc, orgID, stripeSub("sub_"+strings.ReplaceAll(store.NewID(), "-", ""), *customer, "price_tollgate_starter_monthly", stripe.SubscriptionStatusCanceled), nowUTC())
}
