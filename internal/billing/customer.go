package billing

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/orgs"
	"github.com/tollgate-billing/tollgate/internal/stripeclient"
	"github.com/tollgate-billing/tollgate/internal/stripein"
)

// ensureCustomer returns the organisation's Stripe customer, creating it on
// first use: read, then ask Stripe with no transaction open, then record.
// The idempotency key covers every parameter sent, so a retry with the same
// ones gets the customer an earlier, unrecorded attempt created, and one
// with different ones (a new billing email) is a new request rather than
// one Stripe refuses.
func (s *Service) ensureCustomer(ctx context.Context, sc *client.API, orgID, fallbackEmail string) (string, error) {
	org, err := orgs.Load(ctx, s.db.DB, orgID)
	if err != nil {
		return "", err
	}
	if org.StripeCustomerID != nil && *org.StripeCustomerID != "" {
		return *org.StripeCustomerID, nil
	}
	email := firstNonEmpty(org.BillingEmail, fallbackEmail)
	params := &stripe.CustomerParams{Name: stripe.String(org.Name)}
	if email != "" {
		params.Email = stripe.String(email)
	}
	params.AddMetadata("org_id", org.ID)
	params.AddMetadata("org_external_id", org.ExternalID)
	params.SetIdempotencyKey(customerIdempotencyKey(org.ID, org.Name, email, org.ExternalID))
	params.Context = ctx
	c, err := sc.Customers.New(params)
	if err == nil {
		err = stripein.Customer(c)
	}
	if err != nil {
		return "", stripeclient.Error("create customer for org "+orgID, err)
	}

	customerID := c.ID
	err = s.db.Tx(ctx, func(tx *gorm.DB) error {
		org, ok, err := orgs.Lock(ctx, s.db, tx, orgID)
		if err != nil {
			return err
		}
		if !ok {
			return apperr.ErrNotFound
		}
		if org.StripeCustomerID != nil && *org.StripeCustomerID != "" {
			// Another replica recorded one first (with other parameters, or
			// Stripe would have answered with the same customer): keep it.
			customerID = *org.StripeCustomerID
			if customerID != c.ID {
				s.log.WarnContext(ctx, "another Stripe customer was recorded first; the one created here is unused",
					"org_id", orgID, "stripe_customer_id", customerID, "unused_customer_id", c.ID)
			}
			return nil
		}
		if err := orgs.SetStripeCustomer(ctx, tx, orgID, c.ID, s.clock.Now()); err != nil {
			return fmt.Errorf("store Stripe customer %s of org %s: %w", c.ID, orgID, err)
		}
		s.log.InfoContext(ctx, "created Stripe customer", "org_id", orgID, "stripe_customer_id", c.ID)
		return nil
	})
	return customerID, err
}

// customerIdempotencyKey derives the key of a customer creation from the
// organisation and every parameter sent.
func customerIdempotencyKey(orgID string, params ...string) string {
	h := sha256.New()
	for _, p := range params {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return "tollgate-customer-" + orgID + "-" + hex.EncodeToString(h.Sum(nil))[:16]
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v = strings.TrimSpace(v); v != "" {
			return v
		}
	}
	return ""
}
