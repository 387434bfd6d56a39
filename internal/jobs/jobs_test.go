package jobs_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/jobs"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

type noteArgs struct{ Note string }

func (noteArgs) Kind() string { return "test_note" }

type noteWorker struct {
	river.WorkerDefaults[noteArgs]
	got chan string
}

func (w *noteWorker) Work(_ context.Context, job *river.Job[noteArgs]) error {
	w.got <- job.Args.Note
	return nil
}

func TestAJobExistsExactlyWhenItsTransactionCommits(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		r, err := jobs.New(ctx, db, jobs.Config{
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), FetchPollInterval: 20 * time.Millisecond, TestOnly: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		w := &noteWorker{got: make(chan string, 4)}
		jobs.Register(r, w)

		rollback := errors.New("the fact was not written")
		err = db.Tx(ctx, func(tx *gorm.DB) error {
			if err := r.InsertTx(ctx, tx, noteArgs{"rolled back"}, nil); err != nil {
				return err
			}
			return rollback
		})
		if !errors.Is(err, rollback) {
			t.Fatal(err)
		}
		var n int64
		if err := db.Raw("SELECT count(*) FROM river_job").Scan(&n).Error; err != nil || n != 0 {
			t.Fatalf("river_job rows after a rollback: %d (%v), want 0", n, err)
		}
		if err := db.Tx(ctx, func(tx *gorm.DB) error { return r.InsertTx(ctx, tx, noteArgs{"committed"}, nil) }); err != nil {
			t.Fatal(err)
		}
		if err := r.InsertTx(ctx, db.DB, noteArgs{"no transaction"}, nil); err == nil {
			t.Fatal("InsertTx outside a transaction was accepted")
		}

		if err := r.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = r.Stop(ctx)
		})
		select {
		case got := <-w.got:
			if got != "committed" {
				t.Fatalf("worked %q, want the committed job", got)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the committed job did not run within 30 s")
		}
	})
}
