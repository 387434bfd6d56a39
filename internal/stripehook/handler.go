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
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/tollgate-billing/tollgate/internal/apperr"
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
		apperr.WriteJSON(w, http.StatusMethodNotAllowed, map[string]any{"error": "use POST"})
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
		apperr.WriteJSON(w, http.StatusServiceUnavailable, map[string]any{"error": "webhook secret not configured"})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			outcome = outcomeTooLarge
			h.Log.WarnContext(r.Context(), "stripe webhook refused: body too large", "limit_bytes", MaxBodyBytes)
			apperr.WriteJSON(w, http.StatusRequestEntityTooLarge, map[string]any{"error": "body larger than 1 MiB"})
			return
		}
		apperr.WriteJSON(w, http.StatusBadRequest, map[string]any{"error": "could not read body"})
		return
	}
	// The signature first, then its age on both sides of Tolerance by the
	// injected clock: stripe-go only refuses the past side, so a captured
	// header dated ahead would replay for as long as it is dated ahead.
	sig := r.Header.Get("Stripe-Signature")
	err = webhook.ValidatePayloadIgnoringTolerance(body, sig, h.Secret)
	if err == nil && !h.fresh(sig) {
		err = errSignatureTime
	}
	if err != nil {
		outcome = outcomeUndecodable
		if badSignature(err) {
			outcome = outcomeBadSignature
		}
		h.Log.WarnContext(r.Context(), "stripe webhook refused: not a verifiable Stripe event", "error", err)
		apperr.WriteJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid signature or payload"})
		return
	}
	ev, err := decodeEvent(body)
	if err != nil {
		outcome = outcomeUndecodable
		h.Log.WarnContext(r.Context(), "stripe webhook refused: signed body is not an event", "event_id", ev.ID, "error", err)
		apperr.WriteJSON(w, http.StatusBadRequest, map[string]any{"error": "not a Stripe event"})
		return
	}
	typ = ev.Type
	noteAPIVersion(r.Context(), h.Log, ev.APIVersion, ev.ID)
	res, err := h.process(r.Context(), ev)
	if err != nil {
		h.Log.ErrorContext(r.Context(), "stripe webhook failed; Stripe will retry",
			"event_id", ev.ID, "type", ev.Type, "error", err)
		apperr.WriteJSON(w, http.StatusInternalServerError, map[string]any{"error": "internal error"})
		return
	}
	outcome = res.outcome
	level := slog.LevelInfo
	if res.outcome == outcomeUnknownOrg || res.outcome == outcomeUndecodable || res.outcome == outcomeInvalid {
		level = slog.LevelWarn
	}
	attrs := []any{"event_id", ev.ID, "type", ev.Type, "outcome", res.outcome, "org_id", res.orgID, "changes", res.changes}
	answer := map[string]any{"received": true, "outcome": res.outcome}
	if why := res.unusable; why != nil {
		// The operator reading the log, and Stripe's dashboard showing
		// this answer, see which value Tollgate could not use. The reason
		// quotes at most a short escaped prefix of it.
		attrs = append(attrs, "object", why.Object, "field", why.Field, "reason", why.Reason)
		answer["object"], answer["field"], answer["reason"] = why.Object, why.Field, why.Reason
	}
	h.Log.Log(r.Context(), level, "stripe webhook", attrs...)
	apperr.WriteJSON(w, http.StatusOK, answer)
}

// errSignatureTime is a signature dated further from now than Tolerance.
var errSignatureTime = errors.New("signature timestamp is not within the tolerance of now")

// fresh reports whether a verified Stripe-Signature header is dated within
// Tolerance of now, before or after. Its t= is read as stripe-go reads it
// (the last one counts), since that is the time the signature covers;
// verification refused a header whose t= is not a number, and one without
// a t= was signed at second 0, which is never fresh. The seconds are held
// to clock.InYears before any time arithmetic: time.Unix of a value near
// the int64 limits overflows, and only Sub's saturation kept that from
// reading as fresh.
func (h *handler) fresh(header string) bool {
	var sec int64
	for _, pair := range strings.Split(header, ",") {
		if v, ok := strings.CutPrefix(pair, "t="); ok {
			sec, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	if !clock.InYears(sec) {
		return false
	}
	age := h.Clock.Now().Sub(time.Unix(sec, 0))
	return age <= Tolerance && age >= -Tolerance
}

// decodeEvent reads a verified body as an event envelope. Only a body that
// is not one (not JSON, no id, type or data) is an error; what the envelope
// carries is judged later, so that a well-signed event Tollgate cannot use
// is acknowledged rather than refused. data.object is kept raw, whatever
// JSON it is: stripe-go's own decoding refuses an event whose object is not
// a JSON object, which would answer 400 to Stripe's own delivery.
func decodeEvent(body []byte) (stripe.Event, error) {
	var env struct {
		ID         string           `json:"id"`
		Type       stripe.EventType `json:"type"`
		Created    int64            `json:"created"`
		APIVersion string           `json:"api_version"`
		Data       *struct {
			Object json.RawMessage `json:"object"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return stripe.Event{}, fmt.Errorf("parse event: %w", err)
	}
	ev := stripe.Event{ID: env.ID, Type: env.Type, Created: env.Created, APIVersion: env.APIVersion}
	if env.ID == "" || env.Type == "" || env.Data == nil {
		return ev, errors.New("no id, type or data")
	}
	ev.Data = &stripe.EventData{Raw: env.Data.Object}
	return ev, nil
}
