package usage

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// TestEndpointsPastTheAllowanceCountAsOther: a meter keeps its first names
// of a month; later names count under "(other)", names already kept go on
// counting, the rows add up to the meter's total, and the next month starts
// a fresh allowance.
func TestEndpointsPastTheAllowanceCountAsOther(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, nil)
		f.svc.CapEndpoints(2)
		ctx := context.Background()
		org := f.org(t, "starter")
		at := func(e Event, endpoint string) Event { e.Endpoint = endpoint; return e }
		// One group: b and c fit (names in order), d and e do not.
		f.record(t, org, at(ev("api_calls", 1, "1"), "e"), at(ev("api_calls", 2, "2"), "c"),
			at(ev("api_calls", 4, "3"), "b"), at(ev("api_calls", 8, "4"), "d"))
		// Later groups: kept names count, new names fold, a sent "(other)" joins the same row.
		f.record(t, org, at(ev("api_calls", 16, "5"), "b"), at(ev("api_calls", 32, "6"), "a"))
		f.record(t, org, at(ev("api_calls", 64, "7"), OtherEndpoint))
		f.record(t, org, at(ev("api_calls", 1, "8"), "x"))
		got, err := f.svc.ByEndpoint(ctx, org, "", "api_calls", MaxEndpointPage, "")
		if err != nil {
			t.Fatal(err)
		}
		const want = "[{(other) api_calls 106} {b api_calls 20} {c api_calls 2}]"
		if endpointRows(got) != want {
			t.Errorf("March: got %s, want %s", endpointRows(got), want)
		}
		var sum int64
		for _, r := range got {
			sum += r.Used
		}
		if total := f.used(t, org, "api_calls"); sum != total {
			t.Errorf("endpoint rows add up to %d, the meter's total is %d", sum, total)
		}
		f.clock.Set(time.Date(2026, 4, 15, 12, 0, 0, 0, time.UTC))
		f.record(t, org, at(ev("api_calls", 1, "10"), "z"), at(ev("api_calls", 1, "11"), "y"), at(ev("api_calls", 1, "12"), "x"))
		got, err = f.svc.ByEndpoint(ctx, org, "2026-04", "api_calls", MaxEndpointPage, "")
		if err != nil {
			t.Fatal(err)
		}
		if want := "[{(other) api_calls 1} {x api_calls 1} {y api_calls 1}]"; endpointRows(got) != want {
			t.Errorf("April: got %s, want %s", endpointRows(got), want)
		}
	})
}

// TestConcurrentWritersNeverKeepMoreEndpointNamesThanTheAllowance: three
// replicas, each with its own connections, record calls at once whose
// events bring many new endpoint names to one meter, in groups written by
// one statement and by transactions (the quantities cross alert
// thresholds). Exactly the allowance of names is kept, not one more (the
// room used to be read by each statement from its own snapshot, so
// statements racing could each take it) and not one fewer, every other
// name counts under "(other)", and the rows add up to what was sent.
func TestConcurrentWritersNeverKeepMoreEndpointNamesThanTheAllowance(t *testing.T) {
	for _, d := range testenv.Dialects {
		t.Run(string(d), func(t *testing.T) {
			const (
				allowance = 25
				names     = 100 // distinct names sent, far past the allowance
				replicas  = 3
				callers   = 8 // per replica
				calls     = 5 // per caller
				events    = 4 // per call
			)
			dbs := openReplicas(t, d, replicas)
			first := newFixture(t, dbs[0], nil)
			svcs := []*Service{first.svc}
			for _, db := range dbs[1:] {
				svcs = append(svcs, NewService(db, first.rdb, first.svc.catalog, first.plans, first.clock, first.svc.log))
			}
			for _, s := range svcs {
				s.CapEndpoints(allowance)
			}
			org := first.org(t, "starter")
			var sent atomic.Int64
			testenv.AtOnce(replicas*callers, func(i int) {
				s := svcs[i%replicas]
				for c := range calls {
					batch := make([]Event, events)
					for j := range batch {
						n := (i*calls+c)*events + j
						batch[j] = Event{Meter: "api_calls", Quantity: int64(1 + n*37%200), IdempotencyKey: fmt.Sprintf("k%d", n),
							Endpoint: fmt.Sprintf("/v1/e%03d", n*7%names)}
						sent.Add(batch[j].Quantity)
					}
					if _, err := s.Record(context.Background(), org, batch); err != nil {
						t.Errorf("caller %d, call %d: %v", i, c, err)
						return
					}
				}
			})
			if t.Failed() {
				return
			}
			rows, err := first.svc.ByEndpoint(context.Background(), org, "", "api_calls", MaxEndpointPage, "")
			if err != nil {
				t.Fatal(err)
			}
			kept, sum := 0, int64(0)
			for _, r := range rows {
				if r.Endpoint != OtherEndpoint {
					kept++
				}
				sum += r.Used
			}
			if kept != allowance {
				t.Errorf("%d endpoint names kept besides %q, want the allowance, %d", kept, OtherEndpoint, allowance)
			}
			if sum != sent.Load() || first.used(t, org, "api_calls") != sent.Load() {
				t.Errorf("endpoint rows add up to %d, the meter's total is %d, %d were sent", sum, first.used(t, org, "api_calls"), sent.Load())
			}
		})
	}
}

// openReplicas opens n handles, each with its own connections (and, on
// Postgres, its own pipe), on one fresh migrated database.
func openReplicas(t *testing.T, d store.Dialect, n int) []*store.DB {
	t.Helper()
	opts := store.Options{}
	if d == store.Postgres {
		opts.URL = testenv.PostgresURL(t)
	} else {
		opts.SQLitePath = filepath.Join(t.TempDir(), "tollgate.db")
	}
	dbs := make([]*store.DB, n)
	for i := range dbs {
		db, err := store.Open(context.Background(), opts)
		if err != nil {
			t.Fatalf("open %s: %v", d, err)
		}
		t.Cleanup(func() { db.Close() })
		if i == 0 {
			if err := db.MigrateUp(context.Background()); err != nil {
				t.Fatalf("migrate %s: %v", d, err)
			}
		}
		dbs[i] = db
	}
	return dbs
}

// TestFoldedEndpointSumsSaturateLikeEveryOtherSum: names folded together
// into "(other)" whose sums pass the int64 range count as its bound (SQLite
// used to fail the whole write with an integer overflow), and a folded sum
// that fits is exact even when adding up in name order passes the range on
// the way.
func TestFoldedEndpointSumsSaturateLikeEveryOtherSum(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, nil)
		org := f.org(t, "starter")
		month := clock.MonthStart(testNow).Unix()
		const maxInt = math.MaxInt64
		sums := map[endpointKey]int64{}
		for meter, names := range map[string]map[string]int64{
			"api_calls":  {"a": 1, "b": maxInt, "c": maxInt, "d": maxInt},
			"llm_tokens": {"a": 1, "b": maxInt, "c": 5, "d": -10},
			"storage":    {"a": 1, "b": -maxInt, "c": -maxInt},
		} {
			for name, n := range names {
				sums[endpointKey{org, meter, name, month}] = n
			}
		}
		err := db.Tx(context.Background(), func(tx *gorm.DB) error {
			return rollups{tx: tx, dialect: db.Dialect, now: testNow, endpointCap: 1}.addEndpoints(sums)
		})
		if err != nil {
			t.Fatalf("add endpoint sums: %v", err)
		}
		for meter, want := range map[string]string{
			"api_calls":  fmt.Sprintf("[{%s api_calls %d} {a api_calls 1}]", OtherEndpoint, int64(maxInt)),
			"llm_tokens": fmt.Sprintf("[{%s llm_tokens %d} {a llm_tokens 1}]", OtherEndpoint, int64(maxInt-5)),
			"storage":    fmt.Sprintf("[{%s storage %d} {a storage 1}]", OtherEndpoint, int64(-maxInt)),
		} {
			var rows []UsageEndpointRollup
			if err := db.Where("org_id = ? AND meter = ?", org, meter).Order("endpoint").Find(&rows).Error; err != nil {
				t.Fatal(err)
			}
			got := make([]EndpointUsage, len(rows))
			for i, r := range rows {
				got[i] = EndpointUsage{Endpoint: r.Endpoint, Meter: r.Meter, Used: r.Used}
			}
			if endpointRows(got) != want {
				t.Errorf("%s: got %s, want %s", meter, endpointRows(got), want)
			}
		}
	})
}

// TestAStatementRacingForTheLastRoomKeepsNoNameTooMany: two replicas'
// statements bring new names to one meter at once, each as many as the
// allowance. Both have taken their snapshots when the first one commits
// (a third transaction holds the meter's total until both wait on it), so
// the second cannot see the first's names in its snapshot: it used to take
// the whole room again and keep twice the allowance. The names of one
// replica are kept and the other's count under "(other)".
func TestAStatementRacingForTheLastRoomKeepsNoNameTooMany(t *testing.T) {
	const allowance = 3
	dbs := openReplicas(t, store.Postgres, 2)
	a := newFixture(t, dbs[0], nil)
	b := NewService(dbs[1], a.rdb, a.svc.catalog, a.plans, a.clock, a.svc.log)
	a.svc.CapEndpoints(allowance)
	b.CapEndpoints(allowance)
	org := a.org(t, "starter")
	a.record(t, org, ev("api_calls", 1, "total")) // the total's row, to hold
	ctx := context.Background()
	hold, err := dbs[0].SQL().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Rollback()
	if _, err := hold.ExecContext(ctx, "SELECT 1 FROM usage_rollups WHERE org_id = $1 FOR UPDATE", org); err != nil {
		t.Fatal(err)
	}
	calls := func(prefix string) []Event {
		out := make([]Event, allowance)
		for i := range out {
			out[i] = Event{Meter: "api_calls", Quantity: 1, IdempotencyKey: fmt.Sprintf("%s%d", prefix, i), Endpoint: fmt.Sprintf("/%s%d", prefix, i)}
		}
		return out
	}
	var wg sync.WaitGroup
	for prefix, s := range map[string]*Service{"a": a.svc, "b": b} {
		wg.Go(func() {
			if _, err := s.Record(ctx, org, calls(prefix)); err != nil {
				t.Errorf("replica %s: %v", prefix, err)
			}
		})
	}
	waitFor(t, "both statements to wait on the total", func() bool {
		var n int
		err := dbs[0].SQL().QueryRowContext(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'").Scan(&n)
		return err == nil && n == 2
	})
	if err := hold.Rollback(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	rows, err := a.svc.ByEndpoint(ctx, org, "", "api_calls", MaxEndpointPage, "")
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"(other) 3", "/a0 1", "/a1 1", "/a2 1"}, {"(other) 3", "/b0 1", "/b1 1", "/b2 1"}}
	got := make([]string, len(rows))
	for i, r := range rows {
		got[i] = fmt.Sprintf("%s %d", r.Endpoint, r.Used)
	}
	if !slices.Equal(got, want[0]) && !slices.Equal(got, want[1]) {
		t.Errorf("endpoint rows %q, want one replica's names kept and the other's under %q: %q or %q", got, OtherEndpoint, want[0], want[1])
	}
}
