package main

import (
	"fmt"
	"slices"
	"sync"
	"time"
)

// latencies collects every sample of a phase. Phases are short (tens of
// thousands of samples), so keeping them all and sorting is exact and cheap;
// a bucketed histogram would only add rounding.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

// summary is a latency distribution reduced to the figures the report shows.
type summary struct {
	N             int
	P50, P99, Max time.Duration
}

func (l *latencies) summary() summary {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return summary{}
	}
	slices.Sort(l.d)
	return summary{N: len(l.d), P50: quantile(l.d, 0.50), P99: quantile(l.d, 0.99), Max: l.d[len(l.d)-1]}
}

// quantile is the nearest-rank quantile of sorted samples.
func quantile(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// ms formats a duration in milliseconds with enough digits for sub-millisecond
// figures.
func ms(d time.Duration) string {
	return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond))
}
