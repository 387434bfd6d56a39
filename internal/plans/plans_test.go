package plans

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestDefaultsMatchTheReferenceTiers(t *testing.T) {
	c := Default()
	want := []struct {
		id        string
		price     int64
		rate      int
		apiCalls  int64
		storage   int64
		unlimited bool
	}{
		{"free", 0, 10, 1000, 104857600, false},
		{"starter", 4900, 100, 100000, 10 << 30, false},
		{"growth", 19900, 500, 1000000, 100 << 30, false},
		{"enterprise", 0, 2000, 0, 0, true},
	}
	for _, w := range want {
		p, ok := c.ByID(w.id)
		if !ok {
			t.Fatalf("plan %s missing", w.id)
		}
		api, _ := p.LimitFor("api_calls")
		st, _ := p.LimitFor("storage_bytes")
		if p.PriceCents != w.price || p.RateLimitPerSecond != w.rate || api.Unlimited != w.unlimited ||
			(!w.unlimited && (api.Limit != w.apiCalls || st.Limit != w.storage)) {
			t.Errorf("plan %s = %+v", w.id, p)
		}
		if st.Reset != Never {
			t.Errorf("storage_bytes on %s resets %q, want never", w.id, st.Reset)
		}
	}
	if p, ok := c.ByPriceID("price_tollgate_growth_monthly"); !ok || p.ID != "growth" {
		t.Fatal("price id does not map back to growth")
	}
}

// Starter and Growth sell monthly and yearly; every price names its plan,
// and the monthly one stays the plan's headline price and stripe_price_id.
func TestDefaultPaidPlansSellMonthlyAndYearly(t *testing.T) {
	c := Default()
	for _, id := range []string{"starter", "growth"} {
		p, _ := c.ByID(id)
		month, okM := p.PriceFor(IntervalMonth)
		year, okY := p.PriceFor(IntervalYear)
		if !okM || !okY || len(p.Prices) != 2 {
			t.Fatalf("%s prices = %+v, want a monthly and a yearly one", id, p.Prices)
		}
		if p.StripePriceID != month.ID || p.PriceCents != month.AmountCents || p.Interval != IntervalMonth || p.Currency != "usd" {
			t.Errorf("%s headline = %s %d %s %s, want its monthly price %+v", id, p.StripePriceID, p.PriceCents, p.Currency, p.Interval, month)
		}
		if year.AmountCents <= month.AmountCents || year.Currency != "usd" {
			t.Errorf("%s yearly price %+v is not a year's price in usd", id, year)
		}
		for _, pr := range p.Prices {
			if got, ok := c.ByPriceID(pr.ID); !ok || got.ID != id {
				t.Errorf("price %s maps to %q, want %s", pr.ID, got.ID, id)
			}
		}
	}
}

// A plan listed with prices in several currencies sells the one in its own
// currency by default.
func TestPricesInSeveralCurrencies(t *testing.T) {
	c, err := Parse([]byte(`meters: [{name: seats, reset: never}]
plans:
  - {id: free, name: Free, rate_limit_per_second: 1, limits: {seats: {limit: 1}}}
  - id: team
    name: Team
    currency: eur
    prices:
      - {id: price_team_usd, interval: month, amount_cents: 1100, currency: usd}
      - {id: price_team_eur, interval: month, amount_cents: 1000, currency: EUR}
      - {id: price_team_eur_y, interval: year, amount_cents: 10000, currency: eur}
    rate_limit_per_second: 5
    limits: {seats: {unlimited: true}}
`), "yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := c.ByID("team")
	if got, _ := p.PriceFor(IntervalMonth); got.ID != "price_team_eur" || p.StripePriceID != "price_team_eur" || p.PriceCents != 1000 {
		t.Fatalf("monthly price %+v, headline %s %d; want the eur one", got, p.StripePriceID, p.PriceCents)
	}
	if got, ok := c.ByPriceID("price_team_usd"); !ok || got.ID != "team" {
		t.Fatal("the usd price does not map to its plan")
	}
}

// A plan sold in several currencies prices its overage in each: the plan's
// own in unit_amount_cents, the others in currency_amounts (any case).
func TestOveragePricedInEveryCurrencyThePlanIsSoldIn(t *testing.T) {
	c, err := Parse([]byte(`meters: [{name: api_calls, reset: monthly}]
plans:
  - {id: free, name: Free, rate_limit_per_second: 1, limits: {api_calls: {limit: 1}}}
  - id: team
    name: Team
    prices:
      - {id: price_team_usd, interval: month, amount_cents: 1100, currency: usd}
      - {id: price_team_eur, interval: month, amount_cents: 1000, currency: eur}
      - {id: price_team_jpy, interval: year, amount_cents: 15000, currency: jpy}
    rate_limit_per_second: 5
    limits: {api_calls: {limit: 100, overage: {unit_amount_cents: 50, per: 1000, currency_amounts: {EUR: 45, jpy: 75}}}}
`), "yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := c.ByID("team")
	l, _ := p.LimitFor("api_calls")
	for currency, want := range map[string]int64{"usd": 50, "eur": 45, "jpy": 75} {
		if got, ok := l.Overage.UnitAmountIn(currency); !ok || got != want {
			t.Errorf("overage in %s = %d, %v; want %d", currency, got, ok, want)
		}
	}
	if got, ok := l.Overage.UnitAmountIn("gbp"); ok {
		t.Errorf("overage priced in gbp at %d, which the file never named", got)
	}
	if pr, ok := p.PriceByID("price_team_jpy"); !ok || pr.Currency != "jpy" {
		t.Errorf("PriceByID(price_team_jpy) = %+v, %v", pr, ok)
	}
}

// Starter and Growth bill their soft-limited meters past the allowance;
// storage stays hard, and nothing on free or enterprise is billed as
// overage.
func TestDefaultOveragePrices(t *testing.T) {
	c := Default()
	for _, p := range c.Plans() {
		for _, l := range p.Limits {
			soft := (p.ID == "starter" || p.ID == "growth") && l.Meter != "storage_bytes"
			if got := l.Overage != nil; got != soft {
				t.Errorf("%s %s: overage priced = %v, want %v", p.ID, l.Meter, got, soft)
			}
		}
	}
}

func TestOveragePackagesCountEveryStartedOne(t *testing.T) {
	o := OveragePrice{UnitAmountCents: 50, Per: 1000}
	for over, want := range map[int64]int64{0: 0, -5: 0, 1: 1, 999: 1, 1000: 1, 1001: 2, 2500: 3} {
		if got := o.Packages(over); got != want {
			t.Errorf("Packages(%d) = %d, want %d", over, got, want)
		}
	}
}

// A limited meter alerts at 80% and 100% unless the plans file says
// otherwise; an unlimited one has nothing to alert about.
func TestAlertThresholds(t *testing.T) {
	c, err := Parse([]byte("meters:\n  - {name: api_calls, reset: monthly}\n  - {name: tokens, reset: monthly}\n  - {name: seats, reset: never}\n"+
		"plans:\n  - {id: free, name: Free, rate_limit_per_second: 1, limits: {api_calls: {limit: 10}, tokens: {limit: 5, alerts: [50, 90]}, seats: {unlimited: true}}}\n"), "yaml")
	if err != nil {
		t.Fatal(err)
	}
	free := c.Free()
	for meter, want := range map[string][]int{"api_calls": DefaultAlerts, "tokens": {50, 90}, "seats": nil} {
		l, _ := free.LimitFor(meter)
		if !slices.Equal(l.Alerts, want) {
			t.Errorf("%s alerts = %v, want %v", meter, l.Alerts, want)
		}
	}
}

func TestLoadJSONFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plans.json")
	os.WriteFile(path, []byte(`{"meters":[{"name":"seats","reset":"never"}],
	  "plans":[{"id":"free","name":"Free","rate_limit_per_second":5,"limits":{"seats":{"limit":3,"hard":true}}},
	           {"id":"team","name":"Team","price_cents":1200,"stripe_price_id":"price_team","rate_limit_per_second":50,"limits":{"seats":{"unlimited":true}}}]}`), 0o644)
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := c.ByID("team"); !p.Paid() || p.Currency != "usd" || p.Interval != "month" {
		t.Fatalf("team = %+v", p)
	}
}

// TestInvalidPlansFiles: each mistake is caught at load, with a message that
// says what is wrong.
func TestInvalidPlansFiles(t *testing.T) {
	const meters = "meters:\n  - {name: api_calls, reset: monthly}\n"
	const free = "  - {id: free, name: Free, rate_limit_per_second: 1, limits: {api_calls: {limit: 10}}}\n"
	cases := []struct{ name, yaml, want string }{
		{"duplicate plan id", meters + "plans:\n" + free + free, "duplicate plan id"},
		{"limit on an unknown meter", meters + "plans:\n  - {id: free, name: Free, rate_limit_per_second: 1, limits: {api_calls: {limit: 1}, tokens: {limit: 5}}}\n", `unknown meter "tokens"`},
		{"negative limit", meters + "plans:\n  - {id: free, name: Free, rate_limit_per_second: 1, limits: {api_calls: {limit: -1}}}\n", "must not be negative"},
		{"paid plan without a price id", meters + "plans:\n" + free + "  - {id: pro, name: Pro, price_cents: 900, rate_limit_per_second: 1, limits: {api_calls: {limit: 1}}}\n", "needs stripe_price_id"},
		{"meter left without a limit", meters + "plans:\n  - {id: free, name: Free, rate_limit_per_second: 1, limits: {}}\n", `no limit for meter "api_calls"`},
		{"unknown reset", "meters:\n  - {name: api_calls, reset: weekly}\nplans:\n" + free, "reset must be"},
		{"no free plan", meters + "plans:\n  - {id: pro, name: Pro, price_cents: 900, stripe_price_id: price_x, rate_limit_per_second: 1, limits: {api_calls: {limit: 1}}}\n", `"free" is required`},
		{"misspelt field", meters + "plans:\n  - {id: free, name: Free, rate_limit_per_secnd: 1, limits: {api_calls: {limit: 10}}}\n", "rate_limit_per_secnd"},
		{"zero rate limit", meters + "plans:\n  - {id: free, name: Free, limits: {api_calls: {limit: 10}}}\n", "rate_limit_per_second must be positive"},
		{"price id used twice", meters + "plans:\n" + free +
			"  - {id: a, name: A, price_cents: 1, stripe_price_id: price_x, rate_limit_per_second: 1, limits: {api_calls: {limit: 1}}}\n" +
			"  - {id: b, name: B, price_cents: 2, stripe_price_id: price_x, rate_limit_per_second: 1, limits: {api_calls: {limit: 1}}}\n", "also used by plan"},
		{"a yearly price used by another plan's list", meters + "plans:\n" + free +
			"  - {id: a, name: A, prices: [{id: price_m, interval: month, amount_cents: 1}, {id: price_y, interval: year, amount_cents: 10}], rate_limit_per_second: 1, limits: {api_calls: {limit: 1}}}\n" +
			"  - {id: b, name: B, prices: [{id: price_b, interval: month, amount_cents: 2}, {id: price_y, interval: year, amount_cents: 20}], rate_limit_per_second: 1, limits: {api_calls: {limit: 1}}}\n", `price "price_y" is also used by plan "a"`},
		{"a price of nothing", meters + "plans:\n" + free +
			"  - {id: a, name: A, prices: [{id: price_m, interval: month, amount_cents: 0}], rate_limit_per_second: 1, limits: {api_calls: {limit: 1}}}\n", "amount_cents must be positive"},
		{"a weekly price", meters + "plans:\n" + free +
			"  - {id: a, name: A, prices: [{id: price_w, interval: week, amount_cents: 5}], rate_limit_per_second: 1, limits: {api_calls: {limit: 1}}}\n", "interval must be month or year"},
		{"two monthly prices in one currency", meters + "plans:\n" + free +
			"  - {id: a, name: A, prices: [{id: price_1, interval: month, amount_cents: 5}, {id: price_2, interval: month, amount_cents: 6}], rate_limit_per_second: 1, limits: {api_calls: {limit: 1}}}\n", "a second monthly price in usd"},
		{"a currency that is not ISO", meters + "plans:\n" + free +
			"  - {id: a, name: A, prices: [{id: price_1, interval: month, amount_cents: 5, currency: dollars}], rate_limit_per_second: 1, limits: {api_calls: {limit: 1}}}\n", "3-letter ISO code"},
		{"stripe_price_id that is not the monthly price", meters + "plans:\n" + free +
			"  - {id: a, name: A, stripe_price_id: price_y, prices: [{id: price_m, interval: month, amount_cents: 5}, {id: price_y, interval: year, amount_cents: 50}], rate_limit_per_second: 1, limits: {api_calls: {limit: 1}}}\n", "is not its monthly price"},
		{"overage on a hard limit", meters + "plans:\n" + free +
			"  - {id: a, name: A, stripe_price_id: price_a, price_cents: 5, rate_limit_per_second: 1, limits: {api_calls: {limit: 1, hard: true, overage: {unit_amount_cents: 50, per: 1000}}}}\n", "needs a soft limit"},
		{"overage on the free plan", meters + "plans:\n" +
			"  - {id: free, name: Free, rate_limit_per_second: 1, limits: {api_calls: {limit: 10, overage: {unit_amount_cents: 50, per: 1000}}}}\n", "needs a paid plan"},
		{"overage on a meter that never resets", "meters:\n  - {name: api_calls, reset: never}\nplans:\n" + free +
			"  - {id: a, name: A, stripe_price_id: price_a, price_cents: 5, rate_limit_per_second: 1, limits: {api_calls: {limit: 1, overage: {unit_amount_cents: 50, per: 1000}}}}\n", "needs a monthly meter"},
		{"overage per zero units", meters + "plans:\n" + free +
			"  - {id: a, name: A, stripe_price_id: price_a, price_cents: 5, rate_limit_per_second: 1, limits: {api_calls: {limit: 1, overage: {unit_amount_cents: 50, per: 0}}}}\n", "per must be a positive"},
		{"overage priced at nothing", meters + "plans:\n" + free +
			"  - {id: a, name: A, stripe_price_id: price_a, price_cents: 5, rate_limit_per_second: 1, limits: {api_calls: {limit: 1, overage: {per: 1000}}}}\n", "unit_amount_cents must be from 1"},
		{"overage with a misspelt field", meters + "plans:\n" + free +
			"  - {id: a, name: A, stripe_price_id: price_a, price_cents: 5, rate_limit_per_second: 1, limits: {api_calls: {limit: 1, overage: {unit_cents: 50, per: 1000}}}}\n", "unit_cents"},
		{"overage without a price in a currency the plan is sold in", meters + "plans:\n" + free +
			"  - {id: team, name: Team, prices: [{id: price_usd, interval: month, amount_cents: 500}, {id: price_eur, interval: month, amount_cents: 450, currency: eur}], rate_limit_per_second: 1, limits: {api_calls: {limit: 1, overage: {unit_amount_cents: 50, per: 1000}}}}\n",
			`plans[1] (team): overage on "api_calls" has no price in eur, which the plan is sold in (price "price_eur")`},
		{"overage priced in some of the plan's currencies but not all", meters + "plans:\n" + free +
			"  - {id: team, name: Team, prices: [{id: price_usd, interval: month, amount_cents: 500}, {id: price_eur, interval: month, amount_cents: 450, currency: eur}, {id: price_jpy, interval: year, amount_cents: 8000, currency: jpy}], rate_limit_per_second: 1, limits: {api_calls: {limit: 1, overage: {unit_amount_cents: 50, per: 1000, currency_amounts: {eur: 45}}}}}\n",
			`overage on "api_calls" has no price in jpy`},
		{"overage priced in a currency the plan is not sold in", meters + "plans:\n" + free +
			"  - {id: a, name: A, stripe_price_id: price_a, price_cents: 5, rate_limit_per_second: 1, limits: {api_calls: {limit: 1, overage: {unit_amount_cents: 50, per: 1000, currency_amounts: {eru: 45}}}}}\n",
			"currency_amounts names eru, which none of the plan's prices is in"},
		{"overage priced twice in the plan's own currency", meters + "plans:\n" + free +
			"  - {id: a, name: A, stripe_price_id: price_a, price_cents: 5, rate_limit_per_second: 1, limits: {api_calls: {limit: 1, overage: {unit_amount_cents: 50, per: 1000, currency_amounts: {usd: 45}}}}}\n",
			"the plan's own currency"},
		{"overage priced at nothing in another currency", meters + "plans:\n" + free +
			"  - {id: a, name: A, prices: [{id: price_usd, interval: month, amount_cents: 500}, {id: price_eur, interval: month, amount_cents: 450, currency: eur}], rate_limit_per_second: 1, limits: {api_calls: {limit: 1, overage: {unit_amount_cents: 50, per: 1000, currency_amounts: {eur: 0}}}}}\n",
			"currency_amounts: eur must be from 1"},
		{"an alert above 100%", meters + "plans:\n" +
			"  - {id: free, name: Free, rate_limit_per_second: 1, limits: {api_calls: {limit: 10, alerts: [80, 120]}}}\n", "threshold 120 must be a percentage from 1 to 100"},
		{"an alert at 0%", meters + "plans:\n" +
			"  - {id: free, name: Free, rate_limit_per_second: 1, limits: {api_calls: {limit: 10, alerts: [0]}}}\n", "from 1 to 100"},
		{"alerts out of order", meters + "plans:\n" +
			"  - {id: free, name: Free, rate_limit_per_second: 1, limits: {api_calls: {limit: 10, alerts: [90, 50]}}}\n", "must be ascending (50 after 90)"},
		{"an alert named twice", meters + "plans:\n" +
			"  - {id: free, name: Free, rate_limit_per_second: 1, limits: {api_calls: {limit: 10, alerts: [50, 50]}}}\n", "50 is listed twice"},
	}
	// Plan names are shown on the billing page and in messages: text a
	// person reads follows usertext's rule wherever it comes from.
	for _, name := range []string{`Free\u202EeerF`, `Free\a`, `Fr\u200Bee`, `Free\uFFFE`, `Free\uE000`, `Free\u2028`, `  `} {
		cases = append(cases, struct{ name, yaml, want string }{"plan name " + name,
			meters + "plans:\n  - {id: free, name: \"" + name + "\", rate_limit_per_second: 1, limits: {api_calls: {limit: 10}}}\n",
			"plans[0] (free): name"})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), "yaml")
			if err == nil {
				t.Fatal("accepted an invalid plans file")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Fatal("a missing plans file was accepted")
	}
}

// An overage package may cost up to the most Stripe charges at once in its
// currency, 99,999,999 minor units (twelve digits in IDR): worth ¥99,999,999
// in a zero-decimal currency and 99,999.999 KWD in a three-decimal one, not
// a sum that is $10,000 in USD and about $40 in VND. The refusal names
// the bound in the currency's own units.
func TestOveragePriceIsBoundedByWhatStripeChargesInItsCurrency(t *testing.T) {
	// plan is sold in usd and in currency, with overage as given.
	plan := func(currency, overage string) string {
		return "meters:\n  - {name: api_calls, reset: monthly}\nplans:\n" +
			"  - {id: free, name: Free, rate_limit_per_second: 1, limits: {api_calls: {limit: 10}}}\n" +
			"  - {id: team, name: Team, prices: [{id: price_usd, interval: month, amount_cents: 500}, " +
			"{id: price_x, interval: month, amount_cents: 5000, currency: " + currency + "}], rate_limit_per_second: 1, " +
			"limits: {api_calls: {limit: 1, overage: {" + overage + "}}}}\n"
	}
	// only is sold in currency alone, its overage amount minor units of it
	// a unit.
	only := func(currency string, amount int64) string {
		return "meters:\n  - {name: api_calls, reset: monthly}\nplans:\n" +
			"  - {id: free, name: Free, rate_limit_per_second: 1, limits: {api_calls: {limit: 10}}}\n" +
			fmt.Sprintf("  - {id: team, name: Team, prices: [{id: price_x, interval: month, amount_cents: 5000, currency: %s}], rate_limit_per_second: 1, "+
				"limits: {api_calls: {limit: 1, overage: {unit_amount_cents: %d, per: 1}}}}\n", currency, amount)
	}
	for _, tc := range []struct {
		name, yaml string
		want       string // "" when the file is valid
	}{
		{"5,000,000 VND (about $200) a package", only("vnd", 5_000_000), ""},
		{"the most Stripe charges in yen", only("jpy", 99_999_999), ""},
		{"one yen more", only("jpy", 100_000_000),
			`overage on "api_calls": unit_amount_cents must be from 1 to 99999999 minor units of jpy (99999999 JPY, the most Stripe charges at once), got 100000000`},
		{"the most Stripe charges in dinars", plan("kwd", "unit_amount_cents: 50, per: 1000, currency_amounts: {kwd: 99999999}"), ""},
		{"one fils more", plan("kwd", "unit_amount_cents: 50, per: 1000, currency_amounts: {kwd: 100000000}"),
			`overage on "api_calls": currency_amounts: kwd must be from 1 to 99999999 minor units of kwd (99999.999 KWD, the most Stripe charges at once), got 100000000`},
		{"a million dollars a package", only("usd", 100_000_000), "(999999.99 USD, the most Stripe charges at once)"},
		{"five hundred million rupiah a package", only("idr", 50_000_000_000), ""},
		{"a package priced at nothing", only("jpy", 0), "unit_amount_cents must be from 1 to 99999999 minor units of jpy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), "yaml")
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && err == nil:
				t.Fatal("accepted")
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}
}
