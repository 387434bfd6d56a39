package orgs_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/orgs"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// The writes other domains make through orgs land in the caller's
// transaction: kept when it commits, gone when it rolls back.
func TestWritesForOtherDomainsFollowTheCallersTransaction(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
		svc := orgs.NewService(db, clock.NewFake(at))
		id, err := svc.Ensure(ctx, "acme", "Acme", "billing@acme.test")
		if err != nil {
			t.Fatal(err)
		}

		rollback := errors.New("roll back")
		err = db.Tx(ctx, func(tx *gorm.DB) error {
			if err := orgs.SetStripeCustomer(ctx, tx, id, "cus_lost", at); err != nil {
				return err
			}
			return rollback
		})
		if !errors.Is(err, rollback) {
			t.Fatalf("Tx = %v, want the rollback", err)
		}
		if got, err := orgs.OfStripeCustomer(ctx, db.DB, "cus_lost"); err != nil || got != "" {
			t.Fatalf("customer of a rolled-back link = %q, %v; want none", got, err)
		}

		later := at.Add(time.Hour)
		err = db.Tx(ctx, func(tx *gorm.DB) error {
			org, ok, err := orgs.Lock(ctx, db, tx, id)
			if err != nil || !ok || org.ExternalID != "acme" {
				t.Fatalf("Lock = %+v, %v, %v", org, ok, err)
			}
			if err := orgs.SetStripeCustomer(ctx, tx, id, "cus_1", later); err != nil {
				return err
			}
			return orgs.SetPlan(ctx, tx, id, "pro", later)
		})
		if err != nil {
			t.Fatal(err)
		}
		org, err := svc.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if org.StripeCustomerID == nil || *org.StripeCustomerID != "cus_1" || org.PlanID != "pro" || !org.UpdatedAt.Equal(later) {
			t.Fatalf("org after commit = customer %v, plan %q, updated %v; want cus_1, pro, %v", org.StripeCustomerID, org.PlanID, org.UpdatedAt, later)
		}
		if got, err := orgs.OfStripeCustomer(ctx, db.DB, "cus_1"); err != nil || got != id {
			t.Fatalf("OfStripeCustomer = %q, %v; want %s", got, err, id)
		}
		list, err := orgs.WithStripeCustomer(ctx, db.DB, "")
		if err != nil || len(list) != 1 || list[0].ID != id {
			t.Fatalf("WithStripeCustomer = %+v, %v; want only %s", list, err, id)
		}
	})
}

func TestAnOrganisationThatDoesNotExistIsNotFound(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		missing := store.NewID()
		if err := orgs.SetPlan(ctx, db.DB, missing, "pro", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)); !errors.Is(err, apperr.ErrNotFound) {
			t.Errorf("SetPlan = %v, want ErrNotFound", err)
		}
		if _, err := orgs.Load(ctx, db.DB, missing); !errors.Is(err, apperr.ErrNotFound) {
			t.Errorf("Load = %v, want ErrNotFound", err)
		}
		if ok, err := orgs.Exists(ctx, db.DB, missing); err != nil || ok {
			t.Errorf("Exists = %v, %v; want false", ok, err)
		}
		err := db.Tx(ctx, func(tx *gorm.DB) error {
			_, ok, err := orgs.Lock(ctx, db, tx, missing)
			if ok {
				t.Error("Lock found an organisation that does not exist")
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

// A new organisation's first requests arrive many at once (a host backend's
// threads, or every organisation's after a restart): they share one insert
// and one read of the organisation, and all get its one id.
func TestConcurrentFirstRequestsOfAnOrganisationShareOneLookup(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		var statements atomic.Int64
		count := func(tx *gorm.DB) {
			if tx.Statement.Table == "organizations" {
				statements.Add(1)
			}
		}
		name := "test:count_org_statements_" + t.Name()
		if err := db.Callback().Create().Before("gorm:create").Register(name, count); err != nil {
			t.Fatal(err)
		}
		if err := db.Callback().Query().Before("gorm:query").Register(name, count); err != nil {
			t.Fatal(err)
		}
		s := orgs.NewService(db, clock.Real{})
		external := "ext-" + store.NewID()
		const callers = 64
		ids := make([]string, callers)
		errs := make([]error, callers)
		testenv.AtOnce(callers, func(i int) {
			ids[i], errs[i] = s.Ensure(context.Background(), external, "Acme", "")
		})
		for i := range callers {
			if errs[i] != nil || ids[i] != ids[0] {
				t.Fatalf("request %d: id %q, err %v; request 0 got %q", i, ids[i], errs[i], ids[0])
			}
		}
		// One insert and one read; a request scheduled after they ended
		// finds the id remembered.
		if n := statements.Load(); n > 2 {
			t.Errorf("%d concurrent first requests ran %d statements on organizations, want 2", callers, n)
		}
	})
}
