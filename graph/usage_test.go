package graph_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-billing/tollgate/internal/apptest"
	"github.com/tollgate-billing/tollgate/internal/auth"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/orgs"
	"github.com/tollgate-billing/tollgate/internal/usage"
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
		Accepted, Duplicates, RejectedCount int
		Rejected                            []struct {
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
		if ext["meter"] != "api_calls" || fmt.Sprint(ext["used"]) != "1000" || fmt.Sprint(ext["limit"]) != "1000" {
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
	h.App.DB.Model(&orgs.Organization{}).Where("id = ?", org.Organization.ID).Update("plan_id", "enterprise")
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

// A plan's rate limit is an entitlement of the host's product: usageGate
// answers it as data (allowed false, RATE_LIMITED, retryAfterMs), never as
// HTTP 429, and other queries are not held to it.
func TestThePlanRateLimitIsAnsweredByTheGate(t *testing.T) {
	h := apptest.New(t, apptest.Options{PlanRateLimits: true})
	var sub struct {
		Subscription struct{ RateLimitPerMinute int }
	}
	h.Query("noisy", `{ subscription { rateLimitPerMinute } }`, nil).Decode(t, &sub)
	if sub.Subscription.RateLimitPerMinute != 600 {
		t.Errorf("free plan rateLimitPerMinute = %d, want 600 (10 a second)", sub.Subscription.RateLimitPerMinute)
	}
	for range 15 { // not held to the plan's 10 a second
		if r := h.Query("noisy", `{ plans { id } }`, nil); r.Status != http.StatusOK || len(r.Errors) > 0 {
			t.Fatalf("plans query answered %d %+v", r.Status, r.Errors)
		}
	}
	type gate struct {
		UsageGate struct {
			Allowed      bool
			Reason       string
			RetryAfterMs *int
		}
	}
	limited := 0
	for range 30 {
		r := h.Query("noisy", `{ usageGate(meter: "api_calls") { allowed reason retryAfterMs } }`, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("usageGate answered HTTP %d; the plan's rate is data", r.Status)
		}
		var g gate
		r.Decode(t, &g)
		switch {
		case g.UsageGate.Allowed && g.UsageGate.Reason == "OK":
		case !g.UsageGate.Allowed && g.UsageGate.Reason == "RATE_LIMITED" && g.UsageGate.RetryAfterMs != nil && *g.UsageGate.RetryAfterMs > 0:
			limited++
		default:
			t.Fatalf("gate answered %+v", g.UsageGate)
		}
	}
	if limited < 10 {
		t.Fatalf("only %d of 30 gates in a burst were rate limited at 10 a second", limited)
	}
	var quiet gate
	h.Query("quiet", `{ usageGate(meter: "api_calls") { allowed reason retryAfterMs } }`, nil).Decode(t, &quiet)
	if !quiet.UsageGate.Allowed {
		t.Fatalf("another org was limited: %+v", quiet.UsageGate)
	}
}

// aliasedFields is an operation of n root fields, each field aliased.
func aliasedFields(n int, field string) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		fmt.Fprintf(&b, " f%d: %s", i, field)
	}
	return b.String() + " }"
}

// Tollgate's own limit charges work, not requests: each root field, aliases
// included, costs one unit of the credential's budget, and the refusal is an
// HTTP 429 with Retry-After.
func TestAliasesAreChargedAsWork(t *testing.T) {
	h := apptest.New(t, apptest.Options{Redis: true, Env: map[string]string{"API_RATE_LIMIT_PER_CREDENTIAL": "20"}})
	aliased := func(n int) string { return aliasedFields(n, `usageGate(meter: "api_calls") { allowed }`) }
	tok := map[string]string{"Authorization": "Bearer " + h.Token("acme")}
	if r := h.Do(tok, aliased(15), nil); r.Status != http.StatusOK || len(r.Errors) > 0 {
		t.Fatalf("15 root fields of a 20 budget: %d %+v", r.Status, r.Errors)
	}
	r := h.Do(tok, aliased(15), nil)
	if r.Status != http.StatusTooManyRequests || r.Code() != "RATE_LIMITED" {
		t.Fatalf("30 root fields of a 20 a second budget answered %d %+v, want 429 RATE_LIMITED", r.Status, r.Errors)
	}
	if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("Retry-After %q, want whole seconds", r.Header.Get("Retry-After"))
	}
	if r := h.Do(tok, aliased(25), nil); r.Code() != "TOO_MUCH_WORK" {
		t.Errorf("25 root fields against a budget of 20 answered %d %+v, want TOO_MUCH_WORK", r.Status, r.Errors)
	}
}

const consumeUsage = `mutation($in: ConsumeUsageInput!) { consumeUsage(input: $in) {
  allowed reason retryAfterMs usage { meter used limit remaining } userErrors { field code } } }`

// consumeUsage answers input mistakes as userErrors, refusals as data, and
// needs usage:write.
func TestConsumeUsageOverGraphQL(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	type payload struct {
		ConsumeUsage struct {
			Allowed bool
			Reason  *string
			Usage   *struct {
				Meter string
				Used  int64
				Limit *int64
			}
			UserErrors []struct{ Field, Code string }
		}
	}
	var ok payload
	h.Query("acme", consumeUsage, map[string]any{"in": map[string]any{"meter": "api_calls", "quantity": 1000, "idempotencyKey": "k1"}}).Decode(t, &ok)
	if c := ok.ConsumeUsage; !c.Allowed || *c.Reason != "OK" || c.Usage.Used != 1000 || *c.Usage.Limit != 1000 {
		t.Fatalf("consume the free plan's 1,000 calls: %+v", c)
	}
	var over payload
	h.Query("acme", consumeUsage, map[string]any{"in": map[string]any{"meter": "api_calls", "quantity": 1, "idempotencyKey": "k2"}}).Decode(t, &over)
	if c := over.ConsumeUsage; c.Allowed || *c.Reason != "USAGE_LIMIT_EXCEEDED" || c.Usage.Used != 1000 {
		t.Fatalf("one past a hard limit: %+v", c)
	}
	var bad payload
	h.Query("acme", consumeUsage, map[string]any{"in": map[string]any{"meter": "nope", "quantity": 1, "idempotencyKey": "k3"}}).Decode(t, &bad)
	if c := bad.ConsumeUsage; c.Allowed || c.Reason == nil || *c.Reason != "INVALID_INPUT" || len(c.UserErrors) != 1 || c.UserErrors[0].Field != "input.meter" || c.UserErrors[0].Code != "UNKNOWN_METER" {
		t.Fatalf("unknown meter: %+v", c)
	}
	readOnly := map[string]string{"Authorization": "Bearer " + h.Token("acme", auth.BillingRead)}
	if r := h.Do(readOnly, consumeUsage, map[string]any{"in": map[string]any{"meter": "api_calls", "quantity": 1, "idempotencyKey": "k4"}}); r.Code() != "FORBIDDEN" {
		t.Fatalf("billing:read only: %+v", r.Errors)
	}
}

// TestUsageReadsOfAMonthPastRetentionAreUnchanged: retention drops a month
// of raw events whole; what usage, usageByEndpoint and usageSeries answer
// for that month stays the same, since they read the rollups.
func TestUsageReadsOfAMonthPastRetentionAreUnchanged(t *testing.T) {
	january := time.Date(2031, 1, 10, 9, 0, 0, 0, time.UTC)
	apptest.EachDialect(t, apptest.Options{Clock: clock.NewFake(january)}, func(t *testing.T, h *apptest.Harness) {
		ctx := context.Background()
		h.Clock.Set(january)
		if _, err := h.App.Usage.MaintainHistory(ctx, 13); err != nil { // January's partitions
			t.Fatal(err)
		}
		var rec recordResult
		h.Query("acme", recordUsage, map[string]any{"events": events("api_calls", "a", "b", "c")}).Decode(t, &rec)
		if rec.RecordUsage.Accepted != 3 {
			t.Fatalf("recorded %+v", rec.RecordUsage)
		}
		const read = `{
  usage(period: "2031-01") { periodStart periodEnd meters { meter used } }
  usageByEndpoint(period: "2031-01", meter: "api_calls") { endpoint meter used }
  usageSeries(meter: "api_calls", from: "2031-01-01", to: "2031-01-31") { date used }
}`
		// Fourteen months on, January 2031 is past the default 13 months.
		h.Clock.Set(time.Date(2032, 3, 1, 0, 0, 0, 0, time.UTC))
		before := h.Query("acme", read, nil)
		if _, err := h.App.Usage.MaintainHistory(ctx, h.App.Config.UsageEventsRetentionMonths); err != nil {
			t.Fatal(err)
		}
		var raw int64
		if err := h.App.DB.Raw("SELECT COUNT(*) FROM usage_events").Scan(&raw).Error; err != nil || raw != 0 {
			t.Fatalf("%d raw events left after retention (%v)", raw, err)
		}
		after := h.Query("acme", read, nil)
		if len(before.Errors)+len(after.Errors) > 0 || !strings.Contains(string(before.Data), `"used":3`) {
			t.Fatalf("reads failed or miss January's usage: %s %+v %+v", before.Data, before.Errors, after.Errors)
		}
		if string(after.Data) != string(before.Data) {
			t.Fatalf("usage reads changed with retention:\nbefore %s\nafter  %s", before.Data, after.Data)
		}
	})
}

// TestRecordUsageIsPricedPerEvent: each event a recordUsage sends counts
// towards the complexity limit (5,000), whether the events come in a
// variable or are written out, so aliased calls cannot send more than the
// limit's worth of events in one request; a refused request stores nothing.
func TestRecordUsageIsPricedPerEvent(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	org := "priced-per-event"
	in := func(prefix string) map[string]any {
		events := make([]any, 1000)
		for i := range events {
			events[i] = map[string]any{"meter": "api_calls", "quantity": 1, "idempotencyKey": fmt.Sprintf("%s-%d", prefix, i)}
		}
		return map[string]any{"in": map[string]any{"events": events}}
	}
	// aliased is n recordUsage fields sharing $in, and one more with
	// literal events written out.
	aliased := func(n, literal int) string {
		var b strings.Builder
		b.WriteString("mutation R($in: RecordUsageInput!) {")
		for i := range n {
			fmt.Fprintf(&b, " r%d: recordUsage(input: $in) { accepted }", i)
		}
		if literal > 0 {
			b.WriteString(" lit: recordUsage(input: {events: [")
			for i := range literal {
				fmt.Fprintf(&b, `{meter: "api_calls", quantity: 1, idempotencyKey: "lit-%d"} `, i)
			}
			b.WriteString("]}) { accepted }")
		}
		b.WriteString(" }")
		return b.String()
	}
	for _, tc := range []struct {
		name              string
		aliases, literals int
	}{
		{"6 × 1,000 events in a variable", 6, 0},
		{"4 × 1,000 in a variable and 1,000 written out", 4, 1000},
	} {
		r := h.Query(org, aliased(tc.aliases, tc.literals), in("over"))
		if r.Code() != "COMPLEXITY_LIMIT_EXCEEDED" {
			t.Fatalf("%s: code %q, want COMPLEXITY_LIMIT_EXCEEDED (%+v)", tc.name, r.Code(), r.Errors)
		}
	}
	// 4 × the same 1,000 events are within the limit, and count once.
	if r := h.Query(org, aliased(4, 0), in("ok")); len(r.Errors) > 0 {
		t.Fatalf("4 × 1,000 events: %+v", r.Errors)
	}
	used := h.Query(org, `{ usageGate(meter: "api_calls") { used } }`, nil)
	if len(used.Errors) > 0 || !strings.Contains(string(used.Data), `"used":1000`) {
		t.Fatalf("usage after the refused and accepted calls: %s %+v, want 1000", used.Data, used.Errors)
	}
}

// A key counted for one event and sent again with another is rejected by
// recordUsage (IDEMPOTENCY_KEY_REUSED) and refused by consumeUsage as a
// userError, even at the hard limit; the same event again is still a
// duplicate, and consumeUsage still answers its retry allowed.
func TestAReusedIdempotencyKeyIsRefusedOverGraphQL(t *testing.T) {
	apptest.EachDialect(t, apptest.Options{}, func(t *testing.T, h *apptest.Harness) {
		event := func(meter string, quantity int64, key string) map[string]any {
			return map[string]any{"meter": meter, "quantity": quantity, "idempotencyKey": key, "endpoint": "POST /v1/search"}
		}
		var first recordResult
		h.Query("acme", recordUsage, map[string]any{"events": []map[string]any{event("api_calls", 1, "k")}}).Decode(t, &first)
		if first.RecordUsage.Accepted != 1 {
			t.Fatalf("first: %+v", first.RecordUsage)
		}
		var again recordResult
		h.Query("acme", recordUsage, map[string]any{"events": []map[string]any{
			event("llm_tokens", 1, "k"), event("api_calls", 2, "k"), event("api_calls", 1, "k"),
			event("api_calls", 1, "n"), event("llm_tokens", 9, "n"),
		}}).Decode(t, &again)
		got := map[int]string{}
		for _, r := range again.RecordUsage.Rejected {
			got[r.Index] = r.Code
		}
		if r := again.RecordUsage; r.Accepted != 1 || r.Duplicates != 1 ||
			fmt.Sprint(got) != fmt.Sprint(map[int]string{0: "IDEMPOTENCY_KEY_REUSED", 1: "IDEMPOTENCY_KEY_REUSED", 4: "IDEMPOTENCY_KEY_REUSED"}) {
			t.Fatalf("again: %+v; want events 0, 1 and 4 rejected as reuses, 2 a duplicate, 3 counted", r)
		}

		type payload struct {
			ConsumeUsage struct {
				Allowed    bool
				Reason     *string
				Usage      *struct{ Used int64 }
				UserErrors []struct{ Field, Code string }
			}
		}
		consume := func(meter string, quantity int64, key string) payload {
			var p payload
			h.Query("acme", consumeUsage, map[string]any{"in": event(meter, quantity, key)}).Decode(t, &p)
			return p
		}
		reused := func(p payload) bool {
			c := p.ConsumeUsage
			return !c.Allowed && c.Reason != nil && *c.Reason == "INVALID_INPUT" && len(c.UserErrors) == 1 &&
				c.UserErrors[0].Field == "input.idempotencyKey" && c.UserErrors[0].Code == "IDEMPOTENCY_KEY_REUSED"
		}
		for _, full := range []bool{false, true} {
			if full {
				if p := consume("api_calls", 998, "fill"); !p.ConsumeUsage.Allowed || p.ConsumeUsage.Usage.Used != 1000 {
					t.Fatalf("fill to the limit: %+v", p.ConsumeUsage)
				}
			}
			if p := consume("llm_tokens", 5, "k"); !reused(p) {
				t.Fatalf("full %t: another meter under a counted key: %+v", full, p.ConsumeUsage)
			}
			if p := consume("api_calls", 3, "k"); !reused(p) {
				t.Fatalf("full %t: another quantity under a counted key: %+v", full, p.ConsumeUsage)
			}
			if p := consume("api_calls", 1, "k"); !p.ConsumeUsage.Allowed || *p.ConsumeUsage.Reason != "OK" {
				t.Fatalf("full %t: the same event again: %+v, want allowed", full, p.ConsumeUsage)
			}
		}
		var usage struct {
			Usage struct {
				Meters []struct {
					Meter string
					Used  int64
				}
			}
		}
		h.Query("acme", `{ usage { meters { meter used } } }`, nil).Decode(t, &usage)
		for _, m := range usage.Usage.Meters {
			if m.Meter == "llm_tokens" && m.Used != 0 || m.Meter == "api_calls" && m.Used != 1000 {
				t.Errorf("%s used %d after the reuses", m.Meter, m.Used)
			}
		}
	})
}

// TestA429ForTooManyRootFieldsSaysWhatIsLeft: an operation of more root
// fields than the credential has left is refused with 429, charged only its
// first unit, and X-RateLimit-Remaining says what is left (as GitHub's
// header and the IETF draft's RateLimit-Remaining give the quota left),
// not 0: a smaller operation then passes. At 1,000 a second the first unit
// comes from a lease, at 20 from Redis.
func TestA429ForTooManyRootFieldsSaysWhatIsLeft(t *testing.T) {
	for _, limit := range []int{20, 1000} {
		t.Run(strconv.Itoa(limit), func(t *testing.T) {
			h := apptest.New(t, apptest.Options{Redis: true, Env: map[string]string{"API_RATE_LIMIT_PER_CREDENTIAL": strconv.Itoa(limit)}})
			tok := map[string]string{"Authorization": "Bearer " + h.Token("acme")}
			start := time.Now()
			refilled := func() int { return int(time.Since(start).Seconds()*float64(limit)) + 1 }
			if r := h.Do(tok, aliasedFields(limit/2, "__typename"), nil); r.Status != http.StatusOK || len(r.Errors) > 0 {
				t.Fatalf("%d fields of %d: %d %+v", limit/2, limit, r.Status, r.Errors)
			}
			r := h.Do(tok, aliasedFields(limit, "__typename"), nil)
			if r.Status != http.StatusTooManyRequests || r.Code() != "RATE_LIMITED" {
				t.Fatalf("%d fields more: %d %+v, want 429 RATE_LIMITED", limit, r.Status, r.Errors)
			}
			// Both first units and the first operation's fields are spent.
			rem, err := strconv.Atoi(r.Header.Get("X-RateLimit-Remaining"))
			if most := limit - limit/2 - 1 + refilled(); err != nil || rem < 1 || rem > most || rem >= limit-1 {
				t.Fatalf("429 for %d fields: X-RateLimit-Remaining %q, want 1 to %d", limit, r.Header.Get("X-RateLimit-Remaining"), most)
			}
			if r := h.Do(tok, aliasedFields(rem/2+1, "__typename"), nil); r.Status != http.StatusOK || len(r.Errors) > 0 {
				t.Fatalf("%d fields after the 429 said %d remain: %d %+v", rem/2+1, rem, r.Status, r.Errors)
			}
		})
	}
}

// TestRateLimitHeadersTellTheWholeCharge: X-RateLimit-Remaining is what is
// left after the request's whole charge, every root field counted, so an
// operation that spends the budget says so and the next one's 429 says
// less remains than it asked for, with Retry-After and X-RateLimit-Reset no
// sooner than it. At 1,000 a second the first unit comes from a lease, at
// 20 from Redis.
func TestRateLimitHeadersTellTheWholeCharge(t *testing.T) {
	for _, limit := range []int{20, 1000} {
		t.Run(strconv.Itoa(limit), func(t *testing.T) {
			h := apptest.New(t, apptest.Options{Redis: true, Env: map[string]string{"API_RATE_LIMIT_PER_CREDENTIAL": strconv.Itoa(limit)}})
			tok := map[string]string{"Authorization": "Bearer " + h.Token("acme")}
			aliased := func(n int) string { return aliasedFields(n, "__typename") }
			header := func(r apptest.Response, name string) int {
				t.Helper()
				v, err := strconv.Atoi(r.Header.Get(name))
				if err != nil {
					t.Fatalf("%s %q: %v", name, r.Header.Get(name), err)
				}
				return v
			}
			start := time.Now()
			// The budget refills at limit a second while the test runs.
			refilled := func() int { return int(time.Since(start).Seconds()*float64(limit)) + 1 }

			r := h.Do(tok, aliased(1), nil)
			if r.Status != http.StatusOK || header(r, "X-RateLimit-Limit") != limit {
				t.Fatalf("one field: %d, Limit %q", r.Status, r.Header.Get("X-RateLimit-Limit"))
			}
			if rem := header(r, "X-RateLimit-Remaining"); rem > limit-1 || rem < limit-1-refilled() {
				t.Fatalf("one field of %d: Remaining %d", limit, rem)
			}
			big := limit - 1 - refilled() // what surely is left
			r = h.Do(tok, aliased(big), nil)
			if r.Status != http.StatusOK || len(r.Errors) > 0 {
				t.Fatalf("%d fields: %d %+v", big, r.Status, r.Errors)
			}
			if rem := header(r, "X-RateLimit-Remaining"); rem > refilled() || rem < 0 {
				t.Fatalf("after 1 + %d of %d: Remaining %d, want at most the %d refilled since", big, limit, rem, refilled())
			}
			if reset := header(r, "X-RateLimit-Reset"); reset != 1 {
				t.Errorf("a spent budget: Reset %d, want 1", reset)
			}
			r = h.Do(tok, aliased(big), nil)
			if r.Status != http.StatusTooManyRequests || r.Code() != "RATE_LIMITED" {
				t.Fatalf("%d fields more: %d %+v, want 429 RATE_LIMITED", big, r.Status, r.Errors)
			}
			retry, reset := header(r, "Retry-After"), header(r, "X-RateLimit-Reset")
			if rem := header(r, "X-RateLimit-Remaining"); rem < 0 || rem >= big || header(r, "X-RateLimit-Limit") != limit || retry < 1 || reset < retry {
				t.Errorf("429: Limit %d Remaining %d Reset %d Retry-After %d", header(r, "X-RateLimit-Limit"), rem, reset, retry)
			}
		})
	}
}

// TestAWholeSecondsBudgetRunsInOneOperation: the API budget is root fields a
// second, so one operation of exactly the budget runs on a full budget and
// one field more is refused with TOO_MUCH_WORK; each size is sent by a
// credential of its own, so each starts with a full second's budget.
func TestAWholeSecondsBudgetRunsInOneOperation(t *testing.T) {
	const budget = 20
	h := apptest.New(t, apptest.Options{Redis: true, Env: map[string]string{"API_RATE_LIMIT_PER_CREDENTIAL": strconv.Itoa(budget)}})
	for _, n := range []int{budget - 1, budget, budget + 1} {
		tok := map[string]string{"Authorization": "Bearer " + h.Token(fmt.Sprintf("org-%d", n))}
		r := h.Do(tok, aliasedFields(n, "__typename"), nil)
		if n <= budget {
			if r.Status != http.StatusOK || len(r.Errors) > 0 {
				t.Errorf("%d root fields of a %d budget: %d %+v", n, budget, r.Status, r.Errors)
			}
			continue
		}
		if r.Code() != "TOO_MUCH_WORK" {
			t.Errorf("%d root fields of a %d budget: %d %+v, want TOO_MUCH_WORK", n, budget, r.Status, r.Errors)
		}
	}
}

// TestUsageGateAsksAboutAQuantity: usageGate(quantity: N) answers what
// consumeUsage of N units would, on the prepared path and the generated
// code alike, and refuses a quantity no event could carry as input.
func TestUsageGateAsksAboutAQuantity(t *testing.T) {
	apptest.EachDialect(t, apptest.Options{}, func(t *testing.T, h *apptest.Harness) {
		const limit, used = 1000, 990 // the free plan's hard limit on api_calls
		bearer := map[string]string{"Authorization": "Bearer " + h.Token("acme")}
		fill := []map[string]any{{"meter": "api_calls", "quantity": used, "idempotencyKey": "fill"}}
		var out recordResult
		h.Query("acme", recordUsage, map[string]any{"events": fill}).Decode(t, &out)
		if out.RecordUsage.Accepted != 1 {
			t.Fatalf("fill: %+v", out)
		}
		cases := []struct {
			name     string
			quantity string // the argument as written, "" for none
			allowed  bool
		}{
			{"default of one", "", true},
			{"within", ", quantity: 5", true},
			{"exactly to the limit", fmt.Sprintf(", quantity: %d", limit-used), true},
			{"one past the limit", fmt.Sprintf(", quantity: %d", limit-used+1), false},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				doc := `{ usageGate(meter: "api_calls"` + c.quantity + `)%s { allowed reason used remaining } }`
				r := sameAnswer(t, h, bearer, doc, nil)
				reason := map[bool]string{true: "OK", false: "USAGE_LIMIT_EXCEEDED"}[c.allowed]
				want := fmt.Sprintf(`{"usageGate":{"allowed":%t,"reason":"%s","used":%d,"remaining":%d}}`, c.allowed, reason, used, limit-used)
				if string(r.Data) != want {
					t.Fatalf("got %s, want %s (%+v)", r.Data, want, r.Errors)
				}
			})
		}
		var gate struct{ UsageGate struct{ Allowed bool } }
		vars := map[string]any{"m": "api_calls", "q": limit - used + 1}
		runs := preparedRuns()
		h.Query("acme", `query($m: String!, $q: Int64!) { usageGate(meter: $m, quantity: $q) { allowed } }`, vars).Decode(t, &gate)
		if gate.UsageGate.Allowed || preparedRuns() != runs+1 {
			t.Fatalf("a variable quantity past the limit: allowed %t, prepared path ran %v times", gate.UsageGate.Allowed, preparedRuns()-runs)
		}
		for _, q := range []string{"0", "-1", strconv.FormatInt(usage.MaxQuantity+1, 10)} {
			t.Run("quantity "+q, func(t *testing.T) {
				r := sameAnswer(t, h, bearer, `{ usageGate(meter: "api_calls", quantity: `+q+`)%s { allowed } }`, nil)
				if r.Code() != "BAD_USER_INPUT" || r.Errors[0].Extensions["field"] != "quantity" || r.Errors[0].Message == "" {
					t.Fatalf("errors = %+v", r.Errors)
				}
			})
		}
	})
}
