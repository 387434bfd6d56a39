package overage_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// stripeMaxItems is the most line items Stripe lets one invoice hold.
const stripeMaxItems = 250

// itemLimit is Stripe's side of an invoice's item count: the invoice
// invoice starts with lines line items of its own (its subscription's, and
// items added by others), listed by GET /v1/invoices/{id}/lines, and an
// item past stripeMaxItems is refused, as Stripe refuses it. Every other
// request goes to stripe-mock.
type itemLimit struct {
	mu      sync.Mutex
	invoice string
	lines   int
	added   map[string]int
	refused int
}

func (l *itemLimit) RoundTrip(req *http.Request) (*http.Response, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case req.Method == http.MethodGet && req.URL.Path == "/v1/invoices/"+l.invoice+"/lines":
		return stubResponse(req, http.StatusOK, map[string]any{"object": "list", "has_more": false,
			"url": req.URL.Path, "data": ownLines(l.lines)}), nil
	case req.Method == http.MethodPost && req.URL.Path == "/v1/invoiceitems":
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		form, _ := url.ParseQuery(string(body))
		inv := form.Get("invoice")
		had := l.added[inv]
		if inv == l.invoice {
			had += l.lines
		}
		if had >= stripeMaxItems {
			l.refused++
			return stubResponse(req, http.StatusBadRequest, map[string]any{"error": map[string]any{"type": "invalid_request_error",
				"code": "invoice_line_item_limit_exceeded", "message": "An invoice cannot have more than 250 line items."}}), nil
		}
		l.added[inv]++
	}
	return http.DefaultTransport.RoundTrip(req)
}

// ownLines are n line items of an invoice that are not Tollgate's.
func ownLines(n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = map[string]any{"id": fmt.Sprintf("il_own%d", i), "object": "line_item", "type": "invoiceitem",
			"amount": 100, "currency": "usd"}
	}
	return out
}

// An invoice that already holds one item fewer than Stripe allows takes
// the oldest charge, and the other waits for the next invoice: counted as
// invoice_limit and logged at ERROR once however often the invoice is
// delivered, and never sent for Stripe to refuse. The invoice's lines are
// counted whether its invoice.created carries all of them or, cut short,
// only the first (has_more), when they are read from Stripe.
func TestAnInvoiceTakesNoMoreOverageItemsThanStripeAllows(t *testing.T) {
	for _, tc := range []struct {
		name    string
		carried int // lines the event carries
		hasMore bool
	}{
		{"every line in the event", stripeMaxItems - 1, false},
		{"the event's lines cut short", 10, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
				nov := "in_nov_" + store.NewID()[:8]
				stub := &itemLimit{invoice: nov, lines: stripeMaxItems - 1, added: map[string]int{}}
				f := newFixtureTo(t, db, stub)
				f.record("api_calls", 100_500)
				f.record("llm_tokens", 1_050_000)
				calls, tokens := f.expect("api_calls", "2026-10", 100_500), f.expect("llm_tokens", "2026-10", 1_050_000)

				f.clock.Set(time.Date(2026, 11, 1, 0, 5, 0, 0, time.UTC))
				var ev map[string]any
				if err := json.Unmarshal(f.invoiceCreated("evt_"+store.NewID(), nov, "draft"), &ev); err != nil {
					t.Fatal(err)
				}
				obj := ev["data"].(map[string]any)["object"].(map[string]any)
				obj["lines"] = map[string]any{"object": "list", "has_more": tc.hasMore, "data": ownLines(tc.carried),
					"url": "/v1/invoices/" + nov + "/lines"}
				body, err := json.Marshal(ev)
				if err != nil {
					t.Fatal(err)
				}
				f.checkLeftForTheNext(body, nov, calls, tokens, func() int { return stub.refused })
			})
		})
	}
}
