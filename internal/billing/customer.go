package billing

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
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
// The idempotency key covers every parameter sent and the organisation's
// current attempt, so a retry with the same ones (after a lost answer or a
// timeout) gets the customer an earlier, unrecorded request created, and
// one with different ones (a new billing email) is a new request rather
// than one Stripe refuses. An answer Tollgate cannot use, or a refusal,
// moves the attempt on (settleUnusableCustomer), as settleUnusable does
// for Checkout: Stripe would replay it under the same key for a day.
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
	if org.ExternalID != "" {
		params.AddMetadata(metaOrgExternalID, org.ExternalID)
	}
	keyParams := []string{org.Name, email, org.ExternalID}
	if org.StripeCustomerAttempt > 0 {
		// Attempt 0 keeps the key of before attempts were counted, so an
		// answer lost then is still found.
		keyParams = append(keyParams, "attempt "+strconv.Itoa(org.StripeCustomerAttempt))
	}
	params.SetIdempotencyKey(customerIdempotencyKey(org.ID, keyParams...))
	params.Context = ctx
	c, err := sc.Customers.New(params)
	if err == nil {
		if err = stripein.Customer(c); err != nil {
			err = errors.Join(err, s.settleUnusableCustomer(ctx, org, "Stripe answered a customer Tollgate cannot use"))
		}
	} else if refused(err) {
		err = errors.Join(err, s.settleUnusableCustomer(ctx, org, "Stripe refused to create the customer"))
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

// settleUnusableCustomer moves the organisation's customer creation on to
// its next attempt after an answer that is not worth asking for again: a
// customer Tollgate cannot use, or a refusal. Stripe replays the answer to
// a key for 24 hours, so asking again under the same key would fail the
// same way, and every checkout of the organisation with it, for a day. A
// customer Stripe did create is left unused (nobody was told of it).
func (s *Service) settleUnusableCustomer(ctx context.Context, org orgs.Organization, why string) error {
	s.log.WarnContext(ctx, why+"; the next try is a new request", "org_id", org.ID, "attempt", org.StripeCustomerAttempt)
	return orgs.NextStripeCustomerAttempt(ctx, s.db.DB, org.ID, org.StripeCustomerAttempt, s.clock.Now())
}

// metaOrgExternalID names, in the metadata of the Stripe objects Tollgate
// creates for an organisation (its customer, Checkout sessions and the
// subscriptions they sell), the organisation's external id, by which an
// operator finds it from the Stripe dashboard.
const metaOrgExternalID = "org_external_id"

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
