package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/tollgate-billing/tollgate/migrations"
)

func (db *DB) migrator() (*goose.Provider, error) {
	sub, err := fs.Sub(migrations.FS, string(db.Dialect))
	if err != nil {
		return nil, err
	}
	opts := []goose.ProviderOption{goose.WithGoMigrations(riverMigration(db.Dialect))}
	dialect := goose.DialectSQLite3
	if db.Dialect == Postgres {
		dialect = goose.DialectPostgres
		// Several replicas may start at once; only one migrates.
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return nil, err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	return goose.NewProvider(dialect, db.SQL(), sub, opts...)
}

// MigrateUp applies every pending migration.
func (db *DB) MigrateUp(ctx context.Context) error {
	p, err := db.migrator()
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate up: %w", err)
	}
	return nil
}

// MigrationsPending reports whether the schema lacks a migration this
// binary carries: with TOLLGATE_MIGRATE=false a replica can start on a
// database nobody migrated, and must not report ready. It takes no
// migration lock, so it neither waits for nor blocks a migration in
// progress.
func (db *DB) MigrationsPending(ctx context.Context) (bool, error) {
	p, err := db.migrator()
	if err != nil {
		return false, fmt.Errorf("migrations: %w", err)
	}
	pending, err := p.HasPending(ctx)
	if err != nil {
		return false, fmt.Errorf("check pending migrations: %w", err)
	}
	return pending, nil
}

// MigrateDown rolls back the newest applied migration.
func (db *DB) MigrateDown(ctx context.Context) error {
	p, err := db.migrator()
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	if _, err := p.Down(ctx); err != nil {
		if errors.Is(err, goose.ErrNoNextVersion) {
			// goose says "no next version found".
			return errors.New("migrate down: nothing to roll back: no migration is applied, the schema is before the first one")
		}
		return fmt.Errorf("migrate down: %w", err)
	}
	return nil
}

// MigrateDownTo rolls back the migrations newer than version.
func (db *DB) MigrateDownTo(ctx context.Context, version int64) error {
	p, err := db.migrator()
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	if _, err := p.DownTo(ctx, version); err != nil {
		return fmt.Errorf("migrate down to %d: %w", version, err)
	}
	return nil
}

// MigrateReset rolls back every migration.
func (db *DB) MigrateReset(ctx context.Context) error {
	p, err := db.migrator()
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	if _, err := p.DownTo(ctx, 0); err != nil {
		return fmt.Errorf("migrate reset: %w", err)
	}
	return nil
}

// MigrationStatus writes one line per migration: version, state, file.
func (db *DB) MigrationStatus(ctx context.Context, w io.Writer) error {
	p, err := db.migrator()
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	st, err := p.Status(ctx)
	if err != nil {
		return fmt.Errorf("migration status: %w", err)
	}
	for _, s := range st {
		applied := "pending"
		if s.State == goose.StateApplied {
			applied = "applied " + s.AppliedAt.UTC().Format("2006-01-02 15:04:05Z")
		}
		name := s.Source.Path
		if name == "" && s.Source.Version == riverSchemaVersion {
			// A Go migration has no file: name what it does.
			name = fmt.Sprintf("river job tables (River's migrations 1 to %d)", riverTargetVersion)
		}
		fmt.Fprintf(w, "%05d  %-28s  %s\n", s.Source.Version, applied, name)
	}
	return nil
}
