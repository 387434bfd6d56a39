package store_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/orgs"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// TestIsUnavailableWhenNothingListens: a Postgres URL on a port nothing
// listens on fails to open, and that failure is "retry", not "bug".
func TestIsUnavailableWhenNothingListens(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	_, err = store.Open(context.Background(), store.Options{URL: "postgres://postgres@" + addr + "/test?sslmode=disable&connect_timeout=2"})
	if err == nil {
		t.Fatal("opened a database on a closed port")
	}
	if !store.IsUnavailable(err) {
		t.Fatalf("connection refused is not unavailable: %v", err)
	}
}

// TestIsUnavailableWhenConnectionKilled: a query on a connection the server
// terminated (as a Postgres restart does) is unavailable; a duplicate key or
// a syntax error on the same database is not.
func TestIsUnavailableWhenConnectionKilled(t *testing.T) {
	db := testenv.OpenDB(t, store.Postgres)
	ctx := context.Background()

	conn, err := db.SQL().Conn(ctx) // held, so the killed connection is the one used next
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var pid int
	if err := conn.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if err := db.Exec("SELECT pg_terminate_backend(?)", pid).Error; err != nil {
		t.Fatal(err)
	}
	waitBackendGone(t, db, pid)

	_, err = conn.ExecContext(ctx, "SELECT 1")
	if err == nil {
		t.Fatal("query on a terminated connection succeeded")
	}
	t.Logf("error after pg_terminate_backend: %T: %v", err, err)
	if !store.IsUnavailable(err) {
		t.Fatalf("terminated connection is not unavailable: %v", err)
	}
	if !store.IsUnavailable(fmt.Errorf("record usage: %w", err)) {
		t.Fatalf("wrapping hides unavailability: %v", err)
	}
	_, err = conn.ExecContext(ctx, "SELECT 1") // the driver now knows the connection is dead
	if !errors.Is(err, driver.ErrBadConn) || !store.IsUnavailable(err) {
		t.Fatalf("second query on a terminated connection: %v", err)
	}

	org := orgs.Organization{ID: store.NewID(), ExternalID: "x", PlanID: "free"}
	if err := db.Create(&org).Error; err != nil {
		t.Fatal(err)
	}
	dup := db.Create(&orgs.Organization{ID: org.ID, ExternalID: "y", PlanID: "free"}).Error
	syntax := db.Exec("SELEC 1").Error
	notFound := db.First(&orgs.Organization{}, "id = ?", store.NewID()).Error
	for name, err := range map[string]error{"duplicate key": dup, "syntax error": syntax, "record not found": notFound} {
		if err == nil {
			t.Fatalf("%s: no error", name)
		}
		if store.IsUnavailable(err) {
			t.Errorf("%s is reported unavailable: %v", name, err)
		}
	}
}

func waitBackendGone(t *testing.T, db *store.DB, pid int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var n int64
		if err := db.Raw("SELECT count(*) FROM pg_stat_activity WHERE pid = ?", pid).Scan(&n).Error; err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
	t.Fatalf("backend %d still running after pg_terminate_backend", pid)
}

// TestIsUnavailableWhenSQLiteBusy: a write while another connection holds
// the write lock fails with "database is locked", which is unavailable.
func TestIsUnavailableWhenSQLiteBusy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "busy.db")
	open := func() *sql.DB {
		gdb, err := gorm.Open(sqlite.Open(path+"?_pragma=busy_timeout(0)"), &gorm.Config{TranslateError: true})
		if err != nil {
			t.Fatal(err)
		}
		s, _ := gdb.DB()
		t.Cleanup(func() { s.Close() })
		return s
	}
	ctx := context.Background()
	holder, other := open(), open()
	if _, err := holder.Exec("CREATE TABLE t (x INTEGER)"); err != nil {
		t.Fatal(err)
	}
	conn, err := holder.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	defer conn.ExecContext(ctx, "ROLLBACK")

	_, err = other.Exec("INSERT INTO t VALUES (1)")
	if err == nil {
		t.Fatal("second writer got the lock")
	}
	if !store.IsUnavailable(err) || !store.IsConflict(err) {
		t.Fatalf("SQLite busy: unavailable %t, conflict %t; want both: %T %v", store.IsUnavailable(err), store.IsConflict(err), err, err)
	}
}

// A conflict is retried at once by the caller that ran the transaction; it
// is unavailability too, for a caller that cannot retry it (the client
// then can). Other server answers are neither, or only unavailable.
func TestConflictsAreTheTransactionsToRetry(t *testing.T) {
	cases := []struct {
		code                  string
		conflict, unavailable bool
	}{
		{"40001", true, true},   // serialization failure
		{"40P01", true, true},   // deadlock detected
		{"57P01", false, true},  // admin shutdown
		{"23505", false, false}, // unique violation: the request is wrong
		{"42601", false, false}, // syntax error: the code is wrong
	}
	for _, tc := range cases {
		err := fmt.Errorf("record usage: %w", &pgconn.PgError{Code: tc.code})
		if got := store.IsConflict(err); got != tc.conflict {
			t.Errorf("SQLSTATE %s: conflict %t, want %t", tc.code, got, tc.conflict)
		}
		if got := store.IsUnavailable(err); got != tc.unavailable {
			t.Errorf("SQLSTATE %s: unavailable %t, want %t", tc.code, got, tc.unavailable)
		}
	}
}

// TestIsUnavailableNotForCancel: a client that went away is not told to
// retry; a query that ran out of time is.
func TestIsUnavailableNotForCancel(t *testing.T) {
	for _, err := range []error{nil, context.Canceled, fmt.Errorf("q: %w", context.Canceled), gorm.ErrRecordNotFound, errors.New("boom")} {
		if store.IsUnavailable(err) {
			t.Errorf("%v is reported unavailable", err)
		}
	}
	if !store.IsUnavailable(fmt.Errorf("query: %w", context.DeadlineExceeded)) {
		t.Error("a deadline is not unavailable")
	}

	t.Run("postgres", func(t *testing.T) {
		conn, err := pgconn.Connect(context.Background(), testenv.PostgresURL(t))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		// pgx wraps a context that was already cancelled as a timeout that
		// is safe to retry; the client is gone all the same.
		cancelled, cancel := context.WithCancel(context.Background())
		cancel()
		_, err = conn.Exec(cancelled, "SELECT 1").ReadAll()
		if !pgconn.SafeToRetry(err) || store.IsUnavailable(err) {
			t.Errorf("cancelled query: safe to retry %v, unavailable %v: %v", pgconn.SafeToRetry(err), store.IsUnavailable(err), err)
		}
		short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err = conn.Exec(short, "SELECT pg_sleep(2)").ReadAll()
		if !store.IsUnavailable(err) {
			t.Errorf("query past its deadline is not unavailable: %v", err)
		}
	})
}
