package reconcile_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/billing"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/invoices"
	"github.com/tollgate-billing/tollgate/internal/orgs"
	"github.com/tollgate-billing/tollgate/internal/plans"
	"github.com/tollgate-billing/tollgate/internal/reconcile"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/stripeclient/stripetest"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// stripe-mock lists the same fixture for every customer: one active
// subscription (sub_1Pgc6rB7WZ01zgkWNy0Cn5nw, at a price the plans config
// does not know) and one draft invoice (in_1Pgc6tB7WZ01zgkWu9fdqL6I).
const (
	fixtureSub     = "sub_1Pgc6rB7WZ01zgkWNy0Cn5nw"
	fixtureInvoice = "in_1Pgc6tB7WZ01zgkWu9fdqL6I"
)

func TestSyncHealsMissedEvents(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		rec := stripetest.NewRecorder()
		sc := stripetest.Client(t, rec)
		log := stripetest.Discard()
		b := billing.NewService(db, plans.Default(), clock.Real{}, sc, log)
		inv := invoices.NewService(db, clock.Real{}, log)
		syncer := reconcile.New(db, b, inv, sc, clock.Real{}, log)
		o := orgs.NewService(db, clock.Real{})

		linked, err := o.Ensure(ctx, "acme", "Acme", "")
		if err != nil {
			t.Fatal(err)
		}
		never, err := o.Ensure(ctx, "nobody", "Nobody", "")
		if err != nil {
			t.Fatal(err)
		}
		// Checkout linked a customer, then every webhook was lost.
		if err := db.Model(&orgs.Organization{}).Where("id = ?", linked).Update("stripe_customer_id", "cus_acme").Error; err != nil {
			t.Fatal(err)
		}

		var out bytes.Buffer
		if err := syncer.Sync(ctx, "", &out); err != nil {
			t.Fatalf("sync: %v\n%s", err, out.String())
		}
		for _, want := range []string{"subscription " + fixtureSub + " created", "invoice " + fixtureInvoice + " created", "synced 1 organisation(s)"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("output lacks %q:\n%s", want, out.String())
			}
		}
		if strings.Contains(out.String(), never) {
			t.Errorf("synced an organisation without a customer:\n%s", out.String())
		}
		if n := len(rec.Matching("GET", "/v1/subscriptions")); n != 1 || rec.Matching("GET", "/v1/subscriptions")[0].Form.Get("customer") != "cus_acme" {
			t.Errorf("listed subscriptions %d times, want once for cus_acme", n)
		}
		st, err := b.Current(ctx, linked)
		if err != nil || st.Subscription == nil || st.Subscription.Status != "active" {
			t.Fatalf("after sync: %+v (%v), want the active subscription stored", st.Subscription, err)
		}
		var invRow invoices.Invoice
		if err := db.Where("id = ? AND org_id = ?", fixtureInvoice, linked).Take(&invRow).Error; err != nil || invRow.Status != "draft" {
			t.Fatalf("invoice %+v (%v), want the draft stored for the org", invRow, err)
		}

		// A local copy that drifted is put back to what Stripe says.
		if err := db.Model(&billing.Subscription{}).Where("stripe_subscription_id = ?", fixtureSub).Update("status", "canceled").Error; err != nil {
			t.Fatal(err)
		}
		out.Reset()
		if err := syncer.Sync(ctx, "acme", &out); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "status: canceled → active") {
			t.Errorf("output lacks the repaired status:\n%s", out.String())
		}

		out.Reset()
		if err := syncer.Sync(ctx, linked, &out); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "in sync") {
			t.Errorf("a second sync reported changes:\n%s", out.String())
		}
	})
}

func TestSyncRefusals(t *testing.T) {
	db := testenv.DB(t)
	log := stripetest.Discard()
	b := billing.NewService(db, plans.Default(), clock.Real{}, nil, log)
	inv := invoices.NewService(db, clock.Real{}, log)
	var out bytes.Buffer
	if err := reconcile.New(db, b, inv, nil, clock.Real{}, log).Sync(context.Background(), "", &out); apperr.CodeOf(err) != apperr.StripeNotConfigured {
		t.Fatalf("without a key: %v, want STRIPE_NOT_CONFIGURED", err)
	}
	sc := stripetest.Client(t, nil)
	if err := reconcile.New(db, b, inv, sc, clock.Real{}, log).Sync(context.Background(), "no-such-org", &out); err == nil {
		t.Fatal("syncing an unknown organisation succeeded")
	}
}

// Stripe's events carry whole seconds, and a sync's listing can take
// seconds. A deletion made while the sync was reading, delivered after it,
// must still end the subscription: the sync's answer must not outrank events
// from the second it began in.
func TestAnEventFromTheSecondASyncBeganStillApplies(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		sc := stripetest.Client(t, nil)
		log := stripetest.Discard()
		began := time.Date(2026, 11, 22, 12, 0, 0, 700_000_000, time.UTC)
		clk := clock.NewFake(began)
		b := billing.NewService(db, plans.Default(), clk, sc, log)
		syncer := reconcile.New(db, b, invoices.NewService(db, clk, log), sc, clk, log)
		org, err := orgs.NewService(db, clk).Ensure(ctx, "acme", "Acme", "")
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Model(&orgs.Organization{}).Where("id = ?", org).Update("stripe_customer_id", "cus_acme").Error; err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := syncer.Sync(ctx, "", &out); err != nil {
			t.Fatalf("sync: %v\n%s", err, out.String())
		}

		// customer.subscription.deleted, created in the second the sync began.
		deleted := &stripe.Subscription{ID: fixtureSub, Customer: &stripe.Customer{ID: "cus_acme"},
			Status: stripe.SubscriptionStatusCanceled, CanceledAt: began.Unix(), EndedAt: began.Unix()}
		var res billing.Result
		err = db.Tx(ctx, func(tx *gorm.DB) error {
			res, err = b.ApplySubscription(ctx, tx, billing.SubscriptionUpdate{
				Sub: deleted, At: began.Truncate(time.Second), Rank: billing.RankDeleted})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.Outcome != billing.Applied {
			t.Fatalf("the deletion was %s, want applied", res.Outcome)
		}
		st, err := b.Current(ctx, org)
		if err != nil || st.Subscription == nil || st.Subscription.Status != "canceled" {
			t.Fatalf("after the deletion: %+v (%v), want canceled", st.Subscription, err)
		}
	})
}
