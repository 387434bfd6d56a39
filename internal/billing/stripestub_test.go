package billing_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/client"

	"github.com/tollgate-billing/tollgate/internal/stripeclient/stripetest"
)

// stripeStub is the few Checkout endpoints of Stripe, for what stripe-mock
// cannot do: stall, or fail after creating. Like Stripe, it answers a
// repeated idempotency key with the object the first request created.
type stripeStub struct {
	t  *testing.T
	mu sync.Mutex
	// byKey maps an idempotency key to the id it created.
	byKey map[string]string
	// sessions maps a session id to its status: open, expired or complete.
	sessions map[string]string
	created  []string // session ids in creation order
	// failAfterCreate is how many more session creations are answered with
	// a server error once the session exists.
	failAfterCreate int
	// stall, when set, holds each session creation and subscription read
	// until it is closed or stallFor passes; arrived hears of each held
	// request.
	stall    chan struct{}
	stallFor time.Duration
	arrived  chan struct{}
	// stalled counts creations that were held to the end of stallFor.
	stalledOut int
	// subscriptions are what the stub holds for /v1/subscriptions/:id, by
	// id: updates and cancellations change them as Stripe would.
	subscriptions map[string]map[string]any
	// sold maps a paid session to the subscription it sold.
	sold map[string]string
	// customerID, sessionURL and portalURL, when set (answer), are what
	// the stub answers for every customer id, Checkout session URL and
	// portal session URL: a well-formed answer Tollgate may not use.
	customerID, sessionURL, portalURL string
	// unusableNext is how many more new sessions are created with a URL
	// Tollgate may not use; unusable holds them, and a repeated
	// idempotency key replays that answer, as Stripe does.
	unusableNext int
	unusable     map[string]bool
	// customerAnswers are the answers, in order, to the next new customer
	// keys: "unusable" (an id Tollgate may not use) or "refused" (a 402).
	// Like Stripe, a repeated key replays the answer its first request got.
	customerAnswers []string
	customerReplies map[string]string
	// loseCustomerAnswer, when set, is called once the next customer is
	// created, and that request's answer is never sent: it is held until
	// the caller gives up, as after a timeout.
	loseCustomerAnswer func()
	// customerKeys are the idempotency keys of the customer requests, in
	// order.
	customerKeys []string
}

// changeSubscription answers a read, update (cancel_at_period_end) or
// cancellation of a subscription the test gave the stub.
func (s *stripeStub) changeSubscription(w http.ResponseWriter, r *http.Request, id string) {
	s.mu.Lock()
	sub := s.subscriptions[id]
	switch r.Method {
	case http.MethodPost:
		if v := r.PostForm.Get("cancel_at_period_end"); v != "" {
			sub["cancel_at_period_end"] = v == "true"
		}
	case http.MethodDelete:
		sub["status"], sub["canceled_at"] = "canceled", time.Now().Unix()
	}
	body, err := json.Marshal(sub)
	s.mu.Unlock()
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, stripeError(err.Error()))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

func newStripeStub(t *testing.T) *stripeStub {
	return &stripeStub{t: t, byKey: map[string]string{}, sessions: map[string]string{}, subscriptions: map[string]map[string]any{}}
}

// client returns a Stripe client for the stub that does not retry, so each
// call is one request.
func (s *stripeStub) client() *client.API {
	srv := httptest.NewServer(s)
	s.t.Cleanup(srv.Close)
	return stripetest.ClientAt(srv.URL, nil, 0)
}

func (s *stripeStub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	key := r.Header.Get("Idempotency-Key")
	path := r.URL.Path
	switch {
	case r.Method == http.MethodPost && path == "/v1/customers":
		s.mu.Lock()
		s.customerKeys = append(s.customerKeys, key)
		id, ok := s.byKey[key]
		if !ok {
			id = fmt.Sprintf("cus_stub%d", len(s.byKey)+1)
			s.byKey[key] = id
			if len(s.customerAnswers) > 0 {
				if s.customerReplies == nil {
					s.customerReplies = map[string]string{}
				}
				s.customerReplies[key], s.customerAnswers = s.customerAnswers[0], s.customerAnswers[1:]
			}
		}
		if s.customerID != "" {
			id = s.customerID
		}
		reply, lose := s.customerReplies[key], s.loseCustomerAnswer
		s.loseCustomerAnswer = nil
		s.mu.Unlock()
		switch {
		case lose != nil:
			lose()
			<-r.Context().Done()
		case reply == "unusable":
			writeJSON(w, http.StatusOK, map[string]any{"id": "cus_\u0000" + id, "object": "customer"})
		case reply == "refused":
			writeJSON(w, http.StatusPaymentRequired, map[string]any{"error": map[string]any{"type": "invalid_request_error",
				"code": "account_invalid", "message": "The customer cannot be created"}})
		default:
			writeJSON(w, http.StatusOK, map[string]any{"id": id, "object": "customer", "email": r.PostForm.Get("email")})
		}
	case r.Method == http.MethodPost && path == "/v1/checkout/sessions":
		s.hold()
		s.mu.Lock()
		id, ok := s.byKey[key]
		if !ok {
			id = fmt.Sprintf("cs_stub%d", len(s.created)+1)
			s.byKey[key] = id
			s.sessions[id] = "open"
			s.created = append(s.created, id)
			if s.unusableNext > 0 {
				s.unusableNext--
				if s.unusable == nil {
					s.unusable = map[string]bool{}
				}
				s.unusable[id] = true
			}
		}
		fail := s.failAfterCreate > 0
		if fail {
			s.failAfterCreate--
		}
		s.mu.Unlock()
		if fail {
			writeJSON(w, http.StatusInternalServerError, map[string]any{"error": map[string]any{"type": "api_error", "message": "An unknown error occurred"}})
			return
		}
		writeJSON(w, http.StatusOK, s.session(id))
	case r.Method == http.MethodPost && path == "/v1/billing_portal/sessions":
		url := "https://billing.stripe.com/p/session/bps_stub"
		s.mu.Lock()
		if s.portalURL != "" {
			url = s.portalURL
		}
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"id": "bps_stub", "object": "billing_portal.session", "url": url})
	case r.Method == http.MethodPost && strings.HasSuffix(path, "/expire"):
		id := strings.TrimSuffix(strings.TrimPrefix(path, "/v1/checkout/sessions/"), "/expire")
		s.mu.Lock()
		status, ok := s.sessions[id]
		if ok && status == "open" {
			s.sessions[id] = "expired"
		}
		s.mu.Unlock()
		switch {
		case !ok:
			writeJSON(w, http.StatusNotFound, stripeError("No such checkout.session"))
		case status != "open":
			writeJSON(w, http.StatusBadRequest, stripeError("Only open sessions can be expired"))
		default:
			writeJSON(w, http.StatusOK, s.session(id))
		}
	case strings.HasPrefix(path, "/v1/subscriptions/") && s.subscriptions[strings.TrimPrefix(path, "/v1/subscriptions/")] != nil:
		s.changeSubscription(w, r, strings.TrimPrefix(path, "/v1/subscriptions/"))
	case r.Method == http.MethodGet && strings.HasPrefix(path, "/v1/subscriptions/"):
		s.hold()
		id := strings.TrimPrefix(path, "/v1/subscriptions/")
		now := time.Now().Unix()
		writeJSON(w, http.StatusOK, map[string]any{"id": id, "object": "subscription", "status": "active",
			"customer": "cus_" + id, "created": now, "current_period_start": now, "current_period_end": now + 30*86400,
			"items": map[string]any{"object": "list", "data": []any{map[string]any{"id": "si_" + id, "object": "subscription_item",
				"price": map[string]any{"id": "price_tollgate_starter_monthly", "object": "price"}}}}})
	case r.Method == http.MethodGet && strings.HasPrefix(path, "/v1/checkout/sessions/"):
		id := strings.TrimPrefix(path, "/v1/checkout/sessions/")
		if _, ok := s.status(id); !ok {
			writeJSON(w, http.StatusNotFound, stripeError("No such checkout.session"))
			return
		}
		writeJSON(w, http.StatusOK, s.session(id))
	default:
		writeJSON(w, http.StatusNotFound, stripeError("the stub has no "+r.Method+" "+path))
	}
}

// answer makes the stub answer every customer with customerID, and every
// Checkout and portal session with sessionURL and portalURL; "" is the
// stub's own answer.
func (s *stripeStub) answer(customerID, sessionURL, portalURL string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.customerID, s.sessionURL, s.portalURL = customerID, sessionURL, portalURL
}

// hold stalls a request while the stub is set to.
func (s *stripeStub) hold() {
	if s.stall == nil {
		return
	}
	s.arrived <- struct{}{}
	select {
	case <-s.stall:
	case <-time.After(s.stallFor):
		s.mu.Lock()
		s.stalledOut++
		s.mu.Unlock()
	}
}

func (s *stripeStub) session(id string) map[string]any {
	status, _ := s.status(id)
	out := map[string]any{"id": id, "object": "checkout.session", "mode": "subscription", "status": status,
		"url": "https://checkout.stripe.com/c/pay/" + id}
	s.mu.Lock()
	if s.sessionURL != "" {
		out["url"] = s.sessionURL
	}
	if s.unusable[id] {
		out["url"] = "javascript:alert(1)"
	}
	if sub := s.sold[id]; sub != "" {
		out["subscription"] = sub
	}
	s.mu.Unlock()
	return out
}

// pay completes a session as a customer paying it would, selling subID.
func (s *stripeStub) pay(id, subID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sessions[id] = "complete"
	if s.sold == nil {
		s.sold = map[string]string{}
	}
	s.sold[id] = subID
}

func (s *stripeStub) status(id string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.sessions[id]
	return st, ok
}

// open returns the sessions that can still be paid.
func (s *stripeStub) open() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, id := range s.created {
		if s.sessions[id] == "open" {
			out = append(out, id)
		}
	}
	return out
}

func (s *stripeStub) createdSessions() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.created...)
}

func stripeError(msg string) map[string]any {
	return map[string]any{"error": map[string]any{"type": "invalid_request_error", "message": msg}}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
