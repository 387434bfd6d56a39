package stripeclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/stripe/stripe-go/v76"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/stripein"
)

// Error turns a failed Stripe call (after stripe-go's retries) into an error
// a client may see. op says what Tollgate was doing, for the logs.
//
//   - Stripe down, overloaded, rate limiting, still busy with another
//     request under the same idempotency key or on the same object (409,
//     which stripe-go retried already) or unreachable: UNAVAILABLE, as
//     every outage of a dependency is, with extensions.reason
//     PAYMENT_PROVIDER_UNAVAILABLE, so the client knows to try again.
//   - Stripe refusing the request: PAYMENT_PROVIDER_REJECTED with Stripe's
//     message and request id (extensions.stripeRequestId), which is what
//     Stripe support asks for.
//   - Stripe answering with an object Tollgate cannot use (a
//     *stripein.Unusable: a value it cannot store or serve): the payment
//     provider's fault, answered as its outage is.
//   - The caller going away: returned as is; nobody is left to tell.
//
// A request path that reads a Stripe answer judges it with stripein and
// passes a refusal here, so that it never reaches a client as INTERNAL.
func Error(op string, err error) error {
	if err == nil {
		return nil
	}
	cause := fmt.Errorf("stripe: %s: %w", op, err)
	if errors.Is(err, context.Canceled) {
		return cause
	}
	if _, ok := errors.AsType[*stripein.Unusable](err); ok {
		return &apperr.Error{Code: apperr.Unavailable, Extensions: map[string]any{"reason": apperr.ReasonPaymentProvider}, Err: cause,
			Message: "Stripe answered with a value Tollgate cannot use; try again shortly"}
	}
	var se *stripe.Error
	if !errors.As(err, &se) {
		// Network failures and timeouts, already retried by stripe-go.
		return &apperr.Error{Code: apperr.Unavailable, Extensions: map[string]any{"reason": apperr.ReasonPaymentProvider}, Err: cause,
			Message: "Stripe could not be reached; try again shortly"}
	}
	ext := map[string]any{}
	if se.RequestID != "" {
		ext["stripeRequestId"] = se.RequestID
	}
	switch {
	case se.HTTPStatusCode >= 500, se.HTTPStatusCode == http.StatusTooManyRequests, se.HTTPStatusCode == http.StatusConflict,
		se.Type == stripe.ErrorTypeAPI:
		ext["reason"] = apperr.ReasonPaymentProvider
		return &apperr.Error{Code: apperr.Unavailable, Extensions: ext, Err: cause,
			Message: "Stripe is unavailable; try again shortly"}
	case se.HTTPStatusCode == http.StatusUnauthorized, se.HTTPStatusCode == http.StatusForbidden:
		// Stripe's message would name part of Tollgate's own key: the fault
		// is the server's configuration, not the caller's request.
		return &apperr.Error{Code: apperr.PaymentProviderRejected, Extensions: ext, Err: cause,
			Message: "Stripe refused Tollgate's API key; the operator must check STRIPE_SECRET_KEY"}
	default:
		// Stripe's own text can name prices, live/test mode and other
		// configuration; it is logged (in cause), and the client gets the
		// request id to quote.
		return &apperr.Error{Code: apperr.PaymentProviderRejected, Extensions: ext, Err: cause,
			Message: "Stripe rejected the request; quote extensions.stripeRequestId when reporting it"}
	}
}
