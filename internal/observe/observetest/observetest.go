// Package observetest reads Tollgate's metrics in tests. Metrics are
// process-wide, so a test compares a value before and after what it does;
// counters are read with prometheus/testutil.ToFloat64, and this package
// adds what testutil does not read.
package observetest

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Observations is how many values one histogram series holds, e.g.
// Observations(observe.GateLatency.WithLabelValues("redis")).
func Observations(o prometheus.Observer) uint64 { return histogram(o).GetSampleCount() }

// ObservedSum is the sum of the values one histogram series holds.
func ObservedSum(o prometheus.Observer) float64 { return histogram(o).GetSampleSum() }

func histogram(o prometheus.Observer) *dto.Histogram {
	m, ok := o.(prometheus.Metric)
	if !ok {
		panic(fmt.Sprintf("observetest: %T is not a histogram series", o))
	}
	var pb dto.Metric
	if err := m.Write(&pb); err != nil {
		panic(fmt.Sprintf("observetest: read histogram: %v", err))
	}
	return pb.GetHistogram()
}

// Sum adds up every series of a counter vector, so a test can check that
// an action moved one series and no other.
func Sum(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric)
	go func() {
		c.Collect(ch)
		close(ch)
	}()
	var sum float64
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			panic(fmt.Sprintf("observetest: read counter: %v", err))
		}
		sum += pb.GetCounter().GetValue()
	}
	return sum
}
