package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

const (
	recordUsage = `mutation Record($in: RecordUsageInput!) { recordUsage(input: $in) {
  accepted duplicates rejected { index code message } userErrors { field code message } } }`
	createKey = `mutation Key($in: CreateApiKeyInput!) { createApiKey(input: $in) {
  secret apiKey { id } userErrors { field code message } } }`
	orgQuery = `{ organization { id } }`

	maxBatch = 20
	// reuseShare of events carry a key already sent: a client retrying
	// after a lost answer, possibly while the first attempt is in flight.
	reuseShare = 0.10
	// retryBudget is how long one batch is retried before it is abandoned.
	// It outlasts both outages.
	retryBudget = 2 * time.Minute
	// attemptTimeout bounds one HTTP exchange; Tollgate's own request
	// deadline is 15 s.
	attemptTimeout = 20 * time.Second
)

var endpoints = []string{"POST /v1/search", "GET /v1/items", "POST /v1/chat", ""}

// usageLoad is phase 1's clients and what they were told.
type usageLoad struct {
	env    *environment
	client *http.Client
	secret string
	start  time.Time
	stopAt time.Time

	mu    sync.Mutex
	took  []time.Duration     // first attempt to success, per batch
	sent  []string            // every key sent, for reuse
	acked map[string]struct{} // keys of batches that succeeded
	fails map[string]int      // failed attempts by kind

	batches, events, reused, accepted, duplicates, rejected atomic.Int64
	abandoned, perA, perB, miscounted                       atomic.Int64
}

type recordPayload struct {
	RecordUsage struct {
		Accepted   int
		Duplicates int
		Rejected   []struct {
			Index         int
			Code, Message string
		}
		UserErrors []struct{ Field, Code, Message string }
	}
}

// usagePhase records usage from many clients through a Redis outage and a
// Postgres restart, then checks the database against what clients were
// told.
func usagePhase(ctx context.Context, env *environment, o options, rep *report, log *slog.Logger) error {
	const phase = "1 usage"
	tok := env.token("soak-usage-" + env.runID)
	hc := newHTTPClient(attemptTimeout)
	var org struct{ Organization struct{ ID string } }
	if err := query(ctx, hc, env.a.url, bearer(tok), orgQuery, nil, &org); err != nil {
		return fmt.Errorf("create organisation: %w", err)
	}
	orgID := org.Organization.ID
	var key struct {
		CreateApiKey struct {
			Secret     *string
			UserErrors []struct{ Field, Code, Message string }
		}
	}
	in := map[string]any{"name": "soak usage", "scopes": []string{"USAGE_WRITE", "BILLING_READ"}}
	if err := query(ctx, hc, env.b.url, bearer(tok), createKey, map[string]any{"in": in}, &key); err != nil || key.CreateApiKey.Secret == nil {
		return fmt.Errorf("create api key: %v %+v", err, key.CreateApiKey.UserErrors)
	}

	l := &usageLoad{
		env: env, client: hc, secret: *key.CreateApiKey.Secret,
		acked: map[string]struct{}{}, fails: map[string]int{},
	}
	l.start = time.Now()
	l.stopAt = l.start.Add(o.duration)
	periods := []string{l.start.UTC().Format("2006-01")}
	log.Info("soak: phase 1: recording usage", "clients", o.clients, "duration", o.duration)

	var faultErr error
	var timeline []string
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		timeline, faultErr = injectFaults(ctx, env, l.start, o.duration, log)
	}()
	progress := time.NewTicker(10 * time.Second)
	loadDone := make(chan struct{})
	go func() {
		for {
			select {
			case <-loadDone:
				return
			case <-progress.C:
				log.Info("soak: phase 1 progress", "t", time.Since(l.start).Round(time.Second),
					"batches", l.batches.Load(), "events", l.events.Load(), "abandoned", l.abandoned.Load())
			}
		}
	}()
	var clients sync.WaitGroup
	for i := range o.clients {
		clients.Add(1)
		go func() {
			defer clients.Done()
			l.runClient(ctx, i)
		}()
	}
	clients.Wait()
	progress.Stop()
	close(loadDone)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	if faultErr != nil {
		return faultErr
	}
	loadTime := time.Since(l.start)
	if end := time.Now().UTC().Format("2006-01"); end != periods[0] {
		periods = append(periods, end)
	}

	l.mu.Lock()
	acked, sent, fails, took := l.acked, len(l.sent), l.fails, l.took
	l.mu.Unlock()

	rep.info(phase, "clients × duration", fmt.Sprintf("%d × %s (load ran %s)", o.clients, o.duration, loadTime.Round(time.Second)))
	for _, t := range timeline {
		rep.info(phase, "fault", t)
	}
	rep.info(phase, "batches acknowledged (a / b)", fmt.Sprintf("%d (%d / %d), %.0f/s",
		l.batches.Load(), l.perA.Load(), l.perB.Load(), float64(l.batches.Load())/loadTime.Seconds()))
	rep.info(phase, "events sent / reusing an earlier key", fmt.Sprintf("%d / %d (%.1f%%)",
		l.events.Load(), l.reused.Load(), 100*float64(l.reused.Load())/float64(max(l.events.Load(), 1))))
	rep.info(phase, "failed attempts, retried with the same keys", describeCounts(fails))
	rep.info(phase, "batch latency, first attempt to success", describeLatency(took))
	rep.check(phase, "batches abandoned after "+retryBudget.String(), l.abandoned.Load(), 0)
	rep.check(phase, "events rejected by Tollgate", l.rejected.Load(), 0)
	rep.check(phase, "answers where accepted+duplicates+rejected ≠ batch size", l.miscounted.Load(), 0)
	rep.checkThat(phase, "accepted as new, summed over answers", l.accepted.Load(),
		fmt.Sprintf("≤ %d acknowledged keys", len(acked)), l.accepted.Load() <= int64(len(acked)))
	rep.info(phase, "answered duplicate, summed over answers", l.duplicates.Load())
	rep.info(phase, "distinct keys sent", sent)

	return l.verify(ctx, rep, phase, orgID, tok, acked, periods)
}

// runClient records batches until the run's end. A batch is retried with
// the same keys until it succeeds; only then are its keys acknowledged.
func (l *usageLoad) runClient(ctx context.Context, id int) {
	rng := rand.New(rand.NewPCG(uint64(id), uint64(time.Now().UnixNano())))
	seq := 0
	for time.Now().Before(l.stopAt) && ctx.Err() == nil {
		n := 1 + rng.IntN(maxBatch)
		events := make([]map[string]any, n)
		keys := make([]string, n)
		for i := range events {
			l.mu.Lock()
			if len(l.sent) > 0 && rng.Float64() < reuseShare {
				keys[i] = l.sent[rng.IntN(len(l.sent))]
				l.reused.Add(1)
			} else {
				seq++
				keys[i] = fmt.Sprintf("%s-c%02d-%06d", l.env.runID, id, seq)
				l.sent = append(l.sent, keys[i])
			}
			l.mu.Unlock()
			ev := map[string]any{"meter": usageMeter, "quantity": 1, "idempotencyKey": keys[i]}
			if ep := endpoints[rng.IntN(len(endpoints))]; ep != "" {
				ev["endpoint"] = ep
			}
			events[i] = ev
		}
		l.events.Add(int64(n))
		l.send(ctx, rng, keys, gqlBody(recordUsage, map[string]any{"in": map[string]any{"events": events}}))
	}
}

// send delivers one batch, retrying on any failure with backoff.
func (l *usageLoad) send(ctx context.Context, rng *rand.Rand, keys []string, body []byte) {
	first := time.Now()
	backoff := 50 * time.Millisecond
	for attempt := 0; ; attempt++ {
		if ctx.Err() != nil {
			return
		}
		if time.Since(first) > retryBudget {
			l.abandoned.Add(1)
			return
		}
		procs := l.env.processes()
		p := rng.IntN(len(procs))
		headers := map[string]string{"X-API-Key": l.secret}
		if rng.IntN(2) == 0 {
			headers = map[string]string{"Authorization": "Bearer " + l.secret}
		}
		r, err := postGraphQL(ctx, l.client, procs[p].url, headers, body)
		failure := r.failure(err)
		var out recordPayload
		if failure == "" {
			if err := json.Unmarshal(r.Data, &out); err != nil {
				failure = "undecodable payload"
			} else if len(out.RecordUsage.UserErrors) > 0 {
				failure = "userErrors " + out.RecordUsage.UserErrors[0].Code
			}
		}
		if failure == "" {
			l.acknowledge(keys, out, p, time.Since(first))
			return
		}
		l.mu.Lock()
		l.fails[failure]++
		l.mu.Unlock()
		sleep := backoff/2 + time.Duration(rng.Int64N(int64(backoff)))
		select {
		case <-ctx.Done():
			return
		case <-time.After(sleep):
		}
		backoff = min(2*backoff, time.Second)
	}
}

func (l *usageLoad) acknowledge(keys []string, out recordPayload, proc int, took time.Duration) {
	rejected := map[int]bool{}
	for _, r := range out.RecordUsage.Rejected {
		rejected[r.Index] = true
	}
	l.mu.Lock()
	for i, k := range keys {
		if !rejected[i] {
			l.acked[k] = struct{}{}
		}
	}
	l.took = append(l.took, took)
	l.mu.Unlock()
	l.batches.Add(1)
	if proc == 0 {
		l.perA.Add(1)
	} else {
		l.perB.Add(1)
	}
	l.accepted.Add(int64(out.RecordUsage.Accepted))
	l.duplicates.Add(int64(out.RecordUsage.Duplicates))
	l.rejected.Add(int64(len(out.RecordUsage.Rejected)))
	if out.RecordUsage.Accepted+out.RecordUsage.Duplicates+len(out.RecordUsage.Rejected) != len(keys) {
		l.miscounted.Add(1)
	}
}
