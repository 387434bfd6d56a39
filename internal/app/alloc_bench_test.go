package app_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tollgate-billing/tollgate/internal/apptest"
)

// BenchmarkGateRequest is one usageGate request through the whole handler
// (no network), for its allocations: go test -bench Gate -benchmem.
func BenchmarkGateRequest(b *testing.B) {
	h := apptest.New(b, apptest.Options{})
	org := "bench-gate"
	token := h.Token(org)
	if r := h.Query(org, `{ usageGate(meter: "api_calls") { allowed } }`, nil); len(r.Errors) > 0 {
		b.Fatalf("%+v", r.Errors)
	}
	handler := h.App.Handler()
	payload := []byte(`{"query":"query Gate($meter: String!) { usageGate(meter: $meter) { allowed used limit remaining plan billingStatus } }","variables":{"meter":"api_calls"}}`)
	b.ReportAllocs()
	for b.Loop() {
		serve(b, handler, token, bytes.NewReader(payload))
	}
}

// BenchmarkRecordRequest is one recordUsage of 1 and of 1,000 new events
// through the whole handler, for its allocations per event.
func BenchmarkRecordRequest(b *testing.B) {
	for _, size := range []int{1, 1000} {
		b.Run(fmt.Sprintf("events=%d", size), func(b *testing.B) { benchmarkRecord(b, size) })
	}
}

func benchmarkRecord(b *testing.B, size int) {
	h := apptest.New(b, apptest.Options{})
	token := enterpriseOrg(b, h, "bench-record")
	handler := h.App.Handler()
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		var buf bytes.Buffer
		buf.WriteString(`{"query":"mutation R($in: RecordUsageInput!) { recordUsage(input: $in) { accepted duplicates rejected { index code message } } }","variables":{"in":{"events":[`)
		for i := range size {
			if i > 0 {
				buf.WriteByte(',')
			}
			n++
			fmt.Fprintf(&buf, `{"meter":"api_calls","quantity":1,"idempotencyKey":"k-%d","endpoint":"POST /v1/x"}`, n)
		}
		buf.WriteString(`]}}}`)
		serve(b, handler, token, &buf)
	}
}

// enterpriseOrg creates the organisation on the enterprise plan (no hard
// limit to run into) and returns a token for it.
func enterpriseOrg(b *testing.B, h *apptest.Harness, org string) string {
	token := h.Token(org)
	if r := h.Query(org, `{ usageGate(meter: "api_calls") { allowed } }`, nil); len(r.Errors) > 0 {
		b.Fatalf("%+v", r.Errors)
	}
	if err := h.App.DB.Exec("UPDATE organizations SET plan_id = 'enterprise' WHERE external_id = ?", org).Error; err != nil {
		b.Fatal(err)
	}
	h.App.Usage.InvalidatePlan(orgID(b, h, org))
	return token
}

func orgID(b *testing.B, h *apptest.Harness, external string) string {
	var id string
	if err := h.App.DB.Raw("SELECT id FROM organizations WHERE external_id = ?", external).Scan(&id).Error; err != nil {
		b.Fatal(err)
	}
	return id
}

// serve posts one GraphQL request to handler and fails b unless it succeeds.
func serve(b *testing.B, handler http.Handler, token string, body io.Reader) {
	req := httptest.NewRequest(http.MethodPost, "/graphql", body)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	w := httptest.NewRecorder()
	handler.ServeHTTP(w, req)
	if w.Code != http.StatusOK || bytes.Contains(w.Body.Bytes(), []byte(`"errors"`)) {
		b.Fatalf("%d %s", w.Code, w.Body.Bytes())
	}
}

// BenchmarkRecordOneEventParallel is one-event recordUsage from 32
// concurrent callers, so group commit shares each transaction among them
// as it does under load: go test -bench OneEventParallel -cpuprofile cpu.out.
func BenchmarkRecordOneEventParallel(b *testing.B) {
	h := apptest.New(b, apptest.Options{})
	token := enterpriseOrg(b, h, "bench-record-par")
	handler := h.App.Handler()
	var n atomic.Int64
	b.SetParallelism(16) // 32 callers on 2 cores
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			body := fmt.Sprintf(`{"query":"mutation R($in: RecordUsageInput!) { recordUsage(input: $in) { accepted duplicates rejected { index code message } } }","variables":{"in":{"events":[{"meter":"api_calls","quantity":1,"idempotencyKey":"p-%d","endpoint":"POST /v1/x"}]}}}`, n.Add(1))
			serve(b, handler, token, strings.NewReader(body))
		}
	})
}

// BenchmarkGateRequestQuantity is BenchmarkGateRequest asking about 4,000
// units (an LLM call's tokens) through a variable.
func BenchmarkGateRequestQuantity(b *testing.B) {
	h := apptest.New(b, apptest.Options{})
	org := "bench-gate"
	token := h.Token(org)
	handler := h.App.Handler()
	payload := []byte(`{"query":"query Gate($meter: String!, $quantity: Int64!) { usageGate(meter: $meter, quantity: $quantity) { allowed used limit remaining plan billingStatus } }","variables":{"meter":"api_calls","quantity":4000}}`)
	b.ReportAllocs()
	for b.Loop() {
		serve(b, handler, token, bytes.NewReader(payload))
	}
}
