package signing

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate-billing/tollgate/internal/auth"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/redisconn"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

func TestVerifyRequest(t *testing.T) {
	rdb := testenv.Redis(t)
	clk := clock.NewFake(t0)
	v := NewVerifier(rdb, clk, quietLog())
	other := newSigner(2)
	const body = `{"query":"{ usage { used } }"}`

	cases := []struct {
		name   string
		method string // default POST
		target string // default /graphql
		tamper func(r *http.Request)
		key    func(k *auth.APIKey)
		want   string
	}{
		{name: "a correctly signed request is accepted"},
		{name: "a signed GET with the operation in the query is accepted", method: http.MethodGet, target: "/graphql?query=%7B%20usage%20%7B%20used%20%7D%20%7D"},
		{name: "a request to the root path is accepted", target: "/"},
		{name: "a signature in URL-safe unpadded base64 is accepted", tamper: func(r *http.Request) {
			sig, _ := base64.StdEncoding.DecodeString(r.Header.Get(HeaderSignature))
			r.Header.Set(HeaderSignature, base64.RawURLEncoding.EncodeToString(sig))
		}},
		{name: "a changed body is refused", want: ReasonSignatureInvalid, tamper: func(r *http.Request) {
			r.Body = io.NopCloser(strings.NewReader(`{"query":"{ usage { limit } }"}`))
		}},
		{name: "a body dropped after signing is refused", want: ReasonSignatureInvalid, tamper: func(r *http.Request) {
			r.Body = http.NoBody
		}},
		{name: "a changed method is refused", want: ReasonSignatureInvalid, tamper: func(r *http.Request) {
			r.Method = http.MethodPut
		}},
		{name: "a changed path is refused", want: ReasonSignatureInvalid, tamper: func(r *http.Request) {
			r.URL.Path = "/graphql/admin"
		}},
		{name: "a changed query is refused", method: http.MethodGet, target: "/graphql?query=%7Bme%7D", want: ReasonSignatureInvalid, tamper: func(r *http.Request) {
			r.URL.RawQuery = "query=%7Bplans%7D"
		}},
		{name: "a query added after signing is refused", want: ReasonSignatureInvalid, tamper: func(r *http.Request) {
			r.URL.RawQuery = "operationName=Evil"
		}},
		{name: "a changed nonce is refused", want: ReasonSignatureInvalid, tamper: func(r *http.Request) {
			r.Header.Set(HeaderNonce, uuid.NewString())
		}},
		{name: "a changed timestamp is refused", want: ReasonSignatureInvalid, tamper: func(r *http.Request) {
			r.Header.Set(HeaderTimestamp, strconv.FormatInt(t0.Unix()-1, 10))
		}},
		{name: "a signature by another key is refused", want: ReasonSignatureInvalid, tamper: func(r *http.Request) {
			if err := Sign(r, other.priv, t0); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "a request without X-Request-Signature is refused", want: ReasonSignatureMissing, tamper: func(r *http.Request) {
			r.Header.Del(HeaderSignature)
		}},
		{name: "a request without X-Timestamp is refused", want: ReasonSignatureMissing, tamper: func(r *http.Request) {
			r.Header.Del(HeaderTimestamp)
		}},
		{name: "a request without X-Nonce is refused", want: ReasonSignatureMissing, tamper: func(r *http.Request) {
			r.Header.Del(HeaderNonce)
		}},
		{name: "a signature that is not base64 is refused", want: ReasonSignatureMalformed, tamper: func(r *http.Request) {
			r.Header.Set(HeaderSignature, "not*base64!")
		}},
		{name: "a signature of the wrong length is refused", want: ReasonSignatureMalformed, tamper: func(r *http.Request) {
			r.Header.Set(HeaderSignature, base64.StdEncoding.EncodeToString(make([]byte, 63)))
		}},
		{name: "a timestamp that is not a number is refused", want: ReasonTimestampInvalid, tamper: func(r *http.Request) {
			r.Header.Set(HeaderTimestamp, "yesterday")
		}},
		{name: "a timestamp with a plus sign is refused", want: ReasonTimestampInvalid, tamper: func(r *http.Request) {
			r.Header.Set(HeaderTimestamp, "+"+r.Header.Get(HeaderTimestamp))
		}},
		{name: "a timestamp in milliseconds is refused as skewed", want: ReasonTimestampSkew, tamper: func(r *http.Request) {
			r.Header.Set(HeaderTimestamp, strconv.FormatInt(t0.UnixMilli(), 10))
		}},
		// Numbers no clock reaches are refused, none wrapped round to now.
		{name: "the largest int64 timestamp is refused as skewed", want: ReasonTimestampSkew, tamper: func(r *http.Request) {
			r.Header.Set(HeaderTimestamp, "9223372036854775807")
		}},
		{name: "the smallest int64 timestamp is refused as skewed", want: ReasonTimestampSkew, tamper: func(r *http.Request) {
			r.Header.Set(HeaderTimestamp, "-9223372036854775808")
		}},
		{name: "a timestamp past int64 is refused", want: ReasonTimestampInvalid, tamper: func(r *http.Request) {
			r.Header.Set(HeaderTimestamp, "9223372036854775808")
		}},
		{name: "a timestamp in exponent form is refused", want: ReasonTimestampInvalid, tamper: func(r *http.Request) {
			r.Header.Set(HeaderTimestamp, "1e20")
		}},
		{name: "a timestamp with a fraction is refused", want: ReasonTimestampInvalid, tamper: func(r *http.Request) {
			r.Header.Set(HeaderTimestamp, r.Header.Get(HeaderTimestamp)+".5")
		}},
		{name: "a timestamp with a leading zero is refused", want: ReasonTimestampInvalid, tamper: func(r *http.Request) {
			r.Header.Set(HeaderTimestamp, "0"+r.Header.Get(HeaderTimestamp))
		}},
		{name: "a nonce that is not a UUID is refused", want: ReasonNonceInvalid, tamper: func(r *http.Request) {
			r.Header.Set(HeaderNonce, "12345")
		}},
		{name: "a UUID nonce without hyphens is refused", want: ReasonNonceInvalid, tamper: func(r *http.Request) {
			r.Header.Set(HeaderNonce, strings.ReplaceAll(r.Header.Get(HeaderNonce), "-", ""))
		}},
		{name: "a key whose stored signing key is corrupt refuses the request", want: ReasonSigningKeyInvalid, key: func(k *auth.APIKey) {
			bad := "bm90IGEga2V5"
			k.SigningPublicKey = &bad
		}},
		// Stored before registration refused such keys: with the identity
		// as the key, R = identity and S = 0 verifies any request.
		{name: "a stored small-order key refuses even the signature it would verify", want: ReasonSigningKeyInvalid, key: func(k *auth.APIKey) {
			identity := "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
			k.SigningPublicKey = &identity
		}, tamper: func(r *http.Request) {
			forged := append([]byte{1}, make([]byte, 63)...)
			r.Header.Set(HeaderSignature, base64.StdEncoding.EncodeToString(forged))
		}},
		{name: "a key without a signing key refuses the request", want: ReasonSigningKeyInvalid, key: func(k *auth.APIKey) {
			k.SigningPublicKey = nil
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newSigner(1)
			method, target := tc.method, tc.target
			if method == "" {
				method = http.MethodPost
			}
			if target == "" {
				target = "/graphql"
			}
			reqBody := body
			if method == http.MethodGet {
				reqBody = ""
			}
			r := signedRequest(t, s.priv, method, target, reqBody, clk.Now())
			if tc.tamper != nil {
				tc.tamper(r)
			}
			if tc.key != nil {
				tc.key(&s.key)
			}
			f := v.VerifyRequest(r, s.key)
			if got := reason(f); got != tc.want {
				t.Fatalf("reason = %q (%v), want %q", got, f, tc.want)
			}
			if f != nil && f.Message == "" {
				t.Errorf("refusal %s has no message for the client", f.Reason)
			}
		})
	}
}

func TestTimestampWindow(t *testing.T) {
	v := NewVerifier(testenv.Redis(t), clock.NewFake(t0), quietLog())
	cases := []struct {
		name   string
		offset time.Duration
		want   string
	}{
		{"a timestamp 31 s in the past is refused", -31 * time.Second, ReasonTimestampSkew},
		{"a timestamp 30 s in the past is accepted", -30 * time.Second, ""},
		{"a timestamp 29 s in the past is accepted", -29 * time.Second, ""},
		{"a timestamp 29 s in the future is accepted", 29 * time.Second, ""},
		{"a timestamp 30 s in the future is accepted", 30 * time.Second, ""},
		{"a timestamp 31 s in the future is refused", 31 * time.Second, ReasonTimestampSkew},
		{"a timestamp a day old is refused", -24 * time.Hour, ReasonTimestampSkew},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newSigner(1)
			r := signedRequest(t, s.priv, http.MethodPost, "/graphql", `{}`, t0.Add(tc.offset))
			if got := reason(v.VerifyRequest(r, s.key)); got != tc.want {
				t.Fatalf("reason = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestReplay(t *testing.T) {
	testenv.EachRedis(t, testReplay)
}

func testReplay(t *testing.T, rdb *redisconn.Client) {
	clk := clock.NewFake(t0)
	// Two verifiers on one Redis are two Tollgate replicas.
	replicas := []*Verifier{NewVerifier(rdb, clk, quietLog()), NewVerifier(rdb, clk, quietLog())}

	type send struct {
		replica int
		key     int // whose API key the request is made with
		signer  int // whose private key signs it
		nonce   string
		want    string
	}
	cases := []struct {
		name  string
		sends []send
	}{
		{"replaying an accepted request to the same replica is refused", []send{
			{0, 0, 0, "A", ""}, {0, 0, 0, "A", ReasonNonceReplayed},
		}},
		{"replaying an accepted request to another replica is refused", []send{
			{0, 0, 0, "A", ""}, {1, 0, 0, "A", ReasonNonceReplayed},
		}},
		{"the same nonce in upper case is a replay", []send{
			{0, 0, 0, "A", ""}, {1, 0, 0, "A-upper", ReasonNonceReplayed},
		}},
		{"a new nonce after an accepted request is accepted", []send{
			{0, 0, 0, "A", ""}, {1, 0, 0, "B", ""},
		}},
		{"a forged request does not use up the client's nonce", []send{
			{0, 0, 1, "A", ReasonSignatureInvalid}, {1, 0, 0, "A", ""},
		}},
		{"the same nonce on another API key is accepted", []send{
			{0, 0, 0, "A", ""}, {1, 1, 1, "A", ""},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			signers := []signer{newSigner(1), newSigner(2)}
			a, b := uuid.NewString(), uuid.NewString()
			nonces := map[string]string{"A": a, "A-upper": strings.ToUpper(a), "B": b}
			for i, s := range tc.sends {
				r := signedWith(signers[s.signer].priv, http.MethodPost, "/graphql", `{"query":"{ me }"}`, clk.Now().Unix(), nonces[s.nonce])
				if got := reason(replicas[s.replica].VerifyRequest(r, signers[s.key].key)); got != s.want {
					t.Fatalf("request %d: reason = %q, want %q", i+1, got, s.want)
				}
			}
		})
	}
}

// The nonce must outlive the 30 s window when the client's clock runs ahead,
// or the request could be replayed once a fixed 30 s TTL ran out.
func TestNonceIsRememberedWhileTheTimestampIsAcceptable(t *testing.T) {
	cases := []struct {
		name    string
		offset  time.Duration // client clock minus server clock
		wantTTL time.Duration
	}{
		{"a request on time is remembered for 31 s", 0, 31 * time.Second},
		{"a request 30 s ahead is remembered for 61 s", 30 * time.Second, 61 * time.Second},
		{"a request 30 s behind is remembered for 1 s", -30 * time.Second, time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, rdb := testenv.MiniRedisServer(t)
			clk := clock.NewFake(t0)
			v := NewVerifier(rdb, clk, quietLog())
			s := newSigner(1)
			nonce := uuid.NewString()
			send := func() string {
				r := signedWith(s.priv, http.MethodPost, "/graphql", `{}`, t0.Add(tc.offset).Unix(), nonce)
				return reason(v.VerifyRequest(r, s.key))
			}
			if got := send(); got != "" {
				t.Fatalf("first request refused: %s", got)
			}
			if ttl := m.TTL(rdb.Key(nonceKey(s.key.ID, nonce))); ttl != tc.wantTTL {
				t.Fatalf("nonce TTL = %v, want %v", ttl, tc.wantTTL)
			}
			// Just before the nonce expires the timestamp is still
			// acceptable, so the replay must meet the nonce.
			wait := tc.wantTTL - time.Second
			clk.Advance(wait)
			m.FastForward(wait)
			if got := send(); got != ReasonNonceReplayed {
				t.Fatalf("replay %v later: reason = %q, want %q", wait, got, ReasonNonceReplayed)
			}
			// Once the nonce has expired the timestamp is too old.
			clk.Advance(time.Second)
			m.FastForward(time.Second)
			if got := send(); got != ReasonTimestampSkew {
				t.Fatalf("replay after expiry: reason = %q, want %q", got, ReasonTimestampSkew)
			}
		})
	}
}

func TestReplayProtectionUnavailable(t *testing.T) {
	cases := []struct {
		name string
		rdb  func(t *testing.T) *redisconn.Client
	}{
		{"a signed request is refused while Redis is down", func(t *testing.T) *redisconn.Client {
			m := miniredis.RunT(t)
			rdb := redisconn.New(redis.NewClient(&redis.Options{Addr: m.Addr(), MaxRetries: -1}), testenv.RedisPrefix())
			t.Cleanup(func() { rdb.Close() })
			m.Close()
			return rdb
		}},
		{"a signed request is refused when no Redis is configured", func(*testing.T) *redisconn.Client { return nil }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := NewVerifier(tc.rdb(t), clock.NewFake(t0), quietLog())
			s := newSigner(1)
			r := signedRequest(t, s.priv, http.MethodPost, "/graphql", `{}`, t0)
			if got := reason(v.VerifyRequest(r, s.key)); got != ReasonNonceUnavailable {
				t.Fatalf("reason = %q, want %q", got, ReasonNonceUnavailable)
			}
		})
	}
}

func TestBodyIsReadableAfterVerification(t *testing.T) {
	v := NewVerifier(testenv.Redis(t), clock.NewFake(t0), quietLog())
	big := strings.Repeat("x", MaxBodyBytes+10)
	cases := []struct {
		name string
		body string
		sign func(s signer, body string) *http.Request
		want string
	}{
		{"an accepted request keeps its body", `{"query":"{ me }"}`, func(s signer, body string) *http.Request {
			return signedRequest(t, s.priv, http.MethodPost, "/graphql", body, t0)
		}, ""},
		{"a refused request keeps its body", `{"query":"{ me }"}`, func(s signer, body string) *http.Request {
			return signedRequest(t, newSigner(9).priv, http.MethodPost, "/graphql", body, t0)
		}, ReasonSignatureInvalid},
		{"a body over 1 MiB is refused and kept whole", big, func(s signer, body string) *http.Request {
			// Sign refuses such a body, so sign a placeholder and swap it.
			r := signedRequest(t, s.priv, http.MethodPost, "/graphql", "", t0)
			r.Body = io.NopCloser(strings.NewReader(body))
			return r
		}, ReasonBodyTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newSigner(1)
			r := tc.sign(s, tc.body)
			if got := reason(v.VerifyRequest(r, s.key)); got != tc.want {
				t.Fatalf("reason = %q, want %q", got, tc.want)
			}
			got, err := io.ReadAll(r.Body)
			if err != nil {
				t.Fatalf("next handler reads body: %v", err)
			}
			if string(got) != tc.body {
				t.Fatalf("next handler read %d bytes, want the %d sent", len(got), len(tc.body))
			}
		})
	}
}

// restartWatch is a verifier and the watcher that tells it of Redis restarts,
// on a private miniredis.
func restartWatch(t *testing.T) (*miniredis.Miniredis, *redisconn.Client, *Verifier, *redisconn.Watcher, *clock.Fake) {
	t.Helper()
	m, rdb := testenv.MiniRedisServer(t)
	clk := clock.NewFake(t0)
	v := NewVerifier(rdb, clk, quietLog())
	w := redisconn.NewWatcher(rdb, quietLog())
	w.OnRestart(v.RedisRestarted)
	look(t, w)
	return m, rdb, v, w, clk
}

func look(t *testing.T, w *redisconn.Watcher) {
	t.Helper()
	if err := w.Check(context.Background()); err != nil {
		t.Fatalf("watcher: %v", err)
	}
}

// TestReplayAfterRedisLostItsData: a request accepted before Redis lost its
// nonces (a restart without persistence, a flush) is refused when replayed
// afterwards, although Redis no longer remembers it, even before the watcher
// has noticed; a request signed once it has (within a second) is accepted.
func TestReplayAfterRedisLostItsData(t *testing.T) {
	m, _, v, w, clk := restartWatch(t)
	s := newSigner(1)
	first := uuid.NewString()
	send := func(ts time.Time, nonce string) string {
		r := signedWith(s.priv, http.MethodPost, "/graphql", `{}`, ts.Unix(), nonce)
		return reason(v.VerifyRequest(r, s.key))
	}
	if got := send(t0, first); got != "" {
		t.Fatalf("first request refused: %s", got)
	}
	clk.Advance(5 * time.Second)
	m.FlushAll()
	if got := send(t0, first); got != ReasonNonceReplayed {
		t.Fatalf("replay after the flush: reason = %q, want %q", got, ReasonNonceReplayed)
	}
	look(t, w)
	clk.Advance(time.Second)
	if got := send(clk.Now(), uuid.NewString()); got != "" {
		t.Fatalf("a request signed after the flush was refused: %s", got)
	}
}

// TestReplayAfterRedisCameBackFromASnapshot: Redis restored from a snapshot
// taken before a request was accepted still holds the replay-protection
// mark, but not the request's nonce. Once the watcher has seen the restart
// (within a second on every replica), the replay is refused on both
// replicas, and requests signed afterwards pass.
func TestReplayAfterRedisCameBackFromASnapshot(t *testing.T) {
	m, rdb, v, w, clk := restartWatch(t)
	other := NewVerifier(rdb, clk, quietLog()) // a second replica with its own watcher
	ow := redisconn.NewWatcher(rdb, quietLog())
	ow.OnRestart(other.RedisRestarted)
	look(t, ow)
	s := newSigner(1)
	send := func(v *Verifier, ts time.Time, nonce string) string {
		r := signedWith(s.priv, http.MethodPost, "/graphql", `{}`, ts.Unix(), nonce)
		return reason(v.VerifyRequest(r, s.key))
	}

	restore := testenv.SnapshotRedis(t, m)
	first := uuid.NewString()
	if got := send(v, clk.Now(), first); got != "" {
		t.Fatalf("first request refused: %s", got)
	}
	look(t, w)
	clk.Advance(3 * time.Second)
	restore()
	look(t, w)
	look(t, ow)
	for i, replica := range []*Verifier{v, other} {
		if got := send(replica, t0, first); got != ReasonNonceReplayed {
			t.Fatalf("replay to replica %d after the restore: reason = %q, want %q", i, got, ReasonNonceReplayed)
		}
	}
	clk.Advance(time.Second)
	if got := send(other, clk.Now(), uuid.NewString()); got != "" {
		t.Fatalf("a request signed after the restore was refused: %s", got)
	}
}

// TestTheMarkRecordsWhenTheLossWasNoticed: the watcher raises the mark when
// it notices the loss, so a request signed after that passes even if it is
// the first one since.
func TestTheMarkRecordsWhenTheLossWasNoticed(t *testing.T) {
	m, rdb, v, w, clk := restartWatch(t)
	m.FlushAll()
	look(t, w)
	for i := range nonceBuckets {
		if mark := rdb.Key(sinceKey(bucket(i))); !m.Exists(mark) {
			t.Fatalf("the mark %s was not re-created after the flush", mark)
		}
	}
	clk.Advance(2 * time.Second)
	s := newSigner(1)
	r := signedWith(s.priv, http.MethodPost, "/graphql", `{}`, clk.Now().Add(-time.Second).Unix(), uuid.NewString())
	if got := reason(v.VerifyRequest(r, s.key)); got != "" {
		t.Fatalf("a request signed after the loss was refused: %s", got)
	}
}
