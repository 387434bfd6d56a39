package usage

import (
	"fmt"
	"time"

	"gorm.io/gorm"

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

// keyCounted reports whether an event with this key was accepted inside the
// idempotency window, as a key arriving at now would be judged.
func keyCounted(db *gorm.DB, orgID, key string, now time.Time) (bool, error) {
	var n int64
	err := db.Raw(`SELECT COUNT(*) FROM usage_event_keys WHERE org_id = ? AND idempotency_key = ? AND arrival_month BETWEEN ? AND ?`,
		orgID, key, keyFloor(now), keyCeiling(now)).Scan(&n).Error
	return n > 0, err
}
