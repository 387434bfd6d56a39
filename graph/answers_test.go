package graph_test

import (
	"encoding/base64"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-billing/tollgate/internal/apptest"
	"github.com/tollgate-billing/tollgate/internal/clock"
)

// TestAWholeCallRefusalNeverReadsAsSuccess: a recordUsage call refused as a
// whole (more than 1,000 events) counts every event in rejectedCount, so a
// client selecting only the counters sees accepted + duplicates +
// rejectedCount equal to what it sent, and lists only the first 100 in
// rejected, so a call of thousands of events gets a small answer;
// consumeUsage refused for its input has a reason.
func TestAWholeCallRefusalNeverReadsAsSuccess(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	keys := make([]string, 4000)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
	}
	var out recordResult
	res := h.Query("acme", `mutation($events: [UsageEventInput!]!) { recordUsage(input: {events: $events}) { accepted duplicates rejectedCount rejected { index code } } }`,
		map[string]any{"events": events("api_calls", keys...)})
	res.Decode(t, &out)
	r := out.RecordUsage
	if got := r.Accepted + r.Duplicates + r.RejectedCount; got != len(keys) {
		t.Fatalf("accepted %d + duplicates %d + rejectedCount %d = %d, want the %d events sent", r.Accepted, r.Duplicates, r.RejectedCount, got, len(keys))
	}
	if len(r.Rejected) != 100 || r.Rejected[0].Code != "TOO_LONG" || r.Rejected[99].Index != 99 {
		t.Fatalf("rejected lists %d events (first %+v), want the first 100 with TOO_LONG", len(r.Rejected), r.Rejected[0])
	}
	if len(res.Body) > 10_000 {
		t.Fatalf("the refusal of %d events is %d bytes", len(keys), len(res.Body))
	}

	// A call refused event by event lists and counts each refused event.
	var one recordResult
	h.Query("acme", `mutation($events: [UsageEventInput!]!) { recordUsage(input: {events: $events}) { accepted duplicates rejectedCount rejected { index code } } }`,
		map[string]any{"events": []map[string]any{{"meter": "api_calls", "quantity": 1, "idempotencyKey": "ok"}, {"meter": "nope", "quantity": 1, "idempotencyKey": "bad"}}}).Decode(t, &one)
	if o := one.RecordUsage; o.Accepted != 1 || o.RejectedCount != 1 || len(o.Rejected) != 1 || o.Rejected[0].Index != 1 {
		t.Fatalf("one good and one unknown meter = %+v, want 1 accepted and event 1 rejected and counted", o)
	}

	var consumed struct {
		ConsumeUsage struct {
			Allowed bool
			Reason  *string
		}
	}
	h.Query("acme", `mutation { consumeUsage(input: {meter: "api_calls", quantity: -1, idempotencyKey: "neg"}) { allowed reason } }`, nil).Decode(t, &consumed)
	if c := consumed.ConsumeUsage; c.Allowed || c.Reason == nil || *c.Reason != "INVALID_INPUT" {
		t.Fatalf("consumeUsage of -1 = %+v (reason %v), want allowed false with reason INVALID_INPUT", c, c.Reason)
	}
}

// TestALimitRefusalSaysWhatIsUsedAndAsked: a 5,000-unit event with 2 of the
// free plan's 1,000 api_calls used is refused with the usage now, the
// amount asked for, what remains and when the period resets.
func TestALimitRefusalSaysWhatIsUsedAndAsked(t *testing.T) {
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	h := apptest.New(t, apptest.Options{Clock: clock.NewFake(now)})
	h.Query("acme", recordUsage, map[string]any{"events": events("api_calls", "a", "b")}).Decode(t, &recordResult{})
	big := []map[string]any{{"meter": "api_calls", "quantity": 5000, "idempotencyKey": "big"}}
	res := h.Query("acme", recordUsage, map[string]any{"events": big})
	if res.Code() != "USAGE_LIMIT_EXCEEDED" {
		t.Fatalf("code %q (%s), want USAGE_LIMIT_EXCEEDED", res.Code(), res.Body)
	}
	e := res.Errors[0]
	if want := "api_calls would exceed the limit: 2 used + 5000 requested > 1000"; e.Message != want {
		t.Errorf("message %q, want %q", e.Message, want)
	}
	want := map[string]string{"meter": "api_calls", "used": "2", "requested": "5000", "limit": "1000", "remaining": "998",
		"resetAt": "2027-01-01T00:00:00Z"}
	for k, v := range want {
		if got := fmt.Sprint(e.Extensions[k]); got != v {
			t.Errorf("extensions.%s = %s, want %s (all: %v)", k, got, v, e.Extensions)
		}
	}
	// consumeUsage's refusal carries the same numbers in its usage.
	var consumed struct {
		ConsumeUsage struct {
			Reason string
			Usage  struct {
				Used, Remaining int64
				ResetAt         string
			}
		}
	}
	h.Query("acme", `mutation { consumeUsage(input: {meter: "api_calls", quantity: 5000, idempotencyKey: "big"}) { reason usage { used remaining resetAt } } }`, nil).Decode(t, &consumed)
	if c := consumed.ConsumeUsage; c.Reason != "USAGE_LIMIT_EXCEEDED" || c.Usage.Used != 2 || c.Usage.Remaining != 998 || c.Usage.ResetAt != want["resetAt"] {
		t.Errorf("consumeUsage of 5000 = %+v, want USAGE_LIMIT_EXCEEDED with used 2, remaining 998, resetAt %s", c, want["resetAt"])
	}
}

// TestUsageSeriesEndsAtToday: usageSeries follows usage(period:)'s rule: a
// range that starts after today is refused, one that runs past it ends at
// today, so a running total is not carried into days that have not happened.
func TestUsageSeriesEndsAtToday(t *testing.T) {
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	h := apptest.New(t, apptest.Options{Clock: clock.NewFake(now)})
	up := []map[string]any{{"meter": "storage_bytes", "quantity": 5000, "idempotencyKey": "up"}}
	h.Query("acme", recordUsage, map[string]any{"events": up}).Decode(t, &recordResult{})

	res := h.Query("acme", `{ usageSeries(meter: "api_calls", from: "2027-01-01", to: "2027-01-03") { date used } }`, nil)
	if res.Code() != "BAD_USER_INPUT" || fmt.Sprint(res.Errors[0].Extensions["field"]) != "from" ||
		!strings.Contains(res.Errors[0].Message, "has not started yet") {
		t.Fatalf("a series of January 2027 answered %s, want BAD_USER_INPUT on from", res.Body)
	}
	var series struct {
		UsageSeries []struct {
			Date string
			Used int64
		}
	}
	h.Query("acme", `{ usageSeries(meter: "storage_bytes", from: "2026-12-03", to: "2026-12-06") { date used } }`, nil).Decode(t, &series)
	if got := fmt.Sprint(series.UsageSeries); got != "[{2026-12-03 0} {2026-12-04 5000}]" {
		t.Fatalf("series %s, want the 3rd and today (the 4th) only", got)
	}
}

// TestUsageGateShowsOverageOnASoftLimit: past a soft limit the gate still
// allows, and says so: hard false, the overage, as usage does.
func TestUsageGateShowsOverageOnASoftLimit(t *testing.T) {
	h := apptest.New(t, apptest.Options{Env: map[string]string{
		"PLANS_FILE": plansFileWith(t, "api_calls:     { limit: 1000, hard: true }", "api_calls:     { limit: 1000, hard: false }"),
	}})
	keys := make([]string, 1003)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
	}
	h.Query("acme", recordUsage, map[string]any{"events": events("api_calls", keys[:1000]...)}).Decode(t, &recordResult{})
	h.Query("acme", recordUsage, map[string]any{"events": events("api_calls", keys[1000:]...)}).Decode(t, &recordResult{})
	var gate struct {
		UsageGate struct {
			Allowed, Unlimited, Hard bool
			Used, Overage            int64
			Remaining                *int64
			Reset, ResetAt           string
		}
	}
	h.Query("acme", `{ usageGate(meter: "api_calls") { allowed used remaining unlimited overage hard reset resetAt } }`, nil).Decode(t, &gate)
	g := gate.UsageGate
	if !g.Allowed || g.Used != 1003 || g.Overage != 3 || g.Hard || g.Unlimited || g.Reset != "MONTHLY" || g.ResetAt != monthEnd(h) ||
		g.Remaining == nil || *g.Remaining != 0 {
		t.Fatalf("gate %+v, want allowed with used 1003, overage 3, soft, monthly", g)
	}
}

// TestTheREADMEUsageExamplesRunOnAFreshInstall sends the README's usage
// operations, in order, to a new organisation: none is refused, in whole or
// for one event.
func TestTheREADMEUsageExamplesRunOnAFreshInstall(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	block := string(readme)
	start, end := strings.Index(block, "# Usage: record"), strings.Index(block, "# Require Ed25519")
	if start < 0 || end < start {
		t.Fatal("the README's usage examples are no longer between '# Usage: record' and '# Require Ed25519'")
	}
	var ops []string
	for _, line := range strings.Split(block[start:end], "\n") {
		switch {
		case strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "":
		case strings.HasPrefix(line, "mutation") || strings.HasPrefix(line, "{"):
			ops = append(ops, line)
		case len(ops) > 0:
			ops[len(ops)-1] += "\n" + line
		}
	}
	if len(ops) < 6 {
		t.Fatalf("found %d usage operations in the README, want at least 6", len(ops))
	}
	h := apptest.New(t, apptest.Options{Clock: clock.NewFake(time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC))})
	for _, op := range ops {
		res := h.Query("acme", op, nil)
		// A rejected event and a userError both carry a code.
		if len(res.Errors) > 0 || strings.Contains(string(res.Data), `"code"`) {
			t.Errorf("%s\nanswered %s", op, res.Body)
		}
	}
}

// TestOneWordingPerErrorKind: an unknown id answers NOT_FOUND naming the
// argument with the mutations' sentence, and every list answers a bad
// cursor with the same BAD_USER_INPUT on `after`.
func TestOneWordingPerErrorKind(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	res := h.Query("acme", `{ webhookDeliveries(endpointId: "00000000-0000-0000-0000-000000000000") { id } }`, nil)
	if res.Code() != "NOT_FOUND" || res.Errors[0].Message != "No such webhook endpoint in this organisation." ||
		fmt.Sprint(res.Errors[0].Extensions["field"]) != "endpointId" {
		t.Errorf("webhookDeliveries of an unknown endpoint answered %s", res.Body)
	}
	for _, q := range []string{
		`{ invoices(after: "nope") { pageInfo { hasNextPage } } }`,
		`{ apiKeys(after: "nope") { id } }`,
		`{ usageByEndpoint(meter: "api_calls", after: "nope") { endpoint } }`,
	} {
		res := h.Query("acme", q, nil)
		if res.Code() != "BAD_USER_INPUT" || res.Errors[0].Message != "after is not a cursor from this list" ||
			fmt.Sprint(res.Errors[0].Extensions["field"]) != "after" {
			t.Errorf("%s answered %s", q, res.Body)
		}
	}
}

// monthEnd is when h's current month ends, as a Time field answers it.
func monthEnd(h *apptest.Harness) string {
	return clock.MonthEnd(h.Clock.Now()).Format(time.RFC3339)
}

// TestAHandMadeCursorOfUnstorableTextIsBadInput: a cursor is base64 a
// client can write by hand; one whose fields hold a NUL or bytes that are
// not UTF-8 is refused as a bad cursor, as any other hand-made one is, and
// never reaches the database (Postgres refused the query, which answered
// INTERNAL).
func TestAHandMadeCursorOfUnstorableTextIsBadInput(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	var rec recordResult
	h.Query("acme", `mutation { recordUsage(input: {events: [{meter: "api_calls", quantity: 2, idempotencyKey: "c1", endpoint: "GET /a"}]}) { accepted } }`, nil).Decode(t, &rec)
	if rec.RecordUsage.Accepted != 1 {
		t.Fatalf("recordUsage accepted %d, want 1", rec.RecordUsage.Accepted)
	}
	cursor := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for _, c := range []struct{ query, after string }{
		{`query($a: String) { usageByEndpoint(after: $a) { endpoint } }`, cursor("e1|2|api_calls|GET /a\x00")},
		{`query($a: String) { usageByEndpoint(after: $a) { endpoint } }`, cursor("e1|2|api_calls|GET /\xff")},
		{`query($a: String) { usageByEndpoint(after: $a) { endpoint } }`, cursor("e1|2|api\x00calls|GET /a")},
		{`query($a: String) { invoices(after: $a) { pageInfo { hasNextPage } } }`, cursor("v1|2026-01-01T00:00:00Z|in_\xfe")},
	} {
		res := h.Query("acme", c.query, map[string]any{"a": c.after})
		if res.Code() != "BAD_USER_INPUT" || res.Errors[0].Message != "after is not a cursor from this list" {
			t.Errorf("%s with after %q answered %s", c.query, c.after, res.Body)
		}
	}
}
