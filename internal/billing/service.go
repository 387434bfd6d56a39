// Package billing is an organisation's commercial standing: which plan it
// is on, its Stripe subscription, and the Stripe Checkout and Customer
// Portal sessions that change them.
package billing

import (
	"context"

	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/plans"
	"github.com/tollgate-billing/tollgate/internal/store"
)

// Service answers and changes an organisation's billing state.
type Service struct {
	db      *store.DB
	catalog *plans.Catalog
	clock   clock.Clock
}

// NewService returns the billing service.
func NewService(db *store.DB, catalog *plans.Catalog, c clock.Clock) *Service {
	return &Service{db: db, catalog: catalog, clock: c}
}

// Current returns the organisation's billing state.
func (s *Service) Current(ctx context.Context, orgID string) (State, error) {
	return loadState(ctx, s.db, s.catalog, orgID)
}
