package usage

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/plans"
	"github.com/tollgate-billing/tollgate/internal/ratelimit"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// switchRate is a plan rate limiter a test opens and closes.
type switchRate struct {
	refuse atomic.Bool
	calls  atomic.Int64
	rate   atomic.Int64 // the last rate asked for
}

func (s *switchRate) Allow(_ context.Context, _ string, perSecond int) ratelimit.Decision {
	s.calls.Add(1)
	s.rate.Store(int64(perSecond))
	if s.refuse.Load() {
		return ratelimit.Decision{Limit: perSecond, RetryAfter: 250 * time.Millisecond}
	}
	return ratelimit.Decision{Allowed: true, Limit: perSecond}
}

func (f *fixture) consume(t *testing.T, orgID string, e Event) Consumption {
	t.Helper()
	c, err := f.svc.Consume(context.Background(), orgID, e)
	if err != nil {
		t.Fatalf("consume: %v", err)
	}
	return c
}

// At a hard limit, 64 callers at once are allowed exactly what is left, and
// the refused ones record nothing.
func TestConsumeAllowsExactlyTheLimitUnder64ConcurrentCallers(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, nil)
		org := f.org(t, "free") // api_calls: 1,000, hard
		const left, callers = 20, 64
		f.record(t, org, batch("api_calls", "before", 1000-left)...)

		var allowed, refused atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, callers)
		for i := range callers {
			wg.Go(func() {
				c, err := f.svc.Consume(context.Background(), org, ev("api_calls", 1, fmt.Sprintf("call-%d", i)))
				switch {
				case err != nil:
					errs <- err
				case c.Allowed && c.Reason == ReasonOK:
					allowed.Add(1)
				case !c.Allowed && c.Reason == ReasonUsageLimitExceeded && c.Usage.Used == 1000:
					refused.Add(1)
				default:
					errs <- fmt.Errorf("answer %+v", c)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if allowed.Load() != left || refused.Load() != callers-left {
			t.Errorf("%d allowed, %d refused; want exactly %d and %d", allowed.Load(), refused.Load(), left, callers-left)
		}
		if got := f.used(t, org, "api_calls"); got != 1000 {
			t.Errorf("used %d, want 1000", got)
		}
		if got := f.storedEvents(t, org); got != 1000 {
			t.Errorf("%d events stored, want 1000: refused calls must record nothing", got)
		}
	})
}

// A retried key that was counted answers allowed again and counts once, even
// when the plan's rate now refuses new calls; a new call over the rate is
// refused with when to retry, and records nothing.
func TestConsumeRetriesAndTheRateLimit(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, nil)
		rate := &switchRate{}
		f.svc.LimitRate(rate)
		org := f.org(t, "free")
		ctx := context.Background()

		first := f.consume(t, org, Event{Meter: "llm_tokens", Quantity: 700, IdempotencyKey: "completion-1", Endpoint: "POST /v1/complete"})
		if !first.Allowed || first.Reason != ReasonOK || first.Usage.Used != 700 || *first.Usage.Remaining() != 10000-700 {
			t.Fatalf("first call %+v, want allowed with 700 used", first)
		}
		again := f.consume(t, org, Event{Meter: "llm_tokens", Quantity: 700, IdempotencyKey: "completion-1", Endpoint: "POST /v1/complete"})
		if !again.Allowed || again.Usage.Used != 700 {
			t.Errorf("retried key %+v, want allowed with 700 still used", again)
		}

		rate.refuse.Store(true)
		limited := f.consume(t, org, Event{Meter: "llm_tokens", Quantity: 5, IdempotencyKey: "completion-2"})
		if limited.Allowed || limited.Reason != ReasonRateLimited || limited.RetryAfter != 250*time.Millisecond || limited.Usage.Used != 700 {
			t.Errorf("over the rate %+v, want RATE_LIMITED after 250ms with 700 used", limited)
		}
		if retried := f.consume(t, org, Event{Meter: "llm_tokens", Quantity: 700, IdempotencyKey: "completion-1", Endpoint: "POST /v1/complete"}); !retried.Allowed || retried.Reason != ReasonOK {
			t.Errorf("a counted key retried over the rate %+v, want the first answer (allowed)", retried)
		}
		if g, _ := f.svc.Gate(ctx, org, "llm_tokens", 1); g.Allowed || g.Reason != ReasonRateLimited || g.RetryAfter <= 0 {
			t.Errorf("gate over the rate %+v, want RATE_LIMITED with a retry", g)
		}
		if rate.rate.Load() != 10 {
			t.Errorf("rate asked at %d a second, want the free plan's 10", rate.rate.Load())
		}
		if got := f.storedEvents(t, org); got != 1 {
			t.Errorf("%d events stored, want 1", got)
		}
		if got := f.used(t, org, "llm_tokens"); got != 700 {
			t.Errorf("used %d, want 700", got)
		}
	})
}

func TestConsumeNamesTheInputFieldThatIsWrong(t *testing.T) {
	f := newFixture(t, testenv.DB(t), nil)
	org := f.org(t, "free")
	cases := map[string]struct {
		e     Event
		field string
	}{
		"an unknown meter":          {Event{Meter: "nope", Quantity: 1, IdempotencyKey: "k"}, "input.meter"},
		"a negative monthly amount": {Event{Meter: "api_calls", Quantity: -1, IdempotencyKey: "k"}, "input.quantity"},
		"no idempotency key":        {Event{Meter: "api_calls", Quantity: 1}, "input.idempotencyKey"},
		"a NUL in the endpoint":     {Event{Meter: "api_calls", Quantity: 1, IdempotencyKey: "k", Endpoint: "GET \x00"}, "input.endpoint"},
		"a blank endpoint":          {Event{Meter: "api_calls", Quantity: 1, IdempotencyKey: "k", Endpoint: "  "}, "input.endpoint"},
		"a trailing space":          {Event{Meter: "api_calls", Quantity: 1, IdempotencyKey: "k", Endpoint: "GET /x "}, "input.endpoint"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := f.svc.Consume(context.Background(), org, tc.e)
			fe, ok := apperr.AsFieldErrors(err)
			if !ok || len(fe) != 1 || fe[0].Field != tc.field {
				t.Fatalf("error %v, want one field error on %s", err, tc.field)
			}
		})
	}
	if got := f.storedEvents(t, org); got != 0 {
		t.Errorf("%d events stored by invalid calls", got)
	}
}

// BILLING_INACTIVE is given only when the plans file opts into blocking
// unpaid subscriptions.
func TestUnpaidSubscriptionsAreRefusedOnlyWhenThePlansFileSaysSo(t *testing.T) {
	db := testenv.DB(t)
	blocking, err := plans.Parse(append([]byte("block_unpaid: true\n"), plans.DefaultsYAML()...), "yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		catalog *plans.Catalog
		want    string
	}{
		{"default plans", plans.Default(), ReasonOK},
		{"block_unpaid", blocking, ReasonBillingInactive},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixtureOf(t, db, nil, tc.catalog)
			org := f.org(t, "starter")
			f.setPlan(org, "starter", "past_due")
			c := f.consume(t, org, ev("api_calls", 1, "k"))
			if c.Reason != tc.want || c.Allowed != (tc.want == ReasonOK) {
				t.Errorf("consume while past due: %+v, want %s", c, tc.want)
			}
			if g := f.gate(t, org, "api_calls"); g.Reason != tc.want {
				t.Errorf("gate while past due: %+v, want %s", g, tc.want)
			}
			wantStored := int64(0)
			if tc.want == ReasonOK {
				wantStored = 1
			}
			if got := f.storedEvents(t, org); got != wantStored {
				t.Errorf("%d events stored, want %d", got, wantStored)
			}
		})
	}
}
