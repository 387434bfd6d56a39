package store_test

import (
	"context"
	"errors"
	"testing"

	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

func TestAfterCommitRunsOnlyOnceTheTransactionCommitted(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		var ranInside, ranAfter bool
		err := db.Tx(ctx, func(tx *gorm.DB) error {
			// Callers narrow the transaction with their own context
			// before registering, as billing does.
			store.AfterCommit(tx.WithContext(ctx), func() { ranAfter = true })
			ranInside = ranAfter
			return tx.Exec("SELECT 1").Error
		})
		if err != nil {
			t.Fatal(err)
		}
		if ranInside || !ranAfter {
			t.Fatalf("ran inside the transaction: %v, after the commit: %v; want only after", ranInside, ranAfter)
		}

		var ranOnRollback bool
		boom := errors.New("boom")
		err = db.Tx(ctx, func(tx *gorm.DB) error {
			store.AfterCommit(tx, func() { ranOnRollback = true })
			return boom
		})
		if !errors.Is(err, boom) || ranOnRollback {
			t.Fatalf("rolled back with %v: the hook ran %v; want it never to run", err, ranOnRollback)
		}
	})
}
