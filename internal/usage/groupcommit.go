package usage

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/observe"
)

// Group commit: Record calls that arrive while a commit is in flight wait
// and are written together by the next one, in one transaction with one
// multi-row insert and one update per rollup row. A busy server then pays one
// fsync and one rollup row lock per group instead of per call, and calls of
// one organisation stop queueing on their rollup row one by one.
//
// There is no timer: a call that finds no group in flight starts one at
// once with whatever is queued (often just itself), so an idle server adds
// no wait. The caller that starts a group runs its transaction on its own
// goroutine; when it is done it hands what queued meanwhile to one of the
// waiting callers, which leads the next group.
//
// A second group commits beside one in flight only when it carries at
// least overlapEvents events. A big group has work worth overlapping (its
// keys claimed and events inserted while the other group holds the running
// totals or waits for its fsync); small groups beside each other only split
// the callers into more, smaller groups that queue on the same totals rows.
// Measured on Postgres with 64 one-event callers (cmd/bench, ingest): with
// a second slot for every group 1.37–1.48× the single-row floor, p99
// 28–32 ms; with one 1.64–1.72×, p99 25–27 ms; and 1,000-event batches fell
// from 0.57–0.59× to 0.34–0.39× of the raw insert with one slot for all.

const (
	// maxGroupEvents caps the events of one group, so a group's statements
	// stay within SQLite's 32,766 parameters (seven per event). A lone call
	// of MaxBatch events always fits.
	maxGroupEvents = 4 * MaxBatch
	// overlapEvents is the least a group must carry to commit beside
	// another one.
	overlapEvents = 256
	// groupTimeout bounds a group's transaction. It does not follow the
	// leading caller's context: one client going away must not fail the
	// others in its group.
	groupTimeout = 30 * time.Second
)

// request is one Record call's share of a group.
type request struct {
	org    string
	batch  []pending
	report []rollupKey
	// out is the call's answer, set by the group's transaction.
	out outcome
	err error
	// lead hands this caller a group to run; done is closed once the
	// caller's group has committed or failed.
	lead chan []*request
	done chan struct{}
	// queuedAt is when the call joined the queue, for the wait metric.
	queuedAt time.Time
}

// groupCommitter queues requests and runs them in groups, at most slots at
// a time, and more than one only for groups of at least overlap events.
type groupCommitter struct {
	// commit writes a group in one transaction; publish then mirrors what
	// it wrote, once the next group has been started.
	commit  func(ctx context.Context, group []*request) error
	publish func(ctx context.Context, group []*request)
	slots   int
	overlap int

	mu sync.Mutex
	// queue holds the requests waiting for a group; queued counts the
	// events of their batches.
	queue    []*request
	queued   int
	inFlight int

	hooks groupHooks
}

// partFailed is a commit's error when it wrote its group in parts and
// only some failed: requests were not stored, the others were.
type partFailed struct {
	requests []*request
	err      error
}

func (e *partFailed) Error() string { return e.err.Error() }
func (e *partFailed) Unwrap() error { return e.err }

// groupHooks let tests watch, hold and fail groups; all are nil in
// production.
type groupHooks struct {
	// queued sees the queue's length after a request joins it (under mu).
	queued func(n int)
	// started sees each group as it begins, on the goroutine that runs it.
	started func(ctx context.Context, group []*request)
	// written runs in a group's transaction after its writes; an error
	// rolls the transaction back.
	written func(group []*request) error
}

// submit queues r and returns once r's group has committed or failed.
func (g *groupCommitter) submit(ctx context.Context, r *request) error {
	r.lead = make(chan []*request, 1)
	r.done = make(chan struct{})
	r.queuedAt = time.Now()
	g.mu.Lock()
	g.queue = append(g.queue, r)
	g.queued += len(r.batch)
	if g.hooks.queued != nil {
		g.hooks.queued(len(g.queue))
	}
	var group []*request
	if g.mayStart() {
		g.inFlight++
		group = g.take()
	}
	g.mu.Unlock()
	if group != nil {
		g.run(ctx, group)
	}
	for {
		select {
		case group := <-r.lead:
			g.run(ctx, group)
		case <-r.done:
			return r.err
		}
	}
}

// mayStart reports whether a group may start with what is queued: always
// when none is in flight, beside others only while a slot is free and the
// queue holds enough events to be worth it. mu is held.
func (g *groupCommitter) mayStart() bool {
	return len(g.queue) > 0 && (g.inFlight == 0 || g.inFlight < g.slots && g.queued >= g.overlap)
}

// take removes the next group from the head of the queue: requests in
// arrival order up to maxGroupEvents, and always at least one. mu is held.
func (g *groupCommitter) take() []*request {
	n, events := 0, 0
	for n < len(g.queue) {
		size := len(g.queue[n].batch)
		if n > 0 && events+size > maxGroupEvents {
			break
		}
		events += size
		n++
	}
	g.queued -= events
	group := make([]*request, n)
	copy(group, g.queue)
	clear(g.queue[:n]) // let answered requests be collected
	g.queue = g.queue[n:]
	if len(g.queue) == 0 {
		g.queue = nil
	}
	return group
}

// commitSafely turns a panic in a group's commit into the group's error:
// otherwise its callers would wait forever and, with its slot never given
// back, so would every later call.
func (g *groupCommitter) commitSafely(ctx context.Context, group []*request) error {
	return panicAsError(func() error { return g.commit(ctx, group) })
}

// panicAsError runs write, a group commit or a part of one, turning a panic
// into its error (see commitSafely).
func panicAsError(write func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("group commit panicked: %v\n%s", p, debug.Stack())
		}
	}()
	return write()
}

// run commits a group, hands the queue to the next leader, mirrors the
// group in Redis and then answers the group's callers.
func (g *groupCommitter) run(ctx context.Context, group []*request) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), groupTimeout)
	if g.hooks.started != nil {
		g.hooks.started(ctx, group)
	}
	defer cancel()
	start := time.Now()
	for _, r := range group {
		groupWait.Observe(start.Sub(r.queuedAt).Seconds())
	}
	err := g.commitSafely(ctx, group)
	groupCommit.Observe(observe.Since(start))
	failed := group
	var part *partFailed
	if errors.As(err, &part) {
		failed = part.requests
	}
	if err != nil {
		// The transaction rolled back, so nothing of the calls it wrote is
		// stored. Each of them gets the same answer: retry, which is safe
		// with the same idempotency keys.
		failure := &apperr.Error{
			Code:       apperr.Unavailable,
			Message:    "usage could not be recorded just now and nothing was stored; retry the call (the same idempotency keys are safe to retry)",
			Extensions: map[string]any{"retryable": true},
			Err:        err,
		}
		for _, r := range failed {
			r.out, r.err = outcome{}, failure
		}
	}
	// Hand over before answering, so the next group starts as soon as
	// possible. While another group is in flight, a queue too small to
	// commit beside it waits for that group's end instead.
	g.mu.Lock()
	g.inFlight--
	if g.mayStart() {
		g.inFlight++
		next := g.take()
		next[0].lead <- next
	}
	g.mu.Unlock()
	groupSize.Observe(float64(len(group)))
	if err == nil || part != nil {
		published := time.Now()
		g.publish(ctx, group)
		groupPublish.Observe(observe.Since(published))
	}
	for _, r := range group {
		close(r.done)
	}
}
