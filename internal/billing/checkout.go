package billing

import (
	"context"
	"fmt"
	"strings"

	"github.com/stripe/stripe-go/v76"
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

	customerID, err := s.ensureCustomer(ctx, orgID, in.Email)
	if err != nil {
		return CheckoutSession{}, err
	}
	meta := map[string]string{"org_id": orgID, "plan_id": plan.ID}
	params := &stripe.CheckoutSessionParams{
		Mode:              stripe.String(string(stripe.CheckoutSessionModeSubscription)),
		Customer:          stripe.String(customerID),
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
	sess, err := sc.CheckoutSessions.New(params)
	if err != nil {
		return CheckoutSession{}, stripeclient.Error("create checkout session for org "+orgID, err)
	}
	return CheckoutSession{ID: sess.ID, URL: sess.URL}, nil
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
