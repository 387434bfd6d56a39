// Package stripetest points Stripe clients at stripe-mock for tests and
// records the requests they make. stripe-mock answers every request with
// fixtures, so "was Stripe called, how often, with what" is only visible
// on Tollgate's side of the wire; the Recorder is that view.
package stripetest

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/tollgate-billing/tollgate/internal/stripeclient"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// Key is the secret key test clients use; stripe-mock accepts any sk_test_.
const Key = "sk_test_tollgate"

// Request is one HTTP request a client sent.
type Request struct {
	Method         string
	Path           string
	Form           url.Values // the form body of a POST, the query otherwise
	IdempotencyKey string
}

// Recorder is an http.RoundTripper that records requests before passing
// them on.
type Recorder struct {
	mu   sync.Mutex
	reqs []Request
	next http.RoundTripper
}

// NewRecorder records requests and sends them with http.DefaultTransport.
func NewRecorder() *Recorder { return &Recorder{next: http.DefaultTransport} }

// NewRecorderTo records requests and sends them with next, which may fail
// some of them to stand for a network fault.
func NewRecorderTo(next http.RoundTripper) *Recorder { return &Recorder{next: next} }

// RoundTrip records req and forwards it.
func (r *Recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := Request{Method: req.Method, Path: req.URL.Path, Form: req.URL.Query(),
		IdempotencyKey: req.Header.Get("Idempotency-Key")}
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(b))
		if f, err := url.ParseQuery(string(b)); err == nil && len(f) > 0 {
			rec.Form = f
		}
	}
	r.mu.Lock()
	r.reqs = append(r.reqs, rec)
	r.mu.Unlock()
	return r.next.RoundTrip(req)
}

// Requests returns what was sent so far, in order.
func (r *Recorder) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.reqs...)
}

// Matching returns the requests with this method whose path starts with
// pathPrefix.
func (r *Recorder) Matching(method, pathPrefix string) []Request {
	var out []Request
	for _, q := range r.Requests() {
		if q.Method == method && strings.HasPrefix(q.Path, pathPrefix) {
			out = append(out, q)
		}
	}
	return out
}

// Client returns a client for the test binary's stripe-mock whose requests
// rec records (rec may be nil). It skips the test when stripe-mock cannot
// run, or fails it when services are required.
func Client(t testing.TB, rec *Recorder) *client.API {
	t.Helper()
	return ClientAt(testenv.StripeMock(t), rec, stripeclient.DefaultMaxNetworkRetries)
}

// ClientAt returns a client for the Stripe API at base.
func ClientAt(base string, rec *Recorder, retries int64) *client.API {
	hc := &http.Client{}
	if rec != nil {
		hc.Transport = rec
	}
	return stripeclient.New(stripeclient.Options{
		SecretKey: Key, APIBase: base, HTTPClient: hc, MaxNetworkRetries: stripe.Int64(retries),
		Logger: Discard(),
	})
}
