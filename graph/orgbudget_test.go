package graph_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/tollgate-billing/tollgate/internal/apptest"
)

// TestAnOrganisationsAPIKeysShareItsAPIBudget: with
// API_RATE_LIMIT_PER_ORGANIZATION, two API keys of one organisation draw on
// one budget of root fields: what the first spent, the second cannot, and
// its operation is refused with 429 RATE_LIMITED though its own budget is
// untouched. Another organisation has its own budget, and an operation of
// more root fields than the organisation's whole second is TOO_MUCH_WORK.
func TestAnOrganisationsAPIKeysShareItsAPIBudget(t *testing.T) {
	const budget = 100
	h := apptest.New(t, apptest.Options{Redis: true, Env: map[string]string{"API_RATE_LIMIT_PER_ORGANIZATION": "100"}})
	key := func(name string) map[string]string {
		var created createKeyResult
		h.Query("acme", createKey, map[string]any{"in": map[string]any{
			"name": name, "contactEmail": "ops@acme.io", "scopes": []string{"BILLING_READ"},
		}}).Decode(t, &created)
		if created.CreateAPIKey.Secret == nil {
			t.Fatalf("create key %s: %+v", name, created.CreateAPIKey)
		}
		return map[string]string{"X-API-Key": *created.CreateAPIKey.Secret}
	}
	first, second := key("search"), key("ingest")

	start := time.Now()
	if r := h.Do(first, aliasedFields(60, "__typename"), nil); r.Status != http.StatusOK || len(r.Errors) > 0 {
		t.Fatalf("the first key's 60 fields: %d %+v", r.Status, r.Errors)
	}
	r := h.Do(second, aliasedFields(60, "__typename"), nil)
	// At most 40 are left, and 100 a second refill: 60 more pass only
	// after 0.2 s.
	if elapsed := time.Since(start); elapsed < 200*time.Millisecond && (r.Status != http.StatusTooManyRequests || r.Code() != "RATE_LIMITED") {
		t.Fatalf("the second key's 60 fields %v after the first's: %d %+v, want 429 RATE_LIMITED", elapsed, r.Status, r.Errors)
	}
	other := map[string]string{"Authorization": "Bearer " + h.Token("globex")}
	if r := h.Do(other, aliasedFields(60, "__typename"), nil); r.Status != http.StatusOK || len(r.Errors) > 0 {
		t.Fatalf("another organisation's 60 fields: %d %+v, want its own budget", r.Status, r.Errors)
	}
	if r := h.Do(other, aliasedFields(budget+1, "__typename"), nil); r.Code() != "TOO_MUCH_WORK" {
		t.Fatalf("%d fields at an organisation budget of %d: %d %+v, want TOO_MUCH_WORK", budget+1, budget, r.Status, r.Errors)
	}
}

// TestAnOrganisationsAPIKeysShareItsPlanRate: the plan's rate limit is the
// organisation's, not each credential's: two API keys of an organisation on
// the free plan (10 gates a second) together get 10 allowed gates in a
// burst, not 10 each, and another organisation is not held to theirs.
func TestAnOrganisationsAPIKeysShareItsPlanRate(t *testing.T) {
	h := apptest.New(t, apptest.Options{PlanRateLimits: true})
	key := func(org, name string) map[string]string {
		var created createKeyResult
		h.Query(org, createKey, map[string]any{"in": map[string]any{
			"name": name, "contactEmail": "ops@acme.io", "scopes": []string{"BILLING_READ"},
		}}).Decode(t, &created)
		if created.CreateAPIKey.Secret == nil {
			t.Fatalf("create key %s: %+v", name, created.CreateAPIKey)
		}
		return map[string]string{"X-API-Key": *created.CreateAPIKey.Secret}
	}
	keys := []map[string]string{key("noisy", "search"), key("noisy", "ingest")}
	quiet := key("quiet", "search")
	type gate struct{ UsageGate struct{ Allowed bool } }
	const query = `{ usageGate(meter: "api_calls") { allowed } }`
	start := time.Now()
	allowed := 0
	for i := range 30 {
		var g gate
		h.Do(keys[i%2], query, nil).Decode(t, &g)
		if g.UsageGate.Allowed {
			allowed++
		}
	}
	// 10 a second refill while the burst runs.
	if most := 10 + int(time.Since(start).Seconds()*10) + 1; allowed < 10 || allowed > most {
		t.Fatalf("two keys of one organisation: %d of 30 gates allowed, want 10 (at most %d with the refill)", allowed, most)
	}
	var g gate
	h.Do(quiet, query, nil).Decode(t, &g)
	if !g.UsageGate.Allowed {
		t.Fatal("another organisation was held to the first one's rate")
	}
}
