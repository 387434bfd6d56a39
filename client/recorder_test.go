package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate-billing/tollgate/client"
	"github.com/tollgate-billing/tollgate/internal/apptest"
)

// minted returns the clientFor of a Recorder whose accounts are
// organisations named to a Minter.
func minted(baseURL string, opts ...client.Option) func(string) *client.Client {
	base := client.New(baseURL, nil, opts...)
	minter := client.HS256Minter([]byte(apptest.Secret))
	return func(org string) *client.Client { return base.For(minter.Org(org)) }
}

func TestRecorderFlushesOnClose(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	// An interval no test waits for: only Close can send these.
	rec := client.NewRecorder(minted(h.Server.URL), client.RecorderOptions{FlushInterval: time.Hour})
	ctx := context.Background()
	want := map[string]int64{}
	for i := range 250 {
		org := []string{"acme", "globex"}[i%2]
		q := int64(i%7 + 1)
		want[org] += q
		if err := rec.Record(ctx, org, client.Event{Meter: "llm_tokens", Quantity: q, Endpoint: "POST /v1/complete"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := rec.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for org, q := range want {
		if got := h.Used(org)["llm_tokens"]; got != q {
			t.Errorf("%s used %d, want %d", org, got, q)
		}
	}
	if rec.Pending() != 0 || rec.Dropped() != 0 {
		t.Errorf("after close: %d pending, %d dropped", rec.Pending(), rec.Dropped())
	}
	if err := rec.Record(ctx, "acme", client.Event{Meter: "llm_tokens", Quantity: 1}); !errors.Is(err, client.ErrClosed) {
		t.Errorf("record after close: %v", err)
	}
}

// A full queue is sent at once, without waiting for the interval.
func TestRecorderSendsAFullBatchAtOnce(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	rec := client.NewRecorder(minted(h.Server.URL), client.RecorderOptions{FlushInterval: time.Hour, BatchSize: 10})
	defer rec.Close(context.Background())
	for range 10 {
		if err := rec.Record(context.Background(), "acme", client.Event{Meter: "api_calls", Quantity: 1}); err != nil {
			t.Fatal(err)
		}
	}
	// Wait for what a user would see, the queue emptying; Flush would send
	// it on its own, so it cannot stand in here.
	deadline := time.Now().Add(10 * time.Second)
	for rec.Pending() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := h.Used("acme")["api_calls"]; got != 10 {
		t.Errorf("used %d, want the full batch of 10 sent before the hour-long interval", got)
	}
}

// stalled is a Tollgate that takes requests and never answers until the
// test ends.
func stalled(t *testing.T) string {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	return srv.URL
}

func TestRecorderMemoryIsBoundedWhenTollgateStalls(t *testing.T) {
	t.Run("dropping, counted", func(t *testing.T) {
		var reported atomic.Int64
		rec := client.NewRecorder(minted(stalled(t)), client.RecorderOptions{
			Buffer: 50, BatchSize: 10, FlushInterval: 10 * time.Millisecond, DropWhenFull: true,
			OnDrop: func(_ string, events []client.Event, _ error) { reported.Add(int64(len(events))) },
		})
		ctx := context.Background()
		full := 0
		for range 1000 {
			if err := rec.Record(ctx, "acme", client.Event{Meter: "api_calls", Quantity: 1}); errors.Is(err, client.ErrBufferFull) {
				full++
			}
		}
		if rec.Pending() > 50 {
			t.Errorf("%d events held, more than the buffer of 50", rec.Pending())
		}
		if full != 950 || rec.Dropped() != 950 || reported.Load() != 950 {
			t.Errorf("%d refused, %d counted dropped, %d reported; want 950 of each", full, rec.Dropped(), reported.Load())
		}
		cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		if err := rec.Close(cctx); err == nil {
			t.Error("close against a stalled Tollgate reported no loss")
		}
		if rec.Dropped() != 1000 || reported.Load() != 1000 {
			t.Errorf("after close %d dropped, %d reported; want all 1000 accounted for", rec.Dropped(), reported.Load())
		}
	})
	t.Run("back-pressure", func(t *testing.T) {
		rec := client.NewRecorder(minted(stalled(t)), client.RecorderOptions{Buffer: 20, FlushInterval: 10 * time.Millisecond})
		ctx := context.Background()
		for i := range 20 {
			if err := rec.Record(ctx, "acme", client.Event{Meter: "api_calls", Quantity: 1}); err != nil {
				t.Fatalf("event %d: %v", i, err)
			}
		}
		wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		if err := rec.Record(wctx, "acme", client.Event{Meter: "api_calls", Quantity: 1}); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("record into a full buffer: %v, want it to wait until the context ends", err)
		}
		if rec.Pending() != 20 || rec.Dropped() != 0 {
			t.Errorf("%d held, %d dropped; want 20 and none", rec.Pending(), rec.Dropped())
		}
		cctx, cancel2 := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel2()
		_ = rec.Close(cctx)
	})
}

// storm forwards to Tollgate and, for the first n requests, throws away
// the answer: half with 503, half by dropping the connection.
type storm struct {
	flaky
}

func (s *storm) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	attempt := len(s.bodies) + 1
	s.mu.Unlock()
	if attempt > s.n || attempt%2 == 0 {
		s.flaky.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	s.flaky.ServeHTTP(rec, r) // Tollgate counts it; the client never hears
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.Close()
	}
}

func TestRecorderCountsNothingTwiceAfterARetryStorm(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	// Of the first 12 requests, odd ones lose the connection and even ones
	// answer UNAVAILABLE, all after Tollgate counted them.
	proxy := &storm{flaky{target: h.Server.URL, n: 12}}
	srv := httptest.NewServer(proxy)
	defer srv.Close()
	rec := client.NewRecorder(minted(srv.URL, fastRetry), client.RecorderOptions{BatchSize: 100, FlushInterval: 5 * time.Millisecond})
	ctx := context.Background()
	orgs := []string{"acme", "globex", "initech"}
	want := map[string]int64{}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for w := range 6 {
		wg.Go(func() {
			for i := range 200 {
				org := orgs[(w+i)%len(orgs)]
				q := int64(i%5 + 1)
				if err := rec.Record(ctx, org, client.Event{Meter: "llm_tokens", Quantity: q, Endpoint: fmt.Sprintf("worker %d", w)}); err != nil {
					t.Errorf("record: %v", err)
					return
				}
				mu.Lock()
				want[org] += q
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := rec.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if len(proxy.bodies) <= proxy.n {
		t.Fatalf("only %d requests: the storm never passed", len(proxy.bodies))
	}
	for _, org := range orgs {
		if got := h.Used(org)["llm_tokens"]; got != want[org] {
			t.Errorf("%s used %d, want %d: each event counted exactly once", org, got, want[org])
		}
	}
	if rec.Dropped() != 0 {
		t.Errorf("%d events dropped", rec.Dropped())
	}
}
