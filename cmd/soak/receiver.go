package main

import (
	"encoding/json"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// While failing, failFirstShare of events are answered 500 the first time
// they arrive, so that Tollgate's retries carry part of the deliveries.
const failFirstShare = 0.5

// receiver is the host application's side of Tollgate's outbound webhooks:
// an HTTP server on loopback with one endpoint per organisation
// (/hooks/<name>), which verifies each delivery with the Standard Webhooks
// library and keeps what arrived, by webhook-id. It can be told to fail
// first arrivals for a while, and be made unreachable for a while: its
// listener closes and opens again on the same port.
type receiver struct {
	srv  *http.Server
	addr string

	mu        sync.Mutex
	ln        net.Listener
	rng       *rand.Rand
	endpoints map[string]*hookEndpoint
	failing   bool // answering 500 to a share of first arrivals
	requests  int
	unknown   int // requests to no registered endpoint
}

// hookEndpoint is what one endpoint received.
type hookEndpoint struct {
	name     string
	wh       *standardwebhooks.Webhook
	byID     map[string]*hookMessage
	badSig   int // deliveries whose signature did not verify
	mismatch int // bodies whose id is not their webhook-id header
	failed   int // answered 500 on purpose
}

// hookMessage is one webhook-id as received.
type hookMessage struct {
	id        string
	payload   hookPayload
	delivered int // answered 2xx
	failed    int // answered 500 on purpose
}

// hookPayload is the body Tollgate sends (outbound.payload).
type hookPayload struct {
	ID             string `json:"id"`
	Type           string `json:"type"`
	OrganizationID string `json:"organization_id"`
	Sequence       int64  `json:"sequence"`
	Data           struct {
		Meter   string `json:"meter"`
		Period  string `json:"period"`
		Percent int    `json:"percent"`
		Used    int64  `json:"used"`
		Limit   int64  `json:"limit"`
	} `json:"data"`
}

func newReceiver() (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &receiver{
		ln: ln, addr: ln.Addr().String(), endpoints: map[string]*hookEndpoint{},
		rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 14)),
	}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	// Every delivery on a new connection: while the listener is closed,
	// nothing reaches the receiver, not even over a kept-alive connection.
	r.srv.SetKeepAlivesEnabled(false)
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

// url is where endpoint name receives.
func (r *receiver) url(name string) string { return "http://" + r.addr + "/hooks/" + name }

// register expects deliveries at name, signed with secret.
func (r *receiver) register(name, secret string) error {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.endpoints[name] = &hookEndpoint{name: name, wh: wh, byID: map[string]*hookMessage{}}
	return nil
}

// failFirstArrivals starts or stops answering 500 to a share of first
// arrivals.
func (r *receiver) failFirstArrivals(on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failing = on
}

// down closes the listener: connections are refused until up.
func (r *receiver) down() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ln != nil {
		_ = r.ln.Close()
		r.ln = nil
	}
}

// up listens again on the same address.
func (r *receiver) up() error {
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.ln = ln
	r.mu.Unlock()
	go func() { _ = r.srv.Serve(ln) }()
	return nil
}

func (r *receiver) close() {
	_ = r.srv.Close()
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	ep := r.endpoints[strings.TrimPrefix(req.URL.Path, "/hooks/")]
	if ep == nil || req.Method != http.MethodPost {
		r.unknown++
		http.NotFound(w, req)
		return
	}
	// What a receiver must do first: verify with the library, which also
	// refuses a timestamp more than 5 minutes off.
	if err := ep.wh.Verify(body, req.Header); err != nil {
		ep.badSig++
		http.Error(w, "bad signature", http.StatusBadRequest)
		return
	}
	var p hookPayload
	id := req.Header.Get(standardwebhooks.HeaderWebhookID)
	if err := json.Unmarshal(body, &p); err != nil || p.ID != id {
		ep.mismatch++
		http.Error(w, "body id is not webhook-id", http.StatusBadRequest)
		return
	}
	m := ep.byID[id]
	if m == nil {
		m = &hookMessage{id: id, payload: p}
		ep.byID[id] = m
		if r.failing && r.rng.Float64() < failFirstShare {
			m.failed++
			ep.failed++
			http.Error(w, "failing a first attempt on purpose", http.StatusInternalServerError)
			return
		}
	}
	m.delivered++
	w.WriteHeader(http.StatusNoContent)
}

// hookTotals is what all endpoints received, for the report.
type hookTotals struct {
	requests, unknown, badSig, mismatch, failed int
}

func (r *receiver) totals() hookTotals {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := hookTotals{requests: r.requests, unknown: r.unknown}
	for _, ep := range r.endpoints {
		t.badSig += ep.badSig
		t.mismatch += ep.mismatch
		t.failed += ep.failed
	}
	return t
}

// delivered lists, per endpoint, the messages answered 2xx at least once,
// copied.
func (r *receiver) delivered() map[string][]hookMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]hookMessage{}
	for name, ep := range r.endpoints {
		for _, m := range ep.byID {
			if m.delivered > 0 {
				out[name] = append(out[name], *m)
			}
		}
	}
	return out
}
