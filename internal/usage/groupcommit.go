package usage

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
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
// A second group commits beside one in flight only when at least
// overlapEvents events are queued. On Postgres its statement is then sent
// on the same connection as the first's before that one's answer is back
// (store.Pipe), so the backend goes from one group to the next without a
// round trip; turns (below) keep the groups in arrival order. Sent at once,
// groups shrink and the gain goes into per-group costs; held back until a
// few events queue, they pay. Measured with 64 one-event callers (cmd/bench,
// ingest; README, "Pipelining"): a second group once 24 events queue gave
// 64 organisations 0.77–0.83× of the single-row floor against 0.64–0.75×
// with one statement in flight, and one organisation 1.03–1.11× against
// 0.90–1.02× (session 19, a fast disk); on session 20's slower machine
// 0.66–0.74× against 0.61–0.69×, and 0.84–1.00× against 0.77–0.96×; on
// session 22's, whose floor costs Postgres far more CPU per row, no gain
// beyond the noise (1.39–1.48× against 1.33–1.44×, one organisation
// 1.70–1.85× against 1.59–1.87×), but 100-event batches from 4 clients
// 0.61–0.64× of the raw insert against 0.51–0.54× (two pairs). Once 16
// queue, or at once, less. Groups of pooledEvents or more go to a pooled
// connection instead: on the pipe's one backend 1,000-event batches fell
// from 0.67–0.75× of the raw insert to 0.52–0.57×.

const (
	// maxGroupEvents caps the events of one group, so a group's statements
	// stay within SQLite's 32,766 parameters (seven per event). A lone call
	// of MaxBatch events always fits.
	maxGroupEvents = 4 * MaxBatch
	// overlapEvents is the least the queue must hold for a group to commit
	// beside another one.
	overlapEvents = 24
	// pooledEvents is the least a group must carry to be written on a
	// pooled connection rather than the pipe (see turn).
	pooledEvents = 256
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
	// unchecked is set when the call's group committed but the rows of
	// keys it found counted could not be read (oneshot.go): the call is
	// answered with a retryable error, though the group stands.
	unchecked error
	// lead hands this caller a group to run; done is closed once the
	// caller's group has committed or failed.
	lead chan taken
	done chan struct{}
	// queuedAt is when the call joined the queue, for the wait metric.
	queuedAt time.Time
}

// groupCommitter queues requests and runs them in groups, at most slots at
// a time, and more than one only for groups of at least overlap events.
type groupCommitter struct {
	// commit writes a group in one transaction; publish then mirrors what
	// it wrote, once the next group has been started.
	commit  func(ctx context.Context, t *turn, group []*request) error
	publish func(ctx context.Context, group []*request)
	slots   int
	overlap int

	mu sync.Mutex
	// queue holds the requests waiting for a group; queued counts the
	// events of their batches.
	queue    []*request
	queued   int
	inFlight int
	// lastPiped is the turn of the last group taken to be piped; flying
	// holds the turns of the groups in flight.
	lastPiped *turn
	flying    []*turn

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
	// sent sees the calls of a group whose statement was just sent through
	// the pipe (Postgres); waits, those of a group (or of one of its parts)
	// about to wait for the groups ahead of it before its transaction
	// judges them.
	sent, waits func(group []*request)
}

// submit queues r and returns once r's group has committed or failed.
func (g *groupCommitter) submit(ctx context.Context, r *request) error {
	r.lead = make(chan taken, 1)
	r.done = make(chan struct{})
	r.queuedAt = time.Now()
	g.mu.Lock()
	g.queue = append(g.queue, r)
	g.queued += len(r.batch)
	if g.hooks.queued != nil {
		g.hooks.queued(len(g.queue))
	}
	var next taken
	if g.mayStart() {
		g.inFlight++
		next = g.take()
	}
	g.mu.Unlock()
	if next.group != nil {
		g.run(ctx, next)
	}
	for {
		select {
		case next := <-r.lead:
			g.run(ctx, next)
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
// arrival order up to maxGroupEvents, and always at least one, with the
// group's turn after the one taken before it. mu is held.
func (g *groupCommitter) take() taken {
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
	t := &turn{group: group, pooled: events >= pooledEvents, ahead: slices.Clone(g.flying), piped: make(chan struct{}), done: make(chan struct{})}
	if t.pooled {
		t.sent()
	} else {
		t.prevPiped, g.lastPiped = g.lastPiped, t
	}
	g.flying = append(g.flying, t)
	return taken{group, t}
}

// commitSafely turns a panic in a group's commit into the group's error:
// otherwise its callers would wait forever and, with its slot never given
// back, so would every later call.
func (g *groupCommitter) commitSafely(ctx context.Context, t *turn, group []*request) error {
	return panicAsError(func() error { return g.commit(ctx, t, group) })
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
func (g *groupCommitter) run(ctx context.Context, next taken) {
	group, t := next.group, next.turn
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), groupTimeout)
	if g.hooks.started != nil {
		g.hooks.started(ctx, group)
	}
	defer cancel()
	start := time.Now()
	for _, r := range group {
		groupWait.Observe(start.Sub(r.queuedAt).Seconds())
	}
	err := g.commitSafely(ctx, t, group)
	t.finished()
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
	g.flying = slices.DeleteFunc(g.flying, func(f *turn) bool { return f == t })
	if g.mayStart() {
		g.inFlight++
		next := g.take()
		next.group[0].lead <- next
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

// taken is a group as take hands it out, with its turn.
type taken struct {
	group []*request
	turn  *turn
}

// A turn is a group's place in the order groups were taken, which is the
// order their calls arrived in. A group must be judged after every group
// taken before it wherever judging can differ: at a hard limit, at an alert
// threshold, and at a key two calls share. Groups commit beside each other
// in two ways (oneshot.go):
//   - Piped: the group's statement is sent on the pipe's one connection
//     behind its predecessor's (store.Pipe keeps them in send order and
//     fails a statement out of turn behind one that failed).
//   - Pooled (a group of pooledEvents or more): the statement runs on a
//     connection of the pool beside the groups in flight (ahead), so big
//     groups use a second core; it may then commit before them, which must
//     not change anything judged. So its ceilings leave room for what they
//     add to the same totals, a threshold crossed anywhere up to that room
//     undoes it, and a key it shares with them makes it wait for them. A
//     piped group does the same for the pooled groups ahead of it.
//
// A group written in a transaction, which judges as it runs, judges only
// once every group ahead of it has finished (it may claim its keys before;
// writeGroupInTurn); a statement that fails out of turn (store.ErrOutOfTurn)
// or in a conflict is sent again then.
type turn struct {
	group  []*request
	pooled bool
	// ahead are the groups in flight when this one was taken; prevPiped is
	// the piped group taken last before it. The goroutine that writes the
	// group is their only reader, and lets them go once it has finished,
	// so that turns do not chain back to the first.
	ahead     []*turn
	prevPiped *turn
	// piped is closed once a successor may send its statement behind this
	// group's: a pooled group at once; a piped one once it has sent its
	// statement and writes nothing else. done is closed once the group has
	// committed or failed.
	piped, done chan struct{}
	pipedOnce   sync.Once
}

// sent says the group's statement is on its way and is all the group
// writes.
func (t *turn) sent() { t.pipedOnce.Do(func() { close(t.piped) }) }

// finished says the group has committed or failed.
func (t *turn) finished() {
	t.sent()
	close(t.done)
	t.ahead, t.prevPiped = nil, nil
}

// mayPipe returns once the group may send its statement on the pipe.
func (t *turn) mayPipe(ctx context.Context) error {
	if t.prevPiped == nil {
		return nil
	}
	select {
	case <-t.prevPiped.piped:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// mayJudge returns once every group taken before this one has finished, so
// that a transaction sees what they wrote.
func (t *turn) mayJudge(ctx context.Context) error {
	for _, a := range t.ahead {
		select {
		case <-a.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// sharesKey reports whether a group ahead of this one, still in flight, has
// a key of group.
func (t *turn) sharesKey(group []*request) bool {
	var keys map[eventID]struct{}
	for _, a := range t.ahead {
		select {
		case <-a.done:
			continue
		default:
		}
		if keys == nil {
			keys = map[eventID]struct{}{}
			for _, req := range group {
				for i := range req.batch {
					keys[req.batch[i].eventID()] = struct{}{}
				}
			}
		}
		for _, req := range a.group {
			for i := range req.batch {
				if _, ok := keys[req.batch[i].eventID()]; ok {
					return true
				}
			}
		}
	}
	return false
}

// room is what the groups ahead of this one that may commit after it
// (all of them for a pooled group, the pooled ones for a piped group) add
// at most to each period total, and whether one of them has a key of
// first. Their events are read, not written: a request's events do not
// change once queued.
func (t *turn) room(first map[eventID]*pending) (adds map[counterID]int64, shared bool) {
	for _, a := range t.ahead {
		if !t.pooled && !a.pooled {
			continue
		}
		select {
		case <-a.done:
			continue
		default:
		}
		for _, req := range a.group {
			for i := range req.batch {
				p := &req.batch[i]
				if _, ok := first[p.eventID()]; ok {
					shared = true
				}
				if adds == nil {
					adds = map[counterID]int64{}
				}
				adds[p.totalID()] = saturatingAdd(adds[p.totalID()], max(p.quantity, 0))
			}
		}
	}
	return adds, shared
}
