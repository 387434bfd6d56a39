package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// Event is one use of a meter, for the Recorder.
type Event struct {
	Meter    string
	Quantity int64
	// IdempotencyKey names the event; Record fills in a random one when it
	// is empty. Give your own (a request or completion id) when the same
	// event may be recorded twice by your code.
	IdempotencyKey string
	// Endpoint is what was called, e.g. "POST /v1/complete"; optional.
	Endpoint string
	// Timestamp is when it happened; Record fills in now when it is zero,
	// so a batch sent late still counts in the right period.
	Timestamp time.Time
}

// ErrBufferFull is why a Recorder with DropWhenFull dropped an event.
var ErrBufferFull = errors.New("tollgate recorder: buffer full")

// ErrClosed is returned by Record after Close.
var ErrClosed = errors.New("tollgate recorder: closed")

// RecorderOptions tune a Recorder; zero values take the defaults.
type RecorderOptions struct {
	// BatchSize is the most events per recordUsage call, and the queue
	// length at which an organisation is flushed at once (default and
	// maximum 1,000).
	BatchSize int
	// FlushInterval is the longest an event waits to be sent, and the wait
	// before a failed batch is sent again (default 1 s).
	FlushInterval time.Duration
	// Buffer is the most events held, queued or in flight, across all
	// organisations (default 100,000): what a stalled Tollgate can cost in
	// memory.
	Buffer int
	// DropWhenFull drops an event that finds the buffer full (counted in
	// Dropped and reported to OnDrop with ErrBufferFull) instead of making
	// Record wait for room, which is the default back-pressure.
	DropWhenFull bool
	// OnDrop is told of events that will never be counted: dropped for a
	// full buffer, rejected by Tollgate (the error is *RejectedError,
	// *InputError or an *Error such as UNAUTHENTICATED), or left when Close
	// gave up. It runs on the Recorder's goroutine: keep it short.
	OnDrop func(account string, events []Event, err error)
}

// RejectedError is why Tollgate refused one event of a batch, e.g.
// USAGE_LIMIT_EXCEEDED on a hard limit or TIMESTAMP_BEFORE_PERIOD.
type RejectedError struct {
	Code, Message string
}

func (e *RejectedError) Error() string {
	return "tollgate: event rejected: " + e.Code + ": " + e.Message
}

// Recorder records usage fire-and-forget: Record queues an event and
// returns; a background goroutine sends each account's events in batches
// of up to 1,000 through recordUsage, when a queue is full or after
// FlushInterval, and Close flushes what is left.
//
// An account is whatever names a customer to clientFor: an organisation
// name for a Minter (clientFor returns base.For(minter.Org(account))), or
// the customer's API key (base.For(client.APIKey(account))).
//
// # Exactly once
//
// Every event carries an idempotency key made when it is recorded (or
// given by the caller). A batch that fails in transport, is answered 5xx,
// UNAVAILABLE or 429 is sent again later, the same events with the same
// keys, until Tollgate answers or Close gives up; Tollgate counts a key
// once, so an event whose first sending arrived but whose answer was lost
// is counted once, not twice. Events Tollgate refuses (a client error, a
// hard limit) are not resent: they go to OnDrop. An event is lost only
// when OnDrop is told so: a full buffer under DropWhenFull, or Close's
// context ending first.
//
// # Memory
//
// At most Buffer events are held. When Tollgate stalls, Record waits for
// room (back-pressure on the caller) or, with DropWhenFull, drops and
// counts.
type Recorder struct {
	clientFor func(account string) *Client
	o         RecorderOptions

	mu      sync.Mutex
	room    *sync.Cond // signalled when held falls or the recorder closes
	queues  map[string][]Event
	held    int // queued and in flight
	closed  bool
	dropped atomic.Uint64

	kick    chan struct{}
	closing chan struct{}
	done    chan struct{}
	cancel  context.CancelFunc
}

// NewRecorder starts a recorder. Close it to flush and stop.
func NewRecorder(clientFor func(account string) *Client, o RecorderOptions) *Recorder {
	if o.BatchSize <= 0 || o.BatchSize > 1000 {
		o.BatchSize = 1000
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = time.Second
	}
	if o.Buffer <= 0 {
		o.Buffer = 100_000
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Recorder{
		clientFor: clientFor, o: o, queues: map[string][]Event{},
		kick: make(chan struct{}, 1), closing: make(chan struct{}), done: make(chan struct{}), cancel: cancel,
	}
	r.room = sync.NewCond(&r.mu)
	go r.run(ctx)
	return r
}

// Record queues an event for the account. It waits while the buffer is
// full (until ctx ends), or drops the event with ErrBufferFull under
// DropWhenFull.
func (r *Recorder) Record(ctx context.Context, account string, e Event) error {
	if e.IdempotencyKey == "" {
		e.IdempotencyKey = uuid.NewString()
	}
	if e.Timestamp.IsZero() {
		e.Timestamp = time.Now()
	}
	r.mu.Lock()
	for r.held >= r.o.Buffer && !r.closed {
		if r.o.DropWhenFull {
			r.mu.Unlock()
			r.drop(account, []Event{e}, ErrBufferFull)
			return ErrBufferFull
		}
		if err := r.waitRoom(ctx); err != nil {
			r.mu.Unlock()
			return err
		}
	}
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	r.queues[account] = append(r.queues[account], e)
	r.held++
	full := len(r.queues[account]) >= r.o.BatchSize
	r.mu.Unlock()
	if full {
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// waitRoom waits on room until signalled or ctx ends; r.mu is held.
func (r *Recorder) waitRoom(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() {
		r.mu.Lock()
		r.room.Broadcast()
		r.mu.Unlock()
	})
	r.room.Wait()
	stop()
	return ctx.Err()
}

// Flush sends what is queued now and waits until nothing is held, or ctx
// ends. A Tollgate that keeps failing makes it wait for ctx.
func (r *Recorder) Flush(ctx context.Context) error {
	select {
	case r.kick <- struct{}{}:
	default:
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for r.held > 0 {
		if err := r.waitRoom(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Pending is how many events are held, queued or in flight.
func (r *Recorder) Pending() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.held
}

// Dropped counts events that will never be counted (see OnDrop).
func (r *Recorder) Dropped() uint64 { return r.dropped.Load() }

func (r *Recorder) drop(account string, events []Event, err error) {
	r.dropped.Add(uint64(len(events)))
	if r.o.OnDrop != nil {
		r.o.OnDrop(account, events, err)
	}
}

// Close stops taking events and sends every held one. When ctx ends first,
// the rest are dropped (and reported) and Close says how many.
func (r *Recorder) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		<-r.done
		return nil
	}
	r.closed = true
	r.room.Broadcast()
	r.mu.Unlock()
	close(r.closing)
	select {
	case <-r.done:
	case <-ctx.Done():
		r.cancel()
		<-r.done
	}
	r.mu.Lock()
	left := r.queues
	r.queues = map[string][]Event{}
	n := r.held
	r.held = 0
	r.mu.Unlock()
	for account, events := range left {
		r.drop(account, events, ctx.Err())
	}
	if n > 0 {
		return fmt.Errorf("tollgate recorder: %d events not recorded: %w", n, ctx.Err())
	}
	return nil
}

func (r *Recorder) run(ctx context.Context) {
	defer close(r.done)
	defer r.cancel()
	tick := time.NewTicker(r.o.FlushInterval)
	defer tick.Stop()
	closing, failed := false, false
	for {
		if !closing {
			// After a failure, a full queue waits for the tick like the
			// rest: a struggling Tollgate is not sent a retry storm.
			kick := r.kick
			if failed {
				kick = nil
			}
			select {
			case <-tick.C:
			case <-kick:
			case <-r.closing:
				closing = true
			}
		}
		failed = r.flush(ctx)
		if closing {
			if r.Pending() == 0 || ctx.Err() != nil {
				return
			}
			if failed { // Tollgate is failing: wait as between flushes
				if sleep(ctx, r.o.FlushInterval) != nil {
					return
				}
			}
		}
	}
}

// flush sends every queued event, each account's batches in order and the
// accounts at once. A batch that may succeed later goes back to the front
// of its queue; it reports whether any did.
func (r *Recorder) flush(ctx context.Context) (failed bool) {
	r.mu.Lock()
	work := r.queues
	r.queues = map[string][]Event{}
	r.mu.Unlock()
	var wg sync.WaitGroup
	var anyFailed atomic.Bool
	sem := make(chan struct{}, 8)
	for account, events := range work {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			for i := 0; i < len(events); i += r.o.BatchSize {
				batch := events[i:min(i+r.o.BatchSize, len(events))]
				if !r.send(ctx, account, batch) {
					anyFailed.Store(true)
					r.requeue(account, events[i:])
					return
				}
			}
		})
	}
	wg.Wait()
	return anyFailed.Load()
}

// requeue puts events back at the front of the account's queue.
func (r *Recorder) requeue(account string, events []Event) {
	r.mu.Lock()
	r.queues[account] = append(append([]Event(nil), events...), r.queues[account]...)
	r.mu.Unlock()
}

// send records one batch. It returns false when the batch should be sent
// again later; otherwise the batch is done (counted, or reported to
// OnDrop) and no longer held.
func (r *Recorder) send(ctx context.Context, account string, batch []Event) bool {
	resp, err := RecordUsage(ctx, r.clientFor(account), recordInput(batch))
	var te *Error
	switch {
	case err == nil:
		p := resp.RecordUsage
		if len(p.UserErrors) > 0 {
			ie := &InputError{}
			for _, u := range p.UserErrors {
				ie.Errors = append(ie.Errors, u.UserErrorFields)
			}
			r.drop(account, batch, ie)
		}
		for _, rej := range p.Rejected {
			if rej.Index >= 0 && rej.Index < len(batch) {
				r.drop(account, batch[rej.Index:rej.Index+1], &RejectedError{Code: rej.Code, Message: rej.Message})
			}
		}
	case ctx.Err() != nil:
		return false // Close gave up; it reports what is left
	case errors.As(err, &te) && !te.retryable() && te.Code != CodeRateLimited:
		if te.Code == "USAGE_LIMIT_EXCEEDED" { // every event was over a hard limit
			r.drop(account, batch, &RejectedError{Code: te.Code, Message: te.Message})
		} else {
			r.drop(account, batch, err)
		}
	default: // transport, 5xx, UNAVAILABLE, 429: send the same keys again later
		return false
	}
	r.mu.Lock()
	r.held -= len(batch)
	r.room.Broadcast()
	r.mu.Unlock()
	return true
}
