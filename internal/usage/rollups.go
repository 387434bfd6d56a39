package usage

import (
	"cmp"
	"database/sql"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/store"
)

// The statements here are written by hand because they are the hot path: one
// multi-row statement per table and commit group (which may span several
// organisations), with ON CONFLICT clauses that Postgres and SQLite (3.35+)
// both understand. Rows are always written in sorted key order, so concurrent
// Postgres transactions take row locks in the same order and cannot deadlock
// each other.

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

func (id counterID) compare(o counterID) int {
	return cmp.Or(strings.Compare(id.org, o.org), id.rollupKey.compare(o.rollupKey))
}

// counter is a period rollup's value and version.
type counter struct {
	used, version int64
}

// eventID names a usage event: its idempotency key within its organisation.
type eventID struct {
	org, key string
}

func (id eventID) compare(o eventID) int {
	return cmp.Or(strings.Compare(id.org, o.org), strings.Compare(id.key, o.key))
}

type endpointKey struct {
	org, meter, endpoint string
	start                int64
}

type dayKey struct {
	org, meter string
	day        int64
}

// aggregate sums accepted events per rollup row, so a group of a thousand
// events becomes a handful of row updates.
type aggregate struct {
	totals    map[counterID]int64
	endpoints map[endpointKey]int64
	days      map[dayKey]int64
}

// add counts an accepted event. Every sum saturates at the int64 bounds.
// A period total's sum never reaches them: judged events were checked
// against their running total, and a group's events unjudged (written by
// one statement) add up to at most maxGroupEvents × MaxQuantity, about
// 2^55. The endpoint and daily sums may, because on a meter that takes
// decreases one day can hold more than the running total.
func (a *aggregate) add(p *pending) {
	if a.totals == nil {
		a.totals, a.endpoints, a.days = map[counterID]int64{}, map[endpointKey]int64{}, map[dayKey]int64{}
	}
	a.totals[p.totalID()] = saturatingAdd(a.totals[p.totalID()], p.quantity)
	// Events without an endpoint are attributed to none rather than to a
	// blank row in the per-endpoint report.
	if p.endpoint != "" {
		k := endpointKey{p.org, p.meter, p.endpoint, clock.MonthStart(p.at).Unix()}
		a.endpoints[k] = saturatingAdd(a.endpoints[k], p.quantity)
	}
	k := dayKey{p.org, p.meter, dayOf(p.at).Unix()}
	a.days[k] = saturatingAdd(a.days[k], p.quantity)
}

// checkedAdd is a + b, or false when the sum does not fit in an int64.
func checkedAdd(a, b int64) (int64, bool) {
	s := a + b
	if (b > 0 && s < a) || (b < 0 && s > a) {
		return 0, false
	}
	return s, true
}

// saturatingAdd is a + b clamped to the int64 range.
func saturatingAdd(a, b int64) int64 {
	if s, ok := checkedAdd(a, b); ok {
		return s
	}
	if b > 0 {
		return math.MaxInt64
	}
	return math.MinInt64
}

// rollups runs the usage statements of one commit group's transaction.
type rollups struct {
	tx          *gorm.DB
	dialect     store.Dialect
	now         time.Time
	endpointCap int // see Service.CapEndpoints
}

// query and exec run a statement written with ? placeholders on the
// transaction's connection itself. Going around GORM here matters: building
// its statements cost more allocations than the rest of a one-event
// call's transaction.
func (r rollups) query(q string, args ...any) (*sql.Rows, error) {
	return r.tx.Statement.ConnPool.QueryContext(r.tx.Statement.Context, r.bind(q), args...)
}

func (r rollups) exec(q string, args ...any) error {
	_, err := r.tx.Statement.ConnPool.ExecContext(r.tx.Statement.Context, r.bind(q), args...)
	return err
}

// bind numbers the placeholders for Postgres ($1, $2, …). The statements
// here hold no literal question marks.
func (r rollups) bind(q string) string {
	if r.dialect != store.Postgres {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + len(q)/4)
	n := 0
	for i := range len(q) {
		if q[i] != '?' {
			b.WriteByte(q[i])
			continue
		}
		n++
		b.WriteByte('$')
		b.WriteString(strconv.Itoa(n))
	}
	return b.String()
}

// lockTotals makes sure the period rollups exist and locks them until the
// transaction ends, returning their current usage. The no-op DO UPDATE is
// what takes the row lock on Postgres; SQLite's single writer needs none.
func (r rollups) lockTotals(ids []counterID) (map[counterID]int64, error) {
	used := make(map[counterID]int64, len(ids))
	if len(ids) == 0 {
		return used, nil
	}
	slices.SortFunc(ids, counterID.compare)
	args := make([]any, 0, 4*len(ids))
	for _, id := range ids {
		args = append(args, id.org, id.meter, id.periodStart(), r.now)
	}
	q := "INSERT INTO usage_rollups (org_id, meter, period_start, used, version, updated_at) VALUES " +
		rowsOf("(?, ?, ?, 0, 0, ?)", len(ids)) +
		" ON CONFLICT (org_id, meter, period_start) DO UPDATE SET used = usage_rollups.used" +
		" RETURNING org_id, meter, period_start, used, version"
	locked := make(map[counterID]counter, len(ids))
	if err := scanCounters(locked)(r.query(q, args...)); err != nil {
		return nil, fmt.Errorf("lock usage totals: %w", err)
	}
	for id, c := range locked {
		used[id] = c.used
	}
	return used, nil
}

// insertEvents claims the keys of the events that no event inside the
// idempotency window has (see keys.go), stores those events and sets
// claimed on exactly those (and clears it on the others, so a retried
// transaction starts afresh). The events must have distinct keys.
func (r rollups) insertEvents(events []*pending) error {
	if len(events) == 0 {
		return nil
	}
	slices.SortFunc(events, func(a, b *pending) int { return a.eventID().compare(b.eventID()) })
	for _, p := range events {
		p.claimed = false
	}
	var err error
	if r.dialect == store.Postgres {
		err = r.insertEventsPostgres(events)
	} else {
		err = r.insertEventsSQLite(events)
	}
	if err != nil {
		return fmt.Errorf("insert usage events: %w", err)
	}
	return nil
}

// insertEventsPostgres claims the keys and stores their events in one
// statement. The events go as six arrays rather than thousands of
// parameters, which Postgres parses and binds much faster; it goes around
// GORM, which would expand each array into a parameter list. It answers
// with one row: the positions (from 1) of the events stored, as the text of
// an int array, so reading the answer costs one string however large the
// group rather than two per stored event.
func (r rollups) insertEventsPostgres(events []*pending) error {
	var stored string
	err := r.tx.Statement.ConnPool.QueryRowContext(r.tx.Statement.Context, claimEventsSQL.forEvents(len(events)), r.claimArgs(events)...).Scan(&stored)
	if err != nil {
		return err
	}
	return markStored(events, stored)
}

// markStored sets claimed on the events whose positions (from 1) a claim
// statement listed as stored, as the text of an int array in no particular
// order: "{3,1,2}".
func markStored(events []*pending, stored string) error {
	for field := range strings.FieldsFuncSeq(strings.Trim(stored, "{}"), func(c rune) bool { return c == ',' }) {
		i, err := strconv.Atoi(field)
		if err != nil || i < 1 || i > len(events) {
			return fmt.Errorf("read the stored positions %.64q: not a position of %d events", stored, len(events))
		}
		events[i-1].claimed = true
	}
	return nil
}

// claimArgs are claimEventsSQL's parameters for events.
func (r rollups) claimArgs(events []*pending) []any {
	n := len(events)
	orgs, keys, meters, endpoints := make(pointerArray[text], n), make(pointerArray[text], n), make(pointerArray[text], n), make(pointerArray[text], n)
	quantities, ats := make(pointerArray[integer], n), make(pointerArray[timestamp], n)
	for i, p := range events {
		orgs[i], keys[i], meters[i], endpoints[i] = text(p.org), text(p.key), text(p.meter), text(p.endpoint)
		quantities[i], ats[i] = integer(p.quantity), timestamp(p.at)
	}
	return []any{r.now, clock.MonthStart(r.now), keyFloor(r.now), orgs, keys, meters, quantities, endpoints, ats, keyCeiling(r.now)}
}

// claimEventsSQL claims the keys of a group's events and stores the events
// of the keys it claimed (see claimStatement for how keys are looked up).
var claimEventsSQL = withClaim(`,
fresh AS (
SELECT u.o, u.k, u.m, u.n, u.e, u.t, u.i
FROM unnest($4::text[], $5::text[], $6::text[], $7::bigint[], $8::text[], $9::timestamptz[]) WITH ORDINALITY AS u(o, k, m, n, e, t, i)
JOIN claimed ON claimed.org_id = u.o AND claimed.idempotency_key = u.k),
stored AS (
INSERT INTO usage_events (org_id, idempotency_key, meter, quantity, endpoint, occurred_at, recorded_at)
SELECT o, k, m, n, e, t, $1 FROM fresh)
SELECT coalesce(array_agg(i)::text, '{}') FROM fresh`)

// A claimStatement is one statement that starts by claiming the keys of
// the window not yet taken, from the org and key arrays $4 and $5 (each
// key's row keeping its event's meter, quantity and endpoint, $6 to $8,
// keys.go), as of
// arrival month $2, looking in the months $3 to $10 (the CTE claimed), in
// two forms that differ in how the window is looked up.
//
// Both skip month $2 itself: the insert's ON CONFLICT on the primary key
// (org_id, idempotency_key, arrival_month) already refuses a key of that
// month, committed or not, and the month the claim writes to is the largest
// and busiest partition. Arrival months are month starts, so the month
// after $2 is probed as arrival_month = $10: a range past $2 would keep $2's
// partition in the plan. Both keep each probe an index lookup of its own
// with OFFSET 0, because as a join the planner may hash a whole key
// partition instead, scanning millions of keys for a group of twenty (it
// did, when the partition's statistics were younger than its rows).
//
// perKey probes per key, a subplan that rescans every partition of the
// window for each key. perOrg probes once per organisation of the group,
// all of its keys in one index scan (seen): a 1,000-event statement took
// 15.3 ms instead of 20.4. But Postgres plans perOrg again on every call
// (its generic plan, pruned at run time, looks dearer than a fresh one),
// which costs about 0.7 ms, while perKey's generic plan is reused: a
// one-event statement took 0.56 ms per key against 1.27 per org. So groups
// of perOrgFrom events or more use perOrg.
type claimStatement struct{ perKey, perOrg string }

// perOrgFrom is the group size from which a claim looks keys up per
// organisation: about where 5 µs a key saved pays for 0.7 ms of planning,
// rounded up.
const perOrgFrom = 256

// forEvents is the form for a group of n events.
func (c claimStatement) forEvents(n int) string {
	if n >= perOrgFrom {
		return c.perOrg
	}
	return c.perKey
}

// withClaim is the statement that claims the keys and then runs rest.
func withClaim(rest string) claimStatement {
	return claimStatement{perKey: `WITH ` + claimedPerKey + rest, perOrg: `WITH ` + claimedPerOrg + rest}
}

// inTurn is c sent through the database's pipe (store.Pipe), whose two
// marks follow its twenty parameters: the claim, the statement's first
// write, waits for its turn, as a one-time filter before any row.
func (c claimStatement) inTurn() claimStatement {
	turn := func(q string) string {
		const at = "AS c(o, k, m, n, e)\nWHERE NOT EXISTS"
		if strings.Count(q, at) != 1 {
			panic("usage: the claim has no place for its turn")
		}
		return strings.Replace(q, at, "AS c(o, k, m, n, e)\nWHERE (SELECT tollgate_pipe_turn($21, $22)) AND NOT EXISTS", 1)
	}
	return claimStatement{perKey: turn(c.perKey), perOrg: turn(c.perOrg)}
}

const claimedPerKey = `claimed AS (
INSERT INTO usage_event_keys (org_id, idempotency_key, arrival_month, meter, quantity, endpoint)
SELECT c.o, c.k, $2, c.m, c.n, c.e FROM unnest($4::text[], $5::text[], $6::text[], $7::bigint[], $8::text[]) AS c(o, k, m, n, e)
WHERE NOT EXISTS (SELECT 1 FROM usage_event_keys x
	WHERE x.org_id = c.o AND x.idempotency_key = c.k
	AND (x.arrival_month >= $3 AND x.arrival_month < $2 OR x.arrival_month = $10) OFFSET 0)
ON CONFLICT DO NOTHING RETURNING org_id, idempotency_key)`

const claimedPerOrg = `seen AS (
SELECT x.org_id, x.idempotency_key
FROM (SELECT o, array_agg(k) AS ks FROM unnest($4::text[], $5::text[]) AS c(o, k) GROUP BY o) g
CROSS JOIN LATERAL (SELECT org_id, idempotency_key FROM usage_event_keys x
	WHERE x.org_id = g.o AND x.idempotency_key = ANY(g.ks)
	AND (x.arrival_month >= $3 AND x.arrival_month < $2 OR x.arrival_month = $10) OFFSET 0) x),
claimed AS (
INSERT INTO usage_event_keys (org_id, idempotency_key, arrival_month, meter, quantity, endpoint)
SELECT c.o, c.k, $2, c.m, c.n, c.e FROM unnest($4::text[], $5::text[], $6::text[], $7::bigint[], $8::text[]) AS c(o, k, m, n, e)
WHERE NOT EXISTS (SELECT 1 FROM seen WHERE seen.org_id = c.o AND seen.idempotency_key = c.k)
ON CONFLICT DO NOTHING RETURNING org_id, idempotency_key)`

// pgx encodes a []string or []time.Time parameter by boxing each element
// in an interface, an allocation per element. A pointerArray hands it
// pointers into the slice instead, which box for free, to element types
// that pgx encodes through their pointer methods: text, integer and
// timestamp.
type (
	pointerArray[T any] []T
	text                string
	integer             int64
	timestamp           time.Time
)

func (a pointerArray[T]) Dimensions() []pgtype.ArrayDimension {
	return []pgtype.ArrayDimension{{Length: int32(len(a)), LowerBound: 1}}
}

func (a pointerArray[T]) Index(i int) any { return &a[i] }

func (a pointerArray[T]) IndexType() any { return new(T) }

func (t *text) TextValue() (pgtype.Text, error) {
	return pgtype.Text{String: string(*t), Valid: true}, nil
}

func (n *integer) Int64Value() (pgtype.Int8, error) {
	return pgtype.Int8{Int64: int64(*n), Valid: true}, nil
}

func (t *timestamp) TimestamptzValue() (pgtype.Timestamptz, error) {
	return pgtype.Timestamptz{Time: time.Time(*t), Valid: true}, nil
}

// insertEventsSQLite claims the keys no event inside the window has, then
// stores the events of those keys.
func (r rollups) insertEventsSQLite(events []*pending) error {
	args := make([]any, 0, 5*len(events)+3)
	args = append(args, clock.MonthStart(r.now))
	byID := make(map[eventID]*pending, len(events))
	for _, p := range events {
		args = append(args, p.org, p.key, p.meter, p.quantity, p.endpoint)
		byID[p.eventID()] = p
	}
	args = append(args, keyFloor(r.now), keyCeiling(r.now))
	q := "INSERT INTO usage_event_keys (org_id, idempotency_key, arrival_month, meter, quantity, endpoint)" +
		" SELECT c.column1, c.column2, ?, c.column3, c.column4, c.column5 FROM (VALUES " +
		rowsOf("(?, ?, ?, ?, ?)", len(events)) + ") AS c WHERE NOT EXISTS (SELECT 1 FROM usage_event_keys x" +
		" WHERE x.org_id = c.column1 AND x.idempotency_key = c.column2 AND x.arrival_month BETWEEN ? AND ?)" +
		" ON CONFLICT DO NOTHING RETURNING org_id, idempotency_key"
	rows, err := r.query(q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id eventID
		if err := rows.Scan(&id.org, &id.key); err != nil {
			return err
		}
		byID[id].claimed = true
	}
	if err := rows.Err(); err != nil {
		return err
	}
	args = args[:0]
	for _, p := range events {
		if p.claimed {
			args = append(args, p.org, p.key, p.meter, p.quantity, p.endpoint, p.at, r.now)
		}
	}
	if len(args) == 0 {
		return nil
	}
	return r.exec("INSERT INTO usage_events (org_id, idempotency_key, meter, quantity, endpoint, occurred_at, recorded_at) VALUES "+
		rowsOf("(?, ?, ?, ?, ?, ?, ?)", len(args)/7), args...)
}

// deleteEvents removes events inserted earlier in this transaction, and
// frees their keys.
func (r rollups) deleteEvents(events []*pending) error {
	if len(events) == 0 {
		return nil
	}
	args := make([]any, 0, 3*len(events))
	for _, p := range events {
		args = append(args, p.org, p.key, p.at)
	}
	q := "DELETE FROM usage_events WHERE (org_id, idempotency_key, occurred_at) IN (" + rowsOf("(?, ?, ?)", len(events)) + ")"
	if err := r.exec(q, args...); err != nil {
		return fmt.Errorf("unclaim refused usage events: %w", err)
	}
	args = append(args[:0], clock.MonthStart(r.now))
	for _, p := range events {
		args = append(args, p.org, p.key)
	}
	q = "DELETE FROM usage_event_keys WHERE arrival_month = ? AND (org_id, idempotency_key) IN (" + rowsOf("(?, ?)", len(events)) + ")"
	if err := r.exec(q, args...); err != nil {
		return fmt.Errorf("unclaim refused usage events: %w", err)
	}
	return nil
}

// add adds the aggregate to the three rollup tables, always in this table
// order, and returns the period totals it changed, as they now stand.
func (r rollups) add(a aggregate) (map[counterID]counter, error) {
	totals := make(map[counterID]counter, len(a.totals))
	err := upsertSums(r, "usage_rollups", []string{"org_id", "meter", "period_start"}, true, a.totals,
		func(k counterID) []any { return []any{k.org, k.meter, k.periodStart()} },
		counterID.compare, totals)
	if err != nil {
		return nil, err
	}
	if err := r.addEndpoints(a.endpoints); err != nil {
		return nil, err
	}
	err = upsertSums(r, "usage_daily_rollups", []string{"org_id", "meter", "day"}, false, a.days,
		func(k dayKey) []any { return []any{k.org, k.meter, time.Unix(k.day, 0).UTC()} },
		compareDays, nil)
	return totals, err
}

// addEndpoints adds the sums per endpoint name to usage_endpoint_rollups,
// names past their meter's allowance folded into OtherEndpoint
// (foldEndpointsSQL), in the table's key order.
func (r rollups) addEndpoints(sums map[endpointKey]int64) error {
	keys := nonZeroKeys(sums, compareEndpoints)
	if len(keys) == 0 {
		return nil
	}
	args := make([]any, 0, 5*len(keys)+1)
	for _, k := range keys {
		args = append(args, k.org, time.Unix(k.start, 0).UTC(), k.meter, k.endpoint, sums[k])
	}
	args = append(args, r.now)
	row := "(?, ?, ?, ?, ?)"
	if r.dialect == store.Postgres {
		row = "(?::text, ?::timestamptz, ?::text, ?::text, ?::bigint)"
	}
	// SQLite's trigger counts the names inserted; Postgres counts them
	// here (countEndpointNamesSQL), before any endpoint row is written.
	counted, guard := "", "true"
	if r.dialect == store.Postgres {
		counted = ",\n" + countEndpointNamesSQL + ",\nverdict AS (SELECT CASE WHEN " + endpointNamesRace +
			" THEN tollgate_serialization_failure('endpoint names added meanwhile') ELSE 0 END AS ok)"
		guard = "(SELECT ok FROM verdict) = 0"
	}
	q := "WITH ep(o, mo, m, e, n) AS (VALUES " + rowsOf(row, len(keys)) + "),\n" + foldEndpointsSQL(r.endpointCap) + counted +
		"\nINSERT INTO usage_endpoint_rollups (org_id, period_start, meter, endpoint, used, updated_at)" +
		"\nSELECT o, mo, m, e, " + foldedSum(r.dialect) + ", ? FROM epf WHERE " + guard + " GROUP BY o, mo, m, e HAVING " + foldedSum(r.dialect) + " <> 0 ORDER BY o, mo, m, e" +
		"\nON CONFLICT (org_id, period_start, meter, endpoint) DO UPDATE SET used = " +
		saturatingSum("usage_endpoint_rollups.used", "excluded.used") + ", updated_at = excluded.updated_at"
	if err := r.exec(q, args...); err != nil {
		return fmt.Errorf("add to usage_endpoint_rollups: %w", err)
	}
	return nil
}

// compareEndpoints and compareDays follow the keys of the endpoint and
// daily rollup tables.
func compareEndpoints(x, y endpointKey) int {
	return cmp.Or(strings.Compare(x.org, y.org), cmp.Compare(x.start, y.start),
		strings.Compare(x.meter, y.meter), strings.Compare(x.endpoint, y.endpoint))
}

func compareDays(x, y dayKey) int {
	return cmp.Or(strings.Compare(x.org, y.org), strings.Compare(x.meter, y.meter), cmp.Compare(x.day, y.day))
}

// upsertSums adds each non-zero sum to its row of table, creating missing
// rows, in the order of compare (which must follow the table's key). keyArgs
// gives a row's key column values. A versioned table is a period total,
// whose sums were checked against overflow under its row lock, and counts
// changes in version (new rows start at 1); the others are reports, whose
// sums saturate at the int64 bounds rather than fail the transaction. When
// into is set, the rows written (of usage_rollups) are read back into it.
func upsertSums[K comparable](r rollups, table string, key []string, versioned bool, sums map[K]int64,
	keyArgs func(K) []any, compare func(a, b K) int, into map[counterID]counter) error {
	keys := nonZeroKeys(sums, compare)
	if len(keys) == 0 {
		return nil
	}
	args := make([]any, 0, (len(key)+2)*len(keys))
	for _, k := range keys {
		args = append(append(args, keyArgs(k)...), sums[k], r.now)
	}
	keyCols := strings.Join(key, ", ")
	cols := keyCols + ", used, updated_at"
	row := "(" + strings.Repeat("?, ", len(key)+1) + "?"
	set := "used = " + saturatingSum(table+".used", "excluded.used") + ", updated_at = excluded.updated_at"
	if versioned {
		cols += ", version"
		row += ", 1"
		set = "used = " + table + ".used + excluded.used, updated_at = excluded.updated_at, version = " + table + ".version + 1"
	}
	q := "INSERT INTO " + table + " (" + cols + ") VALUES " + rowsOf(row+")", len(keys)) +
		" ON CONFLICT (" + keyCols + ") DO UPDATE SET " + set
	var err error
	if into != nil {
		err = scanCounters(into)(r.query(q+" RETURNING org_id, meter, period_start, used, version", args...))
	} else {
		err = r.exec(q, args...)
	}
	if err != nil {
		return fmt.Errorf("add to %s: %w", table, err)
	}
	return nil
}

// nonZeroKeys is the keys of sums whose sum is not zero, in the order of
// compare.
func nonZeroKeys[K comparable](sums map[K]int64, compare func(a, b K) int) []K {
	keys := make([]K, 0, len(sums))
	for k, n := range sums {
		if n != 0 {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, compare)
	return keys
}

// saturatingSum is SQL for a + b clamped to the int64 range. The CASEs are
// nested because SQL does not promise to short-circuit AND, and Postgres
// fails a bigint expression that overflows (SQLite turns it into a float).
func saturatingSum(a, b string) string {
	return "CASE WHEN " + b + " > 0 THEN CASE WHEN " + a + " > 9223372036854775807 - " + b +
		" THEN 9223372036854775807 ELSE " + a + " + " + b + " END" +
		" ELSE CASE WHEN " + a + " < -9223372036854775807 - " + b +
		" THEN -9223372036854775807 ELSE " + a + " + " + b + " END END"
}

// readCounters reads period rollups of one organisation with db (a
// transaction or not); a missing row reads as zero at version 0.
func readCounters(db *gorm.DB, org string, keys []rollupKey) (map[rollupKey]counter, error) {
	ids := make([]counterID, len(keys))
	for i, k := range keys {
		ids[i] = counterID{org, k}
	}
	values, err := readTotals(db, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[rollupKey]counter, len(values))
	for id, c := range values {
		out[id.rollupKey] = c
	}
	return out, nil
}

// readTotals reads period rollups of any organisations; a missing row reads
// as zero at version 0.
func readTotals(db *gorm.DB, ids []counterID) (map[counterID]counter, error) {
	out := make(map[counterID]counter, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	args := make([]any, 0, 3*len(ids))
	for _, id := range ids {
		if _, dup := out[id]; dup {
			continue
		}
		out[id] = counter{}
		args = append(args, id.org, id.meter, id.periodStart())
	}
	q := "SELECT org_id, meter, period_start, used, version FROM usage_rollups WHERE (org_id, meter, period_start) IN (" +
		rowsOf("(?, ?, ?)", len(out)) + ")"
	if err := scanCounters(out)(db.Raw(q, args...).Rows()); err != nil {
		return nil, fmt.Errorf("read usage totals: %w", err)
	}
	return out, nil
}

// scanCounters stores each row of a query returning org_id, meter,
// period_start, used and version in into. It is called on the query's
// results: scanCounters(into)(tx.Raw(q).Rows()).
func scanCounters(into map[counterID]counter) func(rows *sql.Rows, err error) error {
	return func(rows *sql.Rows, err error) error {
		if err != nil {
			return err
		}
		return scanCounterRows(rows, into)
	}
}

// scanCounterRows is scanCounters on rows already opened; lead receives the
// columns a query returns before those five (the same in every row).
func scanCounterRows(rows rowScanner, into map[counterID]counter, lead ...any) error {
	defer rows.Close()
	var (
		org, meter string
		start      time.Time
		c          counter
	)
	dest := append(lead[:len(lead):len(lead)], &org, &meter, &start, &c.used, &c.version)
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		into[counterID{org, keyOf(meter, start)}] = c
	}
	return rows.Err()
}

// rowScanner is what scanCounterRows reads: *sql.Rows, or a pipe's
// *store.PipeRows.
type rowScanner interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close() error
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
