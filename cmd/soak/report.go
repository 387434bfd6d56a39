package main

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// figure is one row of the table. A checked figure has a want and passes or
// fails; an unchecked one is context for reading the others.
type figure struct {
	phase, name, value, want string
	checked, pass            bool
}

// report collects the figures of a run.
type report struct {
	mu      sync.Mutex
	mode    []string
	notes   []string
	rows    []figure
	elapsed time.Duration
}

// info adds a figure that is not judged.
func (r *report) info(phase, name string, value any) {
	r.add(figure{phase: phase, name: name, value: fmt.Sprint(value)})
}

// check adds a figure that must equal want.
func (r *report) check(phase, name string, got, want any) {
	g, w := fmt.Sprint(got), fmt.Sprint(want)
	r.add(figure{phase: phase, name: name, value: g, want: w, checked: true, pass: g == w})
}

// checkThat adds a figure judged by the caller; want describes the rule.
func (r *report) checkThat(phase, name string, value any, want string, pass bool) {
	r.add(figure{phase: phase, name: name, value: fmt.Sprint(value), want: want, checked: true, pass: pass})
}

func (r *report) note(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

func (r *report) add(f figure) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rows = append(r.rows, f)
}

// ok is false when any checked figure failed (or nothing was checked).
func (r *report) ok() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	checked := 0
	for _, f := range r.rows {
		if f.checked {
			checked++
			if !f.pass {
				return false
			}
		}
	}
	return checked > 0
}

func (r *report) print(w io.Writer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintln(w, "\nTollgate soak")
	for _, m := range r.mode {
		fmt.Fprintln(w, "  "+m)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "phase\tfigure\tvalue\twant\tresult")
	fmt.Fprintln(tw, "-----\t------\t-----\t----\t------")
	last := ""
	for _, f := range r.rows {
		phase := f.phase
		if phase == last {
			phase = ""
		}
		last = f.phase
		result := ""
		if f.checked {
			result = "ok"
			if !f.pass {
				result = "FAIL"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", phase, f.name, f.value, f.want, result)
	}
	tw.Flush()
	for _, n := range r.notes {
		fmt.Fprintln(w, "note: "+strings.TrimSpace(n))
	}
	if r.elapsed > 0 {
		fmt.Fprintf(w, "phases ran in %s\n", r.elapsed.Round(time.Second))
	}
}

// describeCounts lists tallies, largest first: "INTERNAL 50, http 5xx 3".
func describeCounts(counts map[string]int) string {
	if len(counts) == 0 {
		return "none"
	}
	kinds := make([]string, 0, len(counts))
	for k := range counts {
		kinds = append(kinds, k)
	}
	slices.SortFunc(kinds, func(a, b string) int { return cmp.Or(cmp.Compare(counts[b], counts[a]), strings.Compare(a, b)) })
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%s %d", k, counts[k])
	}
	return strings.Join(parts, ", ")
}

// describeLatency gives the median, 99th percentile, maximum and the count
// over a second: the faults show in the tail.
func describeLatency(took []time.Duration) string {
	if len(took) == 0 {
		return "none"
	}
	sorted := slices.Clone(took)
	slices.Sort(sorted)
	at := func(q float64) time.Duration { return sorted[int(q*float64(len(sorted)-1))].Round(time.Millisecond) }
	slow := len(sorted) - sort.Search(len(sorted), func(i int) bool { return sorted[i] > time.Second })
	return fmt.Sprintf("p50 %s, p99 %s, max %s; %d over 1s", at(0.5), at(0.99), at(1), slow)
}
