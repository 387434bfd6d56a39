package auth_test

import (
	"context"
	"testing"
	"time"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/auth"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/jobs"
	"github.com/tollgate-billing/tollgate/internal/orgs"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// TestTheRetentionJobPrunesLongRevokedKeys: a key revoked longer ago than
// the retention is deleted; until then it is listed and its secret is
// refused as revoked. Once deleted, its secret and its id are refused
// exactly as an unknown key's are, and revoking it again is NOT_FOUND,
// never an internal error. Live keys, and keys revoked inside the window,
// of any organisation, stay.
func TestTheRetentionJobPrunesLongRevokedKeys(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		const retention = 90 * 24 * time.Hour
		start := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
		clk := clock.NewFake(start)
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
		create := func(orgID, name string) (auth.APIKey, string) {
			t.Helper()
			key, secret, err := k.Create(ctx, orgID, keyInput(name))
			if err != nil {
				t.Fatal(err)
			}
			return key, secret
		}
		revoke := func(orgID, id string) {
			t.Helper()
			if _, err := k.Revoke(ctx, orgID, id); err != nil {
				t.Fatal(err)
			}
		}
		old, oldSecret := create(org, "old")
		othersOld, _ := create(other, "old")
		live, liveSecret := create(org, "live")
		revoke(org, old.ID)
		revoke(other, othersOld.ID)
		clk.Advance(retention - 24*time.Hour)
		recent, recentSecret := create(org, "recent")
		revoke(org, recent.ID)
		clk.Advance(48 * time.Hour) // old: retention + 1 day ago; recent: 1 day ago

		if _, f := k.Authenticate(ctx, oldSecret); f == nil || f.Reason != auth.ReasonRevokedKey {
			t.Fatalf("a key revoked within the window, before the job: %+v, want %s", f, auth.ReasonRevokedKey)
		}
		testenv.RunPeriodicJob(t, db, "api_keys_prune", func(r *jobs.Runner) { k.KeepRevoked(r, retention, time.Hour, nil) })

		var left []string
		if err := db.Table("api_keys").Order("id").Pluck("id", &left).Error; err != nil {
			t.Fatal(err)
		}
		for _, gone := range []string{old.ID, othersOld.ID} {
			for _, id := range left {
				if id == gone {
					t.Errorf("key %s, revoked %s ago, is still stored", gone, retention+24*time.Hour)
				}
			}
		}
		if len(left) != 2 {
			t.Errorf("keys left %v, want the live %s and the recently revoked %s", left, live.ID, recent.ID)
		}
		if _, f := k.Authenticate(ctx, recentSecret); f == nil || f.Reason != auth.ReasonRevokedKey {
			t.Errorf("a key revoked a day ago: %+v, want %s", f, auth.ReasonRevokedKey)
		}
		if _, f := k.Authenticate(ctx, liveSecret); f != nil {
			t.Errorf("a live key: %+v", f)
		}
		_, unknown := k.Authenticate(ctx, auth.KeyPrefix+"test_"+store.NewID())
		if _, f := k.Authenticate(ctx, oldSecret); f == nil || *f != *unknown {
			t.Errorf("a pruned key's secret: %+v, want what an unknown key gets: %+v", f, unknown)
		}
		_, unknownID := k.AuthenticateID(ctx, store.NewID())
		if _, f := k.AuthenticateID(ctx, old.ID); f == nil || *f != *unknownID {
			t.Errorf("a pruned key's id: %+v, want what an unknown id gets: %+v", f, unknownID)
		}
		_, err = k.Revoke(ctx, org, old.ID)
		if fe, ok := apperr.AsFieldErrors(err); !ok || len(fe) != 1 || fe[0].Code != auth.CodeNotFound {
			t.Errorf("revoking a pruned key: %v, want a NOT_FOUND userError", err)
		}
	})
}
