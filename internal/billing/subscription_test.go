package billing_test

import (
	"context"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/billing"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

func TestEffectivePlanFollowsSubscriptionStatus(t *testing.T) {
	cases := []struct {
		status   stripe.SubscriptionStatus
		wantPlan string
	}{
		{"active", "growth"},
		{"trialing", "growth"},
		{"past_due", "growth"},
		{"canceled", "free"},
		{"unpaid", "free"},
		{"incomplete", "free"},
		{"incomplete_expired", "free"},
		{"paused", "free"},
	}
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		svc := newService(db, nil)
		for _, tc := range cases {
			t.Run(string(tc.status), func(t *testing.T) {
				org := newOrg(t, db, "")
				subscribe(t, db, svc, org, stripeSub("sub_"+store.NewID(), "cus_"+store.NewID(), "price_tollgate_growth_monthly", tc.status), nowUTC())
				if got := orgRow(t, db, org).PlanID; got != tc.wantPlan {
					t.Errorf("organizations.plan_id = %q, want %q", got, tc.wantPlan)
				}
				plan, status, err := svc.PlanOf(context.Background(), org)
				if err != nil || plan.ID != tc.wantPlan || status != string(tc.status) {
					t.Errorf("PlanOf = %s, %q, %v; want %s, %q", plan.ID, status, err, tc.wantPlan, tc.status)
				}
			})
		}
	})
}

func TestOlderSubscriptionUpdateIsDropped(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		svc := newService(db, nil)
		org := newOrg(t, db, "")
		id, cus := "sub_"+store.NewID(), "cus_"+store.NewID()
		t0 := nowUTC()
		subscribe(t, db, svc, org, stripeSub(id, cus, "price_tollgate_growth_monthly", "active"), t0.Add(time.Minute))
		res := subscribe(t, db, svc, org, stripeSub(id, cus, "price_tollgate_starter_monthly", "active"), t0)
		if res.Outcome != billing.Stale {
			t.Fatalf("outcome = %s, want stale", res.Outcome)
		}
		st, err := svc.Current(context.Background(), org)
		if err != nil || st.Plan.ID != "growth" {
			t.Fatalf("plan = %s (%v), want growth from the newer update", st.Plan.ID, err)
		}
		res = subscribe(t, db, svc, org, stripeSub(id, cus, "price_tollgate_starter_monthly", "active"), t0.Add(2*time.Minute))
		if res.Outcome != billing.Applied || len(res.Changes) == 0 {
			t.Fatalf("newer update: %+v, want applied with changes", res)
		}
	})
}

func TestPriceMissingFromPlansConfig(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		svc := newService(db, nil)
		t.Run("falls back to the plan Tollgate sold", func(t *testing.T) {
			org := newOrg(t, db, "")
			sub := stripeSub("sub_"+store.NewID(), "cus_"+store.NewID(), "price_legacy", "active")
			sub.Metadata = map[string]string{"org_id": org, "plan_id": "growth"}
			subscribe(t, db, svc, org, sub, nowUTC())
			if got := orgRow(t, db, org).PlanID; got != "growth" {
				t.Fatalf("plan = %q, want growth from metadata.plan_id", got)
			}
		})
		t.Run("keeps the plan stored before", func(t *testing.T) {
			org := newOrg(t, db, "")
			id, cus := "sub_"+store.NewID(), "cus_"+store.NewID()
			subscribe(t, db, svc, org, stripeSub(id, cus, "price_tollgate_starter_monthly", "active"), nowUTC())
			subscribe(t, db, svc, org, stripeSub(id, cus, "price_legacy", "active"), nowUTC().Add(time.Second))
			if got := orgRow(t, db, org).PlanID; got != "starter" {
				t.Fatalf("plan = %q, want starter kept", got)
			}
		})
		t.Run("never grants a plan nobody bought", func(t *testing.T) {
			org := newOrg(t, db, "")
			subscribe(t, db, svc, org, stripeSub("sub_"+store.NewID(), "cus_"+store.NewID(), "price_legacy", "active"), nowUTC())
			if got := orgRow(t, db, org).PlanID; got != "free" {
				t.Fatalf("plan = %q, want free", got)
			}
		})
	})
}

func TestFailedPaymentMakesSubscriptionPastDue(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		svc := newService(db, nil)
		t0 := nowUTC()
		markPastDue := func(subID string, at time.Time) billing.Result {
			var res billing.Result
			if err := db.Tx(context.Background(), func(tx *gorm.DB) error {
				var err error
				res, err = svc.MarkPastDue(context.Background(), tx, subID, at)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			return res
		}
		cases := []struct {
			name       string
			status     stripe.SubscriptionStatus
			failedAt   time.Time
			wantStatus string
			wantPlan   string
		}{
			{"an active subscription becomes past due and keeps its plan", "active", t0.Add(time.Minute), "past_due", "starter"},
			{"a canceled subscription stays canceled", "canceled", t0.Add(time.Minute), "canceled", "free"},
			{"a failure older than the last update is dropped", "active", t0.Add(-time.Minute), "active", "starter"},
		}
		t.Run("a deletion in the same second as the failed payment still ends access", func(t *testing.T) {
			org := newOrg(t, db, "")
			id := "sub_" + store.NewID()
			var changed []string
			svc.OnChange(func(orgID string) { changed = append(changed, orgID) })
			// As after `stripe sync`: the stored row was fetched from Stripe.
			err := db.Tx(context.Background(), func(tx *gorm.DB) error {
				_, err := svc.ApplySubscription(context.Background(), tx, billing.SubscriptionUpdate{
					Sub: stripeSub(id, "cus_"+store.NewID(), "price_tollgate_starter_monthly", "active"), At: t0, OrgID: org, Rank: billing.RankFetched})
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			failed := t0.Add(time.Minute)
			markPastDue(id, failed)
			err = db.Tx(context.Background(), func(tx *gorm.DB) error {
				res, err := svc.ApplySubscription(context.Background(), tx, billing.SubscriptionUpdate{
					Sub: stripeSub(id, "", "price_tollgate_starter_monthly", "canceled"), At: failed, Rank: billing.RankDeleted})
				if res.Outcome != billing.Applied {
					t.Errorf("deletion outcome %s, want applied", res.Outcome)
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if st, _ := svc.Current(context.Background(), org); st.Plan.ID != "free" || st.Subscription.Status != "canceled" {
				t.Fatalf("plan %s status %s, want free canceled", st.Plan.ID, st.Subscription.Status)
			}
			if len(changed) != 3 || changed[0] != org {
				t.Fatalf("OnChange heard %v, want the org three times (subscribed, past due, canceled)", changed)
			}
		})
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				org := newOrg(t, db, "")
				id := "sub_" + store.NewID()
				subscribe(t, db, svc, org, stripeSub(id, "cus_"+store.NewID(), "price_tollgate_starter_monthly", tc.status), t0)
				markPastDue(id, tc.failedAt)
				st, err := svc.Current(context.Background(), org)
				if err != nil {
					t.Fatal(err)
				}
				if st.Subscription.Status != tc.wantStatus || st.Plan.ID != tc.wantPlan || orgRow(t, db, org).PlanID != tc.wantPlan {
					t.Fatalf("status %s plan %s, want %s and %s", st.Subscription.Status, st.Plan.ID, tc.wantStatus, tc.wantPlan)
				}
			})
		}
		if res := markPastDue("sub_unknown", t0); res.Outcome != billing.UnknownSubscription {
			t.Fatalf("unknown subscription: outcome %s", res.Outcome)
		}
	})
}
