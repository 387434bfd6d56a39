package usage

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/plans"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

func TestUsageShowsEveryMeterAgainstThePlan(t *testing.T) {
	type meter struct {
		used, overage    int64
		limit, remaining *int64
	}
	cases := []struct {
		name string
		plan string
		want map[string]meter
	}{
		{
			name: "a soft limit reports usage past it as overage",
			plan: "starter",
			want: map[string]meter{
				"api_calls":     {used: 100_250, limit: ptr[int64](100_000), remaining: ptr[int64](0), overage: 250},
				"llm_tokens":    {used: 0, limit: ptr[int64](1_000_000), remaining: ptr[int64](1_000_000)},
				"storage_bytes": {used: 4096, limit: ptr[int64](10_737_418_240), remaining: ptr[int64](10_737_418_240 - 4096)},
			},
		},
		{
			name: "an unlimited plan has no limit and no remaining",
			plan: "enterprise",
			want: map[string]meter{
				"api_calls":     {used: 100_250},
				"llm_tokens":    {used: 0},
				"storage_bytes": {used: 4096},
			},
		},
	}
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, nil)
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				org := f.org(t, tc.plan)
				f.record(t, org, ev("api_calls", 100_000, "a"), ev("api_calls", 250, "b"), ev("storage_bytes", 4096, "c"))
				p, meters, err := f.svc.Usage(context.Background(), org, "")
				if err != nil {
					t.Fatal(err)
				}
				if !p.Start.Equal(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)) || !p.End.Equal(time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)) {
					t.Errorf("period %v – %v, want March 2026", p.Start, p.End)
				}
				if len(meters) != len(tc.want) {
					t.Fatalf("%d meters, want %d", len(meters), len(tc.want))
				}
				show := func(v *int64) string {
					if v == nil {
						return "nil"
					}
					return fmt.Sprint(*v)
				}
				for _, m := range meters {
					w := tc.want[m.Meter]
					got := fmt.Sprintf("used %d limit %s remaining %s overage %d", m.Used, show(m.LimitValue()), show(m.Remaining()), m.Overage())
					want := fmt.Sprintf("used %d limit %s remaining %s overage %d", w.used, show(w.limit), show(w.remaining), w.overage)
					if got != want {
						t.Errorf("%s: %s; want %s", m.Meter, got, want)
					}
				}
			})
		}
	})
}

func TestMonthlyMetersResetAtTheUTCMonthAndOthersDoNot(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, nil)
		ctx := context.Background()
		lastSecondOfMarch := time.Date(2026, 3, 31, 23, 59, 59, 0, time.UTC)
		f.clock.Set(lastSecondOfMarch)
		org := f.org(t, "free")
		f.record(t, org, ev("api_calls", 1000, "march-calls"), ev("storage_bytes", 100, "march-upload"))
		if g := f.gate(t, org, "api_calls"); g.Allowed {
			t.Fatalf("free org at its limit on 31 March: gate allowed")
		}

		f.clock.Set(lastSecondOfMarch.Add(time.Second)) // 1 April 00:00:00 UTC
		if got := f.used(t, org, "api_calls"); got != 0 {
			t.Errorf("api_calls on 1 April: %d, want 0", got)
		}
		if got := f.used(t, org, "storage_bytes"); got != 100 {
			t.Errorf("storage_bytes on 1 April: %d, want 100 (never resets)", got)
		}
		if g := f.gate(t, org, "api_calls"); !g.Allowed || g.Used != 0 {
			t.Errorf("gate on 1 April: %+v, want allowed at 0", g)
		}
		res := f.record(t, org, ev("api_calls", 1, "april-call"), ev("storage_bytes", -40, "april-delete"),
			Event{Meter: "api_calls", Quantity: 1, IdempotencyKey: "late-march", Timestamp: &lastSecondOfMarch})
		if res.Accepted != 2 || len(res.Rejected) != 1 || res.Rejected[0].Code != CodeTimestampBeforePeriod {
			t.Errorf("April batch: %+v, want the March event refused as before the period", res)
		}

		_, march, err := f.svc.Usage(ctx, org, "2026-03")
		if err != nil {
			t.Fatal(err)
		}
		_, april, err := f.svc.Usage(ctx, org, "2026-04")
		if err != nil {
			t.Fatal(err)
		}
		want := map[string][2]int64{"api_calls": {1000, 1}, "llm_tokens": {0, 0}, "storage_bytes": {100, 60}}
		for i := range march {
			got := [2]int64{march[i].Used, april[i].Used}
			if got != want[march[i].Meter] {
				t.Errorf("%s March, April = %v, want %v", march[i].Meter, got, want[march[i].Meter])
			}
		}
	})
}

func TestUsageRejectsBadPeriods(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, nil)
		org := f.org(t, "free")
		for _, period := range []string{"2026-13", "2026-3", "March", "2026-03-01", "2026-04"} {
			t.Run(period, func(t *testing.T) {
				_, _, err := f.svc.Usage(context.Background(), org, period)
				e, ok := apperr.As(err)
				if !ok || e.Code != apperr.BadInput || e.Message == "" || e.Extensions["field"] != "period" {
					t.Errorf("Usage(%q) err = %v, want BAD_USER_INPUT on period", period, err)
				}
				if _, err := f.svc.ByEndpoint(context.Background(), org, period, "", MaxEndpointPage, ""); apperr.CodeOf(err) != apperr.BadInput {
					t.Errorf("ByEndpoint(%q) err = %v, want BAD_USER_INPUT", period, err)
				}
			})
		}
		if _, _, err := f.svc.Usage(context.Background(), org, "2026-02"); err != nil {
			t.Errorf("a past month: %v", err)
		}
	})
}

func TestUsageByEndpointIsLargestFirst(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, nil)
		ctx := context.Background()
		org := f.org(t, "starter")
		at := func(e Event, endpoint string) Event { e.Endpoint = endpoint; return e }
		f.record(t, org,
			at(ev("api_calls", 3, "a"), "GET /v1/items"),
			at(ev("api_calls", 7, "b"), "POST /v1/search"),
			at(ev("api_calls", 2, "c"), "GET /v1/items"),
			at(ev("llm_tokens", 500, "d"), "POST /v1/search"),
			ev("api_calls", 100, "no-endpoint"),
		)
		cases := []struct {
			name, meter string
			want        string
		}{
			{"every meter", "", "[{POST /v1/search llm_tokens 500} {POST /v1/search api_calls 7} {GET /v1/items api_calls 5}]"},
			{"one meter", "api_calls", "[{POST /v1/search api_calls 7} {GET /v1/items api_calls 5}]"},
			{"a meter without endpoint usage", "storage_bytes", "[]"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				got, err := f.svc.ByEndpoint(ctx, org, "", tc.meter, MaxEndpointPage, "")
				if err != nil {
					t.Fatal(err)
				}
				if endpointRows(got) != tc.want {
					t.Errorf("got %v, want %s", got, tc.want)
				}
			})
		}
		if got, err := f.svc.ByEndpoint(ctx, org, "2026-02", "", MaxEndpointPage, ""); err != nil || len(got) != 0 {
			t.Errorf("February: %v, %v; want nothing", got, err)
		}
		if _, err := f.svc.ByEndpoint(ctx, org, "", "bogus", MaxEndpointPage, ""); apperr.CodeOf(err) != apperr.BadInput {
			t.Errorf("unknown meter: err = %v, want BAD_USER_INPUT", err)
		}
	})
}

// endpointRows prints rows as "[{endpoint meter used} …]", without cursors.
func endpointRows(rows []EndpointUsage) string {
	parts := make([]string, len(rows))
	for i, r := range rows {
		parts[i] = fmt.Sprintf("{%s %s %d}", r.Endpoint, r.Meter, r.Used)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// TestUsageByEndpointIsPagedFromTheTop: one page never holds more than
// MaxEndpointPage rows, however many endpoints an organisation used (a
// request for every row of 30,000 endpoints took 25 s and 440 MB), and
// following the cursors lists every row once, largest first, ties by
// meter then endpoint.
func TestUsageByEndpointIsPagedFromTheTop(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, nil)
		ctx := context.Background()
		org := f.org(t, "starter")
		n := MaxEndpointPage + 5
		var events []Event
		var want []EndpointUsage
		for i := range n {
			e := ev("api_calls", int64(i%7+1), fmt.Sprintf("k%d", i))
			e.Endpoint = fmt.Sprintf("GET /v1/e%03d", i)
			events = append(events, e)
			want = append(want, EndpointUsage{Endpoint: e.Endpoint, Meter: e.Meter, Used: e.Quantity})
		}
		f.record(t, org, events...)
		slices.SortFunc(want, func(a, b EndpointUsage) int {
			return cmp.Or(cmp.Compare(b.Used, a.Used), cmp.Compare(a.Meter, b.Meter), cmp.Compare(a.Endpoint, b.Endpoint))
		})

		top, err := f.svc.ByEndpoint(ctx, org, "", "", 1000, "")
		if err != nil || len(top) != MaxEndpointPage {
			t.Fatalf("first 1000 of %d rows: %d rows, %v; want %d", n, len(top), err, MaxEndpointPage)
		}
		var got []EndpointUsage
		for after := ""; ; {
			page, err := f.svc.ByEndpoint(ctx, org, "", "api_calls", 7, after)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			got = append(got, page...)
			after = page[len(page)-1].Cursor
			if len(got) > n {
				t.Fatalf("paging never ends: %d rows of %d", len(got), n)
			}
		}
		if endpointRows(got) != endpointRows(want) || endpointRows(top) != endpointRows(want[:MaxEndpointPage]) {
			t.Errorf("paged rows %s\nwant %s", endpointRows(got), endpointRows(want))
		}
		for _, bad := range []struct {
			first int
			after string
		}{{0, ""}, {-1, ""}, {5, "nope"}, {5, top[0].Cursor + "x"}} {
			if _, err := f.svc.ByEndpoint(ctx, org, "", "", bad.first, bad.after); apperr.CodeOf(err) != apperr.BadInput {
				t.Errorf("first %d after %q: err = %v, want BAD_USER_INPUT", bad.first, bad.after, err)
			}
		}
	})
}

func TestUsageSeriesIsDailyAndZeroFilled(t *testing.T) {
	day := func(d int) time.Time { return time.Date(2026, 3, d, 0, 0, 0, 0, time.UTC) }
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, nil)
		ctx := context.Background()
		org := f.org(t, "starter")
		at := func(e Event, d int, hour int) Event {
			e.Timestamp = ptr(day(d).Add(time.Duration(hour) * time.Hour))
			return e
		}
		f.record(t, org,
			at(ev("api_calls", 4, "a"), 10, 1), at(ev("api_calls", 6, "b"), 10, 23), at(ev("api_calls", 1, "c"), 12, 0),
			at(ev("storage_bytes", 1000, "up1"), 5, 0), at(ev("storage_bytes", 500, "up2"), 11, 0), at(ev("storage_bytes", -300, "del"), 12, 0),
		)
		cases := []struct {
			name, meter string
			from, to    time.Time
			want        []int64
		}{
			{"a monthly meter shows each day's usage", "api_calls", day(9), day(13), []int64{0, 10, 0, 1, 0}},
			{"a single day", "api_calls", day(10), day(10), []int64{10}},
			{"times within the first and last day count as those days", "api_calls", day(10).Add(15 * time.Hour), day(12).Add(time.Hour), []int64{10, 0, 1}},
			{"a meter that never resets shows its running total", "storage_bytes", day(10), day(13), []int64{1000, 1500, 1200, 1200}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				pts, err := f.svc.Series(ctx, org, tc.meter, tc.from, tc.to)
				if err != nil {
					t.Fatal(err)
				}
				var got []int64
				for i, p := range pts {
					got = append(got, p.Used)
					if want := dayOf(tc.from).AddDate(0, 0, i); !p.Date.Equal(want) {
						t.Errorf("point %d dated %v, want %v", i, p.Date, want)
					}
				}
				if fmt.Sprint(got) != fmt.Sprint(tc.want) {
					t.Errorf("series %v, want %v", got, tc.want)
				}
			})
		}

		today := dayOf(f.clock.Now())
		if pts, err := f.svc.Series(ctx, org, "api_calls", today.AddDate(0, 0, 1-MaxSeriesDays), today); err != nil || len(pts) != MaxSeriesDays {
			t.Errorf("366 days: %d points, err %v", len(pts), err)
		}
		// Like a period, a range that has not begun is refused and one
		// running past today ends at today.
		if pts, err := f.svc.Series(ctx, org, "api_calls", today.AddDate(0, 0, -1), today.AddDate(0, 0, 5)); err != nil ||
			len(pts) != 2 || !pts[1].Date.Equal(today) {
			t.Errorf("yesterday to 5 days ahead: %v, err %v; want yesterday and today", pts, err)
		}
		if _, err := f.svc.Series(ctx, org, "api_calls", today.AddDate(0, 0, 1), today.AddDate(0, 0, 2)); apperr.CodeOf(err) != apperr.BadInput {
			t.Errorf("tomorrow: err %v, want BAD_USER_INPUT", err)
		}
		for _, bad := range []struct {
			name, meter string
			from, to    time.Time
		}{
			{"367 days", "api_calls", day(1), day(1).AddDate(0, 0, MaxSeriesDays)},
			{"to before from", "api_calls", day(10), day(9)},
			{"unknown meter", "bogus", day(1), day(2)},
		} {
			if _, err := f.svc.Series(ctx, org, bad.meter, bad.from, bad.to); apperr.CodeOf(err) != apperr.BadInput {
				t.Errorf("%s: err = %v, want BAD_USER_INPUT", bad.name, err)
			}
		}
	})
}

func TestOrganisationsNeverSeeOrAffectEachOther(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, nil)
		ctx := context.Background()
		a, b := f.org(t, "free"), f.org(t, "free")
		e := ev("api_calls", 1000, "same-key")
		e.Endpoint = "GET /v1/a"
		f.record(t, a, e)

		if got := f.used(t, b, "api_calls"); got != 0 {
			t.Errorf("b's usage shows %d of a's calls", got)
		}
		if got, _ := f.svc.ByEndpoint(ctx, b, "", "", MaxEndpointPage, ""); len(got) != 0 {
			t.Errorf("b's endpoints show a's: %v", got)
		}
		if pts, _ := f.svc.Series(ctx, b, "api_calls", testNow, testNow); pts[0].Used != 0 {
			t.Errorf("b's series shows a's usage: %v", pts)
		}
		if g := f.gate(t, b, "api_calls"); !g.Allowed || g.Used != 0 {
			t.Errorf("b's gate %+v: a's full quota leaked", g)
		}
		// The same key in another organisation is another event, and a's
		// exhausted hard limit does not refuse it.
		if res := f.record(t, b, ev("api_calls", 1, "same-key")); res.Accepted != 1 {
			t.Errorf("b's event with a's key: %+v, want accepted", res)
		}
		if got := f.used(t, a, "api_calls"); got != 1000 {
			t.Errorf("a's usage moved to %d", got)
		}
	})
}

// The running totals usage(period:) and usageSeries compute from the daily
// rollups saturate at the largest int64, as the rows do, instead of
// failing (INTERNAL: SQLite's SUM refuses to overflow, and Postgres's
// numeric sum does not fit the int64 it is read into) or wrapping below
// zero. Such days come from a meter the plans file declared monthly, each
// month counting up to that bound, and later declares never resetting.
func TestRunningTotalsReadFromDaysSaturateInsteadOfOverflowing(t *testing.T) {
	const top = math.MaxInt64
	catalog, err := plans.Parse([]byte(`
meters: [{ name: api_calls, reset: never }]
plans:
  - { id: free, name: Free, price_cents: 0, currency: usd, interval: month, rate_limit_per_second: 10, webhooks: 0,
      limits: { api_calls: { unlimited: true } } }
`), "yaml")
	if err != nil {
		t.Fatal(err)
	}
	days := []time.Time{time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC), time.Date(2026, 2, 10, 0, 0, 0, 0, time.UTC)}
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixtureOf(t, db, nil, catalog)
		org := f.org(t, "free")
		for _, d := range days { // each a month's total while api_calls reset monthly
			if err := db.Create(&UsageDailyRollup{OrgID: org, Meter: "api_calls", Day: d, Used: top - 1, UpdatedAt: testNow}).Error; err != nil {
				t.Fatal(err)
			}
		}
		_, meters, err := f.svc.Usage(context.Background(), org, "2026-02")
		if err != nil {
			t.Fatalf("usage(period: 2026-02): %v", err)
		}
		for _, m := range meters {
			if m.Meter == "api_calls" && m.Used != top {
				t.Errorf("usage(period: 2026-02) of api_calls = %d, want %d", m.Used, int64(top))
			}
		}
		for _, from := range []time.Time{days[0].AddDate(0, 0, -1), days[1].AddDate(0, 0, -1)} {
			pts, err := f.svc.Series(context.Background(), org, "api_calls", from, testNow)
			if err != nil {
				t.Fatalf("usageSeries from %s: %v", from.Format(time.DateOnly), err)
			}
			for _, p := range pts {
				want := int64(0)
				for _, d := range days {
					if !p.Date.Before(d) {
						want = saturatingAdd(want, top-1)
					}
				}
				if p.Used != want {
					t.Fatalf("usageSeries from %s on %s = %d, want %d", from.Format(time.DateOnly), p.Date.Format(time.DateOnly), p.Used, want)
				}
			}
		}
	})
}
