package stripeclient_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/stripe/stripe-go/v76"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/stripeclient"
	"github.com/tollgate-billing/tollgate/internal/stripeclient/stripetest"
	"github.com/tollgate-billing/tollgate/internal/stripein"
)

func TestStripeRejectionCarriesStripesRequestID(t *testing.T) {
	sc := stripetest.Client(t, nil)
	params := &stripe.CustomerParams{}
	params.AddExtra("not_a_stripe_parameter", "1") // stripe-mock validates against Stripe's OpenAPI spec
	_, err := sc.Customers.New(params)
	e, ok := apperr.As(stripeclient.Error("create customer", err))
	if !ok || e.Code != apperr.PaymentProviderRejected {
		t.Fatalf("error = %v, want PAYMENT_PROVIDER_REJECTED", err)
	}
	if id, _ := e.Extensions["stripeRequestId"].(string); id == "" {
		t.Fatalf("extensions %v lack Stripe's request id", e.Extensions)
	}
	// Stripe's own text stays in the log (the wrapped cause): it can name
	// prices and live/test mode.
	if strings.Contains(e.Message, "validation") || !strings.Contains(e.Err.Error(), "validation") {
		t.Fatalf("message %q should hide, and the logged cause %q keep, Stripe's reason", e.Message, e.Err)
	}
}

func TestErrorClassification(t *testing.T) {
	stripeErr := func(status int, typ stripe.ErrorType) error {
		return &stripe.Error{HTTPStatusCode: status, Type: typ, Msg: "No such customer: 'cus_x'", RequestID: "req_abc"}
	}
	cases := []struct {
		name string
		err  error
		want apperr.Code
	}{
		{"Stripe failing with 500", stripeErr(500, stripe.ErrorTypeAPI), apperr.Unavailable},
		{"Stripe overloaded with 503", stripeErr(503, stripe.ErrorTypeAPI), apperr.Unavailable},
		{"Stripe rate limiting", stripeErr(429, stripe.ErrorTypeInvalidRequest), apperr.Unavailable},
		{"Stripe still busy with the same idempotent request", stripeErr(409, stripe.ErrorTypeIdempotency), apperr.Unavailable},
		{"the network failing", &url.Error{Op: "Post", URL: "https://api.stripe.com", Err: errors.New("connection reset")}, apperr.Unavailable},
		{"a timeout", fmt.Errorf("wrapped: %w", context.DeadlineExceeded), apperr.Unavailable},
		{"an invalid request", stripeErr(400, stripe.ErrorTypeInvalidRequest), apperr.PaymentProviderRejected},
		{"an unknown object", stripeErr(404, stripe.ErrorTypeInvalidRequest), apperr.PaymentProviderRejected},
		{"a bad API key", stripeErr(401, stripe.ErrorTypeInvalidRequest), apperr.PaymentProviderRejected},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := stripeclient.Error("op", tc.err)
			if got := apperr.CodeOf(err); got != tc.want {
				t.Fatalf("code = %s, want %s", got, tc.want)
			}
			if e, _ := apperr.As(err); tc.want == apperr.Unavailable && e.Extensions["reason"] != apperr.ReasonPaymentProvider {
				t.Fatalf("extensions = %v, want reason %s", e.Extensions, apperr.ReasonPaymentProvider)
			}
		})
	}
	t.Run("an answer Tollgate cannot use says so, not that Stripe is unreachable", func(t *testing.T) {
		err := stripeclient.Error("op", stripein.Subscription(&stripe.Subscription{ID: "sub_1", Status: "weird"}, nil))
		e, ok := apperr.As(err)
		if !ok || e.Code != apperr.Unavailable || e.Extensions["reason"] != apperr.ReasonPaymentProvider || !strings.Contains(e.Message, "cannot use") {
			t.Fatalf("error = %v, want UNAVAILABLE, reason %s, saying Tollgate cannot use the answer", err, apperr.ReasonPaymentProvider)
		}
	})
	t.Run("a bad API key does not echo Stripe's message", func(t *testing.T) {
		e, _ := apperr.As(stripeclient.Error("op", &stripe.Error{HTTPStatusCode: 401, Msg: "Invalid API Key provided: sk_live_****1234"}))
		if strings.Contains(e.Message, "sk_live") {
			t.Fatalf("message %q shows part of the key", e.Message)
		}
	})
	t.Run("a caller that went away is not reported as Stripe's fault", func(t *testing.T) {
		if _, ok := apperr.As(stripeclient.Error("op", fmt.Errorf("x: %w", context.Canceled))); ok {
			t.Fatal("a canceled call became a client-facing error")
		}
	})
	if stripeclient.Error("op", nil) != nil {
		t.Fatal("no error became an error")
	}
}

func TestNoKeyNoClient(t *testing.T) {
	if stripeclient.New(stripeclient.Options{APIBase: "http://127.0.0.1:1"}) != nil {
		t.Fatal("a client was built without a secret key")
	}
}
