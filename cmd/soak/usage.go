package main

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
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

// usageOrg is one organisation phase 1 records for, with its own API key.
// The main one is on the free plan, whose meter limit the load cannot
// reach; the alert ones are on paid plans whose limits it crosses.
type usageOrg struct {
	name, external, id, tok, secret string
	// share is its part of the batches.
	share  float64
	alerts *alertOrg  // nil for the main organisation
	hard   *hardTally // nil unless its plan has a hard hardMeter limit

	// Guarded by usageLoad.mu.
	sent  []string            // every key sent, for reuse
	acked map[string]struct{} // keys of batches that succeeded
}

// usageLoad is phase 1's clients and what they were told.
type usageLoad struct {
	env    *environment
	client *http.Client
	orgs   []*usageOrg
	start  time.Time
	stopAt time.Time

	mu    sync.Mutex
	took  []time.Duration // first attempt to success, per batch
	fails map[string]int  // failed attempts by kind

	batches, events, reused, accepted, duplicates, rejected atomic.Int64
	abandoned, miscounted                                   atomic.Int64
	perProc                                                 []atomic.Int64
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
	hc := newHTTPClient(attemptTimeout)
	main := &usageOrg{name: "main", external: "soak-usage-" + env.runID, share: mainShare}
	if err := main.create(ctx, env, hc, 0); err != nil {
		return err
	}
	orgs := []*usageOrg{main}
	alertOrgs, err := setUpAlertOrgs(ctx, env, hc, log)
	if err != nil {
		return err
	}
	orgs = append(orgs, alertOrgs...)
	probe := &freshness{org: &usageOrg{name: "freshness", external: "soak-fresh-" + env.runID}, hc: hc, env: env}
	if err := probe.org.create(ctx, env, hc, 1); err != nil {
		return err
	}

	l := &usageLoad{env: env, client: hc, orgs: orgs, fails: map[string]int{}, perProc: make([]atomic.Int64, len(env.processes()))}
	l.start = time.Now()
	l.stopAt = l.start.Add(o.duration)
	probe.stop = l.stopAt
	periods := []string{l.start.UTC().Format("2006-01")}
	log.Info("soak: phase 1: recording usage", "clients", o.clients, "duration", o.duration)

	var faultErr error
	var timeline []string
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		timeline, faultErr = injectFaults(ctx, env, l.start, o.duration, probe.redisOutage, log)
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
	clients.Add(1)
	go func() {
		defer clients.Done()
		probe.run(ctx)
	}()
	for i := range o.clients {
		clients.Add(1)
		go func() {
			defer clients.Done()
			l.runClient(ctx, i)
		}()
	}
	consumers := 0
	for _, org := range orgs {
		for range org.hard.consumers() {
			clients.Add(1)
			go func(id int) {
				defer clients.Done()
				l.runConsumer(ctx, org, id)
			}(consumers)
			consumers++
		}
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
	fails, took := l.fails, l.took
	sent, acked := 0, 0
	for _, o := range l.orgs {
		sent += len(o.sent)
		acked += len(o.acked)
	}
	l.mu.Unlock()

	rep.info(phase, "clients × duration", fmt.Sprintf("%d × %s (load ran %s)", o.clients, o.duration, loadTime.Round(time.Second)))
	for _, t := range timeline {
		rep.info(phase, "fault", t)
	}
	perProc := make([]string, len(l.perProc))
	for i := range l.perProc {
		perProc[i] = fmt.Sprint(l.perProc[i].Load())
	}
	rep.info(phase, "organisations (batches to each)", describeOrgs(orgs))
	rep.info(phase, "batches acknowledged ("+processNames(env)+")", fmt.Sprintf("%d (%s), %.0f/s",
		l.batches.Load(), strings.Join(perProc, " / "), float64(l.batches.Load())/loadTime.Seconds()))
	rep.info(phase, "events sent / reusing an earlier key", fmt.Sprintf("%d / %d (%.1f%%)",
		l.events.Load(), l.reused.Load(), 100*float64(l.reused.Load())/float64(max(l.events.Load(), 1))))
	rep.info(phase, "failed attempts, retried with the same keys", describeCounts(fails))
	rep.info(phase, "batch latency, first attempt to success", describeLatency(took))
	rep.check(phase, "batches abandoned after "+retryBudget.String(), l.abandoned.Load(), 0)
	rep.check(phase, "events rejected by Tollgate", l.rejected.Load(), 0)
	rep.check(phase, "answers where accepted+duplicates+rejected ≠ batch size", l.miscounted.Load(), 0)
	rep.checkThat(phase, "accepted as new, summed over answers", l.accepted.Load(),
		fmt.Sprintf("≤ %d acknowledged keys", acked), l.accepted.Load() <= int64(acked))
	rep.info(phase, "answered duplicate, summed over answers", l.duplicates.Load())
	rep.info(phase, "distinct keys sent", sent)
	probe.report(rep, phase)

	totals, err := l.verify(ctx, rep, phase, periods)
	if err != nil {
		return err
	}
	for _, o := range alertOrgs {
		o.alerts.meter(usageMeter).total = totals[o]
	}
	if err := l.verifyHard(ctx, rep, phase); err != nil {
		return err
	}
	env.alerts = &alertCheck{orgs: alertOrgs, periods: periods, loadStart: l.start, loadEnd: l.stopAt}
	return nil
}

// create makes the organisation (its first request, on process i) and an
// API key for its usage (on the next process).
func (o *usageOrg) create(ctx context.Context, env *environment, hc *http.Client, i int) error {
	o.tok = env.token(o.external)
	o.acked = map[string]struct{}{}
	var org struct{ Organization struct{ ID string } }
	if err := query(ctx, hc, env.proc(i).url, bearer(o.tok), orgQuery, nil, &org); err != nil {
		return fmt.Errorf("create organisation %s: %w", o.external, err)
	}
	o.id = org.Organization.ID
	var key struct {
		CreateApiKey struct {
			Secret     *string
			UserErrors []struct{ Field, Code, Message string }
		}
	}
	in := map[string]any{"name": "soak usage", "scopes": []string{"USAGE_WRITE", "BILLING_READ"}}
	if err := query(ctx, hc, env.proc(i+1).url, bearer(o.tok), createKey, map[string]any{"in": in}, &key); err != nil || key.CreateApiKey.Secret == nil {
		return fmt.Errorf("create api key of %s: %v %+v", o.external, err, key.CreateApiKey.UserErrors)
	}
	o.secret = *key.CreateApiKey.Secret
	return nil
}

// pickOrg chooses a batch's organisation by the shares.
func (l *usageLoad) pickOrg(rng *rand.Rand) *usageOrg {
	x := rng.Float64()
	for _, o := range l.orgs {
		if x < o.share {
			return o
		}
		x -= o.share
	}
	return l.orgs[0]
}

func describeOrgs(orgs []*usageOrg) string {
	parts := make([]string, len(orgs))
	for i, o := range orgs {
		parts[i] = fmt.Sprintf("%s %.0f%%", o.name, 100*o.share)
	}
	return strings.Join(parts, ", ")
}

func processNames(env *environment) string {
	names := make([]string, len(env.processes()))
	for i, t := range env.processes() {
		names[i] = t.name
	}
	return strings.Join(names, " / ")
}

// runClient records batches until the run's end. A batch is retried with
// the same keys until it succeeds; only then are its keys acknowledged.
func (l *usageLoad) runClient(ctx context.Context, id int) {
	rng := rand.New(rand.NewPCG(uint64(id), uint64(time.Now().UnixNano())))
	seq := 0
	for time.Now().Before(l.stopAt) && ctx.Err() == nil {
		o := l.pickOrg(rng)
		n := 1 + rng.IntN(maxBatch)
		events := make([]map[string]any, n)
		keys := make([]string, n)
		for i := range events {
			l.mu.Lock()
			if len(o.sent) > 0 && rng.Float64() < reuseShare {
				keys[i] = o.sent[rng.IntN(len(o.sent))]
				l.reused.Add(1)
			} else {
				seq++
				keys[i] = fmt.Sprintf("%s-c%02d-%06d", l.env.runID, id, seq)
				o.sent = append(o.sent, keys[i])
			}
			l.mu.Unlock()
			ev := map[string]any{"meter": usageMeter, "quantity": 1, "idempotencyKey": keys[i]}
			// The endpoint follows from the key, so that a key sent again
			// is the same event, as a client's retry is (another event
			// under a counted key is IDEMPOTENCY_KEY_REUSED).
			if ep := endpoints[keyHash(keys[i])%uint32(len(endpoints))]; ep != "" {
				ev["endpoint"] = ep
			}
			events[i] = ev
		}
		l.events.Add(int64(n))
		l.send(ctx, rng, o, keys, gqlBody(recordUsage, map[string]any{"in": map[string]any{"events": events}}))
	}
}

// keyHash spreads keys over the endpoints.
func keyHash(key string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(key))
	return h.Sum32()
}

// send delivers one batch, retrying on any failure with backoff.
func (l *usageLoad) send(ctx context.Context, rng *rand.Rand, o *usageOrg, keys []string, body []byte) {
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
		headers := map[string]string{"X-API-Key": o.secret}
		if rng.IntN(2) == 0 {
			headers = map[string]string{"Authorization": "Bearer " + o.secret}
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
			l.acknowledge(o, keys, out, p, time.Since(first))
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

func (l *usageLoad) acknowledge(o *usageOrg, keys []string, out recordPayload, proc int, took time.Duration) {
	rejected := map[int]bool{}
	for _, r := range out.RecordUsage.Rejected {
		rejected[r.Index] = true
	}
	l.mu.Lock()
	for i, k := range keys {
		if !rejected[i] {
			o.acked[k] = struct{}{}
		}
	}
	l.took = append(l.took, took)
	l.mu.Unlock()
	l.batches.Add(1)
	l.perProc[proc].Add(1)
	l.accepted.Add(int64(out.RecordUsage.Accepted))
	l.duplicates.Add(int64(out.RecordUsage.Duplicates))
	l.rejected.Add(int64(len(out.RecordUsage.Rejected)))
	if out.RecordUsage.Accepted+out.RecordUsage.Duplicates+len(out.RecordUsage.Rejected) != len(keys) {
		l.miscounted.Add(1)
	}
}
