// Package middleware meters a host's HTTP API through Tollgate and answers
// refusals the way the reference tier enforcement does:
//
//   - over quota: 402 Payment Required with
//     {"error":"Usage limit exceeded","message":"API call would exceed the limit: 100000 used + 1 requested > 100000","usage":{"used":100000,"requested":1,"limit":100000,"remaining":0}},
//     the message naming the meter, used the period's usage before this
//     request and requested what it would add (and resetAt the period's
//     end, for a meter that resets);
//   - over the plan's rate: 429 Too Many Requests with Retry-After in whole
//     seconds;
//   - an unknown, revoked or under-scoped customer credential: 401 with a
//     JSON body whose reason says which;
//   - a host's idempotency key (opted in, Config.IdempotencyKey) sent again
//     with other usage: 422;
//   - Tollgate unreachable: the request is served (FailOpen) or answered 503
//     (fail closed), counted, and logged once per outage, not per request.
//
// # Strict and fast
//
// Strict (the default) calls consumeUsage before serving: the request is
// counted durably, exactly, before the handler runs; it costs one durable
// write on Tollgate per request. Fast calls usageGate before serving (a
// Redis read on Tollgate's side, sub-millisecond there) and records through
// a client.Recorder after: cheaper, but requests that pass the gate
// together near a hard limit are all served, and those past the limit are
// then refused by Tollgate at recording (reported to the Recorder's OnDrop),
// so a hard limit is never recorded past, but a request already served is
// not undone.
package middleware

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/tollgate-billing/tollgate/client"
)

// Mode is when a request is counted.
type Mode int

const (
	// Strict checks and counts with consumeUsage before serving.
	Strict Mode = iota
	// Fast checks with usageGate before serving and records after.
	Fast
)

// Customer is who a request is from, to Tollgate.
type Customer struct {
	// Account names the customer to the Recorder (its clientFor gets it).
	Account string
	// Credential acts for the customer's organisation: its own API key, or
	// a Minter's token for it.
	Credential client.Credential
	// Missing, when Config.Customer answers false, says what the request
	// lacked, for the 401's message ("send " + Missing): APIKeyHeader
	// names its header. Empty: "your API key".
	Missing string
}

// Config wires the middleware.
type Config struct {
	// Tollgate is the client whose transport and retries are used; each
	// request is sent with its customer's credential.
	Tollgate *client.Client
	// Customer names a request's customer; false answers 401 (missing).
	Customer func(r *http.Request) (Customer, bool)
	// Usage is what a request costs; default one api_calls.
	Usage func(r *http.Request) (meter string, quantity int64)
	// IdempotencyKey names a request's use to Tollgate. By default (nil)
	// each request gets a fresh id the middleware makes, so every request
	// served is counted: nothing the end customer sends decides it. A host
	// may opt in to a key of its own, such as the customer's header
	// (IdempotencyKeyHeader): the key it returns ("" for a fresh id) is
	// scoped to the customer and the request's method and path, so it
	// never matches another customer's or another route's, and a key sent
	// again with other usage (another meter or quantity) is refused by
	// Tollgate and answered 422. A request repeating an earlier one's key,
	// route and usage is a retry: Tollgate answers it allowed without
	// counting it again, so it is served again for free. Opt in only where
	// that is what you want: a handler that answers a retry from what it
	// stored the first time.
	IdempotencyKey func(r *http.Request) string
	Mode           Mode
	// Recorder records usage in Fast mode, and for the Record helpers
	// (required in Fast mode). Its accounts are Customer.Account.
	Recorder *client.Recorder
	// FailOpen serves requests while Tollgate is unreachable; false
	// answers them 503.
	FailOpen bool
	// Timeout bounds the check before serving, retries included (default
	// 2 s).
	Timeout time.Duration
	// MeterNames are how 402 messages name meters; api_calls, llm_tokens
	// and storage_bytes have defaults.
	MeterNames map[string]string
	Log        *slog.Logger
}

// Metering is the middleware.
type Metering struct {
	cfg  Config
	down atomic.Bool

	outages, failedOpen, failedClosed atomic.Uint64
}

// New returns the middleware for cfg.
func New(cfg Config) *Metering {
	if cfg.Usage == nil {
		cfg.Usage = func(*http.Request) (string, int64) { return "api_calls", 1 }
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Mode == Fast && cfg.Recorder == nil {
		panic("middleware: Fast mode needs a Recorder")
	}
	return &Metering{cfg: cfg}
}

// IdempotencyKeyHeader is an IdempotencyKey that takes the key from the
// customer's request header (Idempotency-Key, say), for hosts that let
// their customers retry a request without paying for it twice. The
// middleware scopes it to the customer and route; see
// Config.IdempotencyKey for what a customer repeating it gets.
func IdempotencyKeyHeader(header string) func(*http.Request) string {
	return func(r *http.Request) string { return r.Header.Get(header) }
}

// key is the idempotency key a request is counted under: a fresh id, or
// the host's key (Config.IdempotencyKey) scoped to the customer, method and
// path. The scoped key is a hash, so a customer's key of any length or
// bytes fits Tollgate's rules, and the customer's credential (its Account,
// an API key under APIKeyHeader) is never sent as a key.
func (m *Metering) key(r *http.Request, cust Customer) string {
	var k string
	if m.cfg.IdempotencyKey != nil {
		k = m.cfg.IdempotencyKey(r)
	}
	if k == "" {
		return uuid.NewString()
	}
	h := sha256.New()
	for _, part := range []string{cust.Account, r.Method, r.URL.Path, k} {
		h.Write([]byte(strconv.Itoa(len(part)) + ":" + part))
	}
	return "req:" + hex.EncodeToString(h.Sum(nil))
}

// APIKeyHeader names a request's customer by the Tollgate API key it sends
// in header (X-API-Key in the reference): the customer's own key, so
// Tollgate answers for its organisation.
func APIKeyHeader(header string) func(*http.Request) (Customer, bool) {
	return func(r *http.Request) (Customer, bool) {
		k := r.Header.Get(header)
		if k == "" {
			return Customer{Missing: "your API key in the " + header + " header"}, false
		}
		return Customer{Account: k, Credential: client.APIKey(k)}, true
	}
}

// MintedOrg names a request's customer by the organisation orgOf finds (from
// the host's own session, say; "" answers 401), acting with short-lived
// tokens minter mints for it: for hosts that are their own identity
// provider.
func MintedOrg(minter *client.Minter, orgOf func(*http.Request) string) func(*http.Request) (Customer, bool) {
	return func(r *http.Request) (Customer, bool) {
		org := orgOf(r)
		if org == "" {
			return Customer{}, false
		}
		return Customer{Account: org, Credential: minter.Org(org)}, true
	}
}

// Stats are counts since start.
type Stats struct {
	// Outages counts times Tollgate became unreachable.
	Outages uint64
	// FailedOpen and FailedClosed count requests served unchecked, and
	// refused with 503, while it was.
	FailedOpen, FailedClosed uint64
}

// Stats returns the counts.
func (m *Metering) Stats() Stats {
	return Stats{Outages: m.outages.Load(), FailedOpen: m.failedOpen.Load(), FailedClosed: m.failedClosed.Load()}
}

type customerKey struct{}

// CustomerOf returns the customer the middleware identified for a request
// it passed on.
func CustomerOf(ctx context.Context) (Customer, bool) {
	c, ok := ctx.Value(customerKey{}).(Customer)
	return c, ok
}

// maxEndpoint is the longest endpoint label Tollgate stores, in characters.
const maxEndpoint = 255

// endpointOf is the label a request is counted under: the mux pattern that
// matched it, else its method and path as the client sent it, escaped. The
// decoded path is the end customer's text: a line break or a zero-width
// space in it, which Tollgate refuses in a label (INVALID_ENDPOINT), made
// every such request answer 500; escaped, the path is printable ASCII, cut
// to the length Tollgate takes.
func endpointOf(r *http.Request) string {
	if r.Pattern != "" {
		return r.Pattern
	}
	e := r.Method + " " + r.URL.EscapedPath()
	if len(e) > maxEndpoint {
		e = e[:maxEndpoint]
	}
	return e
}

// Wrap meters next.
func (m *Metering) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cust, ok := m.cfg.Customer(r)
		if !ok {
			missing := cust.Missing
			if missing == "" {
				missing = "your API key"
			}
			writeJSON(w, http.StatusUnauthorized, authBody{"Unauthorized", "missing", "send " + missing})
			return
		}
		meter, qty := m.cfg.Usage(r)
		key := m.key(r, cust)
		endpoint := endpointOf(r)
		ctx, cancel := context.WithTimeout(r.Context(), m.cfg.Timeout)
		gate := client.NewGate(m.cfg.Tollgate.For(cust.Credential))
		var v client.Verdict
		var err error
		if m.cfg.Mode == Strict {
			v, err = gate.Consume(ctx, meter, qty, key, endpoint)
		} else {
			// usageGate asks about the request's quantity, as consumeUsage
			// would judge it (a soft limit's overage is allowed); a
			// decrease or nothing asks about one unit, as before.
			v, err = gate.CheckQuantity(ctx, meter, max(qty, 1))
		}
		cancel()
		if err != nil {
			if !m.failed(w, r, err) {
				return
			}
		} else {
			m.up(r.Context())
			if !v.Allowed {
				m.refuse(w, v, qty)
				return
			}
		}
		r = r.WithContext(context.WithValue(r.Context(), customerKey{}, cust))
		next.ServeHTTP(w, r)
		if m.cfg.Mode == Fast || (err != nil && m.cfg.Recorder != nil) {
			// Counted after serving; a strict request served while
			// Tollgate was unreachable is recorded too, once it is back.
			_ = m.cfg.Recorder.Record(context.WithoutCancel(r.Context()), cust.Account,
				client.Event{Meter: meter, Quantity: qty, IdempotencyKey: key, Endpoint: endpoint})
		}
	})
}

// failed answers a request whose check failed; true means serve it.
func (m *Metering) failed(w http.ResponseWriter, r *http.Request, err error) bool {
	var te *client.Error
	if errors.As(err, &te) && te.Reason != "AUTH_UNAVAILABLE" { // that one is an outage
		switch te.Code {
		case client.CodeUnauthenticated:
			writeJSON(w, http.StatusUnauthorized, authBody{"Unauthorized", credentialReason(te.Reason), te.Message})
			return false
		case client.CodeForbidden:
			writeJSON(w, http.StatusUnauthorized, authBody{"Unauthorized", "under_scoped", te.Message})
			return false
		case client.CodeRateLimited: // Tollgate's own limit on this credential
			m.tooMany(w, te.RetryAfter)
			return false
		}
	}
	var ie *client.InputError
	if errors.As(err, &ie) && ie.Has(client.CodeIdempotencyKeyReused) { // the customer's key, sent with other usage
		writeJSON(w, http.StatusUnprocessableEntity, authBody{Error: "Idempotency key reused",
			Message: "this idempotency key was already used for a request with other usage; send a new key for a new request"})
		return false
	}
	if errors.As(err, &ie) { // the host's configuration, not an outage
		m.cfg.Log.ErrorContext(r.Context(), "tollgate refused the metering input", "err", err)
		writeJSON(w, http.StatusInternalServerError, authBody{Error: "Internal error", Message: "usage metering is misconfigured"})
		return false
	}
	if m.down.CompareAndSwap(false, true) {
		m.outages.Add(1)
		msg := "tollgate unreachable; requests are answered 503 until it answers"
		if m.cfg.FailOpen {
			msg = "tollgate unreachable; requests are served unchecked until it answers"
		}
		m.cfg.Log.WarnContext(r.Context(), msg, "fail_open", m.cfg.FailOpen, "err", err)
	}
	if m.cfg.FailOpen {
		m.failedOpen.Add(1)
		return true
	}
	m.failedClosed.Add(1)
	w.Header().Set("Retry-After", "1")
	writeJSON(w, http.StatusServiceUnavailable, authBody{Error: "Service unavailable", Message: "usage metering is unreachable; try again shortly"})
	return false
}

func (m *Metering) up(ctx context.Context) {
	if m.down.CompareAndSwap(true, false) {
		s := m.Stats()
		m.cfg.Log.InfoContext(ctx, "tollgate reachable again", "served_unchecked", s.FailedOpen, "refused", s.FailedClosed)
	}
}

// credentialReason says which way a customer's credential is wrong.
func credentialReason(reason string) string {
	switch reason {
	case "API_KEY_REVOKED":
		return "revoked"
	case "API_KEY_INVALID":
		return "unknown"
	case "CREDENTIALS_MISSING":
		return "missing"
	}
	return "invalid"
}

type authBody struct {
	Error   string `json:"error"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message"`
}

// LimitBody is the reference's 402 body.
type LimitBody struct {
	Error   string     `json:"error"`
	Message string     `json:"message"`
	Usage   LimitUsage `json:"usage"`
}

// LimitUsage is the usage part of LimitBody.
type LimitUsage struct {
	// Used is the period's usage now, Requested what this request would
	// add, Remaining what is left (Limit - Used, never below 0): the
	// fields of recordUsage's USAGE_LIMIT_EXCEEDED extensions.
	Used      int64 `json:"used"`
	Requested int64 `json:"requested"`
	Limit     int64 `json:"limit"`
	Remaining int64 `json:"remaining"`
	// ResetAt is the end of the period; absent for a meter that never resets.
	ResetAt *time.Time `json:"resetAt,omitempty"`
}

var defaultMeterNames = map[string]string{"api_calls": "API call", "llm_tokens": "LLM token", "storage_bytes": "Storage"}

func (m *Metering) meterName(meter string) string {
	if n, ok := m.cfg.MeterNames[meter]; ok {
		return n
	}
	if n, ok := defaultMeterNames[meter]; ok {
		return n
	}
	return meter
}

func (m *Metering) refuse(w http.ResponseWriter, v client.Verdict, qty int64) {
	switch v.Reason {
	case client.UsageReasonRateLimited:
		m.tooMany(w, v.RetryAfter)
	case client.UsageReasonBillingInactive:
		writeJSON(w, http.StatusPaymentRequired, authBody{Error: "Billing inactive", Message: "the subscription is past due or unpaid"})
	default:
		var limit int64
		if v.Limit != nil {
			limit = *v.Limit
		}
		writeJSON(w, http.StatusPaymentRequired, LimitBody{
			Error:   "Usage limit exceeded",
			Message: fmt.Sprintf("%s would exceed the limit: %d used + %d requested > %d", m.meterName(v.Meter), v.Used, qty, limit),
			Usage:   LimitUsage{Used: v.Used, Requested: qty, Limit: limit, Remaining: max(limit-v.Used, 0), ResetAt: v.ResetAt},
		})
	}
}

func (m *Metering) tooMany(w http.ResponseWriter, after time.Duration) {
	secs := max(int(math.Ceil(after.Seconds())), 1)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeJSON(w, http.StatusTooManyRequests, struct {
		Error             string `json:"error"`
		Message           string `json:"message"`
		RetryAfterSeconds int    `json:"retryAfterSeconds"`
	}{"Rate limit exceeded", "too many requests for your plan; retry after " + strconv.Itoa(secs) + " s", secs})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	// Not HTML-escaped: a limit message reads "... > 1000", not "\u003e".
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(bytes.TrimSuffix(b.Bytes(), []byte("\n")))
}

// Record counts quantity of meter for the request's customer after the
// fact, through the Recorder when there is one (fire and forget: a refusal
// goes to its OnDrop), else with client.Record (durable before it returns).
// key names the use, so recording it twice counts once; the endpoint is the
// one Wrap counted the request under.
//
// Without a Recorder it returns nil only when the use was counted. Usage
// already spent is not charged to the plan's rate limit (it used to be
// sent through consumeUsage, and a completion recorded in the same second
// as its request was refused as RATE_LIMITED and never counted, with a nil
// error); past a hard limit it returns client's *Error with code
// USAGE_LIMIT_EXCEEDED and nothing is counted.
func (m *Metering) Record(r *http.Request, meter string, quantity int64, key string) error {
	cust, ok := CustomerOf(r.Context())
	if !ok {
		return errors.New("middleware: request did not pass through Wrap")
	}
	ev := client.Event{Meter: meter, Quantity: quantity, IdempotencyKey: key, Endpoint: endpointOf(r)}
	if m.cfg.Recorder != nil {
		return m.cfg.Recorder.Record(context.WithoutCancel(r.Context()), cust.Account, ev)
	}
	return client.Record(r.Context(), m.cfg.Tollgate.For(cust.Credential), ev)
}

// RecordTokens records an LLM completion's tokens once it has answered;
// completionID names it (a random one when empty).
func (m *Metering) RecordTokens(r *http.Request, tokens int64, completionID string) error {
	if completionID == "" {
		completionID = uuid.NewString()
	}
	return m.Record(r, "llm_tokens", tokens, "llm:"+completionID)
}

// RecordStorage records a storage delta: positive bytes on upload,
// negative on delete. change names the upload or the delete (e.g.
// "put:<file id>" and "delete:<file id>"), so each counts once.
func (m *Metering) RecordStorage(r *http.Request, deltaBytes int64, change string) error {
	return m.Record(r, "storage_bytes", deltaBytes, "storage:"+change)
}
