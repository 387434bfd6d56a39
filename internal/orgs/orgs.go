// Package orgs keeps the tenants Tollgate bills. An organisation is created
// the first time one of its tokens is seen; its external id is the token's
// `org` claim and never changes.
package orgs

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"gorm.io/gorm/clause"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/cache"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/plans"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/usertext"
)

// Service finds and creates organisations.
type Service struct {
	db    *store.DB
	clock clock.Clock
	// ids caches external id -> id: the mapping never changes, and every
	// authenticated request needs it. Bounded, at the organisations seen
	// most recently, since anyone with a token for a new org adds one.
	ids *cache.Cache[string, string]
	// ensures shares the first lookup of an external id among the requests
	// that need it at once.
	ensures cache.Loads[string]
}

// maxCachedOrgs bounds ids.
const maxCachedOrgs = 100000

// NewService returns an organisation service.
func NewService(db *store.DB, c clock.Clock) *Service {
	return &Service{db: db, clock: c, ids: cache.New[string, string](maxCachedOrgs, 0, c)}
}

// Bounds on what a token may carry into an organisation row.
const (
	MaxExternalIDLen = 255 // bytes
	MaxNameLen       = 200 // characters, as for an API key's name
	MaxEmailLen      = usertext.MaxEmailLen
)

// ExternalIDProblem says what makes id unusable as an organisation's
// external id, naming it subject ("token's org claim", or "org" for the
// CLI's argument); "" when it is usable. The one rule for every way an org
// is named.
func ExternalIDProblem(id, subject string) string {
	switch {
	case id == "":
		return subject + " must not be empty"
	case len(id) > MaxExternalIDLen:
		return fmt.Sprintf("%s is longer than %d bytes", subject, MaxExternalIDLen)
	case !usertext.Printable(id):
		return subject + " must be UTF-8 text without control or invisible formatting characters"
	case strings.TrimSpace(id) != id:
		return subject + " must not start or end with whitespace"
	}
	return ""
}

// ValidateClaims checks the token claims that become an organisation. It
// answers UNAUTHENTICATED (a bad token, not an outage) when they cannot be
// stored as given. The external id is taken exactly as signed: "acme " is
// refused rather than trimmed, because trimming would map one issuer's
// tenant onto another's.
func ValidateClaims(externalID, name, email string) error {
	bad := func(msg string) error { return apperr.New(apperr.Unauthenticated, msg) }
	if externalID == "" {
		return bad("token has no org claim")
	}
	if problem := ExternalIDProblem(externalID, "token's org claim"); problem != "" {
		return bad(problem)
	}
	switch {
	case !usertext.Printable(name):
		return bad("token's org_name claim must be UTF-8 text without control or invisible formatting characters")
	case utf8.RuneCountInString(name) > MaxNameLen:
		return bad(fmt.Sprintf("token's org_name claim is longer than %d characters", MaxNameLen))
	case email != "" && !usertext.Email(email):
		// The same rule as an API key's contactEmail: the address is
		// stored as the organisation's billing email and shown as such.
		return bad(fmt.Sprintf("token's email claim must be an email address like dev@example.com, of at most %d bytes", MaxEmailLen))
	}
	return nil
}

// Ensure returns the id of the organisation with this external id, creating
// it (with name and email from the token) on first sight. Claims that fail
// ValidateClaims answer UNAUTHENTICATED; any other error is the database's.
func (s *Service) Ensure(ctx context.Context, externalID, name, email string) (string, error) {
	if err := ValidateClaims(externalID, name, email); err != nil {
		return "", err
	}
	if id, ok := s.ids.Get(externalID); ok {
		return id, nil
	}
	// A new organisation's first requests, or every organisation's after a
	// restart, arrive many at once; they share one insert and read. A
	// request that missed the cache just before a shared load ended starts
	// a load of its own, which finds the id that one remembered.
	return s.ensures.Do(ctx, externalID, func(ctx context.Context) (string, error) {
		if id, ok := s.ids.Get(externalID); ok {
			return id, nil
		}
		return s.create(ctx, externalID, name, email)
	})
}

// create inserts the organisation unless it exists and returns its id.
func (s *Service) create(ctx context.Context, externalID, name, email string) (string, error) {
	now := s.clock.Now()
	if name == "" {
		name = externalID
	}
	org := Organization{
		ID: store.NewID(), ExternalID: externalID, Name: name, BillingEmail: email,
		PlanID: plans.FreePlanID, CreatedAt: now, UpdatedAt: now,
	}
	db := s.db.WithContext(ctx)
	// Concurrent first requests on different replicas race here; the
	// unique external id decides.
	if err := db.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "external_id"}}, DoNothing: true}).Create(&org).Error; err != nil {
		return "", fmt.Errorf("create organisation %q: %w", externalID, err)
	}
	var id string
	if err := db.Model(&Organization{}).Where("external_id = ?", externalID).Pluck("id", &id).Error; err != nil || id == "" {
		return "", fmt.Errorf("load organisation %q: %w", externalID, err)
	}
	s.ids.Put(externalID, id)
	return id, nil
}

// Get loads an organisation by its id.
func (s *Service) Get(ctx context.Context, orgID string) (Organization, error) {
	return Load(ctx, s.db.DB, orgID)
}
