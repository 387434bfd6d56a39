package observe

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Registry holds Tollgate's metrics. It is package-level because metrics are
// process-wide; tests read values through prometheus/testutil.
var Registry = prometheus.NewRegistry()

var (
	// HTTPRequests counts requests by route pattern and status code.
	HTTPRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_http_requests_total", Help: "HTTP requests by route and status code.",
	}, []string{"route", "code"})
	// GraphQLOperations times operations by name.
	GraphQLOperations = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "tollgate_graphql_operation_duration_seconds", Help: "GraphQL operations by operation name and outcome.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"operation", "outcome"})
	// PreparedOperations counts operations answered by the GraphQL handler's
	// prepared path instead of gqlgen's general execution, by root field
	// (usageGate, recordUsage, consumeUsage): a client whose calls do not
	// show here sends a shape the prepared path does not take (directives,
	// a second root field, a fragment on another type).
	PreparedOperations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_graphql_prepared_operations_total", Help: "GraphQL operations answered by the prepared path, by root field.",
	}, []string{"field"})
	// PreparedVariables counts operations whose variables the GraphQL
	// handler checked itself (recordUsage and consumeUsage sent over POST
	// with input-object variables), instead of gqlparser's reflective
	// VariableValues.
	PreparedVariables = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tollgate_graphql_prepared_variables_total", Help: "GraphQL operations whose variables the prepared path checked.",
	})
	// WebhookEvents counts Stripe webhook deliveries by event type and outcome.
	WebhookEvents = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_webhook_events_total", Help: "Stripe webhook events by type and outcome.",
	}, []string{"type", "outcome"})
	// UsageEvents counts recorded usage events: accepted, duplicate, rejected.
	UsageEvents = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_usage_events_total", Help: "Usage events by result (accepted, duplicate, rejected).",
	}, []string{"result"})
	// GateLatency times usageGate decisions by where they were answered from.
	GateLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "tollgate_usage_gate_duration_seconds", Help: "usageGate latency by source (lease: this replica's memory under a lease, redis, database).",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .1},
	}, []string{"source"})
	// UsageGroupSize is how many recordUsage calls each group commit wrote
	// together.
	UsageGroupSize = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "tollgate_usage_group_calls", Help: "recordUsage calls per group commit.",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128},
	})
	// UsageGroupStages times group commit: how long each recordUsage call
	// waited for its group to start (wait), each group's transaction
	// (commit) and its mirror in Redis before its callers are answered
	// (publish).
	UsageGroupStages = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "tollgate_usage_group_commit_seconds", Help: "recordUsage group commit by stage: a call's wait for its group, a group's commit, its Redis mirror.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
	}, []string{"stage"})
	// UsageGroupWrites counts the recordUsage calls group commits wrote, by
	// how: in one statement, or in a transaction that judges events one by
	// one (calls whose organisation has a total lately found near a hard
	// limit, that subtract, or whose statement undid itself at a hard limit
	// or an alert threshold; and every call on SQLite).
	UsageGroupWrites = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_usage_group_writes_total", Help: "recordUsage calls written by group commits, by path (statement, transaction).",
	}, []string{"path"})
	// UsageLeaseRevocations counts the usage counter leases a write had to
	// revoke on other replicas before answering, by outcome: answered (the
	// holder dropped it) or expired (it did not answer; the writer waited
	// for the lease to end).
	UsageLeaseRevocations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_usage_lease_revocations_total", Help: "Gate leases revoked on other replicas by writes, by outcome (answered, expired).",
	}, []string{"outcome"})
	// RedisFallbacks counts operations that fell back from Redis to the database.
	RedisFallbacks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_redis_fallbacks_total", Help: "Operations served without Redis because it failed, by operation.",
	}, []string{"operation"})
	// StripeCalls times outbound Stripe API calls by method, path and outcome.
	StripeCalls = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "tollgate_stripe_request_duration_seconds", Help: "Outbound Stripe API calls by method, path and status class.",
		Buckets: prometheus.DefBuckets,
	}, []string{"method", "path", "status"})
)

func init() {
	Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		HTTPRequests, GraphQLOperations, PreparedOperations, PreparedVariables, WebhookEvents, UsageEvents, GateLatency, UsageGroupSize, UsageGroupStages, UsageGroupWrites, UsageLeaseRevocations, RedisFallbacks, StripeCalls,
	)
}

// MetricsHandler serves /metrics.
func MetricsHandler() http.Handler {
	return promhttp.HandlerFor(Registry, promhttp.HandlerOpts{Registry: Registry})
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// CountRequests records each request under the ServeMux pattern that served
// it (never the raw path, which would explode label cardinality).
func CountRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		if sw.code == 0 {
			sw.code = http.StatusOK
		}
		HTTPRequests.WithLabelValues(route, statusLabel(sw.code)).Inc()
	})
}

// statusLabels are the labels of the usual status codes, made once:
// strconv.Itoa allocates a new string for any number over 99.
var statusLabels = func() map[int]string {
	m := map[int]string{}
	for code := 100; code < 600; code++ {
		if http.StatusText(code) != "" {
			m[code] = strconv.Itoa(code)
		}
	}
	return m
}()

func statusLabel(code int) string {
	if s, ok := statusLabels[code]; ok {
		return s
	}
	return strconv.Itoa(code)
}

// Since returns seconds elapsed since t, for histograms.
func Since(t time.Time) float64 { return time.Since(t).Seconds() }
