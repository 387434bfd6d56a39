package usage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"

	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/jobs"
	"github.com/tollgate-billing/tollgate/internal/outbound"
	"github.com/tollgate-billing/tollgate/internal/plans"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// webhookPlan lets every organisation register outbound endpoints.
type webhookPlan struct{}

func (webhookPlan) PlanOf(context.Context, string) (plans.Plan, string, error) {
	return plans.Plan{ID: "growth", Name: "Growth", Webhooks: 10}, "active", nil
}

// withOutbound makes the fixture's alerts outbound events, as app does, and
// returns the outbound service. Its jobs are not worked: the deliveries it
// enqueues stay pending, to be counted.
func (f *fixture) withOutbound(t *testing.T) *outbound.Service {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	runner, err := jobs.New(context.Background(), f.db, jobs.Config{Logger: quiet, TestOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	w := outbound.NewService(outbound.Options{DB: f.db, Jobs: runner, Plans: webhookPlan{}, Clock: f.clock, Log: quiet})
	f.svc.OnAlert = func(ctx context.Context, tx *gorm.DB, a Alert) error {
		kind := outbound.UsageThresholdReached
		if a.LimitReached() {
			kind = outbound.UsageLimitReached
		}
		return w.Emit(ctx, tx, a.OrgID, kind, outbound.UsageThresholdData{
			Meter: a.Meter, Period: outbound.Optional(a.Period()), Percent: a.Percent, Used: a.Used, Limit: a.Limit,
		})
	}
	return w
}

// alerts lists the organisation's alerts this month as "meter percent".
func (f *fixture) alerts(t *testing.T, orgID string) []string {
	t.Helper()
	as, err := f.svc.Alerts(context.Background(), orgID, "")
	if err != nil {
		t.Fatalf("alerts: %v", err)
	}
	out := []string{}
	for _, a := range as {
		out = append(out, fmt.Sprintf("%s %d", a.Meter, a.Percent))
	}
	return out
}

// 64 clients racing an organisation's api_calls past 80% and 100% of its
// hard limit get one alert each, and each endpoint one delivery of each.
func TestConcurrentRecordersFireEachAlertOnce(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, nil)
		w := f.withOutbound(t)
		org := f.org(t, "free")
		free, _ := f.svc.catalog.ByID("free")
		limit, _ := free.LimitFor("api_calls")
		var endpoints []outbound.Endpoint
		for i := range 2 {
			ep, _, err := w.CreateEndpoint(context.Background(), org, fmt.Sprintf("http://127.0.0.1:9/hook%d", i),
				[]string{outbound.UsageThresholdReached, outbound.UsageLimitReached})
			if err != nil {
				t.Fatal(err)
			}
			endpoints = append(endpoints, ep)
		}

		const clients, calls = 64, 4
		per := (limit.Limit + clients*calls - 1) / (clients * calls) // enough to pass the limit
		var wg sync.WaitGroup
		errs := make(chan error, clients*calls)
		for c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := range calls {
					events := batch("api_calls", fmt.Sprintf("c%d-n%d", c, n), int(per)+1)
					_, err := f.svc.Record(context.Background(), org, events)
					var ae *apperr.Error
					if err != nil && !(errors.As(err, &ae) && ae.Code == apperr.UsageLimitExceeded) {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("record: %v", err)
		}
		if got := f.used(t, org, "api_calls"); got != limit.Limit {
			t.Fatalf("api_calls used = %d, want the whole limit %d", got, limit.Limit)
		}
		if got, want := f.alerts(t, org), []string{"api_calls 80", "api_calls 100"}; !slices.Equal(got, want) {
			t.Fatalf("alerts = %v, want %v", got, want)
		}
		for _, ep := range endpoints {
			ds, err := w.Deliveries(context.Background(), org, ep.ID, 100, "")
			if err != nil {
				t.Fatal(err)
			}
			var kinds []string
			for _, d := range ds {
				kinds = append(kinds, d.EventType)
			}
			slices.Sort(kinds)
			if want := []string{outbound.UsageLimitReached, outbound.UsageThresholdReached}; !slices.Equal(kinds, want) {
				t.Errorf("endpoint %s deliveries = %v, want one of each %v", ep.ID, kinds, want)
			}
		}
	})
}

// A client retrying a call that crossed a threshold counts nothing and
// fires nothing again, even after the threshold is gone back under (a
// meter that takes decreases).
func TestRetriedEventsDoNotFireAgain(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, nil)
		w := f.withOutbound(t)
		org := f.org(t, "free")
		free, _ := f.svc.catalog.ByID("free")
		limit, _ := free.LimitFor("storage_bytes")
		ep, _, err := w.CreateEndpoint(context.Background(), org, "http://127.0.0.1:9/hook", []string{outbound.UsageThresholdReached})
		if err != nil {
			t.Fatal(err)
		}
		upload := ev("storage_bytes", limit.Limit*9/10, "upload-1")
		f.record(t, org, upload)
		f.record(t, org, upload)
		f.record(t, org, ev("storage_bytes", -limit.Limit/2, "delete-1"))
		f.record(t, org, ev("storage_bytes", limit.Limit/2, "upload-2"))
		if got, want := f.alerts(t, org), []string{"storage_bytes 80"}; !slices.Equal(got, want) {
			t.Fatalf("alerts = %v, want %v", got, want)
		}
		ds, err := w.Deliveries(context.Background(), org, ep.ID, 100, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != 1 {
			t.Fatalf("deliveries = %d, want 1", len(ds))
		}
	})
}

// An organisation's own thresholds replace its plan's; bad ones are
// refused field by field and change nothing.
func TestOrganisationOverridesAlertThresholds(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, nil)
		org := f.org(t, "free")
		ctx := context.Background()
		for _, tc := range []struct {
			name, meter string
			percents    []int
			field       string
		}{
			{"unknown meter", "nope", []int{50}, "meter"},
			{"above 100%", "api_calls", []int{50, 101}, "percents"},
			{"named twice", "api_calls", []int{50, 50}, "percents"},
		} {
			_, err := f.svc.SetAlerts(ctx, org, tc.meter, tc.percents)
			fe, ok := apperr.AsFieldErrors(err)
			if !ok || len(fe) != 1 || fe[0].Field != tc.field {
				t.Errorf("%s: error = %v, want a field error on %s", tc.name, err, tc.field)
			}
		}
		got, err := f.svc.SetAlerts(ctx, org, "api_calls", []int{90, 25})
		if err != nil || !slices.Equal(got, []int{25, 90}) {
			t.Fatalf("set alerts = %v, %v; want [25 90]", got, err)
		}
		if _, err := f.svc.SetAlerts(ctx, org, "llm_tokens", nil); err != nil {
			t.Fatal(err)
		}
		free, _ := f.svc.catalog.ByID("free")
		calls, _ := free.LimitFor("api_calls")
		tokens, _ := free.LimitFor("llm_tokens")
		f.record(t, org, ev("api_calls", calls.Limit, "all-calls"), ev("llm_tokens", tokens.Limit, "all-tokens"))
		if got, want := f.alerts(t, org), []string{"api_calls 25", "api_calls 90"}; !slices.Equal(got, want) {
			t.Fatalf("alerts = %v, want %v (the organisation's, none on llm_tokens)", got, want)
		}
	})
}

func TestThresholdIsTheFirstTotalAtThePercent(t *testing.T) {
	for _, tc := range []struct {
		limit   int64
		percent int
		want    int64
	}{
		{1000, 80, 800},
		{10, 80, 8},
		{1, 80, 1},
		{7, 100, 7},
		{999, 1, 10},
		{1<<63 - 1, 100, 1<<63 - 1},
	} {
		if got := thresholdOf(tc.limit, tc.percent); got != tc.want {
			t.Errorf("%d%% of %d = %d, want %d", tc.percent, tc.limit, got, tc.want)
		}
	}
}
