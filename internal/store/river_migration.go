package store

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"

	"github.com/pressly/goose/v3"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
)

// riverSchemaVersion is the goose version that creates River's job tables,
// and riverTargetVersion the River migration it brings them to (the newest
// in River v0.51.2). A River upgrade that adds migrations gets a new goose
// version with a higher target, so `migrate status` and `migrate down` cover
// River's tables like Tollgate's own. Numbered apart from the SQL files
// (a Go migration's version must not repeat one of theirs) so that
// migrations other branches add in between do not collide with it.
const (
	riverSchemaVersion = 20
	riverTargetVersion = 8
)

// riverMigration applies River's own migrations through goose. River ships
// its SQL per driver; running it through rivermigrate rather than copying it
// into migrations/ keeps it byte-for-byte River's, while goose stays the one
// runner (with its Postgres lock, so replicas starting at once do not race).
//
// On Postgres it runs outside goose's transaction: River's migrations add an
// enum value that a later one uses, which Postgres refuses within one
// transaction, so rivermigrate gives each its own. On SQLite it runs inside
// goose's transaction: the pool's only connection is goose's until it ends.
func riverMigration(d Dialect) *goose.Migration {
	quiet := &rivermigrate.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	wrap := func(direction rivermigrate.Direction, err error) error {
		if err != nil {
			return fmt.Errorf("river schema %s: %w", direction, err)
		}
		return nil
	}
	if d == Postgres {
		run := func(direction rivermigrate.Direction, target int) *goose.GoFunc {
			return &goose.GoFunc{RunDB: func(ctx context.Context, db *sql.DB) error {
				m, err := rivermigrate.New(riverdatabasesql.New(db), quiet)
				if err == nil {
					_, err = m.Migrate(ctx, direction, &rivermigrate.MigrateOpts{TargetVersion: target})
				}
				return wrap(direction, err)
			}}
		}
		return goose.NewGoMigration(riverSchemaVersion,
			run(rivermigrate.DirectionUp, riverTargetVersion), run(rivermigrate.DirectionDown, -1))
	}
	run := func(direction rivermigrate.Direction, target int) *goose.GoFunc {
		return &goose.GoFunc{RunTx: func(ctx context.Context, tx *sql.Tx) error {
			m, err := rivermigrate.New(riversqlite.New(nil), quiet)
			if err == nil {
				_, err = m.MigrateTx(ctx, tx, direction, &rivermigrate.MigrateOpts{TargetVersion: target})
			}
			return wrap(direction, err)
		}}
	}
	return goose.NewGoMigration(riverSchemaVersion,
		run(rivermigrate.DirectionUp, riverTargetVersion), run(rivermigrate.DirectionDown, -1))
}
