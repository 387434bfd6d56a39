package plans

import (
	"os"
	"path/filepath"
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
