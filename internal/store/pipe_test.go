package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// pipeInsert adds $1 to a table, dividing by it first, so 0 fails.
const pipeInsert = `INSERT INTO piped (n) SELECT 10 / $1::int WHERE (SELECT tollgate_pipe_turn($2, $3))`

// TestAPipeCommitsNothingBehindAStatementThatFailed: three statements in
// the pipe at once, the second failing. The third, sent before the
// failure was known, fails out of turn; a statement sent after it is
// refused without being sent until its caller resyncs, and then commits.
func TestAPipeCommitsNothingBehindAStatementThatFailed(t *testing.T) {
	db := testenv.OpenDB(t, store.Postgres)
	ctx := context.Background()
	if err := db.Exec("CREATE TABLE piped (n int)").Error; err != nil {
		t.Fatal(err)
	}
	pipe := db.Pipe()
	var calls []*store.PipeCall
	for _, n := range []int{1, 0, 2} {
		call, err := pipe.Send(ctx, pipeInsert, []any{n}, false)
		if err != nil {
			t.Fatalf("send %d: %v", n, err)
		}
		calls = append(calls, call)
	}
	if _, err := calls[0].Wait(ctx); err != nil {
		t.Errorf("the first statement: %v", err)
	}
	var pgErr *pgconn.PgError
	if _, err := calls[1].Wait(ctx); !errors.As(err, &pgErr) || pgErr.Code != "22012" {
		t.Errorf("the second statement: %v, want a division by zero", err)
	}
	if _, err := calls[2].Wait(ctx); !errors.Is(err, store.ErrOutOfTurn) {
		t.Errorf("the third statement: %v, want it out of turn", err)
	}
	if _, err := pipe.Send(ctx, pipeInsert, []any{5}, false); !errors.Is(err, store.ErrOutOfTurn) {
		t.Errorf("a statement sent after the failure, without resync: %v, want it refused out of turn", err)
	}
	call, err := pipe.Send(ctx, pipeInsert, []any{5}, true)
	if err != nil {
		t.Fatalf("resync: %v", err)
	}
	if _, err := call.Wait(ctx); err != nil {
		t.Errorf("the resynced statement: %v", err)
	}
	var got []int
	if err := db.Raw("SELECT n FROM piped ORDER BY n").Scan(&got).Error; err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != 2 || got[1] != 10 {
		t.Errorf("stored %v, want [2 10]: the first statement's and the resynced one's", got)
	}
}

// TestAPipeAnswersRowsAndReopensAfterItsConnectionIsLost: a statement's
// rows come back through the pipe; once the pipe's backend is terminated
// the call in flight fails, and the pipe opens a new connection for the
// next one.
func TestAPipeAnswersRowsAndReopensAfterItsConnectionIsLost(t *testing.T) {
	db := testenv.OpenDB(t, store.Postgres)
	ctx := context.Background()
	pipe := db.Pipe()
	const query = `SELECT pg_backend_pid(), g, $1::text FROM generate_series(1, 3) g WHERE (SELECT tollgate_pipe_turn($2, $3))`
	read := func(resync bool) (int32, error) {
		call, err := pipe.Send(ctx, query, []any{"x"}, resync)
		if err != nil {
			return 0, err
		}
		rows, err := call.Wait(ctx)
		if err != nil {
			return 0, err
		}
		var pid int32
		n := 0
		for rows.Next() {
			var g int64
			var s string
			if err := rows.Scan(&pid, &g, &s); err != nil {
				return 0, err
			}
			if n++; g != int64(n) || s != "x" {
				t.Errorf("row %d: %d, %q", n, g, s)
			}
		}
		if n != 3 {
			t.Errorf("%d rows, want 3", n)
		}
		return pid, nil
	}
	pid, err := read(false)
	if err != nil {
		t.Fatal(err)
	}
	// Hold the next statement in flight while its backend is terminated.
	call, err := pipe.Send(ctx, `SELECT pg_sleep(30) WHERE (SELECT tollgate_pipe_turn($1, $2))`, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	var ok bool
	if err := db.Raw("SELECT pg_terminate_backend(?)", pid).Scan(&ok).Error; err != nil || !ok {
		t.Fatalf("terminate %d: %v, %v", pid, ok, err)
	}
	if _, err := call.Wait(ctx); err == nil || errors.Is(err, store.ErrOutOfTurn) {
		t.Errorf("the statement in flight: %v, want the connection's loss", err)
	}
	// What was in flight may have committed: the pipe is out of step until
	// a caller resyncs, on a new connection.
	if _, err := read(false); !errors.Is(err, store.ErrOutOfTurn) {
		t.Errorf("after the loss, without resync: %v, want out of turn", err)
	}
	next, err := read(true)
	if err != nil {
		t.Fatalf("after the loss: %v", err)
	}
	if next == pid {
		t.Errorf("the same backend %d answered after it was terminated", pid)
	}
}
