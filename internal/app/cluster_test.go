package app_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/tollgate-billing/tollgate/internal/apptest"
	"github.com/tollgate-billing/tollgate/internal/redisconn"
	"github.com/tollgate-billing/tollgate/internal/signing"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

type gateAnswer struct {
	UsageGate struct {
		Allowed bool
		Used    int64
		Limit   *int64
	}
}

func gateOf(t *testing.T, h *apptest.Harness, ext string) gateAnswer {
	t.Helper()
	var g gateAnswer
	h.Query(ext, gateQuery, map[string]any{"meter": "api_calls"}).Decode(t, &g)
	return g
}

func recordVia(t *testing.T, h *apptest.Harness, ext string, quantity int64, key string) {
	t.Helper()
	var out struct {
		RecordUsage struct {
			Accepted   int
			UserErrors []struct{ Field, Code string }
		}
	}
	h.Query(ext, recordUsageMutation, map[string]any{"e": map[string]any{"meter": "api_calls", "quantity": quantity, "idempotencyKey": key}}).Decode(t, &out)
	if out.RecordUsage.Accepted != 1 {
		t.Fatalf("recordUsage of %d: %+v", quantity, out)
	}
}

// TestOnAClusterTheGateAnswersThroughTheApp: usage recorded through the API
// shows in usageGate, for organisations whose counters sit on different
// masters, and the hard limit stops the organisation that reached it only.
func TestOnAClusterTheGateAnswersThroughTheApp(t *testing.T) {
	rdb := testenv.RedisClusterClient(t)
	h := apptest.New(t, apptest.Options{RedisClient: rdb})
	var orgs []string
	for i := range 6 {
		orgs = append(orgs, fmt.Sprintf("ext-cluster-gate-%d-%s", i, store.NewID()[:8]))
	}
	limit := gateOf(t, h, orgs[0]).UsageGate.Limit
	if limit == nil {
		t.Fatal("the free plan's api_calls has no limit; this test needs one")
	}
	for i, ext := range orgs {
		q := int64(i + 1)
		if i == 0 {
			q = *limit
		}
		recordVia(t, h, ext, q, "k")
	}
	for i, ext := range orgs {
		want := int64(i + 1)
		if i == 0 {
			want = *limit
		}
		g := gateOf(t, h, ext).UsageGate
		if g.Used != want || g.Allowed != (want < *limit) {
			t.Errorf("org %d: gate used %d allowed %t, want %d and %t", i, g.Used, g.Allowed, want, want < *limit)
		}
	}
}

// TestOnAClusterARevokedKeyStopsWorkingOnTheOtherReplica: a key remembered
// by one replica stops working there within two seconds of its revocation
// on another, through a cluster.
func TestOnAClusterARevokedKeyStopsWorkingOnTheOtherReplica(t *testing.T) {
	db, rdb := testenv.DB(t), testenv.RedisClusterClient(t)
	a := apptest.New(t, apptest.Options{DB: db, RedisClient: rdb})
	b := apptest.New(t, apptest.Options{DB: db, RedisClient: rdb})
	ext := "ext-cluster-revoke-" + store.NewID()[:8]
	secret, keyID := createAPIKey(t, a, ext)
	asKey := func(h *apptest.Harness) apptest.Response {
		return h.Do(map[string]string{"X-API-Key": secret}, `{ organization { externalId } }`, nil)
	}
	// Remembered on b once its key cache trusts Redis and has seen the key.
	deadline := time.Now().Add(5 * time.Second)
	for r := asKey(b); len(r.Errors) > 0; r = asKey(b) {
		if time.Now().After(deadline) {
			t.Fatalf("the key never worked on the other replica: %+v", r.Errors)
		}
	}
	var revoked struct {
		RevokeAPIKey struct{ APIKey struct{ RevokedAt *string } } `json:"revokeApiKey"`
	}
	a.Query(ext, `mutation($id: ID!) { revokeApiKey(id: $id) { apiKey { revokedAt } } }`, map[string]any{"id": keyID}).Decode(t, &revoked)
	if revoked.RevokeAPIKey.APIKey.RevokedAt == nil {
		t.Fatal("revoke did not set revokedAt")
	}
	if r := asKey(a); r.Code() != "UNAUTHENTICATED" {
		t.Fatalf("the revoking replica still accepts the key: %+v", r)
	}
	deadline = time.Now().Add(2 * time.Second)
	for asKey(b).Code() != "UNAUTHENTICATED" {
		if time.Now().After(deadline) {
			t.Fatal("the other replica still accepts the revoked key 2 s later")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func createAPIKey(t *testing.T, h *apptest.Harness, ext string) (secret, id string) {
	t.Helper()
	var created struct {
		CreateAPIKey struct {
			Secret *string
			APIKey *struct{ ID string }
		} `json:"createApiKey"`
	}
	h.Query(ext, `mutation($in: CreateApiKeyInput!) { createApiKey(input: $in) { secret apiKey { id } } }`,
		map[string]any{"in": map[string]any{"name": "cluster", "scopes": []string{"BILLING_READ", "USAGE_WRITE"}}}).Decode(t, &created)
	if created.CreateAPIKey.Secret == nil || created.CreateAPIKey.APIKey == nil {
		t.Fatalf("create key: %+v", created)
	}
	return *created.CreateAPIKey.Secret, created.CreateAPIKey.APIKey.ID
}

// TestTollgateRecoversWhenAClusterMasterRestartsEmpty: one master is killed
// and started again with nothing in it. The app's watcher notices by
// itself, the organisation's counters on that master are rebuilt from the
// rollups (before anything asks the gate), the gate answers the database's
// count, and a signed request from before the restart is refused, replayed
// or not, while one signed afterwards passes.
func TestTollgateRecoversWhenAClusterMasterRestartsEmpty(t *testing.T) {
	cl := testenv.StartRedisCluster(t)
	rdb := cl.Client(t)
	h := apptest.New(t, apptest.Options{RedisClient: rdb})
	ctx := context.Background()

	// An organisation whose counters live on master 1.
	var ext, org string
	for {
		ext = "ext-cluster-recovery-" + store.NewID()[:8]
		id, err := h.App.Orgs.Ensure(ctx, ext, "Recovery", "")
		if err != nil {
			t.Fatal(err)
		}
		if cl.MasterOf(t, "{"+id+"}") == 1 {
			org = id
			break
		}
	}
	limit := gateOf(t, h, ext).UsageGate.Limit
	if limit == nil {
		t.Fatal("the free plan's api_calls has no limit; this test needs one")
	}
	recordVia(t, h, ext, *limit, "all-of-it")
	if g := gateOf(t, h, ext).UsageGate; g.Used != *limit || g.Allowed {
		t.Fatalf("before the restart: gate %+v, want %d used and refused", g, *limit)
	}
	secret, keyID := createAPIKey(t, h, ext)
	priv := registerSigningKey(t, h, ext, keyID)
	signed := func(nonce string) *http.Request {
		body := []byte(`{"query":"{ organization { externalId } }"}`)
		req, _ := http.NewRequest(http.MethodPost, h.Server.URL+"/graphql", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-API-Key", secret)
		ts := h.Clock.Now().Unix()
		sig := ed25519.Sign(priv, []byte(signing.Canonical(http.MethodPost, "/graphql", ts, nonce, body)))
		req.Header.Set(signing.HeaderTimestamp, strconv.FormatInt(ts, 10))
		req.Header.Set(signing.HeaderNonce, nonce)
		req.Header.Set(signing.HeaderSignature, base64.StdEncoding.EncodeToString(sig))
		return req
	}
	used, unused := store.NewID(), store.NewID()
	if r := sendSigned(t, signed(used)); r != "" {
		t.Fatalf("a signed request was refused before the restart: %s", r)
	}

	cl.Kill(1)
	if err := cl.Restart(1); err != nil {
		t.Fatal(err)
	}
	// Nothing asks the gate meanwhile, so only a rebuild can bring the
	// counter back.
	counterOf(t, rdb, org, strconv.FormatInt(*limit, 10))
	if g := gateOf(t, h, ext).UsageGate; g.Used != *limit || g.Allowed {
		t.Fatalf("after the restart: gate %+v, want %d used and refused", g, *limit)
	}
	for name, nonce := range map[string]string{"a replay": used, "a fresh nonce": unused} {
		if r := sendSigned(t, signed(nonce)); r != signing.ReasonNonceReplayed {
			t.Fatalf("%s signed before the restart: %q, want %s", name, r, signing.ReasonNonceReplayed)
		}
	}
	h.Clock.Advance(time.Second)
	if r := sendSigned(t, signed(store.NewID())); r != "" {
		t.Fatalf("a request signed after the restart was refused: %s", r)
	}
}

// counterOf waits (5 s at most) until the organisation's current api_calls
// counter, on whichever master holds it, holds want.
func counterOf(t *testing.T, rdb *redisconn.Client, org, want string) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(5 * time.Second)
	month := time.Now().UTC().Format("2006-01")
	key := rdb.Key("usage:{" + org + "}:api_calls:" + month)
	for {
		got, err := rdb.HGet(ctx, key, "u").Result()
		if err == nil && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("5 s after the master came back its counter %s holds %q (%v), want the rollup's %s: the watcher did not rebuild it", key, got, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func registerSigningKey(t *testing.T, h *apptest.Harness, ext, keyID string) ed25519.PrivateKey {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	var reg struct {
		RegisterSigningKey struct {
			APIKey *struct{ SigningRequired bool }
		}
	}
	h.Query(ext, `mutation($in: RegisterSigningKeyInput!) { registerSigningKey(input: $in) { apiKey { signingRequired } } }`,
		map[string]any{"in": map[string]any{"apiKeyId": keyID, "publicKey": base64.StdEncoding.EncodeToString(pub)}}).Decode(t, &reg)
	if reg.RegisterSigningKey.APIKey == nil || !reg.RegisterSigningKey.APIKey.SigningRequired {
		t.Fatalf("register signing key: %+v", reg)
	}
	return priv
}

// sendSigned sends req and returns the refusal reason, or "" when it passed.
func sendSigned(t *testing.T, req *http.Request) string {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out struct{ Errors []apptest.GQLError }
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%d %s", resp.StatusCode, raw)
	}
	if len(out.Errors) == 0 {
		return ""
	}
	r, _ := out.Errors[0].Extensions["reason"].(string)
	return r
}
