// Package orgs keeps the tenants Tollgate bills. An organisation is created
// the first time one of its tokens is seen; its external id is the token's
// `org` claim and never changes.
package orgs

import (
	"context"
	"fmt"
	"strings"

	"gorm.io/gorm/clause"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/cache"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/plans"
	"github.com/tollgate-billing/tollgate/internal/store"
)

// Service finds and creates organisations.
type Service struct {
	db    *store.DB
	clock clock.Clock
	// ids caches external id -> id: the mapping never changes, and every
	// authenticated request needs it. Bounded, at the organisations seen
	// most recently, since anyone with a token for a new org adds one.
	ids *cache.Cache[string, string]
}

// maxCachedOrgs bounds ids.
const maxCachedOrgs = 100000

// NewService returns an organisation service.
func NewService(db *store.DB, c clock.Clock) *Service {
	return &Service{db: db, clock: c, ids: cache.New[string, string](maxCachedOrgs, 0, c)}
}

// Ensure returns the id of the organisation with this external id, creating
// it (with name and email from the token) on first sight.
func (s *Service) Ensure(ctx context.Context, externalID, name, email string) (string, error) {
	externalID = strings.TrimSpace(externalID)
	if externalID == "" || len(externalID) > 255 {
		return "", apperr.New(apperr.Unauthenticated, "token has no valid org claim")
	}
	if id, ok := s.ids.Get(externalID); ok {
		return id, nil
	}
	now := s.clock.Now()
	if name == "" {
		name = externalID
	}
	org := store.Organization{
		ID: store.NewID(), ExternalID: externalID, Name: name, BillingEmail: email,
		PlanID: plans.FreePlanID, CreatedAt: now, UpdatedAt: now,
	}
	db := s.db.WithContext(ctx)
	// Concurrent first requests race here; the unique external id decides.
	if err := db.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "external_id"}}, DoNothing: true}).Create(&org).Error; err != nil {
		return "", fmt.Errorf("create organisation %q: %w", externalID, err)
	}
	var id string
	if err := db.Model(&store.Organization{}).Where("external_id = ?", externalID).Pluck("id", &id).Error; err != nil || id == "" {
		return "", fmt.Errorf("load organisation %q: %w", externalID, err)
	}
	s.ids.Put(externalID, id)
	return id, nil
}

// Get loads an organisation by its id.
func (s *Service) Get(ctx context.Context, orgID string) (store.Organization, error) {
	var org store.Organization
	err := s.db.WithContext(ctx).Where("id = ?", orgID).Take(&org).Error
	if store.IsNotFound(err) {
		return org, apperr.ErrNotFound
	}
	if err != nil {
		return org, fmt.Errorf("load organisation %s: %w", orgID, err)
	}
	return org, nil
}
