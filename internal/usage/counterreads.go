package usage

import (
	"context"
	"sync"

	"github.com/tollgate-billing/tollgate/internal/cache"
)

// counterReads shares Redis reads of one counter among the gates that ask
// for it at the same time, the way group commit shares a transaction: a
// gate that finds no read of its counter in flight reads at once (an idle
// server adds no wait); one that finds a read in flight waits for the next
// read, which starts when that one ends and answers every gate that arrived
// meanwhile. No answer is older than a read of the gate's own would be: the
// read it gets began after it arrived, so it sees every write that
// completed before. Under load on one organisation, dozens of gates then
// cost one round trip instead of one each.
type counterReads struct {
	mu sync.Mutex
	// busy holds the counters with a read in flight, each with the batch
	// gathering for the next read (nil until a gate waits for one).
	busy map[counterID]*readBatch
}

// readBatch is the gates sharing one read.
type readBatch struct {
	// lead tells the batch's first gate that the read before it ended and
	// it is to read for all; done is closed once v and err are set.
	lead    chan struct{}
	done    chan struct{}
	v       string
	err     error
	waiters int // for tests: gates in the batch, under counterReads.mu
}

func newCounterReads() *counterReads { return &counterReads{busy: map[counterID]*readBatch{}} }

// read returns fetch's answer for id, from a read that started after the
// call did.
func (r *counterReads) read(ctx context.Context, id counterID, fetch func(context.Context) (string, error)) (string, error) {
	r.mu.Lock()
	next, reading := r.busy[id]
	if !reading {
		r.busy[id] = nil
		r.mu.Unlock()
		v, err := fetch(ctx)
		r.handOver(id)
		return v, err
	}
	lead := next == nil
	if lead {
		next = &readBatch{lead: make(chan struct{}, 1), done: make(chan struct{})}
		r.busy[id] = next
	}
	next.waiters++
	r.mu.Unlock()
	if lead {
		// The read in flight ends within its caller's deadline or the
		// shared timeout, so this wait is bounded; the batch must not be
		// left without its reader, so its caller's giving up does not
		// stop it, and cannot fail the others.
		<-next.lead
		shared, cancel := context.WithTimeout(context.WithoutCancel(ctx), cache.SharedLoadTimeout)
		next.v, next.err = fetch(shared)
		cancel()
		close(next.done)
		r.handOver(id)
		return next.v, next.err
	}
	select {
	case <-next.done:
		return next.v, next.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// handOver ends a read of id: the batch that gathered meanwhile reads next,
// or id is idle again.
func (r *counterReads) handOver(id counterID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	next := r.busy[id]
	if next == nil {
		delete(r.busy, id)
		return
	}
	r.busy[id] = nil // next's read is now the one in flight
	next.lead <- struct{}{}
}
