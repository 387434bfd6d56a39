package store_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/tollgate-billing/tollgate/internal/orgs"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// TestMigrationsRoundTrip: every migration applies, rolls back and applies
// again on both dialects, so a bad Down never strands an operator.
func TestMigrationsRoundTrip(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		var status bytes.Buffer
		if err := db.MigrationStatus(ctx, &status); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(status.String(), "pending") {
			t.Fatalf("fresh database has pending migrations:\n%s", status.String())
		}
		if err := db.MigrateReset(ctx); err != nil {
			t.Fatal(err)
		}
		if db.Migrator().HasTable("organizations") {
			t.Fatal("organizations survived a full rollback")
		}
		if err := db.MigrateUp(ctx); err != nil {
			t.Fatal(err)
		}
		org := orgs.Organization{ID: store.NewID(), ExternalID: "x", PlanID: "free"}
		if err := db.Create(&org).Error; err != nil {
			t.Fatalf("insert after re-migrating: %v", err)
		}
		if err := db.MigrateUp(ctx); err != nil {
			t.Fatalf("second up is not a no-op: %v", err)
		}
	})
}
