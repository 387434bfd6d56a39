package usage

import (
	"context"
	"testing"
	"time"

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
