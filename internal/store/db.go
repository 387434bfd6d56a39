// Package store is the database infrastructure under the domain services:
// the connection to Postgres (or the embedded SQLite file in development),
// the versioned migrations, the transaction helpers every multi-row write
// goes through, the retry/unavailable classifier and the text and id checks.
// It declares no table: each domain package declares the models of the
// tables it owns and is the only one that writes them (ownership_test.go).
// Nothing above the services touches it.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/google/uuid"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/logger"
)

// Dialect is the SQL flavour behind a DB.
type Dialect string

const (
	Postgres Dialect = "postgres"
	SQLite   Dialect = "sqlite"
)

// DB is the application's database handle.
type DB struct {
	*gorm.DB
	Dialect Dialect
	// pipe is nil on SQLite.
	pipe *Pipe
}

// Options says where the database is.
type Options struct {
	// URL is a postgres:// URL; empty means SQLite at SQLitePath.
	URL        string
	SQLitePath string
	Logger     *slog.Logger
	// MaxOpenConns caps Postgres connections (default 20).
	MaxOpenConns int
}

// Open connects to the database. It does not migrate.
func Open(ctx context.Context, o Options) (*DB, error) {
	cfg := &gorm.Config{
		Logger:                 logger.Discard,
		TranslateError:         true,
		SkipDefaultTransaction: true, // every multi-row write uses Tx explicitly
		NowFunc:                func() time.Time { return time.Now().UTC() },
	}
	var (
		gdb     *gorm.DB
		err     error
		dialect Dialect
	)
	if o.URL != "" {
		dialect = Postgres
		gdb, err = gorm.Open(postgres.New(postgres.Config{DSN: o.URL}), cfg)
	} else {
		dialect = SQLite
		path := o.SQLitePath
		if path == "" {
			path = "tollgate.db"
		}
		if dir := filepath.Dir(path); dir != "." {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, fmt.Errorf("create data directory: %w", err)
			}
		}
		dsn := path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)"
		gdb, err = gorm.Open(sqlite.Open(dsn), cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", dialect, err)
	}
	sqlDB, err := gdb.DB()
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", dialect, err)
	}
	if dialect == SQLite {
		// SQLite has one writer. One connection serialises transactions in
		// the pool instead of failing them with SQLITE_BUSY, which makes
		// every transaction behave as SERIALIZABLE.
		sqlDB.SetMaxOpenConns(1)
	} else {
		n := o.MaxOpenConns
		if n <= 0 {
			n = 20
		}
		sqlDB.SetMaxOpenConns(n)
		sqlDB.SetMaxIdleConns(n)
		sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := sqlDB.PingContext(pingCtx); err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("connect to %s database: %w", dialect, err)
	}
	db := &DB{DB: gdb, Dialect: dialect}
	if dialect == Postgres {
		if db.pipe, err = newPipe(o.URL); err != nil {
			sqlDB.Close()
			return nil, fmt.Errorf("open %s database: %w", dialect, err)
		}
	}
	return db, nil
}

// SQL returns the underlying *sql.DB.
func (db *DB) SQL() *sql.DB {
	s, _ := db.DB.DB()
	return s
}

// Pipe is the database's statement pipe (pipe.go), opened on first use;
// nil on SQLite.
func (db *DB) Pipe() *Pipe { return db.pipe }

// Close closes the connection pool and the pipe's connection.
func (db *DB) Close() error {
	if db.pipe != nil {
		db.pipe.close()
	}
	return db.SQL().Close()
}

// Ping checks the database answers.
func (db *DB) Ping(ctx context.Context) error { return db.SQL().PingContext(ctx) }

// ForUpdate locks the selected rows until the transaction ends. SQLite has
// no row locks and needs none: its single connection already serialises
// transactions.
func (db *DB) ForUpdate(tx *gorm.DB) *gorm.DB {
	if db.Dialect == Postgres {
		return tx.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	return tx
}

// NewID returns a new primary key.
func NewID() string { return uuid.NewString() }

// IsNotFound reports whether err means no row matched.
func IsNotFound(err error) bool { return errors.Is(err, gorm.ErrRecordNotFound) }
