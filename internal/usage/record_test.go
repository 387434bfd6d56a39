package usage

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// TestAFutureTimestampIsRefusedInWords: the refusal says how far ahead an
// event may be in minutes, as people write it; it said "5m0s", Go's
// notation.
func TestAFutureTimestampIsRefusedInWords(t *testing.T) {
	f := newFixture(t, testenv.DB(t), nil)
	org := f.org(t, "starter")
	e := ev("api_calls", 1, "far")
	e.Timestamp = ptr(testNow.Add(FutureSkew + time.Hour))
	res := f.record(t, org, e)
	want := fmt.Sprintf("timestamp %s is more than 5 minutes ahead of the server clock (%s)",
		e.Timestamp.Format(time.RFC3339), testNow.Format(time.RFC3339))
	if len(res.Rejected) != 1 || res.Rejected[0].Message != want {
		t.Fatalf("rejected %+v, want one saying %q", res.Rejected, want)
	}
}

func TestRecordJudgesEachEventOnItsOwn(t *testing.T) {
	at := func(d time.Duration) *time.Time { return ptr(testNow.Add(d)) }
	withTime := func(e Event, ts *time.Time) Event { e.Timestamp = ts; return e }
	withEndpoint := func(e Event, endpoint string) Event { e.Endpoint = endpoint; return e }
	marchFirst := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name       string
		plan       string
		before     []Event
		events     []Event
		accepted   int
		duplicates int
		rejected   map[int]string // index -> code
		used       map[string]int64
		stored     map[string]int64 // key -> quantity of the one event stored
	}{
		{
			name:     "an unknown meter is rejected and the rest are counted",
			plan:     "starter",
			events:   []Event{ev("api_calls", 1, "a"), ev("api_cals", 1, "b"), ev("api_calls", 2, "c")},
			accepted: 2, rejected: map[int]string{1: CodeUnknownMeter},
			used: map[string]int64{"api_calls": 3},
		},
		{
			name:     "a negative quantity on a monthly meter is rejected",
			plan:     "starter",
			events:   []Event{ev("api_calls", -5, "a"), ev("api_calls", 1, "b")},
			accepted: 1, rejected: map[int]string{0: CodeInvalidQuantity},
			used: map[string]int64{"api_calls": 1},
		},
		{
			name:     "a negative quantity lowers a meter that never resets",
			plan:     "starter",
			before:   []Event{ev("storage_bytes", 1000, "upload")},
			events:   []Event{ev("storage_bytes", -400, "delete")},
			accepted: 1,
			used:     map[string]int64{"storage_bytes": 600},
		},
		{
			name:     "a quantity beyond 2^53 is rejected",
			plan:     "enterprise",
			events:   []Event{ev("llm_tokens", MaxQuantity+1, "a"), ev("llm_tokens", MaxQuantity, "b")},
			accepted: 1, rejected: map[int]string{0: CodeInvalidQuantity},
			used: map[string]int64{"llm_tokens": MaxQuantity},
		},
		{
			name:     "a missing idempotency key is rejected",
			plan:     "starter",
			events:   []Event{ev("api_calls", 1, ""), ev("api_calls", 1, "   ")},
			rejected: map[int]string{0: CodeMissingKey, 1: CodeMissingKey},
			used:     map[string]int64{"api_calls": 0},
		},
		{
			name:     "an idempotency key over 255 characters is rejected, 255 multi-byte characters are fine",
			plan:     "starter",
			events:   []Event{ev("api_calls", 1, strings.Repeat("k", 256)), ev("api_calls", 1, strings.Repeat("é", 255))},
			accepted: 1, rejected: map[int]string{0: CodeKeyTooLong},
			used: map[string]int64{"api_calls": 1},
		},
		{
			name: "an idempotency key with a NUL, control or invisible character is rejected",
			plan: "starter",
			events: []Event{ev("api_calls", 1, "a\x00b"), ev("api_calls", 1, "ok"), ev("api_calls", 1, "o\u200Bk"),
				ev("api_calls", 1, "k\u202E1"), ev("api_calls", 1, "k\t1"), ev("api_calls", 1, "k\uFFFE")},
			accepted: 1, rejected: map[int]string{0: CodeInvalidKey, 2: CodeInvalidKey, 3: CodeInvalidKey, 4: CodeInvalidKey, 5: CodeInvalidKey},
			used: map[string]int64{"api_calls": 1},
		},
		{
			name:     "an endpoint over 255 characters is rejected",
			plan:     "starter",
			events:   []Event{withEndpoint(ev("api_calls", 1, "a"), "GET /"+strings.Repeat("x", 251)), withEndpoint(ev("api_calls", 1, "b"), "GET /ok")},
			accepted: 1, rejected: map[int]string{0: CodeEndpointTooLong},
			used: map[string]int64{"api_calls": 1},
		},
		{
			// An endpoint label is shown to people (the billing page,
			// usageByEndpoint): a line break, a bidi override or a
			// zero-width space would let one label pass for another.
			name: "an endpoint with a control or invisible formatting character is rejected",
			plan: "starter",
			events: []Event{
				withEndpoint(ev("api_calls", 1, "nl"), "GET /a\nGET /b"),
				withEndpoint(ev("api_calls", 1, "rlo"), "GET /\u202Egpj.exe"),
				withEndpoint(ev("api_calls", 1, "zwsp"), "GET /sea\u200Brch"),
				withEndpoint(ev("api_calls", 1, "ok"), "GET /recherche/é"),
			},
			accepted: 1, rejected: map[int]string{0: CodeInvalidEndpoint, 1: CodeInvalidEndpoint, 2: CodeInvalidEndpoint},
			used: map[string]int64{"api_calls": 1},
		},
		{
			// "x " and "x" would be two usageByEndpoint rows that read
			// as one; a blank name is no name.
			name: "a blank endpoint or one with leading or trailing whitespace is rejected",
			plan: "starter",
			events: []Event{
				withEndpoint(ev("api_calls", 1, "blank"), "   "),
				withEndpoint(ev("api_calls", 1, "trailing"), "GET /x "),
				withEndpoint(ev("api_calls", 1, "leading"), " GET /x"),
				withEndpoint(ev("api_calls", 1, "ok"), "GET /x"),
				ev("api_calls", 1, "none"),
			},
			accepted: 2, rejected: map[int]string{0: CodeInvalidEndpoint, 1: CodeInvalidEndpoint, 2: CodeInvalidEndpoint},
			used: map[string]int64{"api_calls": 2},
		},
		{
			name: "a timestamp more than five minutes ahead is rejected, a little skew is fine",
			plan: "starter",
			events: []Event{
				withTime(ev("api_calls", 1, "far"), at(5*time.Minute+time.Second)),
				withTime(ev("api_calls", 1, "near"), at(4*time.Minute)),
			},
			accepted: 1, rejected: map[int]string{0: CodeTimestampInFuture},
			used: map[string]int64{"api_calls": 1},
		},
		{
			name: "a timestamp before the current month is rejected on a monthly meter",
			plan: "starter",
			events: []Event{
				withTime(ev("api_calls", 1, "feb"), ptr(marchFirst.Add(-time.Second))),
				withTime(ev("api_calls", 1, "march"), ptr(marchFirst)),
			},
			accepted: 1, rejected: map[int]string{0: CodeTimestampBeforePeriod},
			used: map[string]int64{"api_calls": 1},
		},
		{
			name:     "a timestamp in a past month is accepted on a meter that never resets",
			plan:     "starter",
			events:   []Event{withTime(ev("storage_bytes", 10, "old-upload"), ptr(marchFirst.AddDate(0, -2, 0)))},
			accepted: 1,
			used:     map[string]int64{"storage_bytes": 10},
		},
		{
			name:     "a key repeated in one batch counts once",
			plan:     "starter",
			events:   []Event{ev("api_calls", 1, "a"), ev("api_calls", 1, "a"), ev("api_calls", 1, "b")},
			accepted: 2, duplicates: 1,
			used: map[string]int64{"api_calls": 2},
		},
		{
			name:     "a key repeated in one batch for another event is refused, not a duplicate",
			plan:     "starter",
			events:   []Event{ev("api_calls", 1, "a"), ev("api_calls", 5, "a"), ev("llm_tokens", 1, "a"), ev("api_calls", 1, "b")},
			accepted: 2, rejected: map[int]string{1: CodeKeyReused, 2: CodeKeyReused},
			used: map[string]int64{"api_calls": 2, "llm_tokens": 0},
		},
		{
			// Copies of a key in one call are judged in order, like copies
			// from different calls: one refused leaves the key free.
			name:     "a copy refused for the limit leaves its key free for the next copy in the call",
			plan:     "free",
			events:   []Event{ev("api_calls", 1001, "k"), ev("api_calls", 3, "k"), ev("api_calls", 3, "k")},
			accepted: 1, duplicates: 1, rejected: map[int]string{0: CodeUsageLimitExceeded},
			used:   map[string]int64{"api_calls": 3},
			stored: map[string]int64{"k": 3},
		},
		{
			name:   "that call retried counts nothing",
			plan:   "free",
			before: []Event{ev("api_calls", 1001, "k"), ev("api_calls", 3, "k"), ev("api_calls", 3, "k")},
			events: []Event{ev("api_calls", 1001, "k"), ev("api_calls", 3, "k"), ev("api_calls", 3, "k")},
			// The refused copy, sent again, is no longer a copy of the
			// event counted under its key: it is refused as a reuse.
			duplicates: 2, rejected: map[int]string{0: CodeKeyReused},
			used:   map[string]int64{"api_calls": 3},
			stored: map[string]int64{"k": 3},
		},
		{
			name:     "a copy refused for going below zero leaves its key free for the next copy in the call",
			plan:     "free",
			events:   []Event{ev("storage_bytes", -5, "k"), ev("storage_bytes", 7, "k")},
			accepted: 1, rejected: map[int]string{0: CodeInvalidQuantity},
			used:   map[string]int64{"storage_bytes": 7},
			stored: map[string]int64{"k": 7},
		},
		{
			name:     "a key counted in an earlier call is a duplicate",
			plan:     "starter",
			before:   []Event{ev("api_calls", 1, "a")},
			events:   []Event{ev("api_calls", 1, "a"), ev("api_calls", 1, "b")},
			accepted: 1, duplicates: 1,
			used: map[string]int64{"api_calls": 2},
		},
		{
			name:     "a zero quantity is accepted and counts nothing",
			plan:     "free",
			events:   []Event{ev("api_calls", 0, "a")},
			accepted: 1,
			used:     map[string]int64{"api_calls": 0},
		},
		{
			name:     "an event past a hard limit is refused and smaller ones after it still fit",
			plan:     "free", // api_calls: 1,000, hard
			before:   []Event{ev("api_calls", 998, "bulk")},
			events:   []Event{ev("api_calls", 5, "a"), ev("api_calls", 2, "b"), ev("api_calls", 1, "c")},
			accepted: 1, rejected: map[int]string{0: CodeUsageLimitExceeded, 2: CodeUsageLimitExceeded},
			used: map[string]int64{"api_calls": 1000},
		},
		{
			name:     "a soft limit accepts usage past it",
			plan:     "starter", // api_calls: 100,000, soft
			before:   []Event{ev("api_calls", 99_999, "bulk")},
			events:   []Event{ev("api_calls", 5, "a")},
			accepted: 1,
			used:     map[string]int64{"api_calls": 100_004},
		},
		{
			name:     "a decrease is accepted on a hard meter that is full",
			plan:     "free", // storage_bytes: 100 MiB, hard
			before:   []Event{ev("storage_bytes", 104_857_600, "upload")},
			events:   []Event{ev("storage_bytes", 1, "one-more"), ev("storage_bytes", -100, "delete")},
			accepted: 1, rejected: map[int]string{0: CodeUsageLimitExceeded},
			used: map[string]int64{"storage_bytes": 104_857_500},
		},
	}
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, nil)
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				org := f.org(t, tc.plan)
				var before int
				if len(tc.before) > 0 {
					before = f.record(t, org, tc.before...).Accepted
				}
				res := f.record(t, org, tc.events...)
				if res.Accepted != tc.accepted || res.Duplicates != tc.duplicates {
					t.Errorf("accepted %d, duplicates %d; want %d, %d", res.Accepted, res.Duplicates, tc.accepted, tc.duplicates)
				}
				got := map[int]string{}
				for _, r := range res.Rejected {
					got[r.Index] = r.Code
					if r.Message == "" {
						t.Errorf("rejection of event %d has no message", r.Index)
					}
				}
				if fmt.Sprint(got) != fmt.Sprint(tc.rejected) {
					t.Errorf("rejected %v, want %v (%+v)", got, tc.rejected, res.Rejected)
				}
				if n := f.storedEvents(t, org); n != int64(before+tc.accepted) {
					t.Errorf("%d events stored, want %d: rejected events must not be written", n, before+tc.accepted)
				}
				reported := map[string]int64{}
				for _, u := range res.Usage {
					reported[u.Meter] = u.Used
				}
				for meter, want := range tc.used {
					if got := f.used(t, org, meter); got != want {
						t.Errorf("%s used %d, want %d", meter, got, want)
					}
					if got, ok := reported[meter]; ok && got != want {
						t.Errorf("%s reported by Record as %d, want %d", meter, got, want)
					}
				}
				for key, want := range tc.stored {
					var stored []UsageEvent
					if err := f.db.Where("org_id = ? AND idempotency_key = ?", org, key).Find(&stored).Error; err != nil {
						t.Fatal(err)
					}
					if len(stored) != 1 || stored[0].Quantity != want {
						t.Errorf("stored events of %s: %+v, want one of quantity %d", key, stored, want)
					}
				}
			})
		}
	})
}

func TestRecordRefusesEmptyOrOversizeBatches(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, nil)
		org := f.org(t, "starter")
		for _, tc := range []struct {
			name   string
			events []Event
			code   string
		}{
			{"an empty batch", nil, "REQUIRED"},
			{"1,001 events", batch("api_calls", "big", MaxBatch+1), "TOO_LONG"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := f.svc.Record(context.Background(), org, tc.events)
				fe, ok := apperr.AsFieldErrors(err)
				if !ok || len(fe) != 1 || fe[0].Field != "input.events" || fe[0].Code != tc.code {
					t.Fatalf("err = %v, want one %s field error on input.events", err, tc.code)
				}
				if n := f.storedEvents(t, org); n != 0 {
					t.Errorf("%d events stored, want none", n)
				}
			})
		}
		if res := f.record(t, org, batch("api_calls", "max", MaxBatch)...); res.Accepted != MaxBatch {
			t.Errorf("a batch of exactly %d accepted %d", MaxBatch, res.Accepted)
		}
	})
}

func TestRecordFailsWhenEveryEventIsOverQuota(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, nil)
		org := f.org(t, "free")
		f.record(t, org, ev("api_calls", 1000, "fill"))

		res, err := f.svc.Record(context.Background(), org, []Event{ev("api_calls", 1, "a"), ev("api_calls", 2, "b")})
		e, ok := apperr.As(err)
		if !ok || e.Code != apperr.UsageLimitExceeded {
			t.Fatalf("err = %v, want USAGE_LIMIT_EXCEEDED", err)
		}
		if _, ok := e.Extensions["resetAt"]; !ok {
			t.Errorf("extensions %v lack resetAt, the end of the period", e.Extensions)
		}
		delete(e.Extensions, "resetAt")
		want := map[string]any{"meter": "api_calls", "used": int64(1000), "requested": int64(1), "limit": int64(1000), "remaining": int64(0)}
		if fmt.Sprint(e.Extensions) != fmt.Sprint(want) {
			t.Errorf("extensions %v, want %v", e.Extensions, want)
		}
		if len(res.Rejected) != 2 {
			t.Errorf("result lists %d rejections, want 2", len(res.Rejected))
		}
		if n := f.storedEvents(t, org); n != 1 {
			t.Errorf("%d events stored, want only the first", n)
		}

		// A batch refused partly for quota and partly for bad input is not a
		// quota failure: the caller has something else to fix too.
		if _, err := f.svc.Record(context.Background(), org, []Event{ev("api_calls", 1, "c"), ev("nope", 1, "d")}); err != nil {
			t.Errorf("mixed refusal: err = %v, want rejections only", err)
		}
	})
}

func TestRefusedKeyCountsWhenRetriedAfterUpgrade(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, nil)
		org := f.org(t, "free")
		f.record(t, org, ev("api_calls", 1000, "fill"))
		if _, err := f.svc.Record(context.Background(), org, []Event{ev("api_calls", 1, "retry-me")}); apperr.CodeOf(err) != apperr.UsageLimitExceeded {
			t.Fatalf("over quota: err = %v", err)
		}
		f.setPlan(org, "starter", "active")
		res := f.record(t, org, ev("api_calls", 1, "retry-me"))
		if res.Accepted != 1 || res.Duplicates != 0 {
			t.Errorf("retry after upgrade: accepted %d, duplicates %d; a refused key must not stay claimed", res.Accepted, res.Duplicates)
		}
		if got := f.used(t, org, "api_calls"); got != 1001 {
			t.Errorf("used %d, want 1001", got)
		}
	})
}

func TestConcurrentClientsCountEachKeyOnce(t *testing.T) {
	const (
		clients   = 16
		perClient = 500
		batchSize = 100
	)
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, nil)
		org := f.org(t, "growth") // soft limits: nothing is refused
		// Every tenth event of every client uses a key shared by all
		// clients, so those arrive concurrently sixteen times each.
		distinct := map[string]struct{}{}
		work := make([][]Event, clients)
		for c := range clients {
			for i := range perClient {
				key := fmt.Sprintf("client%d-%d", c, i)
				if i%10 == 0 {
					key = fmt.Sprintf("shared-%d", i)
				}
				distinct[key] = struct{}{}
				e := ev("api_calls", 1, key)
				e.Endpoint = fmt.Sprintf("POST /v1/endpoint%d", i%3)
				work[c] = append(work[c], e)
			}
		}
		got := recordConcurrently(f, org, work, batchSize)
		if len(got.errs) > 0 {
			t.Fatalf("%d calls failed, first: %v", len(got.errs), got.errs[0])
		}
		accepted, duplicates := got.accepted, got.duplicates
		want := len(distinct)
		if accepted != want || duplicates != clients*perClient-want {
			t.Errorf("accepted %d, duplicates %d; want %d, %d", accepted, duplicates, want, clients*perClient-want)
		}
		if got := f.used(t, org, "api_calls"); got != int64(want) {
			t.Errorf("usage report says %d, want %d distinct keys", got, want)
		}
		if got := f.gate(t, org, "api_calls").Used; got != int64(want) {
			t.Errorf("gate says %d, want %d", got, want)
		}
		if got := f.storedEvents(t, org); got != int64(want) {
			t.Errorf("%d events stored, want %d", got, want)
		}
		endpoints, err := f.svc.ByEndpoint(context.Background(), org, "", "api_calls", MaxEndpointPage, "")
		if err != nil {
			t.Fatal(err)
		}
		var sum int64
		for _, e := range endpoints {
			sum += e.Used
		}
		if sum != int64(want) {
			t.Errorf("per-endpoint rollups sum to %d, want %d", sum, want)
		}
		series, err := f.svc.Series(context.Background(), org, "api_calls", testNow, testNow)
		if err != nil {
			t.Fatal(err)
		}
		if len(series) != 1 || series[0].Used != int64(want) {
			t.Errorf("daily rollup %+v, want %d today", series, want)
		}
	})
}

func TestHardLimitHoldsUnderConcurrency(t *testing.T) {
	const (
		clients   = 15
		perClient = 100 // 1,500 units against a limit of 1,000
		batchSize = 10
	)
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, nil)
		org := f.org(t, "free") // api_calls: 1,000, hard
		work := make([][]Event, clients)
		for c := range work {
			work[c] = batch("api_calls", fmt.Sprintf("client%d", c), perClient)
		}
		got := recordConcurrently(f, org, work, batchSize)
		if len(got.errs) > 0 {
			t.Fatalf("%d calls failed, first: %v", len(got.errs), got.errs[0])
		}
		accepted, rejected := got.accepted, got.overQuota
		if accepted != 1000 || rejected != 500 {
			t.Errorf("accepted %d, refused %d; want exactly 1000 and 500", accepted, rejected)
		}
		if got := f.used(t, org, "api_calls"); got != 1000 {
			t.Errorf("used %d, want 1000", got)
		}
		if got := f.storedEvents(t, org); got != 1000 {
			t.Errorf("%d events stored, want 1000", got)
		}
		if g := f.gate(t, org, "api_calls"); g.Allowed || g.Used != 1000 || *g.Remaining() != 0 {
			t.Errorf("gate %+v, want refused at 1000 used, 0 remaining", g)
		}
	})
}

// tally sums what concurrent clients were told.
type tally struct {
	accepted, duplicates, overQuota int
	// errs are failures other than a whole call refused for quota.
	errs []error
}

// recordConcurrently runs one client per element of work, each recording its
// events in order, batchSize at a time, all clients at once.
func recordConcurrently(f *fixture, org string, work [][]Event, batchSize int) tally {
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		sum tally
	)
	for _, events := range work {
		wg.Go(func() {
			for i := 0; i < len(events); i += batchSize {
				res, err := f.svc.Record(context.Background(), org, events[i:min(i+batchSize, len(events))])
				mu.Lock()
				sum.accepted += res.Accepted
				sum.duplicates += res.Duplicates
				for _, r := range res.Rejected {
					if r.Code == CodeUsageLimitExceeded {
						sum.overQuota++
					}
				}
				if err != nil && apperr.CodeOf(err) != apperr.UsageLimitExceeded {
					sum.errs = append(sum.errs, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return sum
}

// TestRunningTotalsCannotGoBelowZero: a delete with nothing stored behind it
// is refused (and can be retried once its upload is counted), so nobody can
// bank headroom under the storage limit with deletes.
func TestRunningTotalsCannotGoBelowZero(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, testenv.Redis(t))
		org := f.org(t, "free") // storage_bytes: hard limit 100 MiB
		const tib, mib = int64(1) << 40, int64(1) << 20
		res := f.record(t, org, ev("storage_bytes", -tib, "del"), ev("storage_bytes", tib, "up-big"), ev("storage_bytes", 100*mib, "up"))
		if res.Accepted != 1 || len(res.Rejected) != 2 ||
			res.Rejected[0].Code != CodeInvalidQuantity || res.Rejected[1].Code != CodeUsageLimitExceeded {
			t.Fatalf("accepted %d, rejected %+v; want the delete refused as below zero and the 1 TiB upload over the limit", res.Accepted, res.Rejected)
		}
		if used := f.used(t, org, "storage_bytes"); used != 100*mib {
			t.Fatalf("storage used = %d, want 100 MiB", used)
		}
		res = f.record(t, org, ev("storage_bytes", -100*mib, "del"))
		if res.Accepted != 1 || f.used(t, org, "storage_bytes") != 0 {
			t.Fatalf("a delete of what is stored was refused, or its key stayed taken: %+v", res)
		}
	})
}

// TestABatchRefusedForOtherReasonsIsNotAnError: when every event is refused
// but not all for quota, the answer lists the rejections and is no error.
func TestABatchRefusedForOtherReasonsIsNotAnError(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, testenv.Redis(t))
		org := f.org(t, "free")
		res, err := f.svc.Record(context.Background(), org, []Event{ev("storage_bytes", -512, "nothing-stored")})
		if err != nil || len(res.Rejected) != 1 || res.Rejected[0].Code != CodeInvalidQuantity {
			t.Fatalf("res %+v, err %v; want one INVALID_QUANTITY rejection and no error", res, err)
		}
	})
}

// What a batch stores is exactly what was sent: large and negative
// quantities, timestamps to the microsecond, text outside ASCII, an empty
// endpoint, and which events of a batch with some old keys are new.
func TestRecordStoresEventsExactly(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, nil)
		org := f.org(t, "enterprise")
		f.record(t, org, Event{Meter: "api_calls", Quantity: 1, IdempotencyKey: "old-2"})
		at := testNow.Add(-90*time.Minute + 123456*time.Microsecond)
		sent := []Event{
			{Meter: "api_calls", Quantity: 1 << 40, IdempotencyKey: "new-1", Endpoint: "POST /v1/søk", Timestamp: &at},
			{Meter: "api_calls", Quantity: 1, IdempotencyKey: "old-2"},
			{Meter: "storage_bytes", Quantity: 5000, IdempotencyKey: "new-3"},
			{Meter: "storage_bytes", Quantity: -300, IdempotencyKey: "ключ-4", Endpoint: "DELETE /f"},
		}
		res := f.record(t, org, sent...)
		if res.Accepted != 3 || res.Duplicates != 1 || len(res.Rejected) != 0 {
			t.Fatalf("got %+v, want 3 accepted and old-2 a duplicate", res)
		}
		type row struct {
			IdempotencyKey, Meter, Endpoint string
			Quantity                        int64
			OccurredAt                      time.Time
		}
		var got []row
		if err := db.Raw("SELECT idempotency_key, meter, endpoint, quantity, occurred_at FROM usage_events WHERE org_id = ? AND idempotency_key <> 'old-2' ORDER BY quantity DESC",
			org).Scan(&got).Error; err != nil {
			t.Fatal(err)
		}
		want := []row{
			{"new-1", "api_calls", "POST /v1/søk", 1 << 40, at},
			{"new-3", "storage_bytes", "", 5000, testNow},
			{"ключ-4", "storage_bytes", "DELETE /f", -300, testNow},
		}
		if len(got) != len(want) {
			t.Fatalf("stored %+v, want %+v", got, want)
		}
		for i := range want {
			if g, w := got[i], want[i]; g.IdempotencyKey != w.IdempotencyKey || g.Meter != w.Meter || g.Endpoint != w.Endpoint ||
				g.Quantity != w.Quantity || !g.OccurredAt.Equal(w.OccurredAt) {
				t.Errorf("stored %+v, want %+v", g, w)
			}
		}
	})
}
