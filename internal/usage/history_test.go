package usage

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// The tests' months are far from the real date, so that the partitions the
// migration made (around the real date) are not those under test.

// partitionOf names the partition holding an organisation's event.
func partitionOf(t *testing.T, db *store.DB, orgID, key string) string {
	t.Helper()
	var name string
	if err := db.Raw("SELECT tableoid::regclass::text FROM usage_events WHERE org_id = ? AND idempotency_key = ?", orgID, key).
		Scan(&name).Error; err != nil {
		t.Fatal(err)
	}
	return name
}

func partitions(t *testing.T, db *store.DB, table string) []string {
	t.Helper()
	var names []string
	if err := db.Raw(`SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = ?::regclass ORDER BY c.relname`, table).Scan(&names).Error; err != nil {
		t.Fatal(err)
	}
	return names
}

func maintain(t *testing.T, f *fixture, retentionMonths int) HistoryReport {
	t.Helper()
	rep, err := f.svc.MaintainHistory(context.Background(), retentionMonths)
	if err != nil {
		t.Fatalf("maintain history: %v", err)
	}
	return rep
}

func TestPartitionsAreReadyAheadAndEventsOnBothSidesOfAMonthBoundaryLandInTheirMonth(t *testing.T) {
	db := testenv.OpenDB(t, store.Postgres)
	f := newFixture(t, db, nil)
	f.clock.Set(time.Date(2031, 5, 31, 23, 59, 59, 0, time.UTC))
	org := f.org(t, "enterprise")

	rep := maintain(t, f, 13)
	for _, table := range []string{"usage_events", "usage_event_keys"} {
		got := partitions(t, db, table)
		for _, month := range []string{"203105", "203106", "203107", "203108"} {
			if !slices.Contains(got, table+"_p"+month) {
				t.Errorf("%s has no partition for %s ready: %v", table, month, got)
			}
		}
		if slices.Contains(got, table+"_p203109") {
			t.Errorf("%s has a partition more than three months ahead: %v", table, got)
		}
	}
	if len(rep.Created) != 8 {
		t.Errorf("created %v, want four months of two tables", rep.Created)
	}
	if rep := maintain(t, f, 13); len(rep.Created)+len(rep.Dropped) != 0 {
		t.Errorf("a second run changed partitions: %+v", rep)
	}

	last := time.Date(2031, 5, 31, 23, 59, 59, 999999000, time.UTC)
	first := time.Date(2031, 6, 1, 0, 0, 0, 0, time.UTC)
	f.record(t, org, Event{Meter: "api_calls", Quantity: 1, IdempotencyKey: "may", Timestamp: &last})
	f.clock.Set(first)
	res := f.record(t, org, Event{Meter: "api_calls", Quantity: 1, IdempotencyKey: "june", Timestamp: &first})
	if res.Accepted != 1 {
		t.Fatalf("the first event of June: %+v", res)
	}
	if p := partitionOf(t, db, org, "may"); p != "usage_events_p203105" {
		t.Errorf("the last instant of May is in %s", p)
	}
	if p := partitionOf(t, db, org, "june"); p != "usage_events_p203106" {
		t.Errorf("the first instant of June is in %s", p)
	}
}

// An event in a month that has no partition (far in the past, on a meter
// that never resets) still counts: the default partition takes it, and the
// next maintenance run gives its month a partition.
func TestAnEventInAMonthWithoutPartitionStillCounts(t *testing.T) {
	db := testenv.OpenDB(t, store.Postgres)
	f := newFixture(t, db, nil)
	org := f.org(t, "enterprise")
	old := time.Date(2019, 7, 4, 12, 0, 0, 0, time.UTC)
	res := f.record(t, org, Event{Meter: "storage_bytes", Quantity: 100, IdempotencyKey: "old", Timestamp: &old})
	if res.Accepted != 1 {
		t.Fatalf("an old event on a meter that never resets: %+v", res)
	}
	if p := partitionOf(t, db, org, "old"); p != "usage_events_default" {
		t.Fatalf("the event is in %s", p)
	}
	maintain(t, f, 1200)
	if p := partitionOf(t, db, org, "old"); p != "usage_events_p201907" {
		t.Fatalf("after maintenance the event is in %s", p)
	}
	if got := f.used(t, org, "storage_bytes"); got != 100 {
		t.Fatalf("storage_bytes %d, want 100", got)
	}
}

// A retried key counts once across a month boundary, for at least
// KeyWindow, and exactly until 35 days after the end of the month it
// arrived in.
func TestARetriedKeyIsRefusedAcrossTheMonthBoundaryForTheWholeWindow(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, nil)
		f.clock.Set(time.Date(2031, 1, 31, 23, 59, 59, 0, time.UTC))
		if db.Dialect == store.Postgres {
			maintain(t, f, 13)
		}
		org := f.org(t, "enterprise")
		if res := f.record(t, org, ev("api_calls", 1, "k")); res.Accepted != 1 {
			t.Fatalf("first copy: %+v", res)
		}
		windowEnd := time.Date(2031, 2, 1, 0, 0, 0, 0, time.UTC).Add(KeyWindow)
		for _, at := range []time.Time{
			time.Date(2031, 2, 1, 0, 0, 1, 0, time.UTC), // the next second, in February
			time.Date(2031, 3, 7, 23, 59, 58, 0, time.UTC),
			windowEnd.Add(-time.Second),
		} {
			f.clock.Set(at)
			if res := f.record(t, org, ev("api_calls", 1, "k")); res.Accepted != 0 || res.Duplicates != 1 {
				t.Fatalf("a retry at %s counted: %+v", at, res)
			}
			// The same within a group large enough to look its keys up
			// per organisation (perOrgFrom) rather than per key.
			batch := []Event{ev("api_calls", 1, "k")}
			for i := range perOrgFrom {
				batch = append(batch, ev("api_calls", 1, fmt.Sprintf("%d-%d", at.UnixNano(), i)))
			}
			if res := f.record(t, org, batch...); res.Accepted != perOrgFrom || res.Duplicates != 1 {
				t.Fatalf("a retry at %s in a group of %d counted: %+v", at, len(batch), res)
			}
			if counted, _, err := f.svc.counted(context.Background(), org, "k"); err != nil || !counted {
				t.Fatalf("consumeUsage at %s does not see the key (%v)", at, err)
			}
		}
		f.clock.Set(windowEnd)
		if res := f.record(t, org, ev("api_calls", 1, "k")); res.Accepted != 1 {
			t.Fatalf("a retry 35 days after the end of the key's month is still refused: %+v", res)
		}
	})
}

// Two copies of one key racing on either side of a month boundary, from
// replicas whose clocks disagree about the month: the one that commits
// second sees the first and is refused.
func TestCopiesRacingAcrossTheMonthBoundaryCountOnce(t *testing.T) {
	db := testenv.OpenDB(t, store.Postgres)
	before := newFixture(t, db, nil)
	before.clock.Set(time.Date(2031, 1, 31, 23, 59, 59, 0, time.UTC))
	maintain(t, before, 13)
	after := newFixture(t, db, before.rdb)
	after.clock.Set(time.Date(2031, 2, 1, 0, 0, 1, 0, time.UTC))
	org := before.org(t, "enterprise")
	after.plans.set(org, "enterprise", "")

	// The January copy holds its transaction open, key written, until the
	// February copy has either finished or is waiting for it.
	written, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	before.svc.group.hooks.written = func([]*request) error {
		once.Do(func() { close(written) })
		<-release
		return nil
	}
	results := make(chan RecordResult, 2)
	go func() {
		res, _ := before.svc.Record(context.Background(), org, []Event{ev("api_calls", 1, "k")})
		results <- res
	}()
	<-written
	done := make(chan struct{})
	go func() {
		defer close(done)
		res, _ := after.svc.Record(context.Background(), org, []Event{ev("api_calls", 1, "k")})
		results <- res
	}()
	for waiting := false; !waiting; {
		select {
		case <-done:
			waiting = true // finished without waiting: counted below
		default:
			var n int64
			if err := db.Raw("SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted").Scan(&n).Error; err != nil {
				t.Fatal(err)
			}
			waiting = n > 0
			time.Sleep(time.Millisecond) // a poll, not a wait for a guess
		}
	}
	close(release)
	a, b := <-results, <-results
	if a.Accepted+b.Accepted != 1 || a.Duplicates+b.Duplicates != 1 {
		t.Fatalf("copies on either side of the boundary: %+v and %+v, want one accepted and one duplicate", a, b)
	}
	var keys int64
	if err := db.Raw("SELECT COUNT(*) FROM usage_event_keys WHERE org_id = ?", org).Scan(&keys).Error; err != nil || keys != 1 {
		t.Fatalf("%d key rows (%v), want 1", keys, err)
	}
}

// Retention drops a whole month of raw events (a partition on Postgres)
// and leaves every usage read as it was: reads use the rollups, which are
// kept forever.
func TestRetentionDropsAWholeMonthAndUsageReadsAreUnchanged(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, nil)
		ctx := context.Background()
		f.clock.Set(time.Date(2031, 1, 10, 9, 0, 0, 0, time.UTC))
		if db.Dialect == store.Postgres {
			maintain(t, f, 13)
		}
		org := f.org(t, "enterprise")
		jan := []Event{
			{Meter: "api_calls", Quantity: 3, IdempotencyKey: "a", Endpoint: "GET /a"},
			{Meter: "api_calls", Quantity: 4, IdempotencyKey: "b", Endpoint: "GET /b"},
			{Meter: "storage_bytes", Quantity: 500, IdempotencyKey: "c"},
		}
		f.record(t, org, jan...)
		f.clock.Set(time.Date(2031, 2, 3, 9, 0, 0, 0, time.UTC))
		f.record(t, org, Event{Meter: "api_calls", Quantity: 5, IdempotencyKey: "d", Endpoint: "GET /a"})

		type reads struct {
			period   Period
			meters   []MeterUsage
			endpoint []EndpointUsage
			series   []Point
		}
		read := func() reads {
			t.Helper()
			var r reads
			var err error
			if r.period, r.meters, err = f.svc.Usage(ctx, org, "2031-01"); err != nil {
				t.Fatal(err)
			}
			if r.endpoint, err = f.svc.ByEndpoint(ctx, org, "2031-01", "api_calls", MaxEndpointPage, ""); err != nil {
				t.Fatal(err)
			}
			if r.series, err = f.svc.Series(ctx, org, "api_calls", time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2031, 2, 28, 0, 0, 0, 0, time.UTC)); err != nil {
				t.Fatal(err)
			}
			return r
		}
		// Fourteen months on, January 2031 is past a 13-month retention;
		// February is not.
		f.clock.Set(time.Date(2032, 3, 1, 0, 0, 0, 0, time.UTC))
		want := read()
		if want.meters[0].Used != 7 {
			t.Fatalf("January's api_calls read %d before retention, want 7", want.meters[0].Used)
		}
		rep := maintain(t, f, 13)
		if db.Dialect == store.Postgres {
			if !slices.Contains(rep.Dropped, "usage_events_p203101") || slices.Contains(rep.Dropped, "usage_events_p203102") {
				t.Fatalf("dropped %v, want January 2031 and not February", rep.Dropped)
			}
			if slices.Contains(partitions(t, db, "usage_events"), "usage_events_p203101") {
				t.Fatal("January 2031 is still attached")
			}
		}
		if n := f.storedEvents(t, org); n != 1 {
			t.Fatalf("%d raw events left, want February's one", n)
		}
		got := read()
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("usage reads changed with retention:\nbefore %+v\nafter  %+v", want, got)
		}
	})
}

// The migration to partitions, on a database written by the schema before
// it: every event stays, and every key inside the window is still refused.
func TestMigratingToPartitionsKeepsEveryEventAndTheKeysOfTheWindow(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		f := newFixture(t, db, nil)
		now := time.Now().UTC().Truncate(time.Second)
		f.clock.Set(now)
		// The organisation is made by today's code (its row has columns later
		// migrations add, which going down drops), the events by the old schema.
		org := f.org(t, "enterprise")
		if err := db.MigrateDownTo(ctx, 50); err != nil {
			t.Fatal(err)
		}
		type row struct {
			Key, Meter           string
			Quantity             int64
			OccurredAt, Recorded time.Time
		}
		day := 24 * time.Hour
		seeded := []row{
			{"yesterday", "api_calls", 3, now.Add(-day), now.Add(-day)},
			{"weeks-ago", "llm_tokens", 40, now.Add(-20 * day), now.Add(-20 * day)},
			{"long-ago", "storage_bytes", 500, time.Date(2019, 7, 4, 12, 0, 0, 0, time.UTC), now.Add(-400 * day)},
		}
		for _, r := range seeded {
			// The old table's primary key was (org_id, idempotency_key).
			err := db.Exec(`INSERT INTO usage_events (org_id, idempotency_key, meter, quantity, endpoint, occurred_at, recorded_at)
				VALUES (?, ?, ?, ?, '', ?, ?) ON CONFLICT (org_id, idempotency_key) DO NOTHING`,
				org, r.Key, r.Meter, r.Quantity, r.OccurredAt, r.Recorded).Error
			if err != nil {
				t.Fatalf("seed with the old schema: %v", err)
			}
		}
		if err := db.MigrateUp(ctx); err != nil {
			t.Fatal(err)
		}

		var stored []row
		if err := db.Raw(`SELECT idempotency_key AS key, meter, quantity, occurred_at, recorded_at AS recorded
			FROM usage_events WHERE org_id = ? ORDER BY recorded_at DESC`, org).Scan(&stored).Error; err != nil {
			t.Fatal(err)
		}
		if len(stored) != len(seeded) {
			t.Fatalf("%d events after the migration, want %d: %+v", len(stored), len(seeded), stored)
		}
		for i, r := range seeded {
			got := stored[i]
			if got.Key != r.Key || got.Meter != r.Meter || got.Quantity != r.Quantity ||
				!got.OccurredAt.Equal(r.OccurredAt) || !got.Recorded.Equal(r.Recorded) {
				t.Errorf("event %d after the migration: %+v, want %+v", i, got, r)
			}
		}
		if db.Dialect == store.Postgres {
			var inDefault int64
			if err := db.Raw("SELECT COUNT(*) FROM usage_events_default").Scan(&inDefault).Error; err != nil || inDefault != 0 {
				t.Fatalf("%d events left in the default partition (%v): the migration makes a partition for every month it copies", inDefault, err)
			}
		}

		res := f.record(t, org, ev("api_calls", 1, "yesterday"), ev("llm_tokens", 1, "weeks-ago"))
		if res.Accepted != 0 || res.Duplicates != 2 {
			t.Fatalf("keys of the window re-sent after the migration: %+v, want both refused", res)
		}
		// A key 400 days old is past any window: it counts again.
		if res := f.record(t, org, ev("storage_bytes", 1, "long-ago")); res.Accepted != 1 {
			t.Fatalf("a key older than the window: %+v", res)
		}
	})
}

// Two maintenance runs at once (a new River leader while the old one's run
// is in flight) both succeed, and each partition is made and dropped once.
func TestMaintenanceRunsAtOnceTakeTurns(t *testing.T) {
	db := testenv.OpenDB(t, store.Postgres)
	f := newFixture(t, db, nil)
	f.clock.Set(time.Date(2031, 1, 10, 0, 0, 0, 0, time.UTC))
	maintain(t, f, 13)
	f.clock.Set(time.Date(2032, 6, 10, 0, 0, 0, 0, time.UTC))
	reps := make([]HistoryReport, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range reps {
		wg.Go(func() { reps[i], errs[i] = f.svc.MaintainHistory(context.Background(), 13) })
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("runs at once failed: %v, %v", errs[0], errs[1])
	}
	created := append(reps[0].Created, reps[1].Created...)
	dropped := append(reps[0].Dropped, reps[1].Dropped...)
	if len(created) != len(slices.Compact(slices.Sorted(slices.Values(created)))) ||
		len(dropped) != len(slices.Compact(slices.Sorted(slices.Values(dropped)))) {
		t.Fatalf("a partition made or dropped twice: %+v", reps)
	}
	if !slices.Contains(dropped, "usage_events_p203101") || len(created) != 8 {
		t.Fatalf("runs at once: %+v, want January 2031 dropped and four months of two tables made", reps)
	}
}

// A group's claim probes each of its keys in the key index, however many
// keys the hot partition holds and whatever its statistics say: hashing the
// partition instead turned a claim of twenty keys into a scan of all of
// them, and made the one-event and batch paths several times slower as the
// month filled.
func TestAClaimProbesItsKeysRatherThanScanningThePartition(t *testing.T) {
	db := testenv.OpenDB(t, store.Postgres)
	f := newFixture(t, db, nil)
	f.clock.Set(time.Date(2031, 5, 14, 12, 0, 0, 0, time.UTC))
	maintain(t, f, 13)
	org := f.org(t, "enterprise")
	now := f.clock.Now()
	// Statistics taken while the partition was nearly empty, then a
	// month's worth of keys: the state autovacuum leaves a new partition in.
	if err := db.Exec("ANALYZE usage_event_keys").Error; err != nil {
		t.Fatal(err)
	}
	// The month the claim writes to, and the month before, which its
	// lookup probes.
	for _, month := range []time.Time{clock.MonthStart(now), clock.MonthStart(clock.MonthStart(now).Add(-time.Hour))} {
		if err := db.Exec(`INSERT INTO usage_event_keys (org_id, idempotency_key, arrival_month)
		SELECT ?, 'seed-' || g, ? FROM generate_series(1, 200000) g`, org, month).Error; err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []int{1, 20, maxGroupEvents} {
		events := make([]*pending, n)
		for i := range events {
			events[i] = &pending{org: org, meter: "api_calls", key: fmt.Sprintf("new-%d", i), quantity: 1, at: now}
		}
		var plan []string
		if err := db.Raw("EXPLAIN "+claimEventsSQL.forEvents(n), rollups{dialect: store.Postgres, now: now}.claimArgs(events)...).Scan(&plan).Error; err != nil {
			t.Fatal(err)
		}
		text := strings.Join(plan, "\n")
		// The month before has no partition of its own here (maintenance
		// made this month's and later), so its keys are in the default one.
		for _, part := range []string{"p203105", "default"} {
			if strings.Contains(text, "Seq Scan on usage_event_keys_"+part+" ") {
				t.Errorf("claiming %d keys scans the key partition %s:\n%s", n, part, text)
			}
		}
		// (A hash anti join is fine now: it hashes the keys the lookup
		// found, not a partition, which would show as a Seq Scan above.)
		// The month the claim writes to is left to the insert's ON
		// CONFLICT: probing it too cost 4 more buffer hits a key (14 a
		// key instead of 10, 1,000 keys into a month of a million).
		if strings.Contains(text, "usage_event_keys_p203105") {
			t.Errorf("claiming %d keys looks them up in the month it writes to:\n%s", n, text)
		}
	}
}
