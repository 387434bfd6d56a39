package usage

import (
	"strconv"
	"strings"

	"github.com/tollgate-billing/tollgate/internal/store"
)

// OtherEndpoint is the endpoint row that counts every endpoint name past a
// meter's allowance in a period (CapEndpoints), so that the per-endpoint
// report stays bounded while its rows still add up to the meter's total.
// A client may send it too: its events count in that same row.
const OtherEndpoint = "(other)"

// DefaultEndpointsPerMeter is the allowance of distinct endpoint names per
// meter and period unless told (USAGE_ENDPOINTS_PER_METER).
const DefaultEndpointsPerMeter = 1000

// CapEndpoints sets how many distinct endpoint names a meter keeps in one
// period before new names are counted under OtherEndpoint. Call it before Run.
func (s *Service) CapEndpoints(n int) {
	s.endpointCap = n
	s.oneStatement = withClaim(strings.Replace(oneStatementRest, endpointFoldMark, foldEndpointsSQL(n), 1))
	s.pipedStatement = s.oneStatement.inTurn()
}

// endpointFoldMark is where oneStatementRest takes foldEndpointsSQL.
const endpointFoldMark = "{fold endpoints}"

// foldEndpointsSQL is the common table expressions that turn ep(o, mo, m,
// e, n), the non-zero sums of one statement per endpoint name, into
// epf(o, mo, m, e, n, known, seen) with names past the allowance of their
// meter and month renamed OtherEndpoint. A name already stored (known)
// keeps its row; new names take the room left in name order. The room is
// the allowance less seen, the meter's count of names in
// usage_endpoint_names (migration 00059) as of the statement's snapshot:
// one key lookup, made only for new names.
//
// That count is kept exact by the statement that inserts the names: on
// Postgres, countEndpointNamesSQL in the same statement; on SQLite, a
// trigger on usage_endpoint_rollups.
func foldEndpointsSQL(allowance int) string {
	return `epk AS (
SELECT ep.o, ep.mo, ep.m, ep.e, ep.n, (ep.e = '` + OtherEndpoint + `' OR EXISTS (SELECT 1 FROM usage_endpoint_rollups z
	WHERE z.org_id = ep.o AND z.period_start = ep.mo AND z.meter = ep.m AND z.endpoint = ep.e)) AS known
FROM ep),
eps AS (
SELECT o, mo, m, e, n, known, CASE WHEN known THEN 0 ELSE coalesce((SELECT z.names FROM usage_endpoint_names z
	WHERE z.org_id = epk.o AND z.period_start = epk.mo AND z.meter = epk.m), 0) END AS seen
FROM epk),
epf AS (
SELECT o, mo, m, CASE WHEN known OR row_number() OVER (PARTITION BY o, mo, m, known ORDER BY e) + seen <= ` + strconv.Itoa(allowance) + `
	THEN e ELSE '` + OtherEndpoint + `' END AS e, n, known, seen
FROM eps)`
}

// countEndpointNamesSQL is, on Postgres, the common table expressions
// after foldEndpointsSQL that add the names a statement inserts to
// usage_endpoint_names, and endpointNamesRace the condition (for a CASE)
// under which that failed. Concurrent statements adding names to the same
// meter and month serialize on its row. One whose snapshot is older than
// the row it finds (another statement added names since, which its fold
// could not see) updates nothing: the statement then fails with a
// serialization failure (tollgate_serialization_failure, migration 00059)
// and is tried again with a fresh snapshot, so the names kept never pass
// the allowance. Statements adding no name leave the row alone. In a
// transaction, which locks the period totals before it counts (rollups.go),
// the snapshot already sees every statement of the same meter and month.
const countEndpointNamesSQL = `epn AS (
SELECT o, mo, m, max(seen) AS seen, count(*) FILTER (WHERE NOT known AND e <> '` + OtherEndpoint + `') AS added
FROM epf GROUP BY o, mo, m),
names AS (
INSERT INTO usage_endpoint_names AS c (org_id, period_start, meter, names)
SELECT o, mo, m, seen + added FROM epn WHERE added > 0 ORDER BY o, mo, m
ON CONFLICT (org_id, period_start, meter) DO UPDATE SET names = excluded.names
WHERE c.names = (SELECT epn.seen FROM epn WHERE epn.o = c.org_id AND epn.mo = c.period_start AND epn.m = c.meter)
RETURNING 1)`

// endpointNamesRace is true when countEndpointNamesSQL found a count
// moved since the statement's snapshot.
const endpointNamesRace = `(SELECT count(*) FROM names) <> (SELECT count(*) FROM epn WHERE added > 0)`

// foldedSum is SQL for the sum of epf's n over a group, clamped to the
// int64 range as the report rollups are. Each name's sum is already
// clamped, so only the sum of several names folded together can pass it.
// SQLite's sum of integers fails rather than wraps or saturates, so there
// the sum is taken in 32-bit halves, which cannot overflow, and put
// together only when it fits.
func foldedSum(d store.Dialect) string {
	if d == store.Postgres {
		return "least(greatest(sum(n), -9223372036854775807), 9223372036854775807)::bigint"
	}
	const (
		lo = "sum(n & 4294967295)"
		// hi·2^32 + lo%2^32 is the sum, with 0 <= lo%2^32 < 2^32.
		hi = "(sum((n - (n & 4294967295)) / 4294967296) + " + lo + " / 4294967296)"
	)
	return "CASE WHEN " + hi + " >= 2147483648 THEN 9223372036854775807 WHEN " + hi + " < -2147483648 THEN -9223372036854775807" +
		" ELSE max(" + hi + " * 4294967296 + " + lo + " % 4294967296, -9223372036854775807) END"
}
