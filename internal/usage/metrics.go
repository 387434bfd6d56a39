package usage

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate-billing/tollgate/internal/observe"
)

// The series this package feeds, bound once rather than looked up by label
// on every call.
var (
	acceptedEvents  = observe.UsageEvents.WithLabelValues("accepted")
	duplicateEvents = observe.UsageEvents.WithLabelValues("duplicate")
	rejectedEvents  = observe.UsageEvents.WithLabelValues("rejected")

	gateFromLease    = observe.GateLatency.WithLabelValues("lease")
	gateFromRedis    = observe.GateLatency.WithLabelValues("redis")
	gateFromDatabase = observe.GateLatency.WithLabelValues("database")

	groupSize    = observe.UsageGroupSize
	groupWait    = observe.UsageGroupStages.WithLabelValues("wait")
	groupCommit  = observe.UsageGroupStages.WithLabelValues("commit")
	groupPublish = observe.UsageGroupStages.WithLabelValues("publish")

	writtenByStatement   = observe.UsageGroupWrites.WithLabelValues("statement")
	writtenByTransaction = observe.UsageGroupWrites.WithLabelValues("transaction")

	leaseRevocationsAnswered = observe.UsageLeaseRevocations.WithLabelValues("answered")
	leaseRevocationsExpired  = observe.UsageLeaseRevocations.WithLabelValues("expired")

	gateFallbacks   = observe.RedisFallbacks.WithLabelValues("usage_gate")
	recordFallbacks = observe.RedisFallbacks.WithLabelValues("usage_record")
)

// countRecorded counts what one Record call did with its events.
func countRecorded(res RecordResult) {
	acceptedEvents.Add(float64(res.Accepted))
	duplicateEvents.Add(float64(res.Duplicates))
	rejectedEvents.Add(float64(len(res.Rejected)))
}

// gateLatency is the histogram of gate answers from where this one came.
func gateLatency(from source) prometheus.Observer {
	switch from {
	case fromLease:
		return gateFromLease
	case fromRedis:
		return gateFromRedis
	}
	return gateFromDatabase
}
