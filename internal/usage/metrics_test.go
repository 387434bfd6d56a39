package usage

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tollgate-billing/tollgate/internal/observe"
	"github.com/tollgate-billing/tollgate/internal/observe/observetest"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

func TestRecordCountsAcceptedDuplicateAndRejectedEvents(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, nil)
		org := f.org(t, "free")
		// Steps run in order on one organisation: later ones repeat keys and
		// fill the hard limit the earlier ones left room under.
		cases := []struct {
			name                          string
			events                        []Event
			accepted, duplicate, rejected float64
		}{
			{"new events are accepted", []Event{ev("api_calls", 1, "a"), ev("api_calls", 1, "b")}, 2, 0, 0},
			{"a key repeated in one batch is a duplicate", []Event{ev("api_calls", 1, "c"), ev("api_calls", 1, "c")}, 1, 1, 0},
			{"keys already counted are duplicates", []Event{ev("api_calls", 1, "a"), ev("api_calls", 1, "b")}, 0, 2, 0},
			{"invalid events are rejected", []Event{ev("nope", 1, "d"), ev("api_calls", 1, ""), ev("api_calls", 1, "e")}, 1, 0, 2},
			{"events over a hard limit are rejected", []Event{ev("api_calls", 995, "f"), ev("api_calls", 10, "g")}, 1, 0, 1},
			{"a batch refused whole for quota is rejected", []Event{ev("api_calls", 10, "h")}, 0, 0, 1},
			{"an oversize batch is rejected whole", batch("api_calls", "big", MaxBatch+1), 0, 0, MaxBatch + 1},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				want := map[string]float64{"accepted": tc.accepted, "duplicate": tc.duplicate, "rejected": tc.rejected}
				before := map[string]float64{}
				for result := range want {
					before[result] = testutil.ToFloat64(observe.UsageEvents.WithLabelValues(result))
				}
				_, _ = f.svc.Record(context.Background(), org, tc.events) // the quota refusals fail the call
				for result, n := range want {
					if got := testutil.ToFloat64(observe.UsageEvents.WithLabelValues(result)) - before[result]; got != n {
						t.Errorf("usage_events{result=%q} moved by %v, want %v", result, got, n)
					}
				}
			})
		}
	})
}

func TestGateLatencyAndRedisFallbacksSayWhereAnswersCameFrom(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f, m := outage(t, db)
		org := f.org(t, "starter")
		series := map[string]func() float64{
			"answered from redis":    func() float64 { return float64(observetest.Observations(gateFromRedis)) },
			"answered from database": func() float64 { return float64(observetest.Observations(gateFromDatabase)) },
			"gate fallbacks":         func() float64 { return testutil.ToFloat64(gateFallbacks) },
			"record fallbacks":       func() float64 { return testutil.ToFloat64(recordFallbacks) },
		}
		// Steps run in order against one Redis that is flushed, then stopped.
		cases := []struct {
			name string
			do   func()
			want map[string]float64
		}{
			{"a gate on a counter Redis holds answers from Redis", func() {
				f.record(t, org, ev("api_calls", 3, "a"))
				f.gate(t, org, "api_calls")
			}, map[string]float64{"answered from redis": 1}},
			{"a gate on a counter Redis lost reads the database, which is no fallback", func() {
				m.FlushAll()
				f.gate(t, org, "api_calls")
			}, map[string]float64{"answered from database": 1}},
			{"a record while Redis is down falls back", func() {
				m.Close()
				f.record(t, org, ev("api_calls", 1, "b"))
			}, map[string]float64{"record fallbacks": 1}},
			{"a gate while Redis is down falls back to the database", func() {
				f.gate(t, org, "api_calls")
			}, map[string]float64{"answered from database": 1, "gate fallbacks": 1}},
			{"a gate that tries Redis again after the backoff and fails falls back", func() {
				f.clock.Advance(2 * redisBackoff)
				f.gate(t, org, "llm_tokens") // a counter no failed write marked
			}, map[string]float64{"answered from database": 1, "gate fallbacks": 1}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				before := map[string]float64{}
				for name, read := range series {
					before[name] = read()
				}
				tc.do()
				for name, read := range series {
					if got := read() - before[name]; got != tc.want[name] {
						t.Errorf("%s moved by %v, want %v", name, got, tc.want[name])
					}
				}
			})
		}
	})
}

// TestGroupCommitStagesAreTimed: every call's wait for its group, and each
// group's commit and Redis mirror, are observed; calls queued behind a held
// group are seen to have waited at least until it was let go.
func TestGroupCommitStagesAreTimed(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, nil)
		org := f.org(t, "starter")
		waits, waited := observetest.Observations(groupWait), observetest.ObservedSum(groupWait)
		commits, publishes := observetest.Observations(groupCommit), observetest.Observations(groupPublish)

		h := holdFirstGroups(f)
		const calls = 4
		errs := make([]error, calls)
		var wg sync.WaitGroup
		var lastQueued time.Time
		for i := range calls {
			wg.Go(func() {
				_, errs[i] = f.svc.Record(context.Background(), org, []Event{ev("api_calls", 1, fmt.Sprintf("k%d", i))})
			})
			<-h.queued
			lastQueued = time.Now()
			if i < h.slots {
				<-h.held
			}
		}
		released := time.Now()
		close(h.release)
		wg.Wait()
		f.svc.group.hooks = groupHooks{}
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		if got := observetest.Observations(groupWait) - waits; got != calls {
			t.Errorf("%d waits observed, want one per call (%d)", got, calls)
		}
		groups := uint64(len(h.sizes()))
		if got := observetest.Observations(groupCommit) - commits; got != groups {
			t.Errorf("%d commits observed, want one per group (%d)", got, groups)
		}
		if got := observetest.Observations(groupPublish) - publishes; got != groups {
			t.Errorf("%d mirrors observed, want one per group (%d)", got, groups)
		}
		// The calls after the held one each waited from joining the queue
		// until the held group was let go, at least.
		queuedBehind := float64(calls - h.slots)
		if got, least := observetest.ObservedSum(groupWait)-waited, queuedBehind*released.Sub(lastQueued).Seconds(); got < least {
			t.Errorf("waits add up to %v s, want at least %v s", got, least)
		}
	})
}
