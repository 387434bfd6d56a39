package stripeclient_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stripe/stripe-go/v76"

	"github.com/tollgate-billing/tollgate/internal/observe"
	"github.com/tollgate-billing/tollgate/internal/observe/observetest"
	"github.com/tollgate-billing/tollgate/internal/stripeclient/stripetest"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

func TestStripeCallsAreTimedByEndpointAndStatusClass(t *testing.T) {
	mock := stripetest.ClientAt(testenv.StripeMock(t), nil, 0)
	// A Stripe that refuses and fails, which stripe-mock does not do on cue.
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if strings.HasPrefix(r.URL.Path, "/v1/customers/") {
			w.WriteHeader(http.StatusPaymentRequired)
			_, _ = w.Write([]byte(`{"error":{"type":"card_error","code":"card_declined","message":"Your card was declined."}}`))
			return
		}
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"error":{"type":"api_error","message":"Something went wrong."}}`))
	}))
	t.Cleanup(failing.Close)
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	troubled, unreachable := stripetest.ClientAt(failing.URL, nil, 0), stripetest.ClientAt(down.URL, nil, 0)

	cases := []struct {
		name                 string
		call                 func() error
		method, path, status string
	}{
		{"a customer created", func() error { _, err := mock.Customers.New(&stripe.CustomerParams{}); return err },
			"POST", "/v1/customers", "2xx"},
		{"a subscription fetched by its id", func() error { _, err := mock.Subscriptions.Get("sub_1MowQVLkdIwHu7ixeRlqHVzs", nil); return err },
			"GET", "/v1/subscriptions/{id}", "2xx"},
		{"a test-mode checkout session fetched by its id", func() error { _, err := mock.CheckoutSessions.Get("cs_test_a1B2c3D4", nil); return err },
			"GET", "/v1/checkout/sessions/{id}", "2xx"},
		{"a portal session opened", func() error {
			_, err := mock.BillingPortalSessions.New(&stripe.BillingPortalSessionParams{Customer: stripe.String("cus_123")})
			return err
		}, "POST", "/v1/billing_portal/sessions", "2xx"},
		{"Stripe troubled a call", func() error { _, err := troubled.Customers.Get("cus_123", nil); return err },
			"GET", "/v1/customers/{id}", "4xx"},
		{"Stripe failing a call", func() error { _, err := troubled.Subscriptions.Cancel("sub_123", nil); return err },
			"DELETE", "/v1/subscriptions/{id}", "5xx"},
		{"Stripe unreachable", func() error { _, err := unreachable.Customers.New(&stripe.CustomerParams{}); return err },
			"POST", "/v1/customers", "error"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			series := observe.StripeCalls.WithLabelValues(tc.method, tc.path, tc.status)
			before := observetest.Observations(series)
			err := tc.call()
			if (err == nil) != (tc.status == "2xx") {
				t.Fatalf("call error = %v, want one only when the status is not 2xx", err)
			}
			if got := observetest.Observations(series) - before; got != 1 {
				t.Errorf("stripe_request_duration{method=%q, path=%q, status=%q} observed %d calls, want 1", tc.method, tc.path, tc.status, got)
			}
		})
	}
}
