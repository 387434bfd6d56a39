package stripehook

import (
	"errors"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/tollgate-billing/tollgate/internal/observe"
)

// Outcomes of deliveries refused before their event is processed; they are
// counted but, having no trustworthy event, never stored.
const (
	outcomeBadSignature = "bad_signature"
	outcomeTooLarge     = "too_large"
	outcomeError        = "error"
)

// otherType labels every event type Tollgate does not act on. Types come
// from signed payloads, but the label stays bounded whatever Stripe adds.
const otherType = "other"

// countDelivery counts one delivery in observe.WebhookEvents.
func countDelivery(t stripe.EventType, outcome string) {
	label := otherType
	if handles(t) {
		label = string(t)
	}
	observe.WebhookEvents.WithLabelValues(label, outcome).Inc()
}

// badSignature tells a delivery not signed with the endpoint's secret from a
// signed body that is not an event: the first is someone else's request, the
// second Stripe's (or a bug). The signature's age is judged by fresh
// (errSignatureTime): the handler verifies ignoring stripe-go's tolerance.
func badSignature(err error) bool {
	return errors.Is(err, webhook.ErrNotSigned) || errors.Is(err, webhook.ErrInvalidHeader) ||
		errors.Is(err, webhook.ErrNoValidSignature) || errors.Is(err, errSignatureTime)
}
