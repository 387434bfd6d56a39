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
// epf(o, mo, m, e, n) with names past the allowance of their meter and month
// renamed OtherEndpoint. A name already stored keeps its row; new names take
// the room left in name order. The room is read from the rows committed when
// the statement starts, so writers racing on the same meter and month may
// each take it: the names stored can pass the allowance by what the other
// groups committing at that moment add (at most commitSlots groups a replica).
// Reading the room is an index range scan of at most the allowance, and only
// for names not yet stored.
func foldEndpointsSQL(allowance int) string {
	return `epk AS (
SELECT ep.o, ep.mo, ep.m, ep.e, ep.n, (ep.e = '` + OtherEndpoint + `' OR EXISTS (SELECT 1 FROM usage_endpoint_rollups z
	WHERE z.org_id = ep.o AND z.period_start = ep.mo AND z.meter = ep.m AND z.endpoint = ep.e)) AS known
FROM ep),
epf AS (
SELECT o, mo, m, CASE WHEN known OR row_number() OVER (PARTITION BY o, mo, m, known ORDER BY e) + (SELECT count(*) FROM usage_endpoint_rollups z
	WHERE z.org_id = epk.o AND z.period_start = epk.mo AND z.meter = epk.m AND z.endpoint <> '` + OtherEndpoint + `') <= ` + strconv.Itoa(allowance) + `
	THEN e ELSE '` + OtherEndpoint + `' END AS e, n
FROM epk)`
}

// foldedSum is SQL for the sum of epf's n over a group, clamped to the
// int64 range as the report rollups are (SQLite's sum of integers stays
// an integer and fails rather than wraps; each name's sum is already
// clamped, so only the sum of 2^63 over several folded names reaches that).
func foldedSum(d store.Dialect) string {
	if d == store.Postgres {
		return "least(greatest(sum(n), -9223372036854775807), 9223372036854775807)::bigint"
	}
	return "sum(n)"
}
