package stripeclient_test

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/tollgate-billing/tollgate/internal/observe"
	"github.com/tollgate-billing/tollgate/internal/observe/observetest"
	"github.com/tollgate-billing/tollgate/internal/stripeclient/stripetest"
)

// stripeCalls are the Stripe API calls Tollgate's code makes, each with the
// label its requests must get: resource names as themselves, only ids as
// {id}. TestTheLabelTableCoversEveryStripeCallInTheCode keeps it complete.
var stripeCalls = []struct {
	call         string // Service.Method as written in the code
	do           func(sc *client.API) error
	method, path string
}{
	{"Customers.New", func(sc *client.API) error { _, err := sc.Customers.New(&stripe.CustomerParams{}); return err },
		"POST", "/v1/customers"},
	{"CheckoutSessions.New", func(sc *client.API) error {
		_, err := sc.CheckoutSessions.New(&stripe.CheckoutSessionParams{})
		return err
	}, "POST", "/v1/checkout/sessions"},
	{"CheckoutSessions.Get", func(sc *client.API) error { _, err := sc.CheckoutSessions.Get("cs_test_a1B2", nil); return err },
		"GET", "/v1/checkout/sessions/{id}"},
	{"CheckoutSessions.Expire", func(sc *client.API) error { _, err := sc.CheckoutSessions.Expire("cs_test_a1B2", nil); return err },
		"POST", "/v1/checkout/sessions/{id}/expire"},
	{"BillingPortalSessions.New", func(sc *client.API) error {
		_, err := sc.BillingPortalSessions.New(&stripe.BillingPortalSessionParams{})
		return err
	}, "POST", "/v1/billing_portal/sessions"},
	{"Subscriptions.Get", func(sc *client.API) error { _, err := sc.Subscriptions.Get("sub_123", nil); return err },
		"GET", "/v1/subscriptions/{id}"},
	{"Subscriptions.Update", func(sc *client.API) error {
		_, err := sc.Subscriptions.Update("sub_123", &stripe.SubscriptionParams{})
		return err
	}, "POST", "/v1/subscriptions/{id}"},
	{"Subscriptions.Cancel", func(sc *client.API) error { _, err := sc.Subscriptions.Cancel("sub_123", nil); return err },
		"DELETE", "/v1/subscriptions/{id}"},
	{"Subscriptions.List", func(sc *client.API) error {
		return sc.Subscriptions.List(&stripe.SubscriptionListParams{}).Err()
	}, "GET", "/v1/subscriptions"},
	{"Invoices.List", func(sc *client.API) error { return sc.Invoices.List(&stripe.InvoiceListParams{}).Err() },
		"GET", "/v1/invoices"},
	{"Invoices.New", func(sc *client.API) error {
		_, err := sc.Invoices.New(&stripe.InvoiceParams{})
		return err
	}, "POST", "/v1/invoices"},
	{"Invoices.Get", func(sc *client.API) error {
		_, err := sc.Invoices.Get("in_1A2b", &stripe.InvoiceParams{})
		return err
	}, "GET", "/v1/invoices/{id}"},
	{"Invoices.FinalizeInvoice", func(sc *client.API) error {
		_, err := sc.Invoices.FinalizeInvoice("in_1A2b", &stripe.InvoiceFinalizeInvoiceParams{})
		return err
	}, "POST", "/v1/invoices/{id}/finalize"},
	{"Invoices.ListLines", func(sc *client.API) error {
		return sc.Invoices.ListLines(&stripe.InvoiceListLinesParams{Invoice: stripe.String("in_1A2b")}).Err()
	}, "GET", "/v1/invoices/{id}/lines"},
	{"Invoices.Upcoming", func(sc *client.API) error {
		_, err := sc.Invoices.Upcoming(&stripe.InvoiceUpcomingParams{})
		return err
	}, "GET", "/v1/invoices/upcoming"},
	{"InvoiceItems.New", func(sc *client.API) error {
		_, err := sc.InvoiceItems.New(&stripe.InvoiceItemParams{})
		return err
	}, "POST", "/v1/invoiceitems"},
	{"InvoiceItems.List", func(sc *client.API) error {
		return sc.InvoiceItems.List(&stripe.InvoiceItemListParams{}).Err()
	}, "GET", "/v1/invoiceitems"},
}

func TestEveryStripeCallTollgateMakesHasItsOwnLabel(t *testing.T) {
	// Any answer will do: the label is the request's, whatever comes back.
	stub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"object":"list","data":[],"has_more":false}`))
	}))
	t.Cleanup(stub.Close)
	sc := stripetest.ClientAt(stub.URL, nil, 0)
	for _, c := range stripeCalls {
		t.Run(c.call, func(t *testing.T) {
			series := observe.StripeCalls.WithLabelValues(c.method, c.path, "2xx")
			before := observetest.Observations(series)
			if err := c.do(sc); err != nil {
				t.Fatalf("%s: %v", c.call, err)
			}
			if got := observetest.Observations(series) - before; got != 1 {
				t.Errorf("%s: stripe_request_duration{method=%q, path=%q} observed %d calls, want 1", c.call, c.method, c.path, got)
			}
		})
	}
}

// stripeCallInCode matches a call on a Stripe client's service:
// sc.InvoiceItems.New(, s.stripe.Invoices.List(, …
var stripeCallInCode = regexp.MustCompile(`\b(?:sc|s\.stripe|stripe|a\.Stripe)\.([A-Z][A-Za-z]+)\.([A-Z][A-Za-z]+)\(`)

func TestTheLabelTableCoversEveryStripeCallInTheCode(t *testing.T) {
	known := map[string]bool{}
	for _, c := range stripeCalls {
		known[c.call] = true
	}
	root := filepath.Join("..", "..")
	found := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range stripeCallInCode.FindAllStringSubmatch(string(b), -1) {
			found++
			if call := m[1] + "." + m[2]; !known[call] {
				t.Errorf("%s calls Stripe's %s, which stripeCalls does not list: add it with its path label (and its words to pathWords)", p, call)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found < len(stripeCalls) {
		t.Errorf("found %d Stripe calls in the code, fewer than the %d the table lists: the pattern no longer matches how the code calls Stripe", found, len(stripeCalls))
	}
}
