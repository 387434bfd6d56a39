package auth_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/auth"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/orgs"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

func keyInput(name string) auth.CreateKeyInput {
	return auth.CreateKeyInput{Name: name, Scopes: []auth.Scope{auth.BillingRead}, CreatorScopes: auth.AllScopes}
}

// TestActiveKeysAreCappedUnderConcurrentCreates: however many creates race
// for the last free places, exactly MaxActiveKeys keys are live afterwards
// and the others are told TOO_MANY_API_KEYS; a revoked key frees a place,
// and another organisation's keys do not count.
func TestActiveKeysAreCappedUnderConcurrentCreates(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		clk := clock.NewFake(time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
		o := orgs.NewService(db, clk)
		org, err := o.Ensure(ctx, "acme", "", "")
		if err != nil {
			t.Fatal(err)
		}
		other, err := o.Ensure(ctx, "globex", "", "")
		if err != nil {
			t.Fatal(err)
		}
		k := auth.NewKeys(db, clk, false)
		const free = 5
		for range auth.MaxActiveKeys - free {
			if _, _, err := k.Create(ctx, org, keyInput("backend")); err != nil {
				t.Fatal(err)
			}
		}
		const racers = 20
		var wg sync.WaitGroup
		errs := make([]error, racers)
		for i := range racers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _, errs[i] = k.Create(ctx, org, keyInput("racer"))
			}()
		}
		wg.Wait()
		created, refused := 0, 0
		for _, err := range errs {
			fe, ok := apperr.AsFieldErrors(err)
			switch {
			case err == nil:
				created++
			case ok && len(fe) == 1 && fe[0].Code == auth.CodeTooManyKeys:
				refused++
			default:
				t.Errorf("create: %v, want success or %s", err, auth.CodeTooManyKeys)
			}
		}
		var live int64
		db.Model(&auth.APIKey{}).Where("org_id = ? AND revoked_at IS NULL", org).Count(&live)
		if created != free || refused != racers-free || live != auth.MaxActiveKeys {
			t.Fatalf("%d created, %d refused, %d live; want %d, %d, %d", created, refused, live, free, racers-free, auth.MaxActiveKeys)
		}

		if _, _, err := k.Create(ctx, other, keyInput("globex backend")); err != nil {
			t.Fatalf("another organisation's first key was refused: %v", err)
		}
		page, err := k.List(ctx, org, 1, "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := k.Revoke(ctx, org, page[0].ID); err != nil {
			t.Fatal(err)
		}
		if _, _, err := k.Create(ctx, org, keyInput("after a revoke")); err != nil {
			t.Fatalf("a key after revoking one was refused: %v", err)
		}

		// 101 keys now (one revoked): a page holds at most MaxPageSize.
		all, err := k.List(ctx, org, 1000, "")
		if err != nil || len(all) != auth.MaxPageSize {
			t.Fatalf("List(1000) = %d keys, %v; want %d", len(all), err, auth.MaxPageSize)
		}
	})
}

// TestKeysArePagedNewestFirst: pages follow one another by the last key's
// id without gaps or repeats, and a page of fewer than one key or an after
// that is not one of the organisation's keys is BAD_USER_INPUT.
func TestKeysArePagedNewestFirst(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		clk := clock.NewFake(time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
		o := orgs.NewService(db, clk)
		org, _ := o.Ensure(ctx, "acme", "", "")
		other, _ := o.Ensure(ctx, "globex", "", "")
		k := auth.NewKeys(db, clk, false)
		var want []string
		for i := range 7 {
			if i != 3 {
				clk.Advance(time.Second) // two keys share a creation time
			}
			key, _, err := k.Create(ctx, org, keyInput("backend"))
			if err != nil {
				t.Fatal(err)
			}
			want = append([]string{key.ID}, want...)
		}
		foreign, _, err := k.Create(ctx, other, keyInput("globex"))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		after := ""
		for range 10 {
			page, err := k.List(ctx, org, 3, after)
			if err != nil {
				t.Fatal(err)
			}
			for _, key := range page {
				got = append(got, key.ID)
			}
			if len(page) < 3 {
				break
			}
			after = page[len(page)-1].ID
		}
		all, _ := k.List(ctx, org, 100, "")
		var newestFirst []string
		for _, key := range all {
			newestFirst = append(newestFirst, key.ID)
		}
		if len(got) != len(want) || len(newestFirst) != len(want) {
			t.Fatalf("paged %d keys, listed %d, want %d", len(got), len(newestFirst), len(want))
		}
		for i := range got {
			if got[i] != newestFirst[i] {
				t.Fatalf("page order %v differs from the whole list %v", got, newestFirst)
			}
		}
		for _, c := range []struct {
			first int
			after string
		}{{0, ""}, {-1, ""}, {3, foreign.ID}, {3, "5f0c2a4e-0000-4000-8000-000000000001"}, {3, "\x00"}} {
			_, err := k.List(ctx, org, c.first, c.after)
			if ae, ok := apperr.As(err); !ok || ae.Code != apperr.BadInput || errors.Is(err, apperr.ErrNotFound) {
				t.Errorf("List(%d, %q) = %v, want BAD_USER_INPUT", c.first, c.after, err)
			}
		}
	})
}
