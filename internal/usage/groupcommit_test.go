package usage

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/redisconn"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// smallGroupsAtOnce is how many groups commit at once while a holder holds
// them: one, on either dialect. The holder keeps a second group from
// starting beside the one in flight (which it would once overlapEvents
// events queue), so that the calls made meanwhile all share the next group;
// TestASecondGroupStartsOnceEventsQueueAndCommitsInItsTurn covers the
// second group.
const smallGroupsAtOnce = 1

// holder holds the first groups in flight (as many as commit at once) until
// released, so the calls made meanwhile are known to queue, in a known
// order, and to commit together in the next group. It records the size of
// every group.
type holder struct {
	slots   int
	held    chan struct{} // one per group held
	release chan struct{}
	queued  chan int // the queue's length each time a call joins it

	mu     sync.Mutex
	groups []int
}

func holdFirstGroups(f *fixture) *holder {
	h := &holder{slots: smallGroupsAtOnce, held: make(chan struct{}, 8), release: make(chan struct{}), queued: make(chan int, 1024)}
	f.svc.group.overlap = math.MaxInt
	f.svc.group.hooks.started = func(_ context.Context, group []*request) {
		h.mu.Lock()
		h.groups = append(h.groups, len(group))
		hold := len(h.groups) <= h.slots
		h.mu.Unlock()
		if hold {
			h.held <- struct{}{}
			<-h.release
		}
	}
	f.svc.group.hooks.queued = func(n int) { h.queued <- n }
	return h
}

func (h *holder) sizes() []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]int(nil), h.groups...)
}

// answer is what one concurrent caller was told.
type answer struct {
	res RecordResult
	err error
}

// recordHeld makes the calls concurrently but one after another: the first
// ones each lead a group that is held in flight, every later one waits in
// the queue before the next is made. Then it lets the groups commit and
// returns every call's answer, in call order, and the group sizes seen. The
// calls after the held ones commit as one group, in call order.
func recordHeld(t *testing.T, f *fixture, org string, calls [][]Event) ([]answer, []int) {
	t.Helper()
	return recordHeldWith(t, f, org, calls, nil)
}

// recordHeldWith is recordHeld, calling before(i) (when set) just before
// making call i.
func recordHeldWith(t *testing.T, f *fixture, org string, calls [][]Event, before func(i int)) ([]answer, []int) {
	t.Helper()
	h := holdFirstGroups(f)
	answers := make([]answer, len(calls))
	var wg sync.WaitGroup
	for i, events := range calls {
		if before != nil {
			before(i)
		}
		wg.Go(func() {
			answers[i].res, answers[i].err = f.svc.Record(context.Background(), org, events)
		})
		n := <-h.queued
		if i < h.slots {
			<-h.held
		} else if want := i + 1 - h.slots; n != want {
			t.Errorf("call %d joined a queue of %d, want %d", i, n, want)
		}
	}
	close(h.release)
	wg.Wait()
	f.svc.group.hooks = groupHooks{}
	f.svc.group.overlap = overlapEvents
	return answers, h.sizes()
}

// wantGroups is the group sizes recordHeld gives n calls: one group per
// held call, then one with the rest.
func wantGroups(n int) []int {
	out := make([]int, smallGroupsAtOnce)
	for i := range out {
		out[i] = 1
	}
	return append(out, n-smallGroupsAtOnce)
}

// TestGroupedCallersCountEachDistinctKeyAndNeverPassTheLimit: 64 one-event
// callers at once, one in ten repeating an earlier caller's key, against a
// hard limit with room for exactly the distinct keys (or eight fewer).
func TestGroupedCallersCountEachDistinctKeyAndNeverPassTheLimit(t *testing.T) {
	const (
		callers = 64
		limit   = 1000 // free plan, api_calls, hard
	)
	// Caller i uses key k<i>, except every tenth, which repeats the key of
	// the caller nine places before it (caller 9 repeats caller 0's, which
	// is committed in the group before; the others repeat keys of their own
	// group).
	keys := make([]string, callers)
	distinct := map[string]struct{}{}
	for i := range keys {
		keys[i] = fmt.Sprintf("k%d", i)
		if i%10 == 9 {
			keys[i] = keys[i-9]
		}
		distinct[keys[i]] = struct{}{}
	}
	cases := []struct {
		name string
		room int // left under the limit before the calls
	}{
		{"room for every distinct key", len(distinct)},
		{"room for eight fewer than the distinct keys", len(distinct) - 8},
	}
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				f := newFixture(t, db, nil)
				org := f.org(t, "free")
				f.record(t, org, ev("api_calls", int64(limit-tc.room), "fill"))
				calls := make([][]Event, callers)
				for i := range calls {
					calls[i] = []Event{ev("api_calls", 1, keys[i])}
				}
				answers, sizes := recordHeld(t, f, org, calls)
				if want := wantGroups(callers); fmt.Sprint(sizes) != fmt.Sprint(want) {
					t.Fatalf("groups of %v calls, want %v: the calls queued behind those in flight must commit together", sizes, want)
				}
				accepted, duplicates, overQuota := 0, 0, 0
				for i, a := range answers {
					if a.err != nil && apperr.CodeOf(a.err) != apperr.UsageLimitExceeded {
						t.Fatalf("call %d failed: %v", i, a.err)
					}
					accepted += a.res.Accepted
					duplicates += a.res.Duplicates
					for _, r := range a.res.Rejected {
						if r.Code == CodeUsageLimitExceeded {
							overQuota++
						}
					}
					for _, u := range a.res.Usage {
						if u.Used > limit {
							t.Errorf("call %d was told usage %d, past the limit %d", i, u.Used, limit)
						}
					}
				}
				if accepted != tc.room || overQuota != len(distinct)-tc.room || accepted+duplicates+overQuota != callers {
					t.Errorf("accepted %d, duplicates %d, over quota %d; want %d accepted and %d over quota of %d calls",
						accepted, duplicates, overQuota, tc.room, len(distinct)-tc.room, callers)
				}
				if tc.room == len(distinct) && accepted != len(distinct) {
					t.Errorf("accepted %d, want the %d distinct keys", accepted, len(distinct))
				}
				if got := f.used(t, org, "api_calls"); got != limit {
					t.Errorf("used %d, want exactly the limit %d", got, limit)
				}
				if got := f.storedEvents(t, org); got != int64(1+accepted) {
					t.Errorf("%d events stored, want the fill and the %d accepted", got, accepted)
				}
				if g := f.gate(t, org, "api_calls"); g.Allowed || g.Used != limit {
					t.Errorf("gate %+v, want refused at %d", g, limit)
				}
			})
		}
	})
}

// TestUngroupedLoadOf64CallersCountsEachDistinctKey runs the same mix
// without holding anything: groups form as they happen to.
func TestUngroupedLoadOf64CallersCountsEachDistinctKey(t *testing.T) {
	const (
		callers = 64
		calls   = 5 // per caller
		limit   = 1000
	)
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, nil)
		org := f.org(t, "free")
		distinct := map[string]struct{}{}
		work := make([][]Event, callers)
		for c := range work {
			for i := range calls {
				key := fmt.Sprintf("c%d-%d", c, i)
				if c%10 == 9 { // a tenth of the calls repeat another caller's keys
					key = fmt.Sprintf("c%d-%d", c-9, i)
				}
				distinct[key] = struct{}{}
				work[c] = append(work[c], ev("api_calls", 1, key))
			}
		}
		f.record(t, org, ev("api_calls", int64(limit-len(distinct)), "fill"))
		got := recordConcurrently(f, org, work, 1)
		if len(got.errs) > 0 {
			t.Fatalf("%d calls failed, first: %v", len(got.errs), got.errs[0])
		}
		if got.accepted != len(distinct) || got.overQuota != 0 || got.duplicates != callers*calls-len(distinct) {
			t.Errorf("accepted %d, duplicates %d, over quota %d; want %d, %d, 0",
				got.accepted, got.duplicates, got.overQuota, len(distinct), callers*calls-len(distinct))
		}
		if used := f.used(t, org, "api_calls"); used != limit {
			t.Errorf("used %d, want exactly the limit %d", used, limit)
		}
		if _, err := f.svc.Record(context.Background(), org, []Event{ev("api_calls", 1, "one-more")}); apperr.CodeOf(err) != apperr.UsageLimitExceeded {
			t.Errorf("a call past the limit: err = %v, want USAGE_LIMIT_EXCEEDED", err)
		}
	})
}

// TestAKeyRefusedEarlierInTheGroupCountsForALaterCaller: calls of a group
// are judged in arrival order as if committed one by one, so a key the
// first caller could not use is free for the next.
func TestAKeyRefusedEarlierInTheGroupCountsForALaterCaller(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, nil)
		org := f.org(t, "free")
		f.record(t, org, ev("api_calls", 990, "fill"))
		big, small := ev("api_calls", 20, "shared"), ev("api_calls", 4, "shared")
		small.Endpoint = "GET /small"
		calls := [][]Event{{ev("api_calls", 0, "first")}, {ev("api_calls", 0, "second")}, {big}, {small}}[2-smallGroupsAtOnce:]
		answers, sizes := recordHeld(t, f, org, calls)
		if want := wantGroups(len(calls)); fmt.Sprint(sizes) != fmt.Sprint(want) {
			t.Fatalf("groups of %v calls, want %v", sizes, want)
		}
		answers = answers[len(answers)-2:]
		if answers[0].res.Accepted != 0 || apperr.CodeOf(answers[0].err) != apperr.UsageLimitExceeded {
			t.Errorf("the 20-unit call: %+v, %v; want refused over the limit", answers[0].res, answers[0].err)
		}
		if a := answers[1]; a.err != nil || a.res.Accepted != 1 || a.res.Usage[0].Used != 994 {
			t.Errorf("the 4-unit call with the same key: %+v, %v; want accepted, usage 994", a.res, a.err)
		}
		if used := f.used(t, org, "api_calls"); used != 994 {
			t.Errorf("used %d, want 994", used)
		}
		var stored UsageEvent
		if err := f.db.Where("org_id = ? AND idempotency_key = ?", org, "shared").First(&stored).Error; err != nil {
			t.Fatal(err)
		}
		if stored.Quantity != 4 || stored.Endpoint != "GET /small" {
			t.Errorf("stored event %+v, want the accepted 4-unit event", stored)
		}
	})
}

// TestAFailedGroupAnswersEveryCallerUnavailableAndStoresNothing.
func TestAFailedGroupAnswersEveryCallerUnavailableAndStoresNothing(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, nil)
		org := f.org(t, "starter")
		rest := make([][]Event, 5)
		for i := range rest {
			e := ev("api_calls", int64(i+1), fmt.Sprintf("k%d", i))
			e.Endpoint = "POST /v1/x"
			rest[i] = []Event{e}
		}
		f.svc.group.hooks.written = func(group []*request) error {
			if len(group) > 1 {
				return errors.New("disk full")
			}
			return nil
		}
		held := make([][]Event, smallGroupsAtOnce)
		for i := range held {
			held[i] = []Event{ev("api_calls", 50, fmt.Sprintf("held-%d", i))}
		}
		answers, sizes := recordHeld(t, f, org, append(held, rest...))
		if want := wantGroups(len(held) + len(rest)); fmt.Sprint(sizes) != fmt.Sprint(want) {
			t.Fatalf("groups of %v calls, want %v", sizes, want)
		}
		for i, a := range answers[:len(held)] {
			if a.err != nil || a.res.Accepted != 1 {
				t.Fatalf("held call %d: %+v, %v; want its one event accepted", i, a.res, a.err)
			}
		}
		answers = answers[len(held):]
		heldUsed := int64(50 * len(held))
		var want *apperr.Error
		for i, a := range answers {
			e, ok := apperr.As(a.err)
			if !ok || e.Code != apperr.Unavailable || e.Extensions["retryable"] != true {
				t.Fatalf("caller %d: err = %v, want UNAVAILABLE with retryable", i, a.err)
			}
			if want == nil {
				want = e
			} else if e != want {
				t.Errorf("caller %d got %v, want the group's one error %v", i, e, want)
			}
			if a.res.Accepted != 0 || len(a.res.Usage) != 0 {
				t.Errorf("caller %d was told %+v beside its error", i, a.res)
			}
		}
		if n := f.storedEvents(t, org); n != int64(len(held)) {
			t.Errorf("%d events stored, want only the held groups' %d", n, len(held))
		}
		if used := f.used(t, org, "api_calls"); used != heldUsed {
			t.Errorf("used %d, want %d from the held groups alone", used, heldUsed)
		}
		endpoints, err := f.svc.ByEndpoint(context.Background(), org, "", "api_calls", MaxEndpointPage, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(endpoints) != 0 {
			t.Errorf("per-endpoint rollups %+v, want none from the failed group", endpoints)
		}
		// Nothing was claimed either: the same calls succeed when retried.
		for i, events := range rest {
			if res := f.record(t, org, events...); res.Accepted != 1 {
				t.Errorf("retry of caller %d: accepted %d, want 1", i, res.Accepted)
			}
		}
		if used := f.used(t, org, "api_calls"); used != heldUsed+1+2+3+4+5 {
			t.Errorf("used %d after the retries, want %d", used, heldUsed+15)
		}
	})
}

// TestAPanickingCommitAnswersItsCallersAndLeavesTheServiceWorking: a bug
// in one group must not leave its callers, or every later call, waiting.
func TestAPanickingCommitAnswersItsCallersAndLeavesTheServiceWorking(t *testing.T) {
	f := newFixture(t, testenv.DB(t), nil)
	org := f.org(t, "starter")
	f.svc.group.hooks.written = func([]*request) error { panic("bug") }
	_, err := f.svc.Record(context.Background(), org, []Event{ev("api_calls", 1, "a")})
	if apperr.CodeOf(err) != apperr.Unavailable {
		t.Fatalf("err = %v, want UNAVAILABLE", err)
	}
	f.svc.group.hooks = groupHooks{}
	for i := range smallGroupsAtOnce + 1 {
		if res := f.record(t, org, ev("api_calls", 1, fmt.Sprintf("after-%d", i))); res.Accepted != 1 {
			t.Fatalf("call %d after the panic: %+v", i, res)
		}
	}
	if n := f.storedEvents(t, org); n != int64(smallGroupsAtOnce+1) {
		t.Errorf("%d events stored, want only the %d after the panic", n, smallGroupsAtOnce+1)
	}
}

// TestALoneCallCommitsAtOnce: with nothing in flight, a call leads its own
// group straight away, on its own goroutine and context, rather than
// waiting for company; there is no timer on the path to its commit.
func TestALoneCallCommitsAtOnce(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, nil)
		org := f.org(t, "starter")
		type callKey struct{}
		var seen []any
		var sizes []int
		f.svc.group.hooks.started = func(ctx context.Context, group []*request) {
			seen = append(seen, ctx.Value(callKey{}))
			sizes = append(sizes, len(group))
		}
		for i := range 3 {
			ctx := context.WithValue(context.Background(), callKey{}, i)
			res, err := f.svc.Record(ctx, org, []Event{ev("api_calls", 1, fmt.Sprintf("lone-%d", i))})
			if err != nil || res.Accepted != 1 {
				t.Fatalf("call %d: %+v, %v", i, res, err)
			}
			// The group began inside this call, with this call's context:
			// the caller itself ran the commit.
			if len(seen) != i+1 || seen[i] != i || sizes[i] != 1 {
				t.Fatalf("after call %d: groups began with calls %v of sizes %v; want one group per call, each run by its caller", i, seen, sizes)
			}
		}
	})
}

// TestASecondGroupStartsOnceEventsQueueAndCommitsInItsTurn: on Postgres,
// once overlapEvents events queue behind the group in flight a second
// group starts beside it, but it commits in its turn: a call that arrived
// first is counted first even when its group is the slower to send its
// statement. Small calls keep queueing meanwhile and go together in the
// next group. SQLite has one writer, so there every call queues behind the
// first group.
func TestASecondGroupStartsOnceEventsQueueAndCommitsInItsTurn(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, nil)
		org := f.org(t, "starter")
		type held struct {
			size    int
			release chan struct{}
		}
		starts := make(chan held)
		queued := make(chan int, 8)
		f.svc.group.hooks.started = func(_ context.Context, group []*request) {
			h := held{len(group), make(chan struct{})}
			starts <- h
			<-h.release
		}
		f.svc.group.hooks.queued = func(n int) { queued <- n }
		next := func(what string) held {
			select {
			case h := <-starts:
				return h
			case <-time.After(10 * time.Second):
				t.Fatalf("no group started: %s", what)
				return held{}
			}
		}
		call := func(events ...Event) chan answer {
			done := make(chan answer, 1)
			go func() {
				res, err := f.svc.Record(context.Background(), org, events)
				done <- answer{res, err}
			}()
			return done
		}
		big := make([]Event, overlapEvents)
		for i := range big {
			big[i] = ev("api_calls", 1, fmt.Sprintf("big-%d", i))
		}

		firstDone := call(ev("api_calls", 1, "first"))
		<-queued
		first := next("the first call's")
		bigDone := call(big...)
		<-queued
		if db.Dialect == store.Postgres {
			// The big call's group starts beside the first and is let go
			// at once, while the first is still held before its statement.
			close(next("the big call's, beside the first").release)
		}
		smallDone := []chan answer{call(ev("api_calls", 1, "small-1")), call(ev("api_calls", 1, "small-2"))}
		<-queued
		<-queued
		close(first.release)
		last := next("the queued calls'")
		close(last.release)
		want := 2 // the small calls
		if db.Dialect != store.Postgres {
			want = 3 // the big call and the small ones, in arrival order
		}
		if last.size != want {
			t.Errorf("the group after the first held %d calls, want %d", last.size, want)
		}
		// Each call reports the total after its own events: the first
		// call's 1 unit was counted before the big call's.
		for i, c := range append([]chan answer{firstDone, bigDone}, smallDone...) {
			a := <-c
			wantAccepted, wantUsed := 1, int64(1)
			if i == 1 {
				wantAccepted, wantUsed = overlapEvents, 1+overlapEvents
			}
			if a.err != nil || a.res.Accepted != wantAccepted ||
				i < 2 && (len(a.res.Usage) != 1 || a.res.Usage[0].Used != wantUsed) {
				t.Errorf("call %d was told %+v, %v; want its events accepted and, for the first two, usage %d", i, a.res, a.err, wantUsed)
			}
		}
		if used := f.used(t, org, "api_calls"); used != overlapEvents+3 {
			t.Errorf("used %d, want %d", used, overlapEvents+3)
		}
	})
}

// TestRunningTotalsRefuseOverflowAndKeepCounting (issue: a total pushed past
// int64 answered INTERNAL and then refused every later increment).
func TestRunningTotalsRefuseOverflowAndKeepCounting(t *testing.T) {
	for _, tc := range []struct {
		name, plan, meter string
		start             int64 // period_start of the rollup, Unix
	}{
		{"an unlimited monthly meter", "enterprise", "llm_tokens", clock.MonthStart(testNow).Unix()},
		{"a soft-limited monthly meter", "starter", "api_calls", clock.MonthStart(testNow).Unix()},
		{"an unlimited running total", "enterprise", "storage_bytes", allTime.Unix()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
				f := newFixture(t, db, nil)
				org := f.org(t, tc.plan)
				near := int64(math.MaxInt64 - 10)
				err := f.db.Create(&UsageRollup{OrgID: org, Meter: tc.meter, PeriodStart: time.Unix(tc.start, 0).UTC(),
					Used: near, Version: 1, UpdatedAt: testNow}).Error
				if err != nil {
					t.Fatal(err)
				}
				res, err := f.svc.Record(context.Background(), org, []Event{ev(tc.meter, 11, "over"), ev(tc.meter, 10, "fits")})
				if err != nil {
					t.Fatalf("err = %v, want a rejection of the one event, not a failed call", err)
				}
				if res.Accepted != 1 || len(res.Rejected) != 1 || res.Rejected[0].Index != 0 || res.Rejected[0].Code != CodeQuantityOutOfRange {
					t.Fatalf("accepted %d, rejected %+v; want the 11 refused as QUANTITY_OUT_OF_RANGE and the 10 counted", res.Accepted, res.Rejected)
				}
				if got := f.used(t, org, tc.meter); got != math.MaxInt64 {
					t.Fatalf("used %d, want %d", got, int64(math.MaxInt64))
				}
				res = f.record(t, org, ev(tc.meter, 1, "over"))
				if res.Accepted != 0 || len(res.Rejected) != 1 || res.Rejected[0].Code != CodeQuantityOutOfRange {
					t.Errorf("one more at the maximum: %+v, want QUANTITY_OUT_OF_RANGE", res)
				}
				if res := f.record(t, org, ev(tc.meter, 0, "zero")); res.Accepted != 1 {
					t.Errorf("a zero event at the maximum: %+v, want accepted", res)
				}
				if tc.meter == "storage_bytes" {
					// A running total keeps working: a delete makes room
					// again and the refused key counts when retried.
					if res := f.record(t, org, ev(tc.meter, -5, "delete")); res.Accepted != 1 {
						t.Errorf("a delete at the maximum: %+v, want accepted", res)
					}
					if res := f.record(t, org, ev(tc.meter, 1, "over")); res.Accepted != 1 {
						t.Errorf("the refused key after a delete: %+v, want accepted", res)
					}
					if got := f.used(t, org, tc.meter); got != math.MaxInt64-4 {
						t.Errorf("used %d, want %d", got, int64(math.MaxInt64-4))
					}
				}
			})
		})
	}
}

// TestADayCanHoldMoreThanTheRunningTotal: on a meter that takes decreases,
// a day's sum may pass what the total holds; the daily report saturates
// rather than failing the call.
func TestADayCanHoldMoreThanTheRunningTotal(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, nil)
		org := f.org(t, "enterprise")
		err := f.db.Create(&UsageDailyRollup{OrgID: org, Meter: "storage_bytes", Day: dayOf(testNow), Used: math.MaxInt64 - 1, UpdatedAt: testNow}).Error
		if err != nil {
			t.Fatal(err)
		}
		res := f.record(t, org, ev("storage_bytes", 5, "up"))
		if res.Accepted != 1 {
			t.Fatalf("%+v, want the upload counted", res)
		}
		series, err := f.svc.Series(context.Background(), org, "storage_bytes", testNow, testNow)
		if err != nil {
			t.Fatal(err)
		}
		if len(series) != 1 || series[0].Used != math.MaxInt64 {
			t.Errorf("daily series %+v, want today saturated at %d", series, int64(math.MaxInt64))
		}
		if got := f.used(t, org, "storage_bytes"); got != 5 {
			t.Errorf("used %d, want 5", got)
		}
	})
}

// TestAGroupOfSeveralOrganisationsMirrorsEachInRedis: a group's counters
// reach Redis, for every organisation in it, before its callers are
// answered.
func TestAGroupOfSeveralOrganisationsMirrorsEachInRedis(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		testenv.EachRedis(t, func(t *testing.T, rdb *redisconn.Client) {
			groupMirrorsEachOrganisation(t, newFixture(t, db, rdb))
		})
	})
}

// groupMirrorsEachOrganisation: on one server a group's organisations are
// written by one script; on a cluster their counters sit in different
// slots, so they are written by one script each, pipelined and split by
// master.
func groupMirrorsEachOrganisation(t *testing.T, f *fixture) {
	orgs := []string{f.org(t, "starter"), f.org(t, "starter"), f.org(t, "starter")}
	var calls []orgCall
	for i := range 2 * len(orgs) {
		calls = append(calls, orgCall{orgs[i%len(orgs)], []Event{ev("api_calls", int64(i+1), fmt.Sprintf("k%d", i))}})
	}
	answers, sizes := recordGroupOf(t, f, orgs[0], calls)
	for _, a := range answers {
		if a.err != nil {
			t.Fatal(a.err)
		}
	}
	if len(sizes) != smallGroupsAtOnce+1 {
		t.Fatalf("groups of %v calls, want the queued calls in one group", sizes)
	}
	for _, org := range orgs {
		key := f.svc.counters.key(counterID{org, keyOf("api_calls", periodStart("monthly", testNow))})
		got, err := f.rdb.HGet(context.Background(), key, "u").Int64()
		if want := f.used(t, org, "api_calls"); err != nil || got != want {
			t.Errorf("org %s: Redis holds %d (%v), the database %d", org, got, err, want)
		}
	}
}

// Each call of a group is held to the limit of the plan it was made on,
// even when the calls of one group were made on different plans (a plan
// changed between them): a call on the free plan's hard limit is refused
// behind a call on a soft limit that took the total past it, or when the
// total was past it already, and is counted when it comes first with room.
func TestEachCallOfAGroupIsHeldToItsOwnPlansLimit(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		for _, tc := range []struct {
			name      string
			fill      int64    // used before, recorded on the starter plan
			plans     []string // of the grouped calls, in order
			hardCount bool     // whether the free plan's call counts
			used      int64
		}{
			{"soft limit first", 990, []string{"starter", "free"}, false, 1010},
			{"hard limit first", 990, []string{"free", "starter"}, true, 1015},
			// No whole percent of the limit is crossed, so on Postgres the
			// group is written by one statement, whose ceiling must refuse it.
			{"already past the hard limit", 1010, []string{"free", "starter"}, false, 1030},
		} {
			t.Run(tc.name, func(t *testing.T) {
				f := newFixture(t, db, nil)
				org := f.org(t, "starter")
				f.record(t, org, ev("api_calls", tc.fill, "fill"))
				quantity := map[string]int64{"starter": 20, "free": 5}
				plan := make([]string, smallGroupsAtOnce, smallGroupsAtOnce+2)
				calls := make([][]Event, smallGroupsAtOnce, smallGroupsAtOnce+2)
				for i := range calls { // held, each alone, counting nothing
					plan[i], calls[i] = "free", []Event{ev("api_calls", 0, fmt.Sprintf("held-%d", i))}
				}
				for _, p := range tc.plans {
					plan, calls = append(plan, p), append(calls, []Event{ev("api_calls", quantity[p], "on-"+p)})
				}
				answers, sizes := recordHeldWith(t, f, org, calls, func(i int) {
					f.plans.set(org, plan[i], "")
					f.svc.InvalidatePlan(org)
				})
				if want := wantGroups(len(calls)); fmt.Sprint(sizes) != fmt.Sprint(want) {
					t.Fatalf("groups of %v calls, want %v", sizes, want)
				}
				for i, a := range answers[smallGroupsAtOnce:] {
					want := 1
					if tc.plans[i] == "free" && !tc.hardCount {
						want = 0
					}
					if a.res.Accepted != want {
						t.Errorf("the call on %s: %+v, %v; want %d accepted", tc.plans[i], a.res, a.err, want)
					}
				}
				if used := f.used(t, org, "api_calls"); used != tc.used {
					t.Errorf("used %d, want %d", used, tc.used)
				}
			})
		}
	})
}

// A group written by one statement (oneshot.go) that fails at its last
// part, the daily rollups, leaves nothing of its first parts behind: no
// key claimed, no event stored, no total changed; its callers are told to
// retry, and the retry, with the same keys, counts every event once.
func TestAGroupWhoseOneStatementFailsStoresNothing(t *testing.T) {
	db := testenv.OpenDB(t, store.Postgres)
	f := newFixture(t, db, nil)
	org := f.org(t, "starter")
	f.record(t, org, ev("api_calls", 7, "before"))
	// Existing rows stand; any write of a daily rollup now fails.
	if err := db.Exec("ALTER TABLE usage_daily_rollups ADD CONSTRAINT refuse_writes CHECK (used < 0) NOT VALID").Error; err != nil {
		t.Fatal(err)
	}
	events := []Event{ev("api_calls", 2, "a"), ev("api_calls", 3, "b"), ev("llm_tokens", 40, "c")}
	_, err := f.svc.Record(context.Background(), org, events)
	if e, ok := apperr.As(err); !ok || e.Code != apperr.Unavailable || e.Extensions["retryable"] != true {
		t.Fatalf("recording while the statement fails: %v, want UNAVAILABLE and retryable", err)
	}
	if got := f.storedEvents(t, org); got != 1 {
		t.Errorf("%d events stored after the failure, want only the one before", got)
	}
	if got := f.used(t, org, "api_calls"); got != 7 {
		t.Errorf("api_calls used %d after the failure, want 7", got)
	}
	if err := db.Exec("ALTER TABLE usage_daily_rollups DROP CONSTRAINT refuse_writes").Error; err != nil {
		t.Fatal(err)
	}
	if res := f.record(t, org, events...); res.Accepted != 3 || res.Duplicates != 0 {
		t.Fatalf("the retry: %+v, want all three counted: the failed statement claimed no key", res)
	}
	if got := f.used(t, org, "api_calls"); got != 12 {
		t.Errorf("api_calls used %d after the retry, want 12", got)
	}
}
