package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"

	gosqlite "github.com/glebarez/go-sqlite"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/redis/go-redis/v9"
	sqlite3 "modernc.org/sqlite/lib"
)

// IsUnavailable reports whether err, through any wrapping, means the database
// was briefly out of reach (restarting, connection dropped or refused, too
// many connections, a lock or serialization conflict) rather than the request
// or the code being wrong: the same request may succeed when retried. (A
// connection lost during COMMIT may still have committed, so only idempotent
// writes are blindly safe to retry.)
//
// Redis is classified by the same rules: a reply saying the server is
// loading, failing over or full is unavailability, while any other reply
// (a database number out of range, a refused password, a cluster command to
// a server without cluster mode) is the configuration or the request being
// wrong.
//
// A cancelled context is not unavailability: the client went away.
func IsUnavailable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	// An answer from the server decides on its own: 23505 or 42601 means the
	// request is wrong, and 28P01 (bad password) inside a ConnectError means
	// the configuration is; neither goes away on retry.
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return IsConflict(err) || unavailableSQLState(pgErr.Code)
	}
	var sqliteErr *gosqlite.Error
	if errors.As(err, &sqliteErr) {
		return IsConflict(err)
	}
	var redisErr redis.Error
	if errors.As(err, &redisErr) {
		return redis.IsLoadingError(err) || redis.IsReadOnlyError(err) || redis.IsMasterDownError(err) ||
			redis.IsClusterDownError(err) || redis.IsTryAgainError(err) || redis.IsMaxClientsError(err) ||
			redis.IsNoReplicasError(err)
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) || pgconn.Timeout(err) || pgconn.SafeToRetry(err) {
		return true
	}
	var netErr net.Error // includes *net.OpError: dial refused, connection reset
	return errors.As(err, &netErr)
}

// IsConflict reports whether err means the database aborted the transaction
// because of a concurrent one (a Postgres deadlock or serialization failure,
// a busy or locked SQLite): it wrote nothing, and running the whole
// transaction again is safe and will likely succeed.
func IsConflict(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "40001" || pgErr.Code == "40P01" // serialization failure, deadlock detected
	}
	var sqliteErr *gosqlite.Error
	if errors.As(err, &sqliteErr) {
		switch sqliteErr.Code() & 0xff { // primary code, without the extended bits
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return true
		}
	}
	return false
}

// unavailableSQLState reports whether a Postgres SQLSTATE means the server
// is briefly out of reach.
func unavailableSQLState(code string) bool {
	if len(code) == 5 && code[:2] == "08" { // connection exception
		return true
	}
	switch code {
	case "57P01", "57P02", "57P03", // admin shutdown, crash shutdown, cannot connect now
		"53300": // too many connections
		return true
	}
	return false
}
