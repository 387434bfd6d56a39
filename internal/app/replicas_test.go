package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/apptest"
	"github.com/tollgate-billing/tollgate/internal/billing"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// A plan change committed on one replica reaches the plan cache of another
// within a second, and the replica that made it forgets the old plan only
// once the change has committed (a cache told earlier can be refilled from
// a read that predates the commit).
func TestAPlanChangeReachesEveryReplicaAfterItCommits(t *testing.T) {
	db, rdb := testenv.DB(t), testenv.Redis(t)
	a := apptest.New(t, apptest.Options{DB: db, RedisClient: rdb})
	b := apptest.New(t, apptest.Options{DB: db, RedisClient: rdb})
	ctx := context.Background()
	org, err := a.App.Orgs.Ensure(ctx, "ext-replicas", "Replicas", "")
	if err != nil {
		t.Fatal(err)
	}
	planOn := func(h *apptest.Harness) string {
		t.Helper()
		p, _, err := h.App.Usage.PlanOf(ctx, org)
		if err != nil {
			t.Fatal(err)
		}
		return p.ID
	}
	// Both replicas remember "free"; their clocks are frozen, so only being
	// told can make them forget it.
	if pa, pb := planOn(a), planOn(b); pa != "free" || pb != "free" {
		t.Fatalf("a new organisation is on %q and %q, want free", pa, pb)
	}

	told := false
	a.App.Billing.OnChange(func(string) { told = true })
	err = a.App.DB.Tx(ctx, func(tx *gorm.DB) error {
		sub := &stripe.Subscription{ID: "sub_replicas", Status: stripe.SubscriptionStatusActive}
		if _, err := a.App.Billing.ApplySubscription(ctx, tx, billing.SubscriptionUpdate{
			Sub: sub, At: a.Clock.Now(), OrgID: org, PlanHint: "starter", Rank: billing.RankFetched,
		}); err != nil {
			return err
		}
		if told {
			t.Error("caches were told of the change before it committed")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !told {
		t.Fatal("caches were not told of the committed change")
	}
	if p := planOn(a); p != "starter" {
		t.Fatalf("the replica that made the change answers %q, want starter", p)
	}
	deadline := time.Now().Add(2 * time.Second)
	for planOn(b) != "starter" {
		if time.Now().After(deadline) {
			t.Fatalf("the other replica still answers %q 2 s after the change", planOn(b))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
