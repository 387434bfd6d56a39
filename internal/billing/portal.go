package billing

import (
	"context"

	"github.com/stripe/stripe-go/v76"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/stripeclient"
	"github.com/tollgate-billing/tollgate/internal/stripein"
)

// CreatePortalSession opens the Stripe Customer Portal for the
// organisation's customer and returns its URL. An organisation that never
// subscribed (at most opened a Checkout) gets NO_BILLING_HISTORY.
func (s *Service) CreatePortalSession(ctx context.Context, orgID, returnURL string) (string, error) {
	var fe apperr.FieldErrors
	checkRedirectURL(&fe, "input.returnUrl", returnURL)
	if err := fe.Err(); err != nil {
		return "", err
	}
	sc, err := s.stripeClient()
	if err != nil {
		return "", err
	}
	st, err := s.Current(ctx, orgID)
	if err != nil {
		return "", err
	}
	if !st.HasBillingHistory() {
		return "", apperr.FieldErrors{{Code: CodeNoBillingHistory,
			Message: "The organisation has no billing history yet; start a subscription with createCheckoutSession first."}}
	}
	params := &stripe.BillingPortalSessionParams{
		Customer:  st.Org.StripeCustomerID,
		ReturnURL: stripe.String(returnURL),
	}
	params.Context = ctx
	sess, err := sc.BillingPortalSessions.New(params)
	if err == nil {
		err = stripein.Session("billing portal session", sess.ID, sess.URL)
	}
	if err != nil {
		return "", stripeclient.Error("create portal session for org "+orgID, err)
	}
	return sess.URL, nil
}
