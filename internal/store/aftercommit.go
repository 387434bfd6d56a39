package store

import (
	"context"
	"sync"

	"gorm.io/gorm"
)

// afterCommitKey is the gorm setting under which Tx keeps what to run once
// its transaction has committed.
const afterCommitKey = "tollgate:after_commit"

type afterCommit struct {
	mu  sync.Mutex
	fns []func()
}

// AfterCommit runs fn once the transaction tx belongs to has committed, and
// never if it rolls back: for telling caches about a change, since a cache
// told earlier can be refilled from a read that predates the commit. Outside
// a transaction begun by DB.Tx, fn runs at once.
func AfterCommit(tx *gorm.DB, fn func()) {
	if v, ok := tx.Get(afterCommitKey); ok {
		if h, ok := v.(*afterCommit); ok {
			h.mu.Lock()
			h.fns = append(h.fns, fn)
			h.mu.Unlock()
			return
		}
	}
	fn()
}

// Tx runs fn in one transaction: all of its writes land, or none do. What fn
// registers with AfterCommit runs after the commit.
func (db *DB) Tx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	hooks := &afterCommit{}
	if err := db.WithContext(ctx).Set(afterCommitKey, hooks).Transaction(fn); err != nil {
		return err
	}
	hooks.mu.Lock()
	fns := hooks.fns
	hooks.mu.Unlock()
	for _, f := range fns {
		f()
	}
	return nil
}
