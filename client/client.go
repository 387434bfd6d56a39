// Package client is the Go client for Tollgate, for SaaS backends that meter
// their customers through it.
//
// It offers, from the lowest level up:
//
//   - Client, which sends Tollgate's operations with a credential, retrying
//     what is safe to retry. Every operation of the schema is a typed
//     function generated from schema.graphqls with genqlient, taking the
//     Client as its first argument after the context:
//
//     gate, err := client.UsageGate(ctx, tg, "api_calls")
//
//   - Credentials: an API key (APIKey), optionally with Ed25519 request
//     signing (SignedAPIKey), or short-lived per-organisation JWTs that a
//     host acting as its own identity provider mints (Minter.Org).
//
//   - Gate, which asks "may this customer do this?" (Check) or checks and
//     counts in one durable step (Consume).
//
//   - Recorder, which batches fire-and-forget usage per organisation.
//
// Package client/middleware builds net/http middleware on these that answers
// 402 and 429 the way the reference tier enforcement does.
//
// # Errors and retries
//
// A refusal Tollgate reports as a GraphQL error (UNAUTHENTICATED, FORBIDDEN,
// USAGE_LIMIT_EXCEEDED, ...) or as HTTP 429 is an *Error with its Code. A
// request that failed in transport, was answered 5xx or UNAVAILABLE is sent
// again, with jittered exponential backoff, byte for byte: the same
// idempotency keys, so usage is counted once however often it is retried.
// A client error is never retried.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/Khan/genqlient/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// Client sends operations to one Tollgate with one credential. It is safe
// for concurrent use; For makes a client with another credential that shares
// the connections.
type Client struct {
	endpoint string
	http     *http.Client
	cred     Credential
	retry    Retry
}

var _ graphql.Client = (*Client)(nil)

// Retry is how a failed request is sent again.
type Retry struct {
	// Attempts is how many times a request is sent at most (1: no retry).
	Attempts int
	// Base is the first backoff; each later one doubles, up to Max, and
	// each is drawn at random between half and all of that (jitter), so
	// clients that failed together do not retry together.
	Base, Max time.Duration
}

// DefaultRetry tries a request up to 5 times, waiting about a second and a
// half in all between attempts.
var DefaultRetry = Retry{Attempts: 5, Base: 100 * time.Millisecond, Max: time.Second}

// Option adjusts a Client.
type Option func(*Client)

// WithHTTPClient sends requests through h (default: a client with a 10 s
// timeout per attempt).
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithRetry replaces DefaultRetry.
func WithRetry(r Retry) Option { return func(c *Client) { c.retry = r } }

// New returns a client for the Tollgate at baseURL (e.g.
// http://127.0.0.1:8080; /graphql is appended unless present).
func New(baseURL string, cred Credential, opts ...Option) *Client {
	endpoint := strings.TrimRight(baseURL, "/")
	if !strings.HasSuffix(endpoint, "/graphql") {
		endpoint += "/graphql"
	}
	c := &Client{endpoint: endpoint, http: &http.Client{Timeout: 10 * time.Second}, cred: cred, retry: DefaultRetry}
	for _, o := range opts {
		o(c)
	}
	c.retry.Attempts = max(c.retry.Attempts, 1)
	return c
}

// For returns a client that sends the same way with another credential: a
// customer's own API key, or a Minter's token for another organisation.
func (c *Client) For(cred Credential) *Client {
	cp := *c
	cp.cred = cred
	return &cp
}

// Error is a refusal from Tollgate.
type Error struct {
	// Code is the GraphQL error's extensions.code (UNAUTHENTICATED,
	// FORBIDDEN, USAGE_LIMIT_EXCEEDED, RATE_LIMITED, UNAVAILABLE, ...), or
	// HTTP_<status> for a non-GraphQL answer.
	Code string
	// Reason is extensions.reason: why credentials were refused, e.g.
	// API_KEY_REVOKED or TOKEN_EXPIRED.
	Reason  string
	Message string
	// Status is the HTTP status of the answer.
	Status int
	// RetryAfter is Tollgate's Retry-After on a 429 (at most a day; a
	// negative one reads as none).
	RetryAfter time.Duration
	// Extensions are the first error's extensions.
	Extensions map[string]any
}

func (e *Error) Error() string {
	if e.Reason != "" {
		return fmt.Sprintf("tollgate: %s (%s): %s", e.Code, e.Reason, e.Message)
	}
	return fmt.Sprintf("tollgate: %s: %s", e.Code, e.Message)
}

// retryable reports whether sending the same request again may succeed:
// Tollgate's dependencies were briefly out of reach (UNAVAILABLE, 5xx, or
// credentials that could not be checked, AUTH_UNAVAILABLE).
func (e *Error) retryable() bool {
	return e.Code == CodeUnavailable || e.Status >= 500 || e.Reason == "AUTH_UNAVAILABLE"
}

// maxRetryAfterSeconds bounds Error.RetryAfter at a day.
const maxRetryAfterSeconds = 24 * 60 * 60

// Codes of Error that the helpers treat specially.
const (
	CodeUnauthenticated = "UNAUTHENTICATED"
	CodeForbidden       = "FORBIDDEN"
	CodeRateLimited     = "RATE_LIMITED"
	CodeUnavailable     = "UNAVAILABLE"
)

// IsCode reports whether err is an *Error with the code.
func IsCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// MakeRequest sends one operation, retrying transport failures, 5xx and
// UNAVAILABLE with the same body. It implements genqlient's graphql.Client,
// so the generated functions take a *Client.
func (c *Client) MakeRequest(ctx context.Context, req *graphql.Request, resp *graphql.Response) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("tollgate: encode %s: %w", req.OpName, err)
	}
	var last error
	for attempt := range c.retry.Attempts {
		if attempt > 0 {
			if err := sleep(ctx, c.retry.backoff(attempt)); err != nil {
				return errors.Join(last, err)
			}
		}
		var retry bool
		retry, last = c.send(ctx, body, resp)
		if !retry {
			return last
		}
	}
	return last
}

// backoff is the jittered wait before attempt (1-based retries).
func (r Retry) backoff(attempt int) time.Duration {
	d := r.Base << (attempt - 1)
	if d <= 0 || d > r.Max {
		d = r.Max
	}
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// send makes one attempt and says whether another may succeed.
func (c *Client) send(ctx context.Context, body []byte, resp *graphql.Response) (bool, error) {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		return false, fmt.Errorf("tollgate: %w", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "application/json")
	if c.cred != nil {
		if err := c.cred.Authorize(hreq); err != nil {
			return false, fmt.Errorf("tollgate: credential: %w", err)
		}
	}
	hresp, err := c.http.Do(hreq)
	if err != nil {
		// The request may or may not have arrived; resending it is safe
		// because it carries the same idempotency keys.
		return ctx.Err() == nil, fmt.Errorf("tollgate: %w", err)
	}
	defer hresp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(hresp.Body, 16<<20))
	if err != nil {
		return ctx.Err() == nil, fmt.Errorf("tollgate: read answer: %w", err)
	}
	var out struct {
		Data   json.RawMessage `json:"data"`
		Errors gqlerror.List   `json:"errors"`
	}
	if jerr := json.Unmarshal(raw, &out); jerr != nil {
		e := &Error{Code: "HTTP_" + strconv.Itoa(hresp.StatusCode), Status: hresp.StatusCode, Message: snippet(raw)}
		return e.retryable(), e
	}
	if len(out.Data) > 0 && string(out.Data) != "null" && resp.Data != nil {
		if err := json.Unmarshal(out.Data, resp.Data); err != nil {
			return false, fmt.Errorf("tollgate: decode answer: %w", err)
		}
	}
	if len(out.Errors) == 0 && hresp.StatusCode < 300 {
		return false, nil
	}
	e := &Error{Status: hresp.StatusCode, Code: "HTTP_" + strconv.Itoa(hresp.StatusCode), Message: http.StatusText(hresp.StatusCode)}
	if len(out.Errors) > 0 {
		first := out.Errors[0]
		e.Message, e.Extensions = first.Message, first.Extensions
		if code, ok := first.Extensions["code"].(string); ok {
			e.Code = code
		}
		e.Reason, _ = first.Extensions["reason"].(string)
	}
	if s, err := strconv.Atoi(hresp.Header.Get("Retry-After")); err == nil && s > 0 {
		// Capped before the multiplication: seconds past about 292 years
		// wrap time.Duration negative, and a proxy may say anything.
		e.RetryAfter = time.Duration(min(s, maxRetryAfterSeconds)) * time.Second
	}
	resp.Errors = out.Errors
	return e.retryable(), e
}

func snippet(b []byte) string {
	if len(b) > 200 {
		b = b[:200]
	}
	return strings.TrimSpace(string(b))
}
