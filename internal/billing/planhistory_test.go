package billing_test

import (
	"context"
	"testing"
	"time"

	"github.com/tollgate-billing/tollgate/internal/billing"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/orgs"
	"github.com/tollgate-billing/tollgate/internal/plans"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/stripeclient/stripetest"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// TestPlanChangesAreKeptAsHistory: every change of an organisation's plan
// (a subscription, a downgrade to free when it ends) is recorded with the
// change, so PlanAt answers the plan in force at any past time.
func TestPlanChangesAreKeptAsHistory(t *testing.T) {
	created := time.Date(2026, 1, 10, 9, 0, 0, 0, time.UTC)
	subscribed := created.AddDate(0, 0, 20)
	canceled := subscribed.AddDate(0, 1, 0)
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		clk := clock.NewFake(created)
		svc := billing.NewService(db, plans.Default(), clk, nil, stripetest.Discard())
		org, err := orgs.NewService(db, clk).Ensure(ctx, "ext-"+store.NewID(), "Acme", "")
		if err != nil {
			t.Fatal(err)
		}
		id, cus := "sub_"+store.NewID(), "cus_"+store.NewID()
		sub := stripeSub(id, cus, "price_tollgate_starter_monthly", "active")
		sub.Created = subscribed.Unix()

		clk.Set(subscribed)
		subscribe(t, db, svc, org, sub, subscribed)
		clk.Set(canceled)
		sub.Status = "canceled"
		subscribe(t, db, svc, org, sub, canceled)

		var rows []billing.PlanPeriod
		if err := db.Where("org_id = ?", org).Order("valid_from").Find(&rows).Error; err != nil {
			t.Fatal(err)
		}
		if len(rows) != 3 || rows[0].PlanID != "free" || rows[1].PlanID != "starter" || rows[2].PlanID != "free" ||
			rows[2].ValidTo != nil || !rows[1].ValidFrom.Equal(subscribed) || !rows[1].ValidTo.Equal(canceled) {
			t.Fatalf("plan periods %+v, want free, starter from %s to %s, free since", rows, subscribed, canceled)
		}
		for _, c := range []struct {
			at   time.Time
			want string
		}{
			{created.Add(-time.Hour), "free"}, // before the organisation: its first plan
			{created.Add(time.Hour), "free"},
			{subscribed.Add(-time.Second), "free"},
			{subscribed, "starter"},
			{canceled.Add(-time.Second), "starter"},
			{canceled, "free"},
		} {
			p, err := svc.PlanAt(ctx, org, c.at)
			if err != nil || p.ID != c.want {
				t.Errorf("PlanAt(%s) = %s (%v), want %s", c.at, p.ID, err, c.want)
			}
		}
		spans, err := svc.PlansSince(ctx, org, created.Add(time.Hour))
		if err != nil || len(spans) != 3 || !spans[0].From.Equal(created.Add(time.Hour)) || spans[1].Plan.ID != "starter" {
			t.Fatalf("PlansSince = %+v (%v), want free from the time asked, starter, free", spans, err)
		}
	})
}

// A plan change at the instant the organisation was created, on a clock
// finer than the database's microseconds, records one period, not a
// clash of two starting at the same stored time.
func TestAPlanChangeAtCreationRecordsOnePeriod(t *testing.T) {
	at := time.Date(2026, 2, 1, 9, 0, 0, 123456789, time.UTC)
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		clk := clock.NewFake(at)
		svc := billing.NewService(db, plans.Default(), clk, nil, stripetest.Discard())
		org, err := orgs.NewService(db, clk).Ensure(ctx, "ext-"+store.NewID(), "Acme", "")
		if err != nil {
			t.Fatal(err)
		}
		sub := stripeSub("sub_"+store.NewID(), "cus_"+store.NewID(), "price_tollgate_starter_monthly", "active")
		subscribe(t, db, svc, org, sub, at)
		if p, err := svc.PlanAt(ctx, org, at.Add(time.Second)); err != nil || p.ID != "starter" {
			t.Fatalf("PlanAt just after = %s (%v), want starter", p.ID, err)
		}
	})
}

// Migration 00058 opens one period per organisation that existed before
// it, from its creation, on the plan it was on then (its history before
// was never kept), so PlanAt answers that plan from the organisation's
// first moment.
func TestThePlanHistoryMigrationOpensOnePeriodPerOrgFromItsCreation(t *testing.T) {
	created := time.Date(2026, 3, 14, 15, 9, 26, 535000000, time.UTC)
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		clk := clock.NewFake(created)
		svc := billing.NewService(db, plans.Default(), clk, nil, stripetest.Discard())
		free, err := orgs.NewService(db, clk).Ensure(ctx, "ext-"+store.NewID(), "Free Co", "")
		if err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Hour)
		paid, err := orgs.NewService(db, clk).Ensure(ctx, "ext-"+store.NewID(), "Paid Co", "")
		if err != nil {
			t.Fatal(err)
		}
		clk.Advance(24 * time.Hour)
		subscribe(t, db, svc, paid, stripeSub("sub_"+store.NewID(), "cus_"+store.NewID(), "price_tollgate_starter_monthly", "active"), clk.Now())

		if err := db.MigrateDownTo(ctx, 56); err != nil {
			t.Fatal(err)
		}
		if err := db.MigrateUp(ctx); err != nil {
			t.Fatal(err)
		}
		want := map[string]struct {
			plan string
			from time.Time
		}{free: {"free", created}, paid: {"starter", created.Add(time.Hour)}}
		var rows []billing.PlanPeriod
		if err := db.Order("org_id").Find(&rows).Error; err != nil {
			t.Fatal(err)
		}
		if len(rows) != len(want) {
			t.Fatalf("periods after the migration = %+v, want one per organisation", rows)
		}
		for _, r := range rows {
			w, ok := want[r.OrgID]
			switch {
			case !ok:
				t.Errorf("a period of unknown org %s", r.OrgID)
			case r.PlanID != w.plan || !r.ValidFrom.Equal(w.from) || r.ValidTo != nil:
				t.Errorf("org %s: period %s from %s to %v, want %s from %s, open", r.OrgID, r.PlanID, r.ValidFrom, r.ValidTo, w.plan, w.from)
			}
			if p, err := svc.PlanAt(ctx, r.OrgID, w.from); err != nil || p.ID != w.plan {
				t.Errorf("org %s: PlanAt its creation = %s (%v), want %s", r.OrgID, p.ID, err, w.plan)
			}
		}
	})
}
