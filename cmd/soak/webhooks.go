package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/tollgate-billing/tollgate/internal/billing"
)

const (
	// copies is how often each event is delivered.
	copies = 3
	// webhookWorkers deliver at once, to both processes.
	webhookWorkers = 16
	// deliveryAttempts bounds retries of a delivery answered other than 200,
	// as Stripe retries.
	deliveryAttempts = 5
)

// delivery is one copy of one event.
type delivery struct {
	life, version int
}

// webhookTally is what the deliveries were answered.
type webhookTally struct {
	mu       sync.Mutex
	outcomes map[string]int // of 200 answers
	refused  map[string]int // non-200 answers and transport errors, by kind
	failed   int            // deliveries never answered 200
	perProc  []atomic.Int64
}

func (t *webhookTally) count(m map[string]int, k string) {
	t.mu.Lock()
	m[k]++
	t.mu.Unlock()
}

// webhookPhase sends every version of every lifecycle three times, shuffled,
// to all processes at once, then checks each subscription against its last
// version.
func webhookPhase(ctx context.Context, env *environment, o options, rep *report, log *slog.Logger) error {
	const phase = "2 webhooks"
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	paid := paidPlans(env.catalog)
	base := time.Now().UTC().Truncate(time.Second).AddDate(0, 0, -20)
	lives := make([]lifecycle, o.lifecycles)
	for i := range lives {
		lives[i] = newLifecycle(rng, env.runID, i, paid, base, rng.Float64() < o.sameSecond)
	}
	hc := newHTTPClient(30 * time.Second)
	start := time.Now()
	log.Info("soak: phase 2: creating organisations", "count", len(lives))
	if err := createOrgs(ctx, env, hc, lives); err != nil {
		return err
	}
	orgsTook := time.Since(start)

	var queue []delivery
	events := 0
	for i, l := range lives {
		for j := range l.versions {
			events++
			for range copies {
				queue = append(queue, delivery{i, j})
			}
		}
	}
	rng.Shuffle(len(queue), func(i, j int) { queue[i], queue[j] = queue[j], queue[i] })
	bodies := make([][][]byte, len(lives))
	for i, l := range lives {
		bodies[i] = make([][]byte, len(l.versions))
		for j := range l.versions {
			bodies[i][j] = l.event(j)
		}
	}

	log.Info("soak: phase 2: delivering", "events", events, "deliveries", len(queue))
	tally := &webhookTally{outcomes: map[string]int{}, refused: map[string]int{}, perProc: make([]atomic.Int64, len(env.processes()))}
	sendStart := time.Now()
	err := forEach(ctx, len(queue), webhookWorkers, func(ctx context.Context, i int) error {
		d := queue[i]
		deliver(ctx, env, hc, bodies[d.life][d.version], tally)
		return nil
	})
	if err != nil {
		return err
	}
	sendTook := time.Since(sendStart)

	rep.info(phase, "lifecycles / events / deliveries", fmt.Sprintf("%d / %d / %d (each event %d×, shuffled)", len(lives), events, len(queue), copies))
	if o.sameSecond > 0 {
		rep.info(phase, "lifecycles whose first update shares the creation's second", fmt.Sprintf("about %.0f%%", 100*o.sameSecond))
	}
	rep.info(phase, "organisations created over GraphQL", fmt.Sprintf("%d in %s", len(lives), orgsTook.Round(time.Millisecond)))
	perProc := make([]string, len(tally.perProc))
	for i := range tally.perProc {
		perProc[i] = fmt.Sprint(tally.perProc[i].Load())
	}
	rep.info(phase, "deliveries to "+processNames(env), fmt.Sprintf("%s in %s, %.0f/s", strings.Join(perProc, " / "),
		sendTook.Round(time.Millisecond), float64(len(queue))/sendTook.Seconds()))
	rep.info(phase, "answers 200 by outcome", describeCounts(tally.outcomes))
	rep.info(phase, "answers other than 200 (retried)", describeCounts(tally.refused))
	rep.check(phase, "deliveries never answered 200", tally.failed, 0)
	rep.check(phase, "answered applied or stale", tally.outcomes["applied"]+tally.outcomes["stale"], events)
	rep.check(phase, "answered duplicate", tally.outcomes["duplicate"], (copies-1)*events)
	return verifySubscriptions(ctx, env, hc, rep, phase, lives, events)
}

// createOrgs makes each lifecycle's organisation the way a dashboard user's
// first request does, alternating processes, and records its id.
func createOrgs(ctx context.Context, env *environment, hc *http.Client, lives []lifecycle) error {
	return forEach(ctx, len(lives), webhookWorkers, func(ctx context.Context, i int) error {
		t := env.proc(i)
		var org struct{ Organization struct{ ID string } }
		if err := query(ctx, hc, t.url, bearer(env.token(lives[i].orgExternal)), orgQuery, nil, &org); err != nil {
			return fmt.Errorf("create organisation %s on %s: %w", lives[i].orgExternal, t.name, err)
		}
		lives[i].orgID = org.Organization.ID
		return recordCheckout(ctx, env, lives[i].orgID, lives[i].customer)
	})
}

// recordCheckout stores the record Tollgate keeps of a Checkout session it
// opened for the organisation and customer, as createCheckoutSession does
// before Stripe sends anything: Tollgate places a subscription of a
// customer not yet linked by its metadata.org_id only when it opened a
// checkout for that organisation and customer.
func recordCheckout(ctx context.Context, env *environment, orgID, customer string) error {
	return billing.RecordCheckoutOpened(ctx, env.store, orgID, customer, "", "", time.Now())
}

// deliver posts one event, signed now as Stripe signs each attempt, to a
// random process, retrying anything but a 200.
func deliver(ctx context.Context, env *environment, hc *http.Client, body []byte, tally *webhookTally) {
	for attempt := range deliveryAttempts {
		p := rand.IntN(len(env.processes()))
		tally.perProc[p].Add(1)
		status, outcome, err := postStripeEvent(ctx, env, hc, env.processes()[p], body)
		switch {
		case err != nil:
			tally.count(tally.refused, "transport error")
		case status == http.StatusOK:
			tally.count(tally.outcomes, outcome)
			return
		default:
			tally.count(tally.refused, fmt.Sprintf("http %d", status))
		}
		if ctx.Err() != nil {
			return
		}
		time.Sleep(time.Duration(100*(attempt+1)) * time.Millisecond)
	}
	tally.mu.Lock()
	tally.failed++
	tally.mu.Unlock()
}

// postStripeEvent posts one Stripe event to t, signed now, and reports the
// HTTP status and the outcome Tollgate answered (applied, stale,
// duplicate).
func postStripeEvent(ctx context.Context, env *environment, hc *http.Client, t *tollgate, body []byte) (int, string, error) {
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: env.webhookSecret, Timestamp: time.Now()})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url+"/webhooks/stripe", bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", signed.Header)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var out struct{ Outcome string }
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out.Outcome, nil
}
