// Package outbound tells the host application what happened in Tollgate:
// an organisation registers webhook endpoints, other domains Emit events
// inside their own transactions, and River jobs deliver them, signed per the
// Standard Webhooks specification, with retries for up to three days.
//
// What it offers:
//   - Emit(ctx, tx, orgID, type, data): record an event and enqueue its
//     deliveries in the caller's transaction.
//   - CreateEndpoint / UpdateEndpoint / DeleteEndpoint / Endpoints: the
//     organisation's endpoints, capped by its plan's `webhooks`.
//   - Deliveries / RetryDelivery: what was sent, and a replay.
package outbound

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"

	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/jobs"
	"github.com/tollgate-billing/tollgate/internal/plans"
	"github.com/tollgate-billing/tollgate/internal/store"
)

// Event types an endpoint can subscribe to.
const (
	UsageThresholdReached = "usage.threshold_reached"
	UsageLimitReached     = "usage.limit_reached"
	SubscriptionUpdated   = "subscription.updated"
	InvoicePaid           = "invoice.paid"
	InvoicePaymentFailed  = "invoice.payment_failed"
	OverageBilled         = "overage.billed"
	// EndpointDisabled is the final event about an endpoint that failed for
	// three days, sent to the organisation's other endpoints.
	EndpointDisabled = "webhook_endpoint.disabled"
)

// AllEvents, as an endpoint's only event, subscribes it to every type,
// including those added later.
const AllEvents = "*"

// EventTypes lists every event type, in documentation order.
var EventTypes = []string{
	UsageThresholdReached, UsageLimitReached, SubscriptionUpdated,
	InvoicePaid, InvoicePaymentFailed, OverageBilled, EndpointDisabled,
}

// PlanSource tells an organisation's effective plan (billing.Service).
type PlanSource interface {
	PlanOf(ctx context.Context, orgID string) (plans.Plan, string, error)
}

// Options are the Service's dependencies.
type Options struct {
	DB    *store.DB
	Jobs  *jobs.Runner
	Plans PlanSource
	Clock clock.Clock
	Log   *slog.Logger
	// Production refuses plain http and every address that is not public
	// (weburl.ForbiddenAddr), when a URL is saved and when it is dialled.
	Production bool
	// AllowedNetworks are private networks production may deliver into
	// anyway (WEBHOOK_ALLOWED_NETWORKS).
	AllowedNetworks []netip.Prefix
}

// Service owns webhook endpoints, events and their deliveries.
type Service struct {
	db         *store.DB
	jobs       *jobs.Runner
	plans      PlanSource
	clock      clock.Clock
	log        *slog.Logger
	production bool
	allowed    []netip.Prefix
	http       *http.Client
	turns      turns
}

// NewService builds the service and registers its delivery worker on
// o.Jobs, so it must run before o.Jobs starts.
func NewService(o Options) *Service {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	s := &Service{
		db: o.DB, jobs: o.Jobs, plans: o.Plans, clock: o.Clock, log: o.Log,
		production: o.Production, allowed: o.AllowedNetworks,
		http: newHTTPClient(o.Production, o.AllowedNetworks, nil),
	}
	jobs.Register(o.Jobs, &deliverWorker{s: s})
	jobs.Register(o.Jobs, &pruneWorker{s: s})
	return s
}
