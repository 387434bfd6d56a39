package billing

import (
	"context"
	"fmt"

	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/store"
)

// Owner is what a Stripe object says about the organisation it belongs to.
type Owner struct {
	// CustomerID is the Stripe customer, linked to the organisation at
	// Checkout.
	CustomerID string
	// SubscriptionID finds the organisation through a subscription already
	// stored.
	SubscriptionID string
	// MetadataOrgIDs are metadata.org_id values Tollgate put on the Stripe
	// objects it created, in order of preference.
	MetadataOrgIDs []string
}

// FindOrg returns the id of the organisation a Stripe object belongs to, or
// "" when none does: by customer, then stored subscription, then metadata.
func (s *Service) FindOrg(ctx context.Context, tx *gorm.DB, o Owner) (string, error) {
	tx = tx.WithContext(ctx)
	var ids []string
	if o.CustomerID != "" {
		if err := tx.Model(&store.Organization{}).Where("stripe_customer_id = ?", o.CustomerID).Limit(1).Pluck("id", &ids).Error; err != nil {
			return "", fmt.Errorf("find organisation of customer %s: %w", o.CustomerID, err)
		}
		if len(ids) > 0 {
			return ids[0], nil
		}
	}
	if o.SubscriptionID != "" {
		if err := tx.Model(&store.Subscription{}).Where("stripe_subscription_id = ?", o.SubscriptionID).Limit(1).Pluck("org_id", &ids).Error; err != nil {
			return "", fmt.Errorf("find organisation of subscription %s: %w", o.SubscriptionID, err)
		}
		if len(ids) > 0 {
			return ids[0], nil
		}
	}
	for _, id := range o.MetadataOrgIDs {
		if id == "" {
			continue
		}
		if err := tx.Model(&store.Organization{}).Where("id = ?", id).Limit(1).Pluck("id", &ids).Error; err != nil {
			return "", fmt.Errorf("find organisation %s: %w", id, err)
		}
		if len(ids) > 0 {
			return ids[0], nil
		}
	}
	return "", nil
}

// LinkCustomer makes customerID the organisation's Stripe customer, unless
// it already has one. It returns what changed, for logs; an organisation
// that does not exist gives UnknownOrg.
func (s *Service) LinkCustomer(ctx context.Context, tx *gorm.DB, orgID, customerID string) (Result, error) {
	tx = tx.WithContext(ctx)
	org, ok, err := s.lockOrg(tx, orgID)
	if err != nil || !ok {
		return Result{Outcome: UnknownOrg}, err
	}
	res := Result{Outcome: Applied, OrgID: orgID}
	change, err := s.linkCustomer(tx, &org, customerID)
	res.note(change)
	return res, err
}

// linkCustomer sets the organisation's customer when it has none and no
// other organisation has this one. A conflicting link is logged and left
// alone: failing would make Stripe retry an event that can never succeed.
func (s *Service) linkCustomer(tx *gorm.DB, org *store.Organization, customerID string) (string, error) {
	if customerID == "" {
		return "", nil
	}
	if org.StripeCustomerID != nil && *org.StripeCustomerID != "" {
		if *org.StripeCustomerID != customerID {
			s.log.Warn("Stripe object names another customer than the organisation's; keeping the organisation's",
				"org_id", org.ID, "org_customer", *org.StripeCustomerID, "object_customer", customerID)
		}
		return "", nil
	}
	var n int64
	if err := tx.Model(&store.Organization{}).Where("stripe_customer_id = ?", customerID).Count(&n).Error; err != nil {
		return "", fmt.Errorf("check owner of customer %s: %w", customerID, err)
	}
	if n > 0 {
		s.log.Warn("Stripe customer already belongs to another organisation; not linking",
			"org_id", org.ID, "stripe_customer_id", customerID)
		return "", nil
	}
	if err := tx.Model(&store.Organization{}).Where("id = ?", org.ID).
		Updates(map[string]any{"stripe_customer_id": customerID, "updated_at": s.clock.Now()}).Error; err != nil {
		return "", fmt.Errorf("link customer %s to org %s: %w", customerID, org.ID, err)
	}
	org.StripeCustomerID = &customerID
	return "customer linked: " + customerID, nil
}

// lockOrg loads and locks an organisation for the rest of the transaction.
// Everything that changes an organisation's subscriptions locks it first, so
// concurrent events for one organisation apply one after the other.
func (s *Service) lockOrg(tx *gorm.DB, orgID string) (store.Organization, bool, error) {
	var org store.Organization
	err := s.db.ForUpdate(tx).Where("id = ?", orgID).Take(&org).Error
	if store.IsNotFound(err) {
		return org, false, nil
	}
	if err != nil {
		return org, false, fmt.Errorf("lock organisation %s: %w", orgID, err)
	}
	return org, true, nil
}
