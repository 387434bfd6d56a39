package usage

import (
	"context"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// waiting is how many gates wait for the next read of id.
func (r *counterReads) waiting(id counterID) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if b := r.busy[id]; b != nil {
		return b.waiters
	}
	return 0
}

// TestCounterReadsShareTheNextRead: a lone gate reads at once; gates that
// arrive while a read is in flight share one read that starts after that
// one ends, so each sees a value written before it arrived.
func TestCounterReadsShareTheNextRead(t *testing.T) {
	r := newCounterReads()
	id := counterID{"org", rollupKey{"api_calls", 0}}
	var (
		reads   atomic.Int64
		value   atomic.Int64 // what Redis holds
		release = make(chan struct{})
	)
	fetch := func(context.Context) (string, error) {
		n := reads.Add(1)
		v := strconv.FormatInt(value.Load(), 10)
		if n == 2 {
			<-release // the second read stays in flight until released
		}
		return v, nil
	}
	ctx := context.Background()

	// Alone: one read, nothing waits.
	if v, err := r.read(ctx, id, fetch); err != nil || v != "0" || reads.Load() != 1 {
		t.Fatalf("lone read = %q, %v after %d reads; want 0 after 1", v, err, reads.Load())
	}

	// A read in flight, then 20 gates arriving after a write.
	first := make(chan string)
	go func() {
		v, _ := r.read(ctx, id, fetch)
		first <- v
	}()
	for reads.Load() != 2 {
		runtime.Gosched()
	}
	value.Store(5) // written while the read is in flight, before the others arrive
	const gates = 20
	var wg sync.WaitGroup
	answers := make([]string, gates)
	for i := range gates {
		wg.Go(func() { answers[i], _ = r.read(ctx, id, fetch) })
	}
	for r.waiting(id) != gates {
		runtime.Gosched()
	}
	close(release)
	if v := <-first; v != "0" {
		t.Fatalf("the read in flight answered %q, want the 0 it read", v)
	}
	wg.Wait()
	for i, v := range answers {
		if v != "5" {
			t.Fatalf("gate %d answered %q, want 5: it arrived after the write", i, v)
		}
	}
	if n := reads.Load(); n != 3 {
		t.Fatalf("%d reads, want 3: the lone one, the one in flight, and one shared by all %d gates", n, gates)
	}
	if r.waiting(id) != 0 || len(r.busy) != 0 {
		t.Fatalf("state left behind: %d busy counters", len(r.busy))
	}
}

// TestCounterReadsGivingUpFailsOnlyTheCaller: a gate whose context ends
// while it waits gets its context's error; the others in its batch still get
// the shared read.
func TestCounterReadsGivingUpFailsOnlyTheCaller(t *testing.T) {
	r := newCounterReads()
	id := counterID{"org", rollupKey{"api_calls", 0}}
	var reads atomic.Int64
	release := make(chan struct{})
	fetch := func(context.Context) (string, error) {
		if reads.Add(1) == 1 {
			<-release
		}
		return "7", nil
	}
	ctx := context.Background()
	go r.read(ctx, id, fetch) // in flight
	for reads.Load() != 1 {
		runtime.Gosched()
	}
	leader := make(chan string)
	go func() { v, _ := r.read(ctx, id, fetch); leader <- v }()
	for r.waiting(id) != 1 {
		runtime.Gosched()
	}
	quitting, cancel := context.WithCancel(ctx)
	gaveUp := make(chan error)
	go func() { _, err := r.read(quitting, id, fetch); gaveUp <- err }()
	for r.waiting(id) != 2 {
		runtime.Gosched()
	}
	cancel()
	if err := <-gaveUp; err != context.Canceled {
		t.Fatalf("the gate that gave up got %v, want context.Canceled", err)
	}
	close(release)
	if v := <-leader; v != "7" {
		t.Fatalf("the batch's reader answered %q, want 7", v)
	}
}
