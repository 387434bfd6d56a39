package graph_test

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"

	"github.com/tollgate-billing/tollgate/internal/apptest"
	"github.com/tollgate-billing/tollgate/internal/store"
)

const recordUsage = `mutation($events: [UsageEventInput!]!) {
  recordUsage(input: {events: $events}) {
    accepted duplicates
    rejected { index code message }
    usage { meter used limit remaining unlimited overage }
    userErrors { field code }
  }
}`

type recordResult struct {
	RecordUsage struct {
		Accepted, Duplicates int
		Rejected             []struct {
			Index         int
			Code, Message string
		}
		Usage []struct {
			Meter            string
			Used             int64
			Limit, Remaining *int64
			Unlimited        bool
			Overage          int64
		}
		UserErrors []struct{ Field, Code string }
	}
}

func events(meter string, keys ...string) []map[string]any {
	out := make([]map[string]any, len(keys))
	for i, k := range keys {
		out[i] = map[string]any{"meter": meter, "quantity": 1, "idempotencyKey": k, "endpoint": "POST /v1/search"}
	}
	return out
}

// TestRecordUsageThroughAnAPIKey: a backend reports usage with a usage:write
// key, a retried key counts once, and the answer shows what is left.
func TestRecordUsageThroughAnAPIKey(t *testing.T) {
	apptest.EachDialect(t, apptest.Options{}, func(t *testing.T, h *apptest.Harness) {
		var created createKeyResult
		h.Query("acme", createKey, map[string]any{"in": map[string]any{"name": "backend", "scopes": []string{"USAGE_WRITE"}}}).Decode(t, &created)
		key := map[string]string{"X-API-Key": *created.CreateAPIKey.Secret}

		var first, retry recordResult
		h.Do(key, recordUsage, map[string]any{"events": events("api_calls", "a", "b", "c")}).Decode(t, &first)
		h.Do(key, recordUsage, map[string]any{"events": append(events("api_calls", "c", "d"), map[string]any{"meter": "nope", "quantity": 1, "idempotencyKey": "e"})}).Decode(t, &retry)
		if first.RecordUsage.Accepted != 3 || retry.RecordUsage.Accepted != 1 || retry.RecordUsage.Duplicates != 1 {
			t.Fatalf("accepted %d then %d (dups %d); want 3 then 1 (1)", first.RecordUsage.Accepted, retry.RecordUsage.Accepted, retry.RecordUsage.Duplicates)
		}
		if rj := retry.RecordUsage.Rejected; len(rj) != 1 || rj[0].Index != 2 || rj[0].Code != "UNKNOWN_METER" {
			t.Fatalf("rejected = %+v", rj)
		}
		u := retry.RecordUsage.Usage
		if len(u) != 1 || u[0].Used != 4 || *u[0].Limit != 1000 || *u[0].Remaining != 996 {
			t.Fatalf("usage = %+v", u)
		}
		if r := h.Do(key, `{ usage { meters { used } } }`, nil); r.Code() != "FORBIDDEN" {
			t.Fatalf("usage:write key read usage: %q", r.Code())
		}
		var gate struct {
			UsageGate struct {
				Allowed bool
				Used    int64
				Plan    string
			}
		}
		h.Do(key, `{ usageGate(meter: "api_calls") { allowed used plan } }`, nil).Decode(t, &gate)
		if !gate.UsageGate.Allowed || gate.UsageGate.Used != 4 || gate.UsageGate.Plan != "free" {
			t.Fatalf("gate = %+v", gate)
		}
		var byEndpoint struct {
			UsageByEndpoint []struct {
				Endpoint string
				Used     int64
			}
		}
		h.Query("acme", `{ usageByEndpoint(meter: "api_calls") { endpoint used } }`, nil).Decode(t, &byEndpoint)
		if len(byEndpoint.UsageByEndpoint) != 1 || byEndpoint.UsageByEndpoint[0].Used != 4 {
			t.Fatalf("by endpoint = %+v", byEndpoint)
		}
	})
}

// TestQuotaRefusalCarriesTheReferenceBody: when a whole request is over a
// hard limit, the error says which meter, how much is used and the limit.
func TestQuotaRefusalCarriesTheReferenceBody(t *testing.T) {
	apptest.EachDialect(t, apptest.Options{}, func(t *testing.T, h *apptest.Harness) {
		keys := make([]string, 1000)
		for i := range keys {
			keys[i] = "k" + strconv.Itoa(i)
		}
		var full recordResult
		h.Query("acme", recordUsage, map[string]any{"events": events("api_calls", keys...)}).Decode(t, &full)
		if full.RecordUsage.Accepted != 1000 {
			t.Fatalf("accepted %d of the free plan's 1000", full.RecordUsage.Accepted)
		}
		r := h.Query("acme", recordUsage, map[string]any{"events": events("api_calls", "one-too-many")})
		if r.Code() != "USAGE_LIMIT_EXCEEDED" {
			t.Fatalf("code = %q (%+v)", r.Code(), r.Errors)
		}
		ext := r.Errors[0].Extensions
		if ext["meter"] != "api_calls" || fmt.Sprint(ext["current"]) != "1000" || fmt.Sprint(ext["limit"]) != "1000" {
			t.Fatalf("extensions = %v", ext)
		}
		var gate struct{ UsageGate struct{ Allowed bool } }
		h.Query("acme", `{ usageGate(meter: "api_calls") { allowed } }`, nil).Decode(t, &gate)
		if gate.UsageGate.Allowed {
			t.Fatal("gate allows past a hard limit")
		}
	})
}

func TestUnlimitedMetersReadAsNull(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	var org struct{ Organization struct{ ID string } }
	h.Query("bigco", `{ organization { id } }`, nil).Decode(t, &org)
	// A contract plan is assigned by an operator, not through Stripe.
	h.App.DB.Model(&store.Organization{}).Where("id = ?", org.Organization.ID).Update("plan_id", "enterprise")
	h.App.Usage.InvalidatePlan(org.Organization.ID)
	var out struct {
		Usage struct {
			Meters []struct {
				Meter            string
				Limit, Remaining *int64
				Unlimited        bool
			}
		}
	}
	h.Query("bigco", `{ usage { meters { meter limit remaining unlimited } } }`, nil).Decode(t, &out)
	if len(out.Usage.Meters) != 3 {
		t.Fatalf("meters = %+v", out.Usage.Meters)
	}
	for _, m := range out.Usage.Meters {
		if !m.Unlimited || m.Limit != nil || m.Remaining != nil {
			t.Fatalf("enterprise %s: %+v", m.Meter, m)
		}
	}
}

func TestBadUsageArgumentsAreClientErrors(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	cases := map[string]string{
		"a period that is not YYYY-MM": `{ usage(period: "2026-13") { periodStart } }`,
		"a date that is not a date":    `{ usageSeries(meter: "api_calls", from: "2026-02-30", to: "2026-03-01") { date } }`,
		"a series over 366 days":       `{ usageSeries(meter: "api_calls", from: "2024-01-01", to: "2026-01-01") { date } }`,
		"an unknown meter":             `{ usageGate(meter: "nope") { allowed } }`,
		"invoices page of zero":        `{ invoices(first: 0) { nodes { id } } }`,
		"a forged invoices cursor":     `{ invoices(after: "not-a-cursor") { nodes { id } } }`,
	}
	for name, q := range cases {
		t.Run(name, func(t *testing.T) {
			r := h.Query("acme", q, nil)
			if r.Code() != "BAD_USER_INPUT" || r.Errors[0].Message == "" {
				t.Fatalf("errors = %+v", r.Errors)
			}
		})
	}
	var out recordResult
	h.Query("acme", recordUsage, map[string]any{"events": []map[string]any{}}).Decode(t, &out)
	if ue := out.RecordUsage.UserErrors; len(ue) != 1 || ue[0].Field != "input.events" {
		t.Fatalf("empty batch: %+v", out)
	}
}

// TestFreePlanIsRateLimited: a free organisation sending more than 10
// requests a second gets 429 with Retry-After; another organisation is not
// slowed down.
func TestFreePlanIsRateLimited(t *testing.T) {
	h := apptest.New(t, apptest.Options{PlanRateLimits: true})
	noisy := map[string]string{"Authorization": "Bearer " + h.Token("noisy")}
	var mu sync.Mutex
	limited := 0
	var wg sync.WaitGroup
	for i := 0; i < 30; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := h.Send(noisy, `{ plans { id } }`, nil)
			if err != nil {
				t.Error(err)
				return
			}
			if r.Status == http.StatusTooManyRequests {
				if r.Header.Get("Retry-After") == "" || r.Code() != "RATE_LIMITED" {
					t.Errorf("429 without Retry-After or RATE_LIMITED: %v %+v", r.Header, r.Errors)
				}
				mu.Lock()
				limited++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if limited < 10 {
		t.Fatalf("only %d of 30 burst requests were limited", limited)
	}
	if r := h.Query("quiet", `{ plans { id } }`, nil); r.Status != http.StatusOK || len(r.Errors) > 0 {
		t.Fatalf("another org was limited: %d %+v", r.Status, r.Errors)
	}
}
