// Package jobs is Tollgate's one background-job mechanism: a River client
// whose jobs live in the system-of-record database (Postgres, or the
// embedded SQLite file). A job is inserted in the transaction of the fact it
// follows from, so a committed fact never loses its job and a rolled-back
// one never runs it. Domains register their workers at start-up; internal/app
// starts and stops the runner.
package jobs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivertype"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/store"
)

// Config tunes the runner.
type Config struct {
	Logger *slog.Logger
	// MaxWorkers is how many jobs run at once in this process (default 10).
	MaxWorkers int
	// FetchPollInterval is how often an idle runner looks for due jobs
	// (default River's 1 s). Tests shorten it.
	FetchPollInterval time.Duration
	// TestOnly skips River's jittered start-up of maintenance services.
	TestOnly bool
}

// client is what the runner needs of a working River client, whichever
// driver's transaction type it is built on.
type client interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	Subscribe(kinds ...river.EventKind) (<-chan *river.Event, func())
	JobRetry(ctx context.Context, id int64) (*rivertype.JobRow, error)
	PeriodicJobs() *river.PeriodicJobBundle
}

// Runner inserts and works River jobs.
type Runner struct {
	workers *river.Workers
	// insert takes GORM's *sql.Tx. On SQLite it is also the working client;
	// on Postgres the working client is riverpgxv5 on its own pgx pool (LISTEN
	// for prompt pick-up) and insert is an insert-only database/sql client,
	// because GORM's transactions are database/sql ones.
	insert *river.Client[*sql.Tx]
	work   client
	pool   *pgxpool.Pool
	// started is set by Start; Stop of a runner never started only
	// releases its pool.
	started bool
}

// New builds a runner on db. Register workers, then Start it.
func New(ctx context.Context, db *store.DB, cfg Config) (*Runner, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxWorkers <= 0 {
		cfg.MaxWorkers = 10
	}
	r := &Runner{workers: river.NewWorkers()}
	rc := &river.Config{
		Logger:            cfg.Logger,
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: cfg.MaxWorkers}},
		Workers:           r.workers,
		FetchPollInterval: cfg.FetchPollInterval,
		FetchCooldown:     min(cfg.FetchPollInterval, river.FetchCooldownDefault),
		TestOnly:          cfg.TestOnly,
	}
	if db.Dialect == store.SQLite {
		c, err := river.NewClient(riversqlite.New(db.SQL()), rc)
		if err != nil {
			return nil, fmt.Errorf("jobs: %w", err)
		}
		r.insert, r.work = c, c
		return r, nil
	}
	dialector, ok := db.Dialector.(*postgres.Dialector)
	if !ok || dialector.Config.DSN == "" {
		return nil, errors.New("jobs: Postgres database opened without a DSN")
	}
	pcfg, err := pgxpool.ParseConfig(dialector.Config.DSN)
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	// Workers, the leader's maintenance and the listener; the jobs' own
	// writes go through the application's pool.
	pcfg.MaxConns = 4
	if r.pool, err = pgxpool.NewWithConfig(ctx, pcfg); err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	work, err := river.NewClient[pgx.Tx](riverpgxv5.New(r.pool), rc)
	if err != nil {
		r.pool.Close()
		return nil, fmt.Errorf("jobs: %w", err)
	}
	r.work = work
	r.insert, err = river.NewClient(riverdatabasesql.New(db.SQL()), &river.Config{Logger: cfg.Logger, Workers: r.workers})
	if err != nil {
		r.pool.Close()
		return nil, fmt.Errorf("jobs: %w", err)
	}
	return r, nil
}

// Register adds a worker. Call it before Start.
func Register[T river.JobArgs](r *Runner, w river.Worker[T]) { river.AddWorker(r.workers, w) }

// Every enqueues the job args builds every interval, and once when this
// replica becomes River's leader: only the leader schedules periodic jobs,
// so one replica runs each. Call it at start-up.
func (r *Runner) Every(interval time.Duration, args func() river.JobArgs) {
	r.work.PeriodicJobs().Add(river.NewPeriodicJob(river.PeriodicInterval(interval),
		func() (river.JobArgs, *river.InsertOpts) { return args(), nil }, &river.PeriodicJobOpts{RunOnStart: true}))
}

// InsertTx enqueues a job in tx, the transaction of the fact it follows
// from: the job exists exactly when that transaction commits.
func (r *Runner) InsertTx(ctx context.Context, tx *gorm.DB, args river.JobArgs, opts *river.InsertOpts) error {
	sqlTx, ok := tx.Statement.ConnPool.(*sql.Tx)
	if !ok {
		return errors.New("jobs: InsertTx needs a transaction (store.DB.Tx)")
	}
	if _, err := r.insert.InsertTx(ctx, sqlTx, args, opts); err != nil {
		return fmt.Errorf("enqueue %s job: %w", args.Kind(), err)
	}
	return nil
}

// Start works jobs until Stop. Jobs can be inserted without it (a command
// that only writes facts leaves their jobs to the serving replicas).
func (r *Runner) Start(ctx context.Context) error {
	if err := r.work.Start(ctx); err != nil {
		return fmt.Errorf("start jobs: %w", err)
	}
	r.started = true
	return nil
}

// Stop lets running jobs finish (until ctx ends) and releases the runner's
// connections.
func (r *Runner) Stop(ctx context.Context) error {
	var err error
	if r.started {
		err = r.work.Stop(ctx)
	}
	if r.pool != nil {
		r.pool.Close()
	}
	return err
}

// Subscribe reports job outcomes in this process, for tests and metrics.
func (r *Runner) Subscribe(kinds ...river.EventKind) (<-chan *river.Event, func()) {
	return r.work.Subscribe(kinds...)
}

// RunNow makes a job waiting for its next retry run at once.
func (r *Runner) RunNow(ctx context.Context, id int64) error {
	if _, err := r.work.JobRetry(ctx, id); err != nil {
		return fmt.Errorf("retry job %d: %w", id, err)
	}
	return nil
}
