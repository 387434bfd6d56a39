package billing

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/plans"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/stripeclient"
)

// CheckoutInput asks for a Checkout session selling one paid plan.
type CheckoutInput struct {
	Plan       string
	SuccessURL string
	CancelURL  string
	// Email is the caller's token email, used for a new Stripe customer when
	// the organisation has no billing email.
	Email string
}

// CheckoutSession is where to send the customer to pay.
type CheckoutSession struct {
	ID  string
	URL string
}

// CreateCheckoutSession opens a Stripe Checkout session for a paid plan,
// creating the organisation's Stripe customer first if it has none.
// Invalid input and an existing subscription give apperr.FieldErrors, before
// anything is sent to Stripe.
func (s *Service) CreateCheckoutSession(ctx context.Context, orgID string, in CheckoutInput) (CheckoutSession, error) {
	plan, err := s.checkCheckoutInput(in)
	if err != nil {
		return CheckoutSession{}, err
	}
	sc, err := s.stripeClient()
	if err != nil {
		return CheckoutSession{}, err
	}
	st, err := s.Current(ctx, orgID)
	if err != nil {
		return CheckoutSession{}, err
	}
	if sub := st.Subscription; sub != nil && GrantsAccess(sub.Status) {
		// A second subscription would bill the customer twice; plan changes
		// go through the portal, which prorates.
		current := sub.PlanID
		if p, ok := s.catalog.ByID(sub.PlanID); ok {
			current = p.Name
		}
		msg := fmt.Sprintf("The organisation already subscribes to %s; change or cancel the plan in the customer portal (createPortalSession).", current)
		if sub.PlanID == plan.ID {
			msg = fmt.Sprintf("The organisation already subscribes to %s; manage it in the customer portal (createPortalSession).", current)
		}
		return CheckoutSession{}, apperr.FieldErrors{{Field: "input.plan", Code: CodeAlreadySubscribed, Message: msg}}
	}

	meta := map[string]string{"org_id": orgID, "plan_id": plan.ID}
	params := &stripe.CheckoutSessionParams{
		Mode:              stripe.String(string(stripe.CheckoutSessionModeSubscription)),
		ClientReferenceID: stripe.String(orgID),
		LineItems: []*stripe.CheckoutSessionLineItemParams{
			{Price: stripe.String(plan.StripePriceID), Quantity: stripe.Int64(1)},
		},
		SubscriptionData: &stripe.CheckoutSessionSubscriptionDataParams{Metadata: meta},
		SuccessURL:       stripe.String(in.SuccessURL),
		CancelURL:        stripe.String(in.CancelURL),
	}
	params.Metadata = meta
	params.Context = ctx

	// The customer is stored in a transaction of its own, so it is kept
	// even if opening the session fails.
	customerID, err := s.ensureCustomer(ctx, orgID, in.Email)
	if err != nil {
		return CheckoutSession{}, err
	}
	// The organisation row stays locked from here to the stored session id,
	// so concurrent checkouts run one after the other: each finds the
	// session the one before it opened.
	var out CheckoutSession
	err = s.db.Tx(ctx, func(tx *gorm.DB) error {
		org, ok, err := s.lockOrg(tx, orgID)
		if err != nil {
			return err
		}
		if !ok {
			return apperr.ErrNotFound
		}
		if prev := org.OpenCheckoutSessionID; prev != nil && *prev != "" {
			if err := s.closeCheckout(ctx, tx, sc, orgID, *prev); err != nil {
				return err
			}
		}
		params.Customer = stripe.String(customerID)
		sess, err := sc.CheckoutSessions.New(params)
		if err != nil {
			return stripeclient.Error("create checkout session for org "+orgID, err)
		}
		if err := tx.Model(&store.Organization{}).Where("id = ?", orgID).
			Updates(map[string]any{"open_checkout_session_id": sess.ID, "updated_at": s.clock.Now()}).Error; err != nil {
			return fmt.Errorf("store checkout session %s of org %s: %w", sess.ID, orgID, err)
		}
		out = CheckoutSession{ID: sess.ID, URL: sess.URL}
		return nil
	})
	return out, err
}

// closeCheckout makes sure the organisation's previous Checkout session can
// no longer be paid before another is opened: two open sessions could sell
// two subscriptions, since the check for an existing one above sees only
// what webhooks have delivered. An open session is expired; one that can no
// longer be expired is judged by PreviousCheckoutVerdict.
func (s *Service) closeCheckout(ctx context.Context, tx *gorm.DB, sc *client.API, orgID, sessionID string) error {
	ep := &stripe.CheckoutSessionExpireParams{}
	ep.Context = ctx
	_, err := sc.CheckoutSessions.Expire(sessionID, ep)
	if err == nil {
		s.log.InfoContext(ctx, "expired the previous checkout session", "org_id", orgID, "checkout_session_id", sessionID)
		return nil
	}
	var se *stripe.Error
	if !errors.As(err, &se) || se.HTTPStatusCode != http.StatusBadRequest && se.HTTPStatusCode != http.StatusNotFound {
		return stripeclient.Error("expire checkout session "+sessionID+" of org "+orgID, err)
	}
	// Not open any more (or gone): see whether it was paid.
	gp := &stripe.CheckoutSessionParams{}
	gp.Context = ctx
	cs, err := sc.CheckoutSessions.Get(sessionID, gp)
	if errors.As(err, &se) && se.HTTPStatusCode == http.StatusNotFound {
		return nil
	}
	if err != nil {
		return stripeclient.Error("read checkout session "+sessionID+" of org "+orgID, err)
	}
	subID := ""
	if cs.Subscription != nil {
		subID = cs.Subscription.ID
	}
	var local *store.Subscription
	if cs.Status == stripe.CheckoutSessionStatusComplete && subID != "" {
		var subs []store.Subscription
		if err := tx.Where("org_id = ? AND stripe_subscription_id = ?", orgID, subID).Limit(1).Find(&subs).Error; err != nil {
			return fmt.Errorf("look up subscription %s of org %s: %w", subID, orgID, err)
		}
		if len(subs) == 1 {
			local = &subs[0]
		}
	}
	return PreviousCheckoutVerdict(cs.Status, local)
}

// CheckoutCompleted forgets the organisation's open Checkout session once
// its completion has been processed with the subscription it sold (call it in
// that transaction).
func (s *Service) CheckoutCompleted(tx *gorm.DB, orgID, sessionID string) error {
	err := tx.Model(&store.Organization{}).Where("id = ? AND open_checkout_session_id = ?", orgID, sessionID).
		Update("open_checkout_session_id", nil).Error
	if err != nil {
		return fmt.Errorf("clear checkout session %s of org %s: %w", sessionID, orgID, err)
	}
	return nil
}

// PreviousCheckoutVerdict decides whether a new Checkout may follow one
// that could not be expired, given the local copy of the subscription it
// sold (nil when none has been recorded): not while that subscription is
// still to arrive, nor while it grants access; yes once it has ended, or if
// the session was never paid.
func PreviousCheckoutVerdict(status stripe.CheckoutSessionStatus, sold *store.Subscription) error {
	if status != stripe.CheckoutSessionStatusComplete {
		return nil
	}
	if sold == nil {
		return apperr.FieldErrors{{Field: "input.plan", Code: CodeCheckoutPending,
			Message: "A checkout for this organisation was just paid and its subscription is being set up; it will show within a minute. Manage it in the customer portal (createPortalSession) rather than buying again."}}
	}
	if GrantsAccess(sold.Status) {
		return apperr.FieldErrors{{Field: "input.plan", Code: CodeAlreadySubscribed,
			Message: "The organisation already subscribes; change or cancel the plan in the customer portal (createPortalSession)."}}
	}
	return nil
}

func (s *Service) checkCheckoutInput(in CheckoutInput) (plans.Plan, error) {
	var fe apperr.FieldErrors
	plan, ok := s.catalog.ByID(in.Plan)
	switch {
	case strings.TrimSpace(in.Plan) == "":
		fe.Add("input.plan", CodeRequired, "A plan id is required.")
	case !ok:
		fe.Add("input.plan", CodeUnknownPlan, fmt.Sprintf("There is no plan %q.", in.Plan))
	case !plan.Paid() || plan.ContactSales || plan.StripePriceID == "":
		fe.Add("input.plan", CodeNotPurchasable, fmt.Sprintf("The %s plan is not sold through Checkout.", plan.Name))
	}
	checkRedirectURL(&fe, "input.successUrl", in.SuccessURL)
	checkRedirectURL(&fe, "input.cancelUrl", in.CancelURL)
	return plan, fe.Err()
}

// ensureCustomer returns the organisation's Stripe customer, creating it on
// first use. The organisation row stays locked from the check to the store,
// so concurrent checkouts wait for the first one and then find its customer;
// the idempotency key makes Stripe return the same customer if Tollgate
// failed to store it on an earlier attempt.
func (s *Service) ensureCustomer(ctx context.Context, orgID, fallbackEmail string) (string, error) {
	var customerID string
	err := s.db.Tx(ctx, func(tx *gorm.DB) error {
		org, ok, err := s.lockOrg(tx, orgID)
		if err != nil {
			return err
		}
		if !ok {
			return apperr.ErrNotFound
		}
		if org.StripeCustomerID != nil && *org.StripeCustomerID != "" {
			customerID = *org.StripeCustomerID
			return nil
		}
		params := &stripe.CustomerParams{Name: stripe.String(org.Name)}
		if email := firstNonEmpty(org.BillingEmail, fallbackEmail); email != "" {
			params.Email = stripe.String(email)
		}
		params.AddMetadata("org_id", org.ID)
		params.AddMetadata("org_external_id", org.ExternalID)
		params.SetIdempotencyKey("tollgate-customer-" + org.ID)
		params.Context = ctx
		c, err := s.stripe.Customers.New(params)
		if err != nil {
			return stripeclient.Error("create customer for org "+orgID, err)
		}
		if err := tx.Model(&store.Organization{}).Where("id = ?", org.ID).
			Updates(map[string]any{"stripe_customer_id": c.ID, "updated_at": s.clock.Now()}).Error; err != nil {
			return fmt.Errorf("store Stripe customer %s of org %s: %w", c.ID, orgID, err)
		}
		customerID = c.ID
		s.log.InfoContext(ctx, "created Stripe customer", "org_id", orgID, "stripe_customer_id", c.ID)
		return nil
	})
	return customerID, err
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v = strings.TrimSpace(v); v != "" {
			return v
		}
	}
	return ""
}
