package orgs

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/store"
)

// Organization is a tenant: the customer of the SaaS that Tollgate bills.
type Organization struct {
	ID               string `gorm:"primaryKey"`
	ExternalID       string // the `org` claim of the tenant's tokens
	Name             string
	BillingEmail     string
	StripeCustomerID *string // unique; nil until the first Checkout
	// StripeCustomerAttempt numbers the attempts at creating the Stripe
	// customer; it is part of the creation's idempotency key (billing).
	StripeCustomerAttempt int
	// PlanID is the effective plan. Billing keeps it equal to the
	// subscription's plan while that grants access, and free otherwise.
	PlanID    string
	CreatedAt time.Time
	UpdatedAt time.Time
}

func (Organization) TableName() string { return "organizations" }

// The functions below are the organisation's reads and writes for the other
// domains. Each takes the caller's transaction (or handle), so a write is
// atomic with the caller's other changes; only this package writes the
// organizations table.

// Load reads an organisation with tx. A missing one is apperr.ErrNotFound.
func Load(ctx context.Context, tx *gorm.DB, orgID string) (Organization, error) {
	var org Organization
	err := tx.WithContext(ctx).Where("id = ?", orgID).Take(&org).Error
	if store.IsNotFound(err) {
		return org, apperr.ErrNotFound
	}
	if err != nil {
		return org, fmt.Errorf("load organisation %s: %w", orgID, err)
	}
	return org, nil
}

// Lock loads an organisation and locks its row until tx ends; ok is false
// when it does not exist. Whoever changes what hangs off an organisation
// (its subscriptions, its webhook endpoints, its events) takes this lock
// first, so that concurrent changes of one organisation apply one after the
// other.
func Lock(ctx context.Context, db *store.DB, tx *gorm.DB, orgID string) (org Organization, ok bool, err error) {
	err = db.ForUpdate(tx.WithContext(ctx)).Where("id = ?", orgID).Take(&org).Error
	if store.IsNotFound(err) {
		return org, false, nil
	}
	if err != nil {
		return org, false, fmt.Errorf("lock organisation %s: %w", orgID, err)
	}
	return org, true, nil
}

// Exists reports whether an organisation with this id exists.
func Exists(ctx context.Context, tx *gorm.DB, orgID string) (bool, error) {
	var ids []string
	if err := tx.WithContext(ctx).Model(&Organization{}).Where("id = ?", orgID).Limit(1).Pluck("id", &ids).Error; err != nil {
		return false, fmt.Errorf("find organisation %s: %w", orgID, err)
	}
	return len(ids) > 0, nil
}

// OfStripeCustomer returns the id of the organisation linked to a Stripe
// customer, or "" when none is.
func OfStripeCustomer(ctx context.Context, tx *gorm.DB, customerID string) (string, error) {
	var ids []string
	if err := tx.WithContext(ctx).Model(&Organization{}).Where("stripe_customer_id = ?", customerID).Limit(1).Pluck("id", &ids).Error; err != nil {
		return "", fmt.Errorf("find organisation of customer %s: %w", customerID, err)
	}
	if len(ids) == 0 {
		return "", nil
	}
	return ids[0], nil
}

// WithStripeCustomer lists, by id, the organisations that have a Stripe
// customer; with idOrExternal set, only the one with that id or external id
// (with or without a customer).
func WithStripeCustomer(ctx context.Context, tx *gorm.DB, idOrExternal string) ([]Organization, error) {
	var list []Organization
	q := tx.WithContext(ctx).Order("id")
	if idOrExternal != "" {
		q = q.Where("id = ? OR external_id = ?", idOrExternal, idOrExternal)
	} else {
		q = q.Where("stripe_customer_id IS NOT NULL AND stripe_customer_id <> ''")
	}
	if err := q.Find(&list).Error; err != nil {
		return nil, fmt.Errorf("list organisations: %w", err)
	}
	return list, nil
}

// NextStripeCustomerAttempt moves the organisation's customer creation on
// from attempt used to the next, so the next try is a new Stripe request
// under a new idempotency key. Of concurrent callers that used the same
// attempt, one moves it; the others find it moved and change nothing.
func NextStripeCustomerAttempt(ctx context.Context, tx *gorm.DB, orgID string, used int, at time.Time) error {
	err := tx.WithContext(ctx).Model(&Organization{}).Where("id = ? AND stripe_customer_attempt = ?", orgID, used).
		Updates(map[string]any{"stripe_customer_attempt": used + 1, "updated_at": at}).Error
	if err != nil {
		return fmt.Errorf("move on the Stripe customer attempt of organisation %s: %w", orgID, err)
	}
	return nil
}

// SetStripeCustomer links the organisation to its Stripe customer, in tx.
// The caller holds the organisation's lock and has checked that no other
// organisation has this customer.
func SetStripeCustomer(ctx context.Context, tx *gorm.DB, orgID, customerID string, at time.Time) error {
	return set(ctx, tx, orgID, map[string]any{"stripe_customer_id": customerID, "updated_at": at})
}

// SetPlan makes planID the organisation's effective plan, in tx.
func SetPlan(ctx context.Context, tx *gorm.DB, orgID, planID string, at time.Time) error {
	return set(ctx, tx, orgID, map[string]any{"plan_id": planID, "updated_at": at})
}

// set updates one organisation's columns; a missing one is
// apperr.ErrNotFound.
func set(ctx context.Context, tx *gorm.DB, orgID string, cols map[string]any) error {
	res := tx.WithContext(ctx).Model(&Organization{}).Where("id = ?", orgID).Updates(cols)
	if res.Error != nil {
		return fmt.Errorf("update organisation %s: %w", orgID, res.Error)
	}
	if res.RowsAffected == 0 {
		return apperr.ErrNotFound
	}
	return nil
}
