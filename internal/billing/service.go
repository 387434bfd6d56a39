// Package billing is an organisation's commercial standing: which plan it
// is on, its Stripe subscription, and the Stripe Checkout and Customer
// Portal sessions that change them. Stripe is the source of truth: the
// subscription rows here are a copy, written only from Stripe's own objects
// (webhook events, API responses, reconciliation) through ApplySubscription.
package billing

import (
	"time"

	"context"
	"log/slog"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/plans"
	"github.com/tollgate-billing/tollgate/internal/store"
)

// Service answers and changes an organisation's billing state.
type Service struct {
	db      *store.DB
	catalog *plans.Catalog
	clock   clock.Clock
	stripe  *client.API // nil when STRIPE_SECRET_KEY is unset
	log     *slog.Logger
	// changed are called with an organisation's id when its plan or
	// subscription status changes, so caches elsewhere drop it.
	changed []func(orgID string)
	// cycleInvoice hear of each subscription-cycle invoice Stripe creates
	// (see OnCycleInvoice).
	cycleInvoice []func(ctx context.Context, orgID string, inv *stripe.Invoice) error
	// ended hear of each subscription that ended (see OnSubscriptionEnded).
	ended []func(ctx context.Context, orgID, subscriptionID string, endedAt time.Time) error
	// orgLocks orders checkouts of one organisation within this process.
	orgLocks orgLocks
	// emitter, when set, hears plan, status and payment changes (EmitTo).
	emitter Emitter
}

// OnChange registers fn to hear which organisation's standing changed.
// Register at start-up, before requests are served. fn runs after the
// change commits (store.AfterCommit): a cache told earlier could be refilled
// from a read that predates the commit.
func (s *Service) OnChange(fn func(orgID string)) { s.changed = append(s.changed, fn) }

func (s *Service) notifyChanged(tx *gorm.DB, res Result) {
	if res.Outcome != Applied || len(res.Changes) == 0 || res.OrgID == "" {
		return
	}
	store.AfterCommit(tx, func() {
		for _, fn := range s.changed {
			fn(res.OrgID)
		}
	})
}

// NewService returns the billing service. sc is nil when Stripe is not
// configured; reading state still works, changing it through Stripe gives
// STRIPE_NOT_CONFIGURED.
func NewService(db *store.DB, catalog *plans.Catalog, c clock.Clock, sc *client.API, log *slog.Logger) *Service {
	if log == nil {
		log = slog.Default()
	}
	return &Service{db: db, catalog: catalog, clock: c, stripe: sc, log: log}
}

// Current returns the organisation's billing state.
func (s *Service) Current(ctx context.Context, orgID string) (State, error) {
	return loadState(ctx, s.db, s.catalog, orgID)
}

// PlanOf returns the organisation's effective plan and its subscription's
// Stripe status ("" without a subscription), for quota and rate limiting.
func (s *Service) PlanOf(ctx context.Context, orgID string) (plans.Plan, string, error) {
	st, err := s.Current(ctx, orgID)
	if err != nil {
		return plans.Plan{}, "", err
	}
	status := ""
	if st.Subscription != nil {
		status = st.Subscription.Status
	}
	return st.Plan, status, nil
}

// stripeClient returns the Stripe client, or STRIPE_NOT_CONFIGURED.
func (s *Service) stripeClient() (*client.API, error) {
	if s.stripe == nil {
		return nil, apperr.New(apperr.StripeNotConfigured,
			"Stripe is not configured on this Tollgate: set STRIPE_SECRET_KEY")
	}
	return s.stripe, nil
}
