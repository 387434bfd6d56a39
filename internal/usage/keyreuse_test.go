package usage

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// A key counted for one event and sent again with another is refused
// (IDEMPOTENCY_KEY_REUSED), counts nothing and says what differs; the same
// event again is still a duplicate. Far from the limit (on Postgres, the
// one-statement path) and at a hard limit (the transaction).
func TestAKeyReusedForAnotherEventIsRefused(t *testing.T) {
	first := Event{Meter: "api_calls", Quantity: 1, IdempotencyKey: "k", Endpoint: "GET /v1/a"}
	cases := []struct {
		name  string
		again Event
		// says is what the message names; "" for a duplicate.
		says string
	}{
		{"another meter", Event{Meter: "llm_tokens", Quantity: 1, IdempotencyKey: "k", Endpoint: "GET /v1/a"}, "meter api_calls, not llm_tokens"},
		{"another quantity", Event{Meter: "api_calls", Quantity: 2, IdempotencyKey: "k", Endpoint: "GET /v1/a"}, "quantity 1, not 2"},
		{"another endpoint", Event{Meter: "api_calls", Quantity: 1, IdempotencyKey: "k", Endpoint: "GET /v1/b"}, "another endpoint"},
		{"the same event again", first, ""},
	}
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, nil)
		for _, full := range []bool{false, true} {
			for _, tc := range cases {
				t.Run(fmt.Sprintf("%s, at the limit %t", tc.name, full), func(t *testing.T) {
					org := f.org(t, "free") // api_calls 1,000 and llm_tokens 10,000, hard
					f.record(t, org, first)
					if full {
						f.record(t, org, ev("api_calls", 999, "fill"), ev("llm_tokens", 10_000, "fill-tokens"))
					}
					usedCalls, usedTokens, stored := f.used(t, org, "api_calls"), f.used(t, org, "llm_tokens"), f.storedEvents(t, org)

					res, err := f.svc.Record(context.Background(), org, []Event{tc.again})
					if err != nil {
						t.Fatalf("record: %v", err)
					}
					if tc.says == "" {
						if res.Duplicates != 1 || res.Accepted != 0 || len(res.Rejected) != 0 {
							t.Fatalf("a retry: %+v, want a duplicate", res)
						}
					} else {
						if res.Duplicates != 0 || res.Accepted != 0 || len(res.Rejected) != 1 || res.Rejected[0].Code != CodeKeyReused ||
							!strings.Contains(res.Rejected[0].Message, tc.says) {
							t.Fatalf("the key reused: %+v, want %s naming %q", res, CodeKeyReused, tc.says)
						}
						if strings.Contains(res.Rejected[0].Message, "GET /v1") {
							t.Errorf("the message echoes an endpoint: %q", res.Rejected[0].Message)
						}
					}

					c, err := f.svc.Consume(context.Background(), org, tc.again)
					if tc.says == "" {
						if err != nil || !c.Allowed || c.Reason != ReasonOK {
							t.Fatalf("consume a retry: %+v, %v; want allowed again", c, err)
						}
					} else {
						fe, ok := apperr.AsFieldErrors(err)
						if !ok || len(fe) != 1 || fe[0].Field != "input.idempotencyKey" || fe[0].Code != CodeKeyReused || c.Allowed {
							t.Fatalf("consume with the key reused: %+v, %v; want a %s field error", c, err, CodeKeyReused)
						}
					}
					if u, v, n := f.used(t, org, "api_calls"), f.used(t, org, "llm_tokens"), f.storedEvents(t, org); u != usedCalls || v != usedTokens || n != stored {
						t.Errorf("used %d and %d, %d events stored; want %d, %d and %d as before", u, v, n, usedCalls, usedTokens, stored)
					}
				})
			}
		}

		t.Run("two events under one key in one call", func(t *testing.T) {
			org := f.org(t, "free")
			res := f.record(t, org, ev("api_calls", 1, "same"), ev("llm_tokens", 7, "same"), ev("api_calls", 1, "same"))
			if res.Accepted != 1 || res.Duplicates != 1 || len(res.Rejected) != 1 || res.Rejected[0].Index != 1 || res.Rejected[0].Code != CodeKeyReused {
				t.Fatalf("got %+v; want the first counted, the second refused as a reuse, the third a duplicate", res)
			}
			if f.used(t, org, "llm_tokens") != 0 || f.used(t, org, "api_calls") != 1 {
				t.Fatal("the reused key counted")
			}
		})

		t.Run("two events under one key in calls grouped together", func(t *testing.T) {
			org := f.org(t, "starter")
			var wg sync.WaitGroup
			results := make([]RecordResult, 16)
			for i := range results {
				wg.Go(func() {
					e := ev("api_calls", 1, "grouped")
					if i%2 == 1 {
						e = ev("llm_tokens", 1, "grouped")
					}
					results[i] = f.record(t, org, e)
				})
			}
			wg.Wait()
			accepted, duplicates, reused := 0, 0, 0
			for _, r := range results {
				accepted += r.Accepted
				duplicates += r.Duplicates
				for _, rj := range r.Rejected {
					if rj.Code == CodeKeyReused {
						reused++
					}
				}
			}
			if accepted != 1 || duplicates != 7 || reused != 8 {
				t.Fatalf("%d accepted, %d duplicates, %d reused; want 1, 7 and 8", accepted, duplicates, reused)
			}
		})

		t.Run("consume refused for its rate still refuses a reused key", func(t *testing.T) {
			org := f.org(t, "free")
			rate := &switchRate{}
			f.svc.LimitRate(rate)
			defer f.svc.LimitRate(nil)
			f.consume(t, org, first)
			rate.refuse.Store(true)
			if c := f.consume(t, org, first); !c.Allowed || c.Reason != ReasonOK {
				t.Fatalf("a retry while rate limited: %+v, want allowed as the first call was", c)
			}
			c, err := f.svc.Consume(context.Background(), org, ev("llm_tokens", 1, "k"))
			if fe, ok := apperr.AsFieldErrors(err); !ok || fe[0].Code != CodeKeyReused || c.Allowed {
				t.Fatalf("a reused key while rate limited: %+v, %v; want %s", c, err, CodeKeyReused)
			}
		})

		t.Run("a key row from before its event was kept matches any event", func(t *testing.T) {
			org := f.org(t, "free")
			f.record(t, org, ev("api_calls", 1, "legacy"))
			if err := db.Exec("UPDATE usage_event_keys SET meter = NULL, quantity = NULL, endpoint = NULL WHERE org_id = ?", org).Error; err != nil {
				t.Fatal(err)
			}
			if res := f.record(t, org, ev("llm_tokens", 5, "legacy")); res.Duplicates != 1 || len(res.Rejected) != 0 {
				t.Fatalf("got %+v; want a duplicate, as before the key's event was kept", res)
			}
			if c := f.consume(t, org, ev("api_calls", 3, "legacy")); !c.Allowed {
				t.Fatalf("consume: %+v; want allowed, as before", c)
			}
		})
	})
}

// Two replicas sent one key with two different events at once: one counts
// and the other is refused as a reuse, never answered as a duplicate,
// whichever commits first.
func TestAKeyReusedOnAnotherReplicaAtOnceIsRefused(t *testing.T) {
	db := testenv.DB(t)
	a := newFixture(t, db, nil)
	b := newFixture(t, db, a.rdb)
	for _, plan := range []string{"starter", "free"} {
		org := a.org(t, plan)
		b.plans.set(org, plan, "")
		if plan == "free" { // the transaction path: near the hard limit, with room for every round
			a.record(t, org, ev("api_calls", 985, "fill"))
		}
		const rounds = 10
		for i := range rounds {
			key := fmt.Sprintf("race-%d", i)
			var ra, rb RecordResult
			var wg sync.WaitGroup
			wg.Go(func() { ra = a.record(t, org, ev("api_calls", 1, key)) })
			wg.Go(func() { rb = b.record(t, org, ev("llm_tokens", 1, key)) })
			wg.Wait()
			accepted := ra.Accepted + rb.Accepted
			reused := len(ra.Rejected) + len(rb.Rejected)
			if accepted != 1 || reused != 1 || ra.Duplicates+rb.Duplicates != 0 {
				t.Fatalf("%s, round %d: %+v and %+v; want one counted and the other refused as a reuse", plan, i, ra, rb)
			}
			for _, rj := range append(ra.Rejected, rb.Rejected...) {
				if rj.Code != CodeKeyReused {
					t.Fatalf("%s, round %d: rejected %+v", plan, i, rj)
				}
			}
		}
	}
}

// A key with rows in two months of the window (counted again across a
// month boundary by replicas whose clocks were far apart) is judged
// against its first copy, the earliest row, by Record and by a Consume
// refused before it reached Record alike. Each used to pick a row of its
// own (Record the last one read, Consume the first, in no set order), so
// one of them answered a retry of the first event as a reuse.
func TestAKeyCountedInTwoMonthsIsJudgedAgainstItsFirstCopyByEveryPath(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, nil)
		org := f.org(t, "starter")
		first, later := ev("api_calls", 1, "split"), ev("api_calls", 2, "split")
		thisMonth := clock.MonthStart(testNow)
		for _, row := range []struct {
			month time.Time
			e     Event
		}{{thisMonth, later}, {thisMonth.AddDate(0, -1, 0), first}} {
			err := db.Exec("INSERT INTO usage_event_keys (org_id, idempotency_key, arrival_month, meter, quantity, endpoint) VALUES (?, ?, ?, ?, ?, ?)",
				org, row.e.IdempotencyKey, row.month, row.e.Meter, row.e.Quantity, row.e.Endpoint).Error
			if err != nil {
				t.Fatal(err)
			}
		}
		if res := f.record(t, org, first); res.Duplicates != 1 || len(res.Rejected) != 0 {
			t.Errorf("record the first copy again: %+v, want a duplicate", res)
		}
		if res := f.record(t, org, later); len(res.Rejected) != 1 || res.Rejected[0].Code != CodeKeyReused ||
			!strings.Contains(res.Rejected[0].Message, "quantity 1, not 2") {
			t.Errorf("record the later copy again: %+v, want %s against the first copy's quantity 1", res, CodeKeyReused)
		}

		rate := &switchRate{}
		rate.refuse.Store(true) // Consume answers from the key's row, not from Record
		f.svc.LimitRate(rate)
		defer f.svc.LimitRate(nil)
		if c := f.consume(t, org, first); !c.Allowed || c.Reason != ReasonOK {
			t.Errorf("consume the first copy again while rate limited: %+v, want allowed as a retry", c)
		}
		c, err := f.svc.Consume(context.Background(), org, later)
		if fe, ok := apperr.AsFieldErrors(err); !ok || fe[0].Code != CodeKeyReused || !strings.Contains(fe[0].Message, "quantity 1, not 2") || c.Allowed {
			t.Errorf("consume the later copy again while rate limited: %+v, %v; want %s against the first copy's quantity 1", c, err, CodeKeyReused)
		}
		if got := f.used(t, org, "api_calls"); got != 0 {
			t.Errorf("used %d, want 0: nothing was counted anew", got)
		}
	})
}
