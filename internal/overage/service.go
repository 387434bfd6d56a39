// Package overage bills usage past a soft limit through Stripe. Each closed
// UTC month's overage of each priced meter becomes one invoice item on the
// organisation's first draft subscription-cycle invoice after the month
// closes, and the overage_charges table, which this package owns, records
// what was billed and where, and which meters' months were settled at
// nothing (NoOverage).
//
// Billing is claim, commit, call, record: a charge row is written (pending)
// and committed before Stripe is asked, the call carries an idempotency key
// derived from (organisation, meter, month), and the item's id is recorded
// after. A redelivered webhook, a crash between the call and the record, or
// `stripe sync` therefore finish the same charge rather than add another.
package overage

import (
	"context"
	"log/slog"
	"time"

	"github.com/stripe/stripe-go/v76/client"
	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/plans"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/usage"
)

// UsageReader reports an organisation's usage of every meter in a month
// ("YYYY-MM") beside its plan's limits, one meter's usage day by day, and
// the plan. usage.Service implements it.
type UsageReader interface {
	Usage(ctx context.Context, orgID, period string) (usage.Period, []usage.MeterUsage, error)
	Series(ctx context.Context, orgID, meter string, from, to time.Time) ([]usage.Point, error)
	PlanOf(ctx context.Context, orgID string) (plans.Plan, string, error)
}

// Lookback is how many closed months a draft invoice may collect: overage
// older than that is left unbilled rather than surprising a customer.
const Lookback = 12

// claimLease is how long a charge claimed for one invoice is left to the
// call in flight before another invoice may take it over.
const claimLease = 5 * time.Minute

// Service bills overage and reports it.
type Service struct {
	db       *store.DB
	usage    UsageReader
	standing Standing
	stripe   *client.API // nil when Stripe is not configured
	clock    clock.Clock
	log      *slog.Logger

	// OnBilled, when set, is called in the transaction that records a
	// charge as billed, so an outbound `overage.billed` event commits with
	// the fact it reports (the lead wires outbound.Emit here). An error
	// rolls the record back; the charge stays pending and is recorded on
	// the next try under the same idempotency key.
	OnBilled func(ctx context.Context, tx *gorm.DB, c Charge) error
}

// NewService returns the overage service; sc nil means Stripe is not
// configured, and nothing is billed.
func NewService(db *store.DB, u UsageReader, st Standing, sc *client.API, c clock.Clock, log *slog.Logger) *Service {
	if log == nil {
		log = slog.Default()
	}
	return &Service{db: db, usage: u, standing: st, stripe: sc, clock: c, log: log}
}
