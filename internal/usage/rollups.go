package usage

import (
	"cmp"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/store"
)

// The statements here are written by hand because they are the hot path: one
// multi-row statement per table and batch, with ON CONFLICT clauses that
// Postgres and SQLite (3.35+) both understand. Rows are always written in
// sorted key order, so concurrent Postgres transactions take row locks in the
// same order and cannot deadlock each other.

// rollupKey names a period rollup of one organisation: a meter and the Unix
// second its period starts.
type rollupKey struct {
	meter string
	start int64
}

func keyOf(meter string, start time.Time) rollupKey { return rollupKey{meter, start.Unix()} }

func (k rollupKey) periodStart() time.Time { return time.Unix(k.start, 0).UTC() }

func (k rollupKey) compare(o rollupKey) int {
	return cmp.Or(strings.Compare(k.meter, o.meter), cmp.Compare(k.start, o.start))
}

// counter is a period rollup's value and version.
type counter struct {
	used, version int64
}

type endpointKey struct {
	meter, endpoint string
	start           int64
}

type dayKey struct {
	meter string
	day   int64
}

// aggregate sums accepted events per rollup row, so a batch of a thousand
// events becomes a handful of row updates.
type aggregate struct {
	totals    map[rollupKey]int64
	endpoints map[endpointKey]int64
	days      map[dayKey]int64
}

func (a *aggregate) add(p pending) {
	if a.totals == nil {
		a.totals, a.endpoints, a.days = map[rollupKey]int64{}, map[endpointKey]int64{}, map[dayKey]int64{}
	}
	a.totals[p.total] += p.quantity
	// Events without an endpoint are attributed to none rather than to a
	// blank row in the per-endpoint report.
	if p.endpoint != "" {
		a.endpoints[endpointKey{p.meter, p.endpoint, clock.MonthStart(p.at).Unix()}] += p.quantity
	}
	a.days[dayKey{p.meter, dayOf(p.at).Unix()}] += p.quantity
}

// totalKeys lists the period rollups the aggregate changes.
func (a *aggregate) totalKeys() []rollupKey {
	keys := make([]rollupKey, 0, len(a.totals))
	for k := range a.totals {
		keys = append(keys, k)
	}
	return keys
}

// rollups runs the usage statements of one transaction for one
// organisation.
type rollups struct {
	tx      *gorm.DB
	dialect store.Dialect
	org     string
	now     time.Time
}

// lockTotals makes sure the period rollups exist and locks them until the
// transaction ends, returning their current usage. The no-op DO UPDATE is
// what takes the row lock on Postgres; SQLite's single writer needs none.
func (r rollups) lockTotals(keys []rollupKey) (map[rollupKey]int64, error) {
	used := make(map[rollupKey]int64, len(keys))
	if len(keys) == 0 {
		return used, nil
	}
	slices.SortFunc(keys, rollupKey.compare)
	args := make([]any, 0, 4*len(keys))
	for _, k := range keys {
		args = append(args, r.org, k.meter, k.periodStart(), r.now)
	}
	q := "INSERT INTO usage_rollups (org_id, meter, period_start, used, version, updated_at) VALUES " +
		rowsOf("(?, ?, ?, 0, 0, ?)", len(keys)) +
		" ON CONFLICT (org_id, meter, period_start) DO UPDATE SET used = usage_rollups.used" +
		" RETURNING meter, period_start, used, version"
	locked := make(map[rollupKey]counter, len(keys))
	if err := scanCounters(r.tx.Raw(q, args...), locked); err != nil {
		return nil, fmt.Errorf("lock usage totals: %w", err)
	}
	for k, c := range locked {
		used[k] = c.used
	}
	return used, nil
}

// insertEvents stores the events whose keys are new and returns those keys.
func (r rollups) insertEvents(batch []pending) (map[string]struct{}, error) {
	order := make([]int, len(batch))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(i, j int) int { return strings.Compare(batch[i].key, batch[j].key) })
	var (
		rows *sql.Rows
		err  error
	)
	if r.dialect == store.Postgres {
		rows, err = r.insertEventsPostgres(batch, order)
	} else {
		args := make([]any, 0, 7*len(batch))
		for _, i := range order {
			p := batch[i]
			args = append(args, r.org, p.key, p.meter, p.quantity, p.endpoint, p.at, r.now)
		}
		q := "INSERT INTO usage_events (org_id, idempotency_key, meter, quantity, endpoint, occurred_at, recorded_at) VALUES " +
			rowsOf("(?, ?, ?, ?, ?, ?, ?)", len(batch)) +
			" ON CONFLICT (org_id, idempotency_key) DO NOTHING RETURNING idempotency_key"
		rows, err = r.tx.Raw(q, args...).Rows()
	}
	if err != nil {
		return nil, fmt.Errorf("insert usage events: %w", err)
	}
	defer rows.Close()
	fresh := make(map[string]struct{}, len(batch))
	for rows.Next() {
		var key string
		if err := rows.Scan(&key); err != nil {
			return nil, fmt.Errorf("insert usage events: %w", err)
		}
		fresh[key] = struct{}{}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("insert usage events: %w", err)
	}
	return fresh, nil
}

// insertEventsPostgres sends the batch as five arrays rather than thousands
// of parameters, which Postgres parses and binds much faster. It goes around
// GORM, which would expand each array into a parameter list.
func (r rollups) insertEventsPostgres(batch []pending, order []int) (*sql.Rows, error) {
	keys, meters, endpoints := make([]string, len(batch)), make([]string, len(batch)), make([]string, len(batch))
	quantities, ats := make([]int64, len(batch)), make([]time.Time, len(batch))
	for n, i := range order {
		p := batch[i]
		keys[n], meters[n], endpoints[n], quantities[n], ats[n] = p.key, p.meter, p.endpoint, p.quantity, p.at
	}
	const q = `INSERT INTO usage_events (org_id, idempotency_key, meter, quantity, endpoint, occurred_at, recorded_at)
SELECT $1, k, m, n, e, t, $2
FROM unnest($3::text[], $4::text[], $5::bigint[], $6::text[], $7::timestamptz[]) AS u(k, m, n, e, t)
ON CONFLICT (org_id, idempotency_key) DO NOTHING RETURNING idempotency_key`
	return r.tx.Statement.ConnPool.QueryContext(r.tx.Statement.Context, q, r.org, r.now, keys, meters, quantities, endpoints, ats)
}

// deleteEvents removes events inserted earlier in this transaction.
func (r rollups) deleteEvents(keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	if err := r.tx.Exec("DELETE FROM usage_events WHERE org_id = ? AND idempotency_key IN ?", r.org, keys).Error; err != nil {
		return fmt.Errorf("unclaim refused usage events: %w", err)
	}
	return nil
}

// add adds the aggregate to the three rollup tables, always in this table
// order.
func (r rollups) add(a aggregate) error {
	err := upsertSums(r, "usage_rollups", []string{"org_id", "meter", "period_start"}, true, a.totals,
		func(k rollupKey) []any { return []any{r.org, k.meter, k.periodStart()} },
		rollupKey.compare)
	if err != nil {
		return err
	}
	err = upsertSums(r, "usage_endpoint_rollups", []string{"org_id", "period_start", "meter", "endpoint"}, false, a.endpoints,
		func(k endpointKey) []any { return []any{r.org, time.Unix(k.start, 0).UTC(), k.meter, k.endpoint} },
		func(x, y endpointKey) int {
			return cmp.Or(cmp.Compare(x.start, y.start), strings.Compare(x.meter, y.meter), strings.Compare(x.endpoint, y.endpoint))
		})
	if err != nil {
		return err
	}
	return upsertSums(r, "usage_daily_rollups", []string{"org_id", "meter", "day"}, false, a.days,
		func(k dayKey) []any { return []any{r.org, k.meter, time.Unix(k.day, 0).UTC()} },
		func(x, y dayKey) int { return cmp.Or(strings.Compare(x.meter, y.meter), cmp.Compare(x.day, y.day)) })
}

// upsertSums adds each non-zero sum to its row of table, creating missing
// rows, in the order of compare (which must follow the table's key). keyArgs
// gives a row's key column values. A versioned table counts changes in
// version; its new rows start at 1.
func upsertSums[K comparable](r rollups, table string, key []string, versioned bool, sums map[K]int64,
	keyArgs func(K) []any, compare func(a, b K) int) error {
	keys := make([]K, 0, len(sums))
	for k, n := range sums {
		if n != 0 {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	slices.SortFunc(keys, compare)
	args := make([]any, 0, (len(key)+2)*len(keys))
	for _, k := range keys {
		args = append(append(args, keyArgs(k)...), sums[k], r.now)
	}
	keyCols := strings.Join(key, ", ")
	cols := keyCols + ", used, updated_at"
	row := "(" + strings.Repeat("?, ", len(key)+1) + "?"
	set := "used = " + table + ".used + excluded.used, updated_at = excluded.updated_at"
	if versioned {
		cols += ", version"
		row += ", 1"
		set += ", version = " + table + ".version + 1"
	}
	q := "INSERT INTO " + table + " (" + cols + ") VALUES " + rowsOf(row+")", len(keys)) +
		" ON CONFLICT (" + keyCols + ") DO UPDATE SET " + set
	if err := r.tx.Exec(q, args...).Error; err != nil {
		return fmt.Errorf("add to %s: %w", table, err)
	}
	return nil
}

// readCounters reads period rollups with db (a transaction or not); a
// missing row reads as zero at version 0.
func readCounters(db *gorm.DB, org string, keys []rollupKey) (map[rollupKey]counter, error) {
	out := make(map[rollupKey]counter, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	args := []any{org}
	for _, k := range keys {
		if _, dup := out[k]; dup {
			continue
		}
		out[k] = counter{}
		args = append(args, k.meter, k.periodStart())
	}
	q := "SELECT meter, period_start, used, version FROM usage_rollups WHERE org_id = ? AND (meter, period_start) IN (" +
		rowsOf("(?, ?)", len(out)) + ")"
	if err := scanCounters(db.Raw(q, args...), out); err != nil {
		return nil, fmt.Errorf("read usage totals: %w", err)
	}
	return out, nil
}

// scanCounters runs a query returning meter, period_start, used and version
// and stores each row in into.
func scanCounters(query *gorm.DB, into map[rollupKey]counter) error {
	rows, err := query.Rows()
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			meter string
			start time.Time
			c     counter
		)
		if err := rows.Scan(&meter, &start, &c.used, &c.version); err != nil {
			return err
		}
		into[keyOf(meter, start)] = c
	}
	return rows.Err()
}

// rowsOf repeats a VALUES row n times.
func rowsOf(row string, n int) string {
	var b strings.Builder
	b.Grow(n * (len(row) + 2))
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
	return b.String()
}
