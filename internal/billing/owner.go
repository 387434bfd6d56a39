package billing

import (
	"context"
	"fmt"

	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/orgs"
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
	// objects it created, in order of preference. One places the object
	// only if Tollgate recorded a checkout of that organisation for
	// CustomerID (checkoutOpened).
	MetadataOrgIDs []string
	// Object and ObjectID name the Stripe object ("subscription",
	// "invoice") in the log line and count of one that metadata alone
	// would have placed.
	Object, ObjectID string
	// quiet leaves that warning and count to an earlier look at the same
	// object.
	quiet bool
}

// FindOrg returns the id of the organisation a Stripe object belongs to:
// by customer, then stored subscription, then a metadata.org_id naming an
// organisation Tollgate opened a checkout for with the object's customer.
// When it finds none, the outcome says why: UnknownOrg when nothing names
// an existing organisation, Ignored when only metadata does and Tollgate
// opened no checkout of it for that customer (logged and counted in
// UntrustedObjects: a subscription or invoice of a stranger's customer must
// not link that customer to the organisation, nor grant it a plan).
func (s *Service) FindOrg(ctx context.Context, tx *gorm.DB, o Owner) (string, Outcome, error) {
	tx = tx.WithContext(ctx)
	var ids []string
	if o.CustomerID != "" {
		if id, err := orgs.OfStripeCustomer(ctx, tx, o.CustomerID); err != nil || id != "" {
			return id, "", err
		}
	}
	if o.SubscriptionID != "" {
		if err := tx.Model(&Subscription{}).Where("stripe_subscription_id = ?", o.SubscriptionID).Limit(1).Pluck("org_id", &ids).Error; err != nil {
			return "", "", fmt.Errorf("find organisation of subscription %s: %w", o.SubscriptionID, err)
		}
		if len(ids) > 0 {
			return ids[0], "", nil
		}
	}
	var untrusted []string
	for _, id := range o.MetadataOrgIDs {
		if id == "" {
			continue
		}
		ok, err := orgs.Exists(ctx, tx, id)
		if err != nil {
			return "", "", err
		}
		if !ok {
			continue
		}
		opened, err := s.checkoutOpened(ctx, tx, id, o.CustomerID, nil)
		if err != nil {
			return "", "", err
		}
		if opened {
			return id, "", nil
		}
		untrusted = append(untrusted, id)
	}
	if len(untrusted) == 0 {
		return "", UnknownOrg, nil
	}
	if o.quiet {
		return "", Ignored, nil
	}
	UntrustedObjects.WithLabelValues(o.Object).Inc()
	s.log.WarnContext(ctx, "ignoring a Stripe object Tollgate cannot place: its customer is linked to no organisation, and Tollgate opened no checkout for that customer of the organisation its metadata.org_id names",
		"object", o.Object, "object_id", o.ObjectID, "stripe_customer_id", o.CustomerID, "metadata_org_id", untrusted)
	return "", Ignored, nil
}

// LinkCustomer makes customerID the organisation's Stripe customer, unless
// it already has one. It returns what changed, for logs; an organisation
// that does not exist gives UnknownOrg.
func (s *Service) LinkCustomer(ctx context.Context, tx *gorm.DB, orgID, customerID string) (Result, error) {
	tx = tx.WithContext(ctx)
	org, ok, err := orgs.Lock(ctx, s.db, tx, orgID)
	if err != nil || !ok {
		return Result{Outcome: UnknownOrg}, err
	}
	res := Result{Outcome: Applied, OrgID: orgID}
	change, err := s.linkCustomer(ctx, tx, &org, customerID)
	res.note(change)
	return res, err
}

// linkCustomer sets the organisation's customer when it has none and no
// other organisation has this one. A conflicting link is logged and left
// alone: failing would make Stripe retry an event that can never succeed.
func (s *Service) linkCustomer(ctx context.Context, tx *gorm.DB, org *orgs.Organization, customerID string) (string, error) {
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
	holder, err := orgs.OfStripeCustomer(ctx, tx, customerID)
	if err != nil {
		return "", err
	}
	if holder != "" {
		s.log.Warn("Stripe customer already belongs to another organisation; not linking",
			"org_id", org.ID, "stripe_customer_id", customerID)
		return "", nil
	}
	if err := orgs.SetStripeCustomer(ctx, tx, org.ID, customerID, s.clock.Now()); err != nil {
		return "", fmt.Errorf("link customer %s to org %s: %w", customerID, org.ID, err)
	}
	org.StripeCustomerID = &customerID
	return "customer linked: " + customerID, nil
}
