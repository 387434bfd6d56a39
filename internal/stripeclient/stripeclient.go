// Package stripeclient builds the Stripe API client Tollgate talks to Stripe
// with, and turns what Stripe answers on failure into errors a client may
// see. Every outbound Stripe call goes through a client made here, so that
// retries, timeouts, the API base (stripe-mock in tests), logging and
// metrics are set in one place.
package stripeclient

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
)

// DefaultMaxNetworkRetries is how often stripe-go retries a request that
// failed on the network, with a 409, or with a 5xx Stripe marks retryable.
// POSTs carry an idempotency key, so a retry never applies twice.
const DefaultMaxNetworkRetries = 2

// Options say how to reach Stripe.
type Options struct {
	// SecretKey is STRIPE_SECRET_KEY; without it there is no client.
	SecretKey string
	// APIBase is STRIPE_API_BASE (stripe-mock in tests); empty means Stripe.
	APIBase string
	// HTTPClient defaults to one with a 30-second timeout. Tests pass one
	// whose transport counts requests.
	HTTPClient *http.Client
	// MaxNetworkRetries defaults to DefaultMaxNetworkRetries.
	MaxNetworkRetries *int64
	Logger            *slog.Logger
}

// New returns a Stripe client, or nil when no secret key is configured:
// callers treat nil as "Stripe is not configured".
func New(o Options) *client.API {
	if o.SecretKey == "" {
		return nil
	}
	// stripe-go's own default waits 80 s; a GraphQL request gives up long
	// before that, and its context cancels the call anyway.
	hc := &http.Client{Timeout: 30 * time.Second}
	if o.HTTPClient != nil {
		c := *o.HTTPClient // timed below, without changing the caller's client
		hc = &c
	}
	hc.Transport = timed{next: hc.Transport}
	retries := o.MaxNetworkRetries
	if retries == nil {
		retries = stripe.Int64(DefaultMaxNetworkRetries)
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	cfg := &stripe.BackendConfig{
		HTTPClient:        hc,
		LeveledLogger:     leveledLogger{log.With("component", "stripe")},
		MaxNetworkRetries: retries,
		EnableTelemetry:   stripe.Bool(false),
	}
	if o.APIBase != "" {
		cfg.URL = stripe.String(o.APIBase)
	}
	b := stripe.GetBackendWithConfig(stripe.APIBackend, cfg)
	return client.New(o.SecretKey, &stripe.Backends{API: b, Connect: b, Uploads: b})
}
