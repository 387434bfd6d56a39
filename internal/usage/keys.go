package usage

import (
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/store"
)

// The idempotency window.
//
// An accepted key is written to usage_event_keys with the UTC month it
// arrived in (arrival_month); on Postgres that table is partitioned by that
// month. A key arriving at now is refused when a row with the same
// (org_id, idempotency_key) has an arrival month at or after
// keyFloor(now), the month that held now - KeyWindow, whichever month the
// first copy's event landed in: in the month the key arrives in, by the
// insert's primary key; in the other months of the window, by an index
// lookup in their partitions (claimStatement). A key first accepted at t is
// therefore refused until 35 days after the end of t's month: at least
// KeyWindow (35 days, for a key that arrived in the last instant of a
// month) and at most 66 days (one that arrived on the first of a 31-day
// month). Older key
// partitions are never probed, and the maintenance job drops them. Nor are
// those after keyCeiling(now), the next month (empty, made ahead): the
// lookup reaches one month ahead because a replica whose clock is still in
// the previous month must see a key another one wrote in the next.
//
// Concurrent copies of one key: two copies arriving in the same month
// collide in that month's partition on its primary key, so the second
// waits for the first transaction and is refused once it commits. Two
// copies on either side of a month boundary write to different partitions
// and neither sees the other's uncommitted row; so near a boundary every
// Postgres ingest transaction first takes one advisory lock (the boundary
// lock), and each one's lookup runs after the previous one committed. SQLite
// has one writer, so there is no race there.

// KeyWindow is the least time a retried idempotency key is refused after
// its first copy was accepted.
const KeyWindow = 35 * 24 * time.Hour

// boundaryGuard is how close to a UTC month boundary, by the replica's
// clock, ingest transactions take the boundary lock. A copy on one side
// escapes the lock only if it started more than boundaryGuard before the
// boundary while the other started after it: that needs replica clocks
// more than boundaryGuard - groupTimeout (4.5 minutes) apart.
const boundaryGuard = 5 * time.Minute

// boundaryLock is the advisory lock key of the boundary lock ("tollgate"
// in ASCII, so that no other lock of the database picks it by chance).
const boundaryLock int64 = 0x746f6c6c67617465

// keyFloor is the oldest arrival month whose keys a key arriving at now is
// checked against.
func keyFloor(now time.Time) time.Time { return clock.MonthStart(now.Add(-KeyWindow)) }

// keyCeiling is the newest arrival month a key arriving at now is checked
// against.
func keyCeiling(now time.Time) time.Time { return clock.MonthEnd(now) }

// nearMonthBoundary reports whether now is within boundaryGuard of the
// start or end of its UTC month.
func nearMonthBoundary(now time.Time) bool {
	return now.Sub(clock.MonthStart(now)) < boundaryGuard || clock.MonthEnd(now).Sub(now) <= boundaryGuard
}

// guardMonthBoundary takes the boundary lock when the transaction may race
// a copy of one of its keys on the other side of a month boundary. It is a
// statement of its own, before any key is looked up: in READ COMMITTED each
// statement sees what committed before it began, so the lookups after it
// see the keys of the transaction that held the lock before.
func (r rollups) guardMonthBoundary() error {
	if r.dialect != store.Postgres || !nearMonthBoundary(r.now) {
		return nil
	}
	if err := r.exec("SELECT pg_advisory_xact_lock(?)", boundaryLock); err != nil {
		return fmt.Errorf("take the month boundary lock: %w", err)
	}
	return nil
}

// What a key's row says about its event.
//
// A key's row keeps its event's meter, quantity and endpoint (migration
// 00055), so that a key sent again is judged against the event first
// counted under it: the same event again is a retry, answered as a
// duplicate; another event under the key is refused with
// CodeKeyReused, never counted and never answered as counted, whichever
// call, replica or path (one statement, transaction, SQLite) it comes
// through. The timestamp is not compared: a sender may stamp a retry anew,
// and the first copy's time stands. Rows written before migration 00055
// know no event and match any (they answer as duplicates, as before); they
// leave the window within 66 days.
//
// The hot path pays nothing for this: the claim writes the three columns
// from the arrays it already sends, and the rows of keys found counted are
// read by one more query only when a group holds such keys (retries, or
// reuse).

// CodeKeyReused rejects an event whose idempotency key was counted for
// another event (another meter, quantity or endpoint).
const CodeKeyReused = "IDEMPOTENCY_KEY_REUSED"

// keyPayload is what a key's row says its event was; known is false for a
// row from before migration 00055, which matches any event.
type keyPayload struct {
	meter, endpoint string
	quantity        int64
	known           bool
}

func payloadOf(p *pending) keyPayload {
	return keyPayload{meter: p.meter, endpoint: p.endpoint, quantity: p.quantity, known: true}
}

// reuse says how the event p differs from first, the event counted under
// its key, or "" when it does not: p is then a retry. It names the meters
// and quantities (short: meter names are the catalog's, quantities
// numbers) and never the endpoints or the key, which may be long.
func reuse(p *pending, first keyPayload) string {
	if !first.known {
		return ""
	}
	var diffs []string
	if first.meter != p.meter {
		diffs = append(diffs, fmt.Sprintf("meter %s, not %s", first.meter, p.meter))
	}
	if first.quantity != p.quantity {
		diffs = append(diffs, fmt.Sprintf("quantity %d, not %d", first.quantity, p.quantity))
	}
	if first.endpoint != p.endpoint {
		diffs = append(diffs, "another endpoint")
	}
	if len(diffs) == 0 {
		return ""
	}
	return "idempotencyKey was already used for another event (" + strings.Join(diffs, "; ") +
		"); a retry must repeat the event exactly, and a new event needs a new key"
}

// rejectReuse rejects p when it differs from first, the event counted under
// its key, and reports whether it did.
func (o *outcome) rejectReuse(p *pending, first keyPayload) bool {
	why := reuse(p, first)
	if why == "" {
		return false
	}
	o.reject(p, CodeKeyReused, "%s", why)
	return true
}

// readKeyPayloads reads, for the claims that claimed no key (their keys
// were counted before the group, or by a group beside it that has
// committed since), what the keys' rows say their events were. It is one
// query, and none when every claim claimed its key. A key whose row is not
// found (gone since) is absent and matches any event. It is the one reader
// of a counted key's row: Record's group and Consume's refusal
// (Service.counted) judge a key against the same row.
//
// A key has two rows in the window only when it was counted again across
// a month boundary by replicas whose clocks are far apart. The row of the
// earliest arrival month is the first copy's, and it decides, whether it
// knows its event or not: a key is a retry only of the event first counted
// under it.
func (r rollups) readKeyPayloads(claims []*pending) (map[eventID]keyPayload, error) {
	var args []any
	n := 0
	for _, p := range claims {
		if !p.claimed {
			if args == nil {
				args = append(args, keyFloor(r.now), keyCeiling(r.now))
			}
			args = append(args, p.org, p.key)
			n++
		}
	}
	if n == 0 {
		return nil, nil
	}
	q := "SELECT org_id, idempotency_key, meter, quantity, endpoint FROM usage_event_keys WHERE arrival_month BETWEEN ? AND ?" +
		" AND (org_id, idempotency_key) IN (" + rowsOf("(?, ?)", n) + ") ORDER BY arrival_month"
	rows, err := r.query(q, args...)
	if err != nil {
		return nil, fmt.Errorf("read counted usage keys: %w", err)
	}
	defer rows.Close()
	out := make(map[eventID]keyPayload, n)
	for rows.Next() {
		var (
			id       eventID
			meter    sql.NullString
			quantity sql.NullInt64
			endpoint sql.NullString
		)
		if err := rows.Scan(&id.org, &id.key, &meter, &quantity, &endpoint); err != nil {
			return nil, fmt.Errorf("read counted usage keys: %w", err)
		}
		if _, later := out[id]; !later {
			out[id] = keyPayload{meter: meter.String, quantity: quantity.Int64, endpoint: endpoint.String, known: meter.Valid}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read counted usage keys: %w", err)
	}
	return out, nil
}
