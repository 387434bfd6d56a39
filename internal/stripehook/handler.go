// Package stripehook is the endpoint Stripe delivers webhook events to
// (POST /webhooks/stripe). Stripe delivers late, twice, concurrently and out
// of order; the handler verifies each event, records it, and dispatches it
// to billing and invoices in one transaction with that record, so it is
// applied at most once. What an event means (which organisation it belongs
// to, what it changes) is billing's and invoices' to decide; they drop
// anything older than what they already hold.
//
// It answers 200 to every well-signed event, including ones it ignores or
// cannot place (Stripe disables endpoints that keep answering 4xx), 400 to
// anything not signed with the endpoint's secret, and 500 when the
// database fails, so that Stripe retries.
package stripehook

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/tollgate-billing/tollgate/internal/billing"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/invoices"
	"github.com/tollgate-billing/tollgate/internal/store"
)

const (
	// MaxBodyBytes caps an event body. Stripe's events are a few KiB; a
	// larger body is not from Stripe and is refused before it is verified.
	MaxBodyBytes = 1 << 20
	// Tolerance is how old a signature may be: replays of a captured
	// delivery are refused after it.
	Tolerance = 300 * time.Second
)

// Config is what the handler needs.
type Config struct {
	DB       *store.DB
	Billing  *billing.Service
	Invoices *invoices.Service
	// Secret is STRIPE_WEBHOOK_SECRET (whsec_…).
	Secret string
	Clock  clock.Clock
	Log    *slog.Logger
}

type handler struct{ Config }

// NewHandler returns the webhook endpoint.
func NewHandler(cfg Config) http.Handler {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	return &handler{cfg}
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		reply(w, http.StatusMethodNotAllowed, map[string]any{"error": "use POST"})
		return
	}
	// Every delivery is counted once, under what became of it; anything
	// that returns without naming an outcome failed.
	typ, outcome := stripe.EventType(""), outcomeError
	defer func() { countDelivery(typ, outcome) }()
	if h.Secret == "" {
		// Unverifiable events must not be applied; 503 keeps Stripe
		// retrying until the operator sets the secret.
		h.Log.ErrorContext(r.Context(), "stripe webhook received but STRIPE_WEBHOOK_SECRET is not set")
		reply(w, http.StatusServiceUnavailable, map[string]any{"error": "webhook secret not configured"})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			outcome = outcomeTooLarge
			h.Log.WarnContext(r.Context(), "stripe webhook refused: body too large", "limit_bytes", MaxBodyBytes)
			reply(w, http.StatusRequestEntityTooLarge, map[string]any{"error": "body larger than 1 MiB"})
			return
		}
		reply(w, http.StatusBadRequest, map[string]any{"error": "could not read body"})
		return
	}
	// IgnoreAPIVersionMismatch: the endpoint's API version is set in the
	// Stripe dashboard and need not equal the version stripe-go is pinned
	// to. Tollgate reads the fields later versions moved through
	// stripeshape, and reconciliation re-reads everything through the
	// pinned version anyway.
	ev, err := webhook.ConstructEventWithOptions(body, r.Header.Get("Stripe-Signature"), h.Secret,
		webhook.ConstructEventOptions{Tolerance: Tolerance, IgnoreAPIVersionMismatch: true})
	if err != nil {
		outcome = outcomeUndecodable
		if badSignature(err) {
			outcome = outcomeBadSignature
		}
		h.Log.WarnContext(r.Context(), "stripe webhook refused: not a verifiable Stripe event", "error", err)
		reply(w, http.StatusBadRequest, map[string]any{"error": "invalid signature or payload"})
		return
	}
	typ = ev.Type
	if ev.ID == "" || ev.Type == "" || ev.Data == nil {
		outcome = outcomeUndecodable
		h.Log.WarnContext(r.Context(), "stripe webhook refused: signed body is not an event", "event_id", ev.ID)
		reply(w, http.StatusBadRequest, map[string]any{"error": "not a Stripe event"})
		return
	}
	noteAPIVersion(r.Context(), h.Log, ev.APIVersion, ev.ID)
	res, err := h.process(r.Context(), ev)
	if err != nil {
		h.Log.ErrorContext(r.Context(), "stripe webhook failed; Stripe will retry",
			"event_id", ev.ID, "type", ev.Type, "error", err)
		reply(w, http.StatusInternalServerError, map[string]any{"error": "internal error"})
		return
	}
	outcome = res.outcome
	level := slog.LevelInfo
	if res.outcome == outcomeUnknownOrg || res.outcome == outcomeUndecodable {
		level = slog.LevelWarn
	}
	h.Log.Log(r.Context(), level, "stripe webhook",
		"event_id", ev.ID, "type", ev.Type, "outcome", res.outcome, "org_id", res.orgID, "changes", res.changes)
	reply(w, http.StatusOK, map[string]any{"received": true, "outcome": res.outcome})
}

func reply(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}
