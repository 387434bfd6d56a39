package usage

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/store"
)

// One statement per group. On Postgres, most commit groups need nothing
// but what one statement can do: claim the keys, store the events of the
// keys claimed, add their sums to the period totals (on the condition that
// each total is below the ceiling its hard limits leave) and to the
// endpoint and daily rollups. Sent on its own, outside BEGIN and COMMIT, it
// is its own transaction, and the whole group costs one round trip, whose
// answer comes once the commit is durable: a group holds its totals'
// row locks for the rest of that one statement and its commit, where a
// transaction holds them across two more round trips.
//
// When the statement finds a total too close to a hard limit, or a total
// passing a whole percent of its limit (where an alert threshold may lie;
// which ones an organisation set is the transaction's to read), it undoes
// itself by calling tollgate_group_abort (migration 00052): the group is
// then written in a transaction, which can judge events one by one and fire
// alerts with it.
//
// The statement goes through the database's pipe (store.Pipe), behind the
// statement of the group taken before, or for a big group on a pooled
// connection beside it (groupcommit.go, turn); either way it waits for its
// turn or leaves room for the groups ahead.

// errLimitInReach undoes a one-statement group: some period total was too
// close to a hard limit (or to the int64 range) to count the group's events
// without judging them one by one.
var errLimitInReach = errors.New("a usage total is too close to its limit to count a group at once")

// errAlertCrossed undoes a one-statement group: some total crossed an alert
// threshold, and alerts are inserted (and handed to OnAlert) in the
// group's transaction.
var errAlertCrossed = errors.New("a usage total crossed an alert threshold")

// groupAbortCode is the SQLSTATE tollgate_group_abort raises, with the
// reason as its message.
const groupAbortCode = "TG001"

// writeGroupAtOnce writes a group in one statement, as above. The group
// must be eligible (mayBeFast) and not near a month boundary, where claims
// take the boundary lock in a transaction.
func (s *Service) writeGroupAtOnce(ctx context.Context, t *turn, group []*request, now time.Time, alone, resync bool) error {
	plan := planGroup(group)
	for _, p := range plan.claims {
		p.claimed = false // a retried statement starts afresh
	}
	// The totals reported but not written (a meter whose events were all
	// refused before the group) are read first, so that once the
	// statement has committed nothing can fail: a caller told to retry is
	// always one whose events were not stored. The transaction would have
	// read them without a lock too.
	written := make(map[counterID]struct{}, len(plan.written))
	for _, id := range plan.written {
		written[id] = struct{}{}
	}
	values, err := readTotals(s.db.WithContext(ctx), unwritten(group, func(id counterID) bool { _, ok := written[id]; return ok }))
	if err != nil {
		return fmt.Errorf("write usage: %w", err)
	}
	changed := map[counterID]counter{}
	if len(plan.claims) > 0 {
		room, shared := t.room(plan.first)
		if shared {
			// A key of a group ahead: its calls are judged first.
			if err := t.mayJudge(ctx); err != nil {
				return err
			}
			room = nil
		}
		args := groupArgs(group, plan, now, room)
		rows, err := s.sendGroup(ctx, t, group, len(plan.claims), args, alone, resync)
		if err != nil {
			return s.groupAborted(ctx, group, plan, room, err)
		}
		var stored string
		if err := scanCounterRows(rows, changed, &stored); err != nil {
			return s.groupAborted(ctx, group, plan, room, err)
		}
		if err := markStored(plan.claims, stored); err != nil {
			// The statement has committed, so the group stands; Postgres
			// does not give such an answer, and the events it does not
			// name are answered as duplicates.
			s.log.ErrorContext(ctx, "usage group written, its answer misread", "err", err)
		}
	}
	// Keys found counted are judged against what their rows say, read now
	// that the statement has committed: a row another group wrote while
	// this statement waited on it is then seen, which the statement's own
	// snapshot would not.
	// Most groups hold none, and are spared the query and the gorm
	// session it would need (its allocations showed in the one-event
	// figures).
	var counted map[eventID]keyPayload
	if slices.ContainsFunc(plan.claims, func(p *pending) bool { return !p.claimed }) {
		counted, err = rollups{tx: s.db.WithContext(ctx), dialect: s.db.Dialect, now: now}.readKeyPayloads(plan.claims)
		if err != nil {
			// The group stands; only calls with such keys cannot be answered.
			s.log.ErrorContext(ctx, "usage group written, its counted keys unread", "err", err)
			uncheckedKeys(group, plan, err)
		}
	}
	settle(group, plan.first, counted, foundTotals(changed, plan.claimedSums()), nil, false)
	maps.Copy(values, changed)
	fillOutcomes(group, values)
	return nil
}

// groupAborted turns the statement's own abort into errLimitInReach or
// errAlertCrossed, remembering in the first case the totals too close to
// their ceilings (markNearLimits), so that the next groups adding to them
// go the slow way at once.
func (s *Service) groupAborted(ctx context.Context, group []*request, plan groupPlan, room map[counterID]int64, err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != groupAbortCode {
		return fmt.Errorf("write usage: %w", err)
	}
	if pgErr.Message == "alert" {
		return errAlertCrossed
	}
	s.markNearLimits(ctx, group, plan, room)
	return errLimitInReach
}

// sendGroup runs a group's statement (of n events, with args), pooled or
// piped as its turn says, and returns its rows.
func (s *Service) sendGroup(ctx context.Context, t *turn, group []*request, n int, args []any, alone, resync bool) (rowScanner, error) {
	if t.pooled {
		return s.db.SQL().QueryContext(ctx, s.oneStatement.forEvents(n), args...)
	}
	if err := t.mayPipe(ctx); err != nil {
		return nil, err
	}
	call, err := s.db.Pipe().Send(ctx, s.pipedStatement.forEvents(n), args, resync)
	if err != nil {
		return nil, err
	}
	if alone {
		t.sent()
	}
	if s.group.hooks.sent != nil {
		s.group.hooks.sent(group)
	}
	return call.Wait(ctx)
}

// markNearLimits remembers, after a statement undid itself at a ceiling,
// the totals that the group's events would have taken past theirs, read
// once (outside any transaction; it is rare), so that only the calls adding
// to them leave the one statement, not those of every organisation on a
// plan with hard limits that happened to share the group. When the read
// fails, or finds no such total (the totals moved meanwhile), every total
// of the group with a hard limit is remembered instead: which one it was,
// the statement does not say.
func (s *Service) markNearLimits(ctx context.Context, group []*request, plan groupPlan, room map[counterID]int64) {
	ceilings, _ := limitsOf(group, plan)
	// What the group would add to each total if every key were new: at
	// least what the statement added, so a total it found too close is
	// found so here too.
	adds := make(map[counterID]int64, len(plan.written))
	for id, n := range room {
		adds[id] = n
	}
	for _, p := range plan.claims {
		adds[p.totalID()] = saturatingAdd(adds[p.totalID()], max(p.quantity, 0))
	}
	marked := false
	if totals, err := readTotals(s.db.WithContext(ctx), plan.written); err == nil {
		for _, id := range plan.written {
			if n := adds[id]; n > 0 && totals[id].used > ceilings[id]-n {
				s.nearLimit.Put(id, struct{}{})
				marked = true
			}
		}
	}
	if marked {
		return
	}
	for _, id := range plan.written {
		if ceilings[id] < math.MaxInt64 {
			s.nearLimit.Put(id, struct{}{})
		}
	}
}

// groupArgs are the one statement's parameters: claimEventsSQL's for the
// claims (in key order), the rollup rows each event adds to, and the period
// totals with the strictest hard limit any of the group's events carries
// (less the room left for groups ahead, turn.room) and the limit alerts are
// judged against (as fireAlerts judges them: the last event's), then that
// room.
func groupArgs(group []*request, plan groupPlan, now time.Time, room map[counterID]int64) []any {
	n := len(plan.claims)
	periods, months, days := make(pointerArray[timestamp], n), make(pointerArray[timestamp], n), make(pointerArray[timestamp], n)
	for i, p := range plan.claims {
		periods[i], months[i], days[i] = timestamp(p.total.periodStart()), timestamp(clock.MonthStart(p.at)), timestamp(dayOf(p.at))
	}
	ceilings, alerts := limitsOf(group, plan)
	ids := slices.SortedFunc(slices.Values(plan.written), counterID.compare)
	tOrg, tMeter, tStart := make(pointerArray[text], len(ids)), make(pointerArray[text], len(ids)), make(pointerArray[timestamp], len(ids))
	tLimit, tAlert, tRoom := make(pointerArray[integer], len(ids)), make(pointerArray[integer], len(ids)), make(pointerArray[integer], len(ids))
	for i, id := range ids {
		tOrg[i], tMeter[i], tStart[i] = text(id.org), text(id.meter), timestamp(id.periodStart())
		// Both are non-negative: no overflow.
		tLimit[i], tAlert[i], tRoom[i] = integer(ceilings[id]-room[id]), integer(alerts[id]), integer(room[id])
	}
	return append(rollups{now: now}.claimArgs(plan.claims), periods, months, days, tOrg, tMeter, tStart, tLimit, tAlert, len(ids), tRoom)
}

// limitsOf is, for each period total a group writes, the ceiling the
// strictest hard limit of its events sets (math.MaxInt64 without one: the
// int64 range) and the limit alerts are judged against (as fireAlerts
// judges them: the last event's; 0 for none).
func limitsOf(group []*request, plan groupPlan) (ceilings, alerts map[counterID]int64) {
	ceilings = make(map[counterID]int64, len(plan.written))
	alerts = make(map[counterID]int64, len(plan.written))
	for _, id := range plan.written {
		ceilings[id] = math.MaxInt64
	}
	for _, req := range group {
		for i := range req.batch {
			p := &req.batch[i]
			if p.limit.Hard && !p.limit.Unlimited {
				ceilings[p.totalID()] = min(ceilings[p.totalID()], p.limit.Limit)
			}
			alerts[p.totalID()] = 0
			if !p.limit.Unlimited && p.limit.Limit > 0 {
				alerts[p.totalID()] = p.limit.Limit
			}
		}
	}
	return ceilings, alerts
}

// oneStatementRest, after the claim (withClaim) and with the endpoint fold
// in place (Service.CapEndpoints), writes a group, as described at the top
// of this file. Its parts run in this order: the claim (as claimEventsSQL), the events
// stored (the sums per period total wait for them, so the totals are
// locked after), the totals, then the endpoint and daily rollups; so it
// takes row locks in the order the transaction does. A sum of zero leaves a total's version
// alone. A threshold p% of a limit L is crossed when the count of whole
// percents reached, min(100, floor(100·used/L)), goes up.
var oneStatementRest = `,
fresh AS (
SELECT u.o, u.k, u.m, u.n, u.e, u.t, u.p, u.mo, u.d, u.i
FROM unnest($4::text[], $5::text[], $6::text[], $7::bigint[], $8::text[], $9::timestamptz[], $11::timestamptz[], $12::timestamptz[], $13::timestamptz[])
	WITH ORDINALITY AS u(o, k, m, n, e, t, p, mo, d, i)
JOIN claimed ON claimed.org_id = u.o AND claimed.idempotency_key = u.k),
stored AS (
INSERT INTO usage_events (org_id, idempotency_key, meter, quantity, endpoint, occurred_at, recorded_at)
SELECT o, k, m, n, e, t, $1 FROM fresh RETURNING 1),
w AS (
SELECT w.o, w.m, w.p, coalesce(s.n, 0) AS n, w.lim - coalesce(s.n, 0) AS c, w.alert, w.room
FROM unnest($14::text[], $15::text[], $16::timestamptz[], $17::bigint[], $18::bigint[], $20::bigint[]) AS w(o, m, p, lim, alert, room)
LEFT JOIN (SELECT o, m, p, sum(n)::bigint AS n FROM fresh GROUP BY o, m, p) s USING (o, m, p)
WHERE (SELECT count(*) FROM stored) >= 0),
totals AS (
INSERT INTO usage_rollups AS r (org_id, meter, period_start, used, version, updated_at)
SELECT o, m, p, n, (n <> 0)::int, $1 FROM w WHERE c >= 0 ORDER BY o, m, p
ON CONFLICT (org_id, meter, period_start) DO UPDATE
SET used = r.used + excluded.used, version = r.version + (excluded.used <> 0)::int, updated_at = excluded.updated_at
WHERE r.used <= (SELECT w.c FROM w WHERE w.o = r.org_id AND w.m = r.meter AND w.p = r.period_start)
RETURNING org_id, meter, period_start, used, version),
ep AS (
SELECT o, mo, m, e, sum(n) AS n FROM fresh WHERE e <> '' GROUP BY o, mo, m, e HAVING sum(n) <> 0),
{fold endpoints},
` + countEndpointNamesSQL + `,
endpoints AS (
INSERT INTO usage_endpoint_rollups AS x (org_id, period_start, meter, endpoint, used, updated_at)
SELECT o, mo, m, e, ` + foldedSum(store.Postgres) + `, $1 FROM epf GROUP BY o, mo, m, e HAVING sum(n) <> 0 ORDER BY o, mo, m, e
ON CONFLICT (org_id, period_start, meter, endpoint) DO UPDATE
SET used = ` + saturatingSum("x.used", "excluded.used") + `, updated_at = excluded.updated_at),
days AS (
INSERT INTO usage_daily_rollups AS y (org_id, meter, day, used, updated_at)
SELECT o, m, d, sum(n)::bigint, $1 FROM fresh GROUP BY o, m, d HAVING sum(n) <> 0 ORDER BY o, m, d
ON CONFLICT (org_id, meter, day) DO UPDATE
SET used = ` + saturatingSum("y.used", "excluded.used") + `, updated_at = excluded.updated_at),
verdict AS (
SELECT CASE
	WHEN (SELECT count(*) FROM totals) <> $19 THEN tollgate_group_abort('limit')
	WHEN EXISTS (SELECT 1 FROM totals t JOIN w ON w.o = t.org_id AND w.m = t.meter AND w.p = t.period_start
		WHERE w.alert > 0 AND w.n > 0
		AND least(100, floor(100 * (t.used + w.room)::numeric / w.alert)) > least(100, floor(100 * (t.used - w.n)::numeric / w.alert)))
		THEN tollgate_group_abort('alert')
	WHEN ` + endpointNamesRace + ` THEN tollgate_serialization_failure('endpoint names added meanwhile')
	ELSE 0 END AS ok)
SELECT (SELECT coalesce(array_agg(i)::text, '{}') FROM fresh), org_id, meter, period_start, used, version
FROM totals WHERE (SELECT ok FROM verdict) = 0`

// uncheckedKeys marks the calls of a committed group holding events whose
// keys were found counted but whose rows could not be read (err): whether
// each is a retry or another event under its key is unknown, so such a
// call is told to retry instead of being answered (Record). Its other
// events stand; their retry is answered as duplicates.
func uncheckedKeys(group []*request, plan groupPlan, err error) {
	for _, req := range group {
		for i := range req.batch {
			if !plan.first[req.batch[i].eventID()].claimed {
				req.unchecked = err
				break
			}
		}
	}
}
