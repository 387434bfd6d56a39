package usage

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// TestBackdatedEventsKeepTheHistoryPossible: an event dated in the past on a
// meter that never resets changes the running total of every day from its
// own on, so it is judged against each of them. No past period or day may
// show a total below zero or past a hard limit, whatever order the events
// arrive in, and a refused event's key stays free.
func TestBackdatedEventsKeepTheHistoryPossible(t *testing.T) {
	const limit = int64(100 << 20) // free: storage_bytes, hard limit 100 MiB
	on := func(date string) *time.Time {
		d, err := time.Parse(time.DateOnly, date)
		if err != nil {
			t.Fatal(err)
		}
		return ptr(d.Add(12 * time.Hour))
	}
	dated := func(q int64, key, date string) Event {
		e := ev("storage_bytes", q, key)
		e.Timestamp = on(date)
		return e
	}
	type step struct {
		events   []Event
		rejected map[int]string // index -> code; the others are accepted
		mentions string         // in the first rejection's message
	}
	cases := []struct {
		name  string
		steps []step
		// monthEnd is the total each listed past month ends on.
		monthEnd map[string]int64
		current  int64
	}{
		{
			name: "a delete dated before its upload would take the past below zero",
			steps: []step{
				{events: []Event{ev("storage_bytes", 10, "up")}},
				{events: []Event{dated(-10, "del", "2026-01-10")}, rejected: map[int]string{0: CodeInvalidQuantity}, mentions: "end of 2026-01-10"},
				// The key stayed free: dated after the upload, the delete counts.
				{events: []Event{ev("storage_bytes", -10, "del")}},
			},
			monthEnd: map[string]int64{"2026-01": 0, "2026-02": 0},
			current:  0,
		},
		{
			name: "an upload dated while the meter was full would take the past over the hard limit",
			steps: []step{
				{events: []Event{dated(limit, "up-1", "2025-01-01")}},
				{events: []Event{dated(-limit, "del-1", "2025-06-01")}},
				{events: []Event{dated(limit, "up-2", "2025-03-01")}, rejected: map[int]string{0: CodeUsageLimitExceeded}, mentions: "end of 2025-03-01"},
				{events: []Event{dated(1, "up-3", "2025-03-01")}, rejected: map[int]string{0: CodeUsageLimitExceeded}},
				// After the delete there is room again.
				{events: []Event{dated(limit, "up-2", "2025-07-01")}},
			},
			monthEnd: map[string]int64{"2025-02": limit, "2025-04": limit, "2025-06": 0, "2025-08": limit},
			current:  limit,
		},
		{
			name: "events of one call are judged against the history the earlier ones made",
			steps: []step{
				{
					events: []Event{
						dated(5, "up", "2026-02-01"),
						dated(-5, "del-early", "2026-01-15"), // before the upload: below zero in January
						dated(-5, "del", "2026-02-10"),
						dated(limit, "up-full", "2026-02-05"), // the upload above still counts until the 10th
						dated(limit-5, "up-fits", "2026-02-05"),
					},
					rejected: map[int]string{1: CodeInvalidQuantity, 3: CodeUsageLimitExceeded},
				},
			},
			monthEnd: map[string]int64{"2026-01": 0, "2026-02": limit - 5},
			current:  limit - 5,
		},
		{
			name: "timestamps before 2000 are refused",
			steps: []step{
				{
					events:   []Event{dated(1, "a", "1970-01-01"), dated(1, "b", "1999-12-31"), dated(1, "c", "2000-01-01")},
					rejected: map[int]string{0: CodeTimestampTooOld, 1: CodeTimestampTooOld},
					mentions: "2000-01-01",
				},
			},
			monthEnd: map[string]int64{"2000-01": 1},
			current:  1,
		},
	}
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, testenv.Redis(t))
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				org := f.org(t, "free")
				for i, s := range c.steps {
					res, err := f.svc.Record(context.Background(), org, s.events)
					if err != nil && apperr.CodeOf(err) != apperr.UsageLimitExceeded {
						t.Fatalf("step %d: %v", i, err)
					}
					got := map[int]string{}
					for _, r := range res.Rejected {
						got[r.Index] = r.Code
					}
					if len(got) != len(s.rejected) || res.Accepted != len(s.events)-len(s.rejected) {
						t.Fatalf("step %d: accepted %d, rejected %+v; want rejected %v", i, res.Accepted, res.Rejected, s.rejected)
					}
					for idx, code := range s.rejected {
						if got[idx] != code {
							t.Fatalf("step %d: event %d got %q, want %s (%+v)", i, idx, got[idx], code, res.Rejected)
						}
					}
					if s.mentions != "" && !strings.Contains(res.Rejected[0].Message, s.mentions) {
						t.Fatalf("step %d: message %q does not name %s", i, res.Rejected[0].Message, s.mentions)
					}
				}
				for month, want := range c.monthEnd {
					if got := f.usedIn(t, org, month); got != want {
						t.Errorf("usage(period: %s) = %d, want %d", month, got, want)
					}
				}
				if got := f.used(t, org, "storage_bytes"); got != c.current {
					t.Errorf("current total = %d, want %d", got, c.current)
				}
				// Every day of the series lies within the meter's range.
				from := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
				for from.Before(testNow) {
					pts, err := f.svc.Series(context.Background(), org, "storage_bytes", from, from.AddDate(0, 0, MaxSeriesDays-1))
					if err != nil {
						t.Fatal(err)
					}
					for _, p := range pts {
						if p.Used < 0 || p.Used > limit {
							t.Fatalf("usageSeries on %s = %d, outside 0..%d", p.Date.Format(time.DateOnly), p.Used, limit)
						}
					}
					from = from.AddDate(0, 0, MaxSeriesDays)
				}
			})
		}
	})
}

// usedIn is storage_bytes at the end of a past month, from the usage report.
func (f *fixture) usedIn(t *testing.T, orgID, month string) int64 {
	t.Helper()
	_, meters, err := f.svc.Usage(context.Background(), orgID, month)
	if err != nil {
		t.Fatalf("usage of %s: %v", month, err)
	}
	for _, m := range meters {
		if m.Meter == "storage_bytes" {
			return m.Used
		}
	}
	t.Fatalf("storage_bytes missing from usage of %s", month)
	return 0
}

// A back-dated event is judged, on every day from its date on, by the
// plans the organisation was on then (billing's plan history), not only by
// the plan it is recorded under. After a downgrade, an upload dated while
// the looser old plan was in force counts if today's total stays within
// the new limit; after an upgrade, one dated while the tighter old plan's
// limit was full is refused though the new plan has room.
func TestABackdatedEventIsJudgedByThePlanInForceAtItsTime(t *testing.T) {
	const mib = int64(1 << 20)
	dated := func(q int64, key string, daysAgo int) Event {
		e := ev("storage_bytes", q, key)
		e.Timestamp = ptr(testNow.AddDate(0, 0, -daysAgo))
		return e
	}
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, nil)
		free, _ := f.svc.catalog.ByID("free")
		storage, _ := f.svc.catalog.Meter("storage_bytes")
		full := limitOf(free, storage).Limit

		t.Run("the older plan was looser", func(t *testing.T) {
			f.clock.Set(testNow.AddDate(0, 0, -30))
			org := f.org(t, "enterprise") // no limit on storage
			f.clock.Set(testNow)
			// Over the free limit from 10 days ago to 2 days ago, 50 MiB under it since.
			f.record(t, org, dated(full+50*mib, "up", 10), dated(-100*mib, "del", 2))
			f.setPlan(org, "free", "")
			if res := f.record(t, org, dated(mib, "late", 5)); res.Accepted != 1 {
				t.Fatalf("an upload dated 5 days ago, under enterprise: %+v, want accepted (free has room since the downgrade)", res)
			}
			// Today's total is still held to the free limit.
			res, err := f.svc.Record(context.Background(), org, []Event{dated(50*mib, "too-much", 5)})
			if apperr.CodeOf(err) != apperr.UsageLimitExceeded || len(res.Rejected) != 1 || res.Rejected[0].Code != CodeUsageLimitExceeded ||
				!strings.Contains(res.Rejected[0].Message, fmt.Sprintf("requested > %d", full)) {
				t.Fatalf("an upload dated 5 days ago that would take today past the free limit: %+v, %v; want %s", res, err, CodeUsageLimitExceeded)
			}
			if got, want := f.used(t, org, "storage_bytes"), full-50*mib+mib; got != want {
				t.Errorf("used %d, want %d", got, want)
			}
		})

		t.Run("the older plan was tighter", func(t *testing.T) {
			f.clock.Set(testNow.AddDate(0, 0, -30))
			org := f.org(t, "free")
			f.clock.Set(testNow)
			f.record(t, org, dated(full, "full", 10))
			f.setPlan(org, "starter", "active")
			res, err := f.svc.Record(context.Background(), org, []Event{dated(mib, "late", 5)})
			if apperr.CodeOf(err) != apperr.UsageLimitExceeded || len(res.Rejected) != 1 || res.Rejected[0].Code != CodeUsageLimitExceeded ||
				!strings.Contains(res.Rejected[0].Message, fmt.Sprintf("%d used + %d requested > %d", full, mib, full)) {
				t.Fatalf("an upload dated while the free plan was full, recorded under starter: %+v, %v; want %s against the free limit",
					res, err, CodeUsageLimitExceeded)
			}
			if res := f.record(t, org, ev("storage_bytes", mib, "now")); res.Accepted != 1 {
				t.Fatalf("an upload dated now, under starter: %+v, want accepted", res)
			}
			if got := f.used(t, org, "storage_bytes"); got != full+mib {
				t.Errorf("used %d, want %d", got, full+mib)
			}
		})
	})
}
