package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// This machine is a virtual machine on shared hardware, and now and then the
// whole of it stops running for a few to tens of milliseconds: a separate,
// idle process that only sleeps and wakes sees it too (about 20 gaps of
// 4-40 ms a minute, seen here). At 2,000 requests a second each such stall
// delays every request in flight, which is enough by itself to set a p99.
//
// So the benchmark runs a probe in a process of its own that wakes every
// stallTick and reports every gap longer than stallGap. The report judges
// the raw figures, and prints beside them the stalls and the p99 of the
// requests whose lifetime overlapped none: when the two differ, the machine
// set the p99, not Tollgate. The probe only sleeps, so Tollgate's own work
// cannot hold it back at the load of the fixed-rate phase; the saturation
// phases fill both cores and are not set against it.
const (
	stallTick = 250 * time.Microsecond
	stallGap  = 2 * time.Millisecond
	// stallProbeArg makes this binary run as the probe.
	stallProbeArg = "-stall-probe"
)

// runStallProbe is the probe's main: it prints "from to" (UnixNano) for
// every gap, until its parent closes stdin or kills it.
func runStallProbe() {
	runtime.GOMAXPROCS(1)
	out := bufio.NewWriter(os.Stdout)
	go func() {
		_, _ = bufio.NewReader(os.Stdin).ReadByte() // EOF when the parent ends
		os.Exit(0)
	}()
	prev := time.Now()
	for {
		time.Sleep(stallTick)
		now := time.Now()
		if now.Sub(prev) >= stallGap {
			fmt.Fprintf(out, "%d %d\n", prev.UnixNano(), now.UnixNano())
			if out.Flush() != nil {
				os.Exit(0)
			}
		}
		prev = now
	}
}

// interval is a stretch of wall-clock time.
type interval struct{ from, to time.Time }

func (i interval) overlaps(from, to time.Time) bool { return i.from.Before(to) && from.Before(i.to) }

// stallProbe collects what the probe process reports.
type stallProbe struct {
	mu     sync.Mutex
	stalls []interval
	stop   func()
}

// startStallProbe starts the probe as a child process of this binary.
func startStallProbe(ctx context.Context) (*stallProbe, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, self, stallProbeArg)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start stall probe: %w", err)
	}
	p := &stallProbe{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			from, to, ok := strings.Cut(s.Text(), " ")
			f, err1 := strconv.ParseInt(from, 10, 64)
			t, err2 := strconv.ParseInt(to, 10, 64)
			if !ok || err1 != nil || err2 != nil {
				continue
			}
			p.mu.Lock()
			p.stalls = append(p.stalls, interval{time.Unix(0, f), time.Unix(0, t)})
			p.mu.Unlock()
		}
	}()
	p.stop = func() {
		stdin.Close()
		_ = cmd.Wait()
		<-done
	}
	return p, nil
}

// within returns the stalls overlapping [from, to).
func (p *stallProbe) within(from, to time.Time) []interval {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []interval
	for _, s := range p.stalls {
		if s.overlaps(from, to) {
			out = append(out, s)
		}
	}
	return out
}

// stallSummary describes the machine stalls during one phase.
type stallSummary struct {
	Count          int
	Total, Longest time.Duration
}

func summarizeStalls(stalls []interval) stallSummary {
	var s stallSummary
	for _, st := range stalls {
		d := st.to.Sub(st.from)
		s.Count++
		s.Total += d
		s.Longest = max(s.Longest, d)
	}
	return s
}
