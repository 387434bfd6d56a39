package client_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate-billing/tollgate/client"
	"github.com/tollgate-billing/tollgate/internal/apptest"
)

// fastRetry keeps retry tests quick; the backoff shape is the same.
var fastRetry = client.WithRetry(client.Retry{Attempts: 5, Base: time.Millisecond, Max: 5 * time.Millisecond})

// bearer is a credential with every scope, as a dashboard would have.
func bearer(h *apptest.Harness, org string) client.Credential {
	tok := h.Token(org)
	return client.CredentialFunc(func(r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+tok)
		return nil
	})
}

// result lets a call's two results be checked in one expression:
// need(client.Plans(ctx, tg)).on(t).
type result[T any] struct {
	v   T
	err error
}

func need[T any](v T, err error) result[T] { return result[T]{v, err} }

func (r result[T]) on(t *testing.T) T {
	t.Helper()
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.v
}

// Every operation of the schema, through the generated functions, against
// a real Tollgate.
func TestEveryOperationAgainstARealTollgate(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	ctx := context.Background()
	tg := client.New(h.Server.URL, bearer(h, "acme"))

	org := need(client.Organization(ctx, tg)).on(t)
	if org.Organization.ExternalId != "acme" {
		t.Errorf("organization %+v", org.Organization)
	}
	pl := need(client.Plans(ctx, tg)).on(t)
	if len(pl.Plans) == 0 || pl.Plans[0].Id != "free" {
		t.Errorf("plans %+v", pl.Plans)
	}
	sub := need(client.Subscription(ctx, tg)).on(t)
	if sub.Subscription.Plan.Id != "free" || sub.Subscription.Id != nil || sub.Subscription.Price != nil ||
		sub.Subscription.RateLimitPerMinute != sub.Subscription.Plan.RateLimitPerSecond*60 {
		t.Errorf("subscription %+v", sub.Subscription)
	}

	created := need(client.CreateApiKey(ctx, tg, client.CreateApiKeyInput{Name: "backend", Scopes: []client.Scope{client.ScopeUsageWrite}})).on(t)
	if created.CreateApiKey.Secret == nil || created.CreateApiKey.ApiKey == nil {
		t.Fatalf("createApiKey %+v", created.CreateApiKey)
	}
	keyID := created.CreateApiKey.ApiKey.Id
	keys := need(client.ApiKeys(ctx, tg)).on(t)
	if len(keys.ApiKeys) != 1 || keys.ApiKeys[0].Id != keyID {
		t.Errorf("apiKeys %+v", keys.ApiKeys)
	}

	// The key, signed: registerSigningKey, then a signed call passes and an
	// unsigned one is refused.
	pub, priv, _ := ed25519.GenerateKey(nil)
	reg := need(client.RegisterSigningKey(ctx, tg, client.RegisterSigningKeyInput{ApiKeyId: keyID, PublicKey: base64.StdEncoding.EncodeToString(pub)})).on(t)
	if reg.RegisterSigningKey.ApiKey == nil || !reg.RegisterSigningKey.ApiKey.SigningRequired {
		t.Fatalf("registerSigningKey %+v", reg.RegisterSigningKey)
	}
	signed := tg.For(client.SignedAPIKey(*created.CreateApiKey.Secret, priv))
	gate := need(client.UsageGate(ctx, signed, "api_calls")).on(t)
	if !gate.UsageGate.Allowed || gate.UsageGate.Reason != client.UsageReasonOk {
		t.Errorf("usageGate %+v", gate.UsageGate)
	}
	if _, err := client.UsageGate(ctx, tg.For(client.APIKey(*created.CreateApiKey.Secret)), "api_calls"); !client.IsCode(err, client.CodeUnauthenticated) {
		t.Errorf("unsigned call with a signing key: %v, want UNAUTHENTICATED", err)
	}

	consumed := need(client.ConsumeUsage(ctx, signed, client.ConsumeUsageInput{Meter: "llm_tokens", Quantity: 40, IdempotencyKey: "c1"})).on(t)
	if !consumed.ConsumeUsage.Allowed || consumed.ConsumeUsage.Usage.Used != 40 {
		t.Errorf("consumeUsage %+v", consumed.ConsumeUsage)
	}
	ep := "POST /v1/search"
	rec := need(client.RecordUsage(ctx, signed, client.RecordUsageInput{Events: []client.UsageEventInput{
		{Meter: "api_calls", Quantity: 3, IdempotencyKey: "r1", Endpoint: &ep},
	}})).on(t)
	if rec.RecordUsage.Accepted != 1 {
		t.Errorf("recordUsage %+v", rec.RecordUsage)
	}
	u := need(client.Usage(ctx, tg, nil)).on(t)
	if len(u.Usage.Meters) == 0 {
		t.Errorf("usage %+v", u.Usage)
	}
	by := need(client.UsageByEndpoint(ctx, tg, nil, nil, nil, nil)).on(t)
	if len(by.UsageByEndpoint) != 1 || by.UsageByEndpoint[0].Endpoint != ep || by.UsageByEndpoint[0].Used != 3 {
		t.Errorf("usageByEndpoint %+v", by.UsageByEndpoint)
	}
	today := h.Clock.Now().UTC().Format(time.DateOnly)
	series := need(client.UsageSeries(ctx, tg, "api_calls", today, today)).on(t)
	if len(series.UsageSeries) != 1 || series.UsageSeries[0].Used != 3 {
		t.Errorf("usageSeries %+v", series.UsageSeries)
	}
	inv := need(client.Invoices(ctx, tg, nil, nil, nil)).on(t)
	if len(inv.Invoices.Nodes) != 0 || inv.Invoices.PageInfo.HasNextPage {
		t.Errorf("invoices %+v", inv.Invoices)
	}

	revoked := need(client.RevokeApiKey(ctx, tg, keyID)).on(t)
	if revoked.RevokeApiKey.ApiKey == nil || revoked.RevokeApiKey.ApiKey.RevokedAt == nil {
		t.Errorf("revokeApiKey %+v", revoked.RevokeApiKey)
	}

	// Billing without Stripe configured, and without a subscription: the
	// operations answer, with their refusals typed.
	if _, err := client.CreateCheckoutSession(ctx, tg, client.CreateCheckoutSessionInput{Plan: "starter", SuccessUrl: "https://a.example/ok", CancelUrl: "https://a.example/no"}); !client.IsCode(err, "STRIPE_NOT_CONFIGURED") {
		t.Errorf("createCheckoutSession without Stripe: %v", err)
	}
	portal, err := client.CreatePortalSession(ctx, tg, client.CreatePortalSessionInput{ReturnUrl: "https://a.example/billing"})
	if refused := client.IsCode(err, "STRIPE_NOT_CONFIGURED") || (err == nil && len(portal.CreatePortalSession.UserErrors) > 0); !refused {
		t.Errorf("createPortalSession with no billing history: %+v, %v", portal, err)
	}
	if _, err := client.CancelSubscription(ctx, tg, nil); !client.IsCode(err, "STRIPE_NOT_CONFIGURED") {
		t.Errorf("cancelSubscription without Stripe: %v", err)
	}
	if _, err := client.ResumeSubscription(ctx, tg); !client.IsCode(err, "STRIPE_NOT_CONFIGURED") {
		t.Errorf("resumeSubscription without Stripe: %v", err)
	}
}

// A host that is its own identity provider mints usage:write tokens per
// organisation; they record usage and are refused what needs more.
func TestMintedOrganisationTokens(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	ctx := context.Background()
	minter := client.HS256Minter([]byte(apptest.Secret))
	tg := client.New(h.Server.URL, minter.Org("globex"))
	g := client.NewGate(tg)
	v := need(g.Consume(ctx, "api_calls", 2, "req-1", "GET /v1/hello")).on(t)
	if !v.Allowed || v.Used != 2 {
		t.Fatalf("consume %+v", v)
	}
	if h.Used("globex")["api_calls"] != 2 {
		t.Errorf("globex used %d, want 2", h.Used("globex")["api_calls"])
	}
	if _, err := client.Organization(ctx, tg); !client.IsCode(err, client.CodeForbidden) {
		t.Errorf("organization with usage:write: %v, want FORBIDDEN", err)
	}
}

// A host hands a signed-in user a billing:read token of their
// organisation (a billing page link): it reads,
// and is refused what needs billing:write. Org's tokens are only
// usage:write, and a host had to sign such tokens with a JWT library of its
// own.
func TestMintedTokenForAPersonHoldsItsScopes(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	ctx := context.Background()
	minter := client.HS256Minter([]byte(apptest.Secret))
	tok, err := minter.Token("globex", "alice@globex.example", "billing:read")
	if err != nil {
		t.Fatal(err)
	}
	bearer := client.CredentialFunc(func(r *http.Request) error { r.Header.Set("Authorization", "Bearer "+tok); return nil })
	tg := client.New(h.Server.URL, bearer)
	org, err := client.Organization(ctx, tg)
	if err != nil || org.Organization.ExternalId != "globex" {
		t.Fatalf("organization with billing:read: %+v, %v", org, err)
	}
	if _, err := client.CreatePortalSession(ctx, tg, client.CreatePortalSessionInput{ReturnUrl: "https://app.example/billing"}); !client.IsCode(err, client.CodeForbidden) {
		t.Errorf("createPortalSession with billing:read: %v, want FORBIDDEN", err)
	}
	if _, err := minter.Token("globex", "alice@globex.example"); err == nil {
		t.Error("a token without scopes was minted")
	}
}

// With JWT_AUDIENCE and JWT_ISSUER set, Tollgate refuses a minted token
// that does not name them, and takes one from a minter told them.
func TestMintedTokensNameTheConfiguredAudience(t *testing.T) {
	h := apptest.New(t, apptest.Options{Env: map[string]string{"JWT_AUDIENCE": "api://tollgate", "JWT_ISSUER": "https://host.example/"}})
	ctx := context.Background()
	unbound := client.HS256Minter([]byte(apptest.Secret))
	_, err := client.NewGate(client.New(h.Server.URL, unbound.Org("globex"))).Consume(ctx, "api_calls", 1, "req-1", "GET /")
	var e *client.Error
	if !errors.As(err, &e) || e.Code != client.CodeUnauthenticated || e.Reason != "TOKEN_CLAIMS_INVALID" {
		t.Fatalf("a token without aud and iss: %v, want UNAUTHENTICATED (TOKEN_CLAIMS_INVALID)", err)
	}
	bound := client.HS256Minter([]byte(apptest.Secret))
	bound.Audience, bound.Issuer = "api://tollgate", "https://host.example/"
	v := need(client.NewGate(client.New(h.Server.URL, bound.Org("globex"))).Consume(ctx, "api_calls", 1, "req-2", "GET /")).on(t)
	if !v.Allowed || v.Used != 1 {
		t.Fatalf("consume with a bound token: %+v", v)
	}
}

// A Retry-After no Tollgate sends (from a proxy, say) is read within a
// day and never as a negative wait: seconds near 2^63 / 1e9 used to wrap.
func TestRetryAfterStaysInRange(t *testing.T) {
	for header, want := range map[string]time.Duration{
		"7":                   7 * time.Second,
		"9223372037":          24 * time.Hour,
		"9223372036854775807": 24 * time.Hour,
		"-5":                  0,
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", header)
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, `{"errors":[{"message":"slow down","extensions":{"code":"RATE_LIMITED"}}]}`)
		}))
		_, err := client.Organization(context.Background(), client.New(srv.URL, nil))
		srv.Close()
		var e *client.Error
		if !errors.As(err, &e) || e.Code != client.CodeRateLimited || e.RetryAfter != want {
			t.Errorf("Retry-After %s: %v (RetryAfter %v), want RATE_LIMITED after %v", header, err, e, want)
		}
	}
}

// flaky forwards each request to Tollgate, and answers the first n with
// UNAVAILABLE instead of Tollgate's answer: the write happened, the client
// did not hear of it.
type flaky struct {
	target string
	n      int
	mu     sync.Mutex
	bodies [][]byte
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.bodies = append(f.bodies, body)
	attempt := len(f.bodies)
	f.mu.Unlock()
	req, _ := http.NewRequestWithContext(r.Context(), r.Method, f.target+r.URL.Path, bytes.NewReader(body))
	req.Header = r.Header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	if attempt <= f.n {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"errors":[{"message":"the database is briefly unavailable","extensions":{"code":"UNAVAILABLE","retryable":true}}],"data":null}`))
		return
	}
	w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

func TestRetriesUnderUnavailableSendTheSameKeysAndCountOnce(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	proxy := &flaky{target: h.Server.URL, n: 2}
	srv := httptest.NewServer(proxy)
	defer srv.Close()
	tg := client.New(srv.URL, bearer(h, "acme"), fastRetry)

	events := []client.UsageEventInput{
		{Meter: "api_calls", Quantity: 5, IdempotencyKey: "a"},
		{Meter: "api_calls", Quantity: 7, IdempotencyKey: "b"},
	}
	rec := need(client.RecordUsage(context.Background(), tg, client.RecordUsageInput{Events: events})).on(t)
	if len(proxy.bodies) != 3 {
		t.Fatalf("%d attempts, want 3 (two UNAVAILABLE, then the answer)", len(proxy.bodies))
	}
	for i, b := range proxy.bodies[1:] {
		if !bytes.Equal(b, proxy.bodies[0]) {
			t.Errorf("attempt %d sent %s, not the first attempt's %s", i+2, b, proxy.bodies[0])
		}
	}
	if rec.RecordUsage.Accepted != 0 || rec.RecordUsage.Duplicates != 2 {
		t.Errorf("last answer %+v: the first attempt counted both events, so the last should see duplicates", rec.RecordUsage)
	}
	if got := h.Used("acme")["api_calls"]; got != 12 {
		t.Errorf("used %d after three deliveries, want 12, counted once", got)
	}

	// A client error is never retried.
	proxy.bodies, proxy.n = nil, 0
	bad := tg.For(client.APIKey("tg_test_not-a-key"))
	if _, err := client.UsageGate(context.Background(), bad, "api_calls"); !client.IsCode(err, client.CodeUnauthenticated) {
		t.Fatalf("unknown key: %v", err)
	}
	if len(proxy.bodies) != 1 {
		t.Errorf("a refused credential was sent %d times, want once", len(proxy.bodies))
	}
}

func TestTransportFailuresAreRetried(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			// Drop the connection without an answer.
			conn, _, _ := http.NewResponseController(w).Hijack()
			conn.Close()
			return
		}
		http.Redirect(w, r, h.Server.URL+"/graphql", http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	tg := client.New(srv.URL, bearer(h, "acme"), fastRetry)
	v := need(client.NewGate(tg).Consume(context.Background(), "api_calls", 1, "once", "")).on(t)
	if !v.Allowed || v.Used != 1 || calls.Load() != 2 {
		t.Errorf("verdict %+v after %d calls, want allowed at 1 used after 2", v, calls.Load())
	}
}

func ExampleGate_Consume() {
	tg := client.New("http://127.0.0.1:8080", client.APIKey("tg_live_…"))
	v, err := client.NewGate(tg).Consume(context.Background(), "api_calls", 1, "req-42", "GET /v1/hello")
	if err != nil {
		return // Tollgate unreachable: fail open or closed, your choice
	}
	if !v.Allowed {
		fmt.Println("refused:", v.Reason)
	}
}

func ExampleRecorder() {
	base := client.New("http://127.0.0.1:8080", nil)
	minter := client.HS256Minter([]byte("the JWT_SECRET Tollgate verifies with"))
	rec := client.NewRecorder(func(org string) *client.Client { return base.For(minter.Org(org)) }, client.RecorderOptions{})
	defer rec.Close(context.Background())
	_ = rec.Record(context.Background(), "acme", client.Event{Meter: "llm_tokens", Quantity: 1234})
}

// TestCheckQuantityAnswersAsConsumeWould: Gate.CheckQuantity asks
// usageGate about N units, so a check of exactly what is left under a hard
// limit is allowed and one more is not, as Consume would judge them.
func TestCheckQuantityAnswersAsConsumeWould(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	ctx := context.Background()
	g := client.NewGate(client.New(h.Server.URL, bearer(h, "acme")))
	const limit, spent = 1000, 990 // the free plan's hard limit on api_calls
	need(g.Consume(ctx, "api_calls", spent, "fill", "")).on(t)
	for q, allowed := range map[int64]bool{1: true, limit - spent: true, limit - spent + 1: false} {
		v := need(g.CheckQuantity(ctx, "api_calls", q)).on(t)
		if v.Allowed != allowed || v.Used != spent || *v.Remaining != limit-spent {
			t.Errorf("check of %d: %+v, want allowed %t", q, v, allowed)
		}
		if !allowed && v.Reason != client.UsageReasonUsageLimitExceeded {
			t.Errorf("check of %d refused for %s", q, v.Reason)
		}
	}
	if _, err := g.CheckQuantity(ctx, "api_calls", 0); !client.IsCode(err, "BAD_USER_INPUT") {
		t.Errorf("check of 0: %v, want BAD_USER_INPUT", err)
	}
	if h.Used("acme")["api_calls"] != spent {
		t.Errorf("checks counted usage: %d", h.Used("acme")["api_calls"])
	}
}

// TestSigningWithOnlyTheKeysID: a host that registered a signing key may
// send only the key's id, and sign, through the client or on a request of
// its own (the README's raw-HTTP example); a signature by another key is
// refused.
func TestSigningWithOnlyTheKeysID(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	ctx := context.Background()
	tg := client.New(h.Server.URL, bearer(h, "acme"))
	created := need(client.CreateApiKey(ctx, tg, client.CreateApiKeyInput{Name: "backend", Scopes: []client.Scope{client.ScopeUsageWrite}})).on(t)
	keyID := created.CreateApiKey.ApiKey.Id
	pub, priv, _ := ed25519.GenerateKey(nil)
	reg := need(client.RegisterSigningKey(ctx, tg, client.RegisterSigningKeyInput{ApiKeyId: keyID, PublicKey: base64.StdEncoding.EncodeToString(pub)})).on(t)
	if reg.RegisterSigningKey.ApiKey == nil || !reg.RegisterSigningKey.ApiKey.SigningRequired {
		t.Fatalf("registerSigningKey %+v", reg.RegisterSigningKey)
	}

	gate := need(client.UsageGate(ctx, tg.For(client.SignedAPIKeyID(keyID, priv)), "api_calls")).on(t)
	if !gate.UsageGate.Allowed {
		t.Errorf("usageGate signed with the key's id: %+v", gate.UsageGate)
	}
	_, other, _ := ed25519.GenerateKey(nil)
	if _, err := client.UsageGate(ctx, tg.For(client.SignedAPIKeyID(keyID, other)), "api_calls"); !client.IsCode(err, client.CodeUnauthenticated) {
		t.Errorf("signed by another key: %v, want UNAUTHENTICATED", err)
	}

	// A request of the host's own, as the README shows it.
	body := []byte(`{"query":"{ usageGate(meter: \"api_calls\") { allowed used } }"}`)
	req, _ := http.NewRequest("POST", h.Server.URL+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if err := client.SignedAPIKeyID(keyID, priv).Authorize(req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !bytes.Contains(answer, []byte(`"allowed":true`)) {
		t.Errorf("raw signed request: %d %s", resp.StatusCode, answer)
	}
}
