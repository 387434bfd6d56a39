package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-billing/tollgate/client/middleware"
	"github.com/tollgate-billing/tollgate/internal/apptest"
	"github.com/tollgate-billing/tollgate/internal/clock"
)

// The free plan allows 5 API calls at 1,000 a second; "slow" allows many at
// 2 a second.
const plans = `
meters:
  - {name: api_calls, reset: monthly}
  - {name: llm_tokens, reset: monthly}
  - {name: storage_bytes, reset: never}
plans:
  - id: free
    name: Free
    rate_limit_per_second: 1000
    limits:
      api_calls: {limit: 5, hard: true}
      llm_tokens: {limit: 10000, hard: true}
      storage_bytes: {limit: 1000, hard: true}
  - id: slow
    name: Slow
    rate_limit_per_second: 2
    limits:
      api_calls: {limit: 100000, hard: true}
      llm_tokens: {limit: 10000, hard: true}
      storage_bytes: {limit: 1000, hard: true}
`

type customer struct {
	org, key string
}

// signUp gives org an API key, as its developer would in GraphiQL.
func signUp(t *testing.T, tg *apptest.Harness, org string) customer {
	t.Helper()
	var out struct {
		CreateApiKey struct{ Secret string }
	}
	tg.Query(org, `mutation { createApiKey(input: {name: "my app", scopes: [USAGE_WRITE]}) { secret } }`, nil).Decode(t, &out)
	return customer{org, out.CreateApiKey.Secret}
}

func (c customer) do(t *testing.T, host, method, path, body string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, host+path, bytes.NewBufferString(body))
	req.Header.Set("X-API-Key", c.key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// The example host against a real Tollgate with a tiny free plan: exactly
// the limit is served, then 402 with the reference body; a burst over the
// plan's rate is answered 429 with Retry-After; usage counts what was served.
func TestTheExampleHostEndToEnd(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plans.yaml")
	if err := os.WriteFile(path, []byte(plans), 0o644); err != nil {
		t.Fatal(err)
	}
	tg := apptest.New(t, apptest.Options{Env: map[string]string{"PLANS_FILE": path}})
	h, closeHost := newHost(tg.Server.URL, middleware.Config{})
	host := httptest.NewServer(h)
	defer host.Close()

	acme := signUp(t, tg, "acme")
	for i := range 5 {
		if resp, body := acme.do(t, host.URL, "GET", "/v1/hello", ""); resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d of 5: %d %s", i+1, resp.StatusCode, body)
		}
	}
	resp, body := acme.do(t, host.URL, "GET", "/v1/hello", "")
	want := `{"error":"Usage limit exceeded","message":"API call would exceed the limit: 5 used + 1 requested > 5","usage":{"used":5,"requested":1,"limit":5,"remaining":0,"resetAt":"` + clock.MonthEnd(tg.Clock.Now()).Format(time.RFC3339) + `"}}`
	if resp.StatusCode != http.StatusPaymentRequired || body != want || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("6th request: %d %s %s\nwant 402 %s", resp.StatusCode, resp.Header.Get("Content-Type"), body, want)
	}
	if got := tg.Used("acme")["api_calls"]; got != 5 {
		t.Errorf("acme used %d api_calls, want the 5 served", got)
	}

	// A customer on the slow plan bursts.
	busy := signUp(t, tg, "busy")
	var o struct{ Organization struct{ ID string } }
	tg.Query("busy", `{ organization { id } }`, nil).Decode(t, &o)
	if err := tg.App.DB.Exec("UPDATE organizations SET plan_id = 'slow' WHERE id = ?", o.Organization.ID).Error; err != nil {
		t.Fatal(err)
	}
	tg.App.Usage.InvalidatePlan(o.Organization.ID)
	var wg sync.WaitGroup
	var mu sync.Mutex
	served, limited := 0, 0
	for range 10 {
		wg.Go(func() {
			resp, body := busy.do(t, host.URL, "GET", "/v1/hello", "")
			mu.Lock()
			defer mu.Unlock()
			switch resp.StatusCode {
			case http.StatusOK:
				served++
			case http.StatusTooManyRequests:
				limited++
				if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 {
					t.Errorf("429 with Retry-After %q", resp.Header.Get("Retry-After"))
				}
			default:
				t.Errorf("burst answered %d %s", resp.StatusCode, body)
			}
		})
	}
	wg.Wait()
	if limited == 0 || served < 2 {
		t.Errorf("burst of 10 at 2 a second: %d served, %d limited", served, limited)
	}

	// A completion is answered, then its tokens are recorded.
	writer := signUp(t, tg, "writer")
	resp, body = writer.do(t, host.URL, "POST", "/v1/complete", `{"prompt": "count these four words"}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("complete: %d %s", resp.StatusCode, body)
	}
	var completion struct {
		Usage struct{ Tokens int64 }
	}
	if err := json.Unmarshal([]byte(body), &completion); err != nil || completion.Usage.Tokens == 0 {
		t.Fatalf("completion %s: %v", body, err)
	}
	if err := closeHost(context.Background()); err != nil { // the host shutting down flushes
		t.Fatal(err)
	}
	if got := tg.Used("busy")["api_calls"]; got != int64(served) {
		t.Errorf("busy used %d api_calls, want the %d served", got, served)
	}
	if got := tg.Used("writer"); got["llm_tokens"] != completion.Usage.Tokens || got["api_calls"] != 1 {
		t.Errorf("writer used %v, want %d llm_tokens and 1 api_calls", got, completion.Usage.Tokens)
	}
}
