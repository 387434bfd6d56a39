package usage

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/jobs"
	"github.com/tollgate-billing/tollgate/internal/store"
)

// Usage history: raw events are kept for a retention of whole months and
// then dropped; the rollups, which every read uses, are kept forever.
//
// On Postgres usage_events is partitioned by the UTC month of occurred_at
// and usage_event_keys by arrival_month (see keys.go). The maintenance job
// keeps the partitions of this month and the next partitionsAhead ready,
// moves into a partition of its own any row a default partition took (an
// event timestamped in a month without a partition), and detaches and drops
// the partitions past their retention. The default partitions mean that no
// insert ever fails for lack of a partition. On SQLite the tables are single
// ones, and the job deletes expired rows instead.

const (
	// partitionsAhead is how many months after the current one have their
	// partitions ready.
	partitionsAhead = 3
	// historyEvery is how often the maintenance job runs.
	historyEvery = time.Hour
	// expireBatch caps the rows one SQLite DELETE removes, so that the only
	// write lock is held briefly.
	expireBatch = 5000
)

// historyTables are the partitioned tables and the column they are
// partitioned by.
var historyTables = []struct{ table, column string }{
	{"usage_events", "occurred_at"},
	{"usage_event_keys", "arrival_month"},
}

// HistoryReport is what a maintenance run did.
type HistoryReport struct {
	// Created and Dropped name the partitions made and dropped (Postgres).
	Created, Dropped []string
	// Deleted counts the rows deleted (SQLite).
	Deleted int64
}

// eventsExpireBefore is the first month of raw events kept at now: whole
// months older than retentionMonths are dropped, so an event is kept for at
// least retentionMonths and at most one month more.
func eventsExpireBefore(now time.Time, retentionMonths int) time.Time {
	return clock.MonthStart(now).AddDate(0, -retentionMonths, 0)
}

// MaintainHistory makes the partitions ahead and drops or deletes what is
// past its retention: events in months before eventsExpireBefore, keys of
// arrival months no key check probes any more.
func (s *Service) MaintainHistory(ctx context.Context, retentionMonths int) (HistoryReport, error) {
	if retentionMonths < 1 {
		return HistoryReport{}, fmt.Errorf("usage history: retention of %d months", retentionMonths)
	}
	now := s.clock.Now()
	expire := map[string]time.Time{
		"usage_events":     eventsExpireBefore(now, retentionMonths),
		"usage_event_keys": keyFloor(now),
	}
	db := s.db.WithContext(ctx)
	if s.db.Dialect != store.Postgres {
		return expireRows(ctx, db, expire)
	}
	var rep HistoryReport
	for _, t := range historyTables {
		created, err := createPartitions(db, t.table, t.column, now)
		rep.Created = append(rep.Created, created...)
		if err != nil {
			return rep, err
		}
		dropped, err := dropPartitions(db, t.table, expire[t.table])
		rep.Dropped = append(rep.Dropped, dropped...)
		if err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// createPartitions makes the partitions of table for this month, the next
// partitionsAhead, and every month its default partition holds rows of.
func createPartitions(db *gorm.DB, table, column string, now time.Time) ([]string, error) {
	rows, err := db.Raw(fmt.Sprintf(`SELECT DISTINCT date_trunc('month', %s AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' FROM %s_default`,
		column, table)).Rows()
	if err != nil {
		return nil, fmt.Errorf("read %s_default: %w", table, err)
	}
	var months []time.Time
	for rows.Next() {
		var m time.Time
		if err := rows.Scan(&m); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read %s_default: %w", table, err)
		}
		months = append(months, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s_default: %w", table, err)
	}
	for i := range partitionsAhead + 1 {
		months = append(months, clock.MonthStart(now).AddDate(0, i, 0))
	}
	var created []string
	for _, m := range months {
		var made bool
		if err := db.Raw("SELECT tollgate_month_partition(?::regclass, ?)", table, m).Scan(&made).Error; err != nil {
			return created, fmt.Errorf("create the partition of %s for %s: %w", table, m.UTC().Format("2006-01"), err)
		}
		if made {
			created = append(created, partitionName(table, m))
		}
	}
	return created, nil
}

// partitionName is the name tollgate_month_partition gives the partition
// of table holding month.
func partitionName(table string, month time.Time) string {
	return table + "_p" + month.UTC().Format("200601")
}

// dropPartitions detaches and drops the monthly partitions of table whose
// month is before `before`. Each goes in a transaction of its own that
// waits at most 10 s for the table: DETACH locks it against inserts
// while it runs, so it must not queue them behind a long wait; a partition
// not dropped is tried again at the next run.
func dropPartitions(db *gorm.DB, table string, before time.Time) ([]string, error) {
	var names []string
	err := db.Raw(`SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = ?::regclass`, table).Scan(&names).Error
	if err != nil {
		return nil, fmt.Errorf("list the partitions of %s: %w", table, err)
	}
	slices.Sort(names)
	var dropped []string
	for _, name := range names {
		suffix, ok := strings.CutPrefix(name, table+"_p")
		if !ok {
			continue // the default partition
		}
		month, err := time.Parse("200601", suffix)
		if err != nil || !month.Before(before) {
			continue
		}
		detached := false
		err = db.Transaction(func(tx *gorm.DB) error {
			// Makers and droppers of partitions take turns on the table
			// (as in tollgate_month_partition); a run that came second
			// finds the partition gone.
			for _, q := range []string{"SET LOCAL lock_timeout = '10s'", "LOCK TABLE " + table + " IN SHARE UPDATE EXCLUSIVE MODE"} {
				if err := tx.Exec(q).Error; err != nil {
					return err
				}
			}
			var attached bool
			if err := tx.Raw("SELECT EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass(?) AND inhparent = ?::regclass)",
				name, table).Scan(&attached).Error; err != nil || !attached {
				return err
			}
			for _, q := range []string{fmt.Sprintf("ALTER TABLE %s DETACH PARTITION %s", table, name), "DROP TABLE " + name} {
				if err := tx.Exec(q).Error; err != nil {
					return err
				}
			}
			detached = true
			return nil
		})
		if err != nil {
			return dropped, fmt.Errorf("drop %s: %w", name, err)
		}
		if detached {
			dropped = append(dropped, name)
		}
	}
	return dropped, nil
}

// expireRows deletes, on SQLite, the rows of each table before its expiry,
// a batch at a time.
func expireRows(ctx context.Context, db *gorm.DB, expire map[string]time.Time) (HistoryReport, error) {
	var rep HistoryReport
	for _, t := range historyTables {
		q := fmt.Sprintf("DELETE FROM %[1]s WHERE rowid IN (SELECT rowid FROM %[1]s WHERE %[2]s < ? LIMIT ?)", t.table, t.column)
		for {
			if err := ctx.Err(); err != nil {
				return rep, err
			}
			res := db.Exec(q, expire[t.table].UTC(), expireBatch)
			if res.Error != nil {
				return rep, fmt.Errorf("delete expired rows of %s: %w", t.table, res.Error)
			}
			rep.Deleted += res.RowsAffected
			if res.RowsAffected < expireBatch {
				break
			}
		}
	}
	return rep, nil
}

// KeepHistory registers the maintenance job on runner and runs it every
// interval (hourly when zero or less) and when this replica becomes
// River's leader, keeping retentionMonths whole months of raw events. Call
// it before the runner starts.
func (s *Service) KeepHistory(runner *jobs.Runner, retentionMonths int, interval time.Duration) {
	if interval <= 0 {
		interval = historyEvery
	}
	jobs.Register(runner, &historyWorker{s: s, retention: retentionMonths})
	runner.Every(interval, func() river.JobArgs { return historyArgs{} })
}

// historyArgs is the maintenance job. Two runs at once take turns on each
// table's partitions (tollgate_month_partition locks the table against
// other makers, and DETACH against everything).
type historyArgs struct{}

func (historyArgs) Kind() string { return "usage_history" }

type historyWorker struct {
	river.WorkerDefaults[historyArgs]
	s         *Service
	retention int
}

func (w *historyWorker) Work(ctx context.Context, _ *river.Job[historyArgs]) error {
	rep, err := w.s.MaintainHistory(ctx, w.retention)
	if len(rep.Created)+len(rep.Dropped) > 0 || rep.Deleted > 0 {
		w.s.log.InfoContext(ctx, "usage history maintained",
			"created", rep.Created, "dropped", rep.Dropped, "deleted", rep.Deleted, "retention_months", w.retention)
	}
	return err
}
