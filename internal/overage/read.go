package overage

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/stripe/stripe-go/v76"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/billing"
	"github.com/tollgate-billing/tollgate/internal/plans"
	"github.com/tollgate-billing/tollgate/internal/stripeclient"
)

// Standing tells an organisation's plan and subscription, and the plan it
// was on at a past time. billing.Service implements it.
type Standing interface {
	Current(ctx context.Context, orgID string) (billing.State, error)
	PlanAt(ctx context.Context, orgID string, t time.Time) (plans.Plan, error)
}

// OnInvoice returns the charges billed on one of the organisation's
// invoices, by meter and month.
func (s *Service) OnInvoice(ctx context.Context, orgID, invoiceID string) ([]Charge, error) {
	var out []Charge
	err := s.db.WithContext(ctx).Where("org_id = ? AND stripe_invoice_id = ? AND status = ?", orgID, invoiceID, Billed).
		Order("period, meter").Find(&out).Error
	if err != nil {
		return nil, fmt.Errorf("overage on invoice %s of org %s: %w", invoiceID, orgID, err)
	}
	return out, nil
}

// Upcoming is the next invoice, labelled by who adds what.
type Upcoming struct {
	// Stripe is Stripe's preview of the subscription's next invoice.
	Stripe *stripe.Invoice
	// OverageSoFar is the current month's overage if it closed now, which
	// Tollgate adds to the first invoice after it does.
	OverageSoFar []Charge
	// OverageSoFarCents is their sum, in the subscription's currency.
	OverageSoFarCents int64
	// OverageSoFarErr, when set, says the month's overage cannot all be
	// billed (a meter's more than one invoice item carries, left out of
	// OverageSoFar, or a sum past int64): OverageSoFarCents is then not
	// the month's overage. Stripe's preview stands regardless.
	OverageSoFarErr error
}

// Upcoming previews the organisation's next invoice; nil without a paid
// subscription Stripe has a next invoice for.
func (s *Service) Upcoming(ctx context.Context, orgID string) (*Upcoming, error) {
	st, err := s.standing.Current(ctx, orgID)
	if err != nil {
		return nil, err
	}
	if st.Subscription == nil || !st.Plan.Paid() || st.Subscription.StripeSubscriptionID == "" {
		return nil, nil
	}
	if s.stripe == nil {
		return nil, apperr.New(apperr.StripeNotConfigured, "Stripe is not configured on this Tollgate: set STRIPE_SECRET_KEY")
	}
	params := &stripe.InvoiceUpcomingParams{
		Customer: stripe.String(st.Subscription.StripeCustomerID), Subscription: stripe.String(st.Subscription.StripeSubscriptionID),
	}
	params.Context = ctx
	inv, err := s.stripe.Invoices.Upcoming(params)
	var se *stripe.Error
	if errors.As(err, &se) && se.HTTPStatusCode == http.StatusNotFound {
		return nil, nil // a canceled subscription has no next invoice
	}
	if err != nil {
		return nil, stripeclient.Error("preview the next invoice of "+st.Subscription.StripeSubscriptionID, err)
	}
	since, _ := billedSince(st)
	sofar, err := s.overageOf(ctx, orgID, s.clock.Now().Format("2006-01"), subscriptionCurrency(st), st.Plan, since, time.Time{})
	if err != nil {
		return nil, err
	}
	up := &Upcoming{Stripe: inv, OverageSoFar: sofar.charges}
	up.OverageSoFarCents, up.OverageSoFarErr = sumCents(sofar.charges)
	if up.OverageSoFarErr == nil && len(sofar.skipped) > 0 {
		up.OverageSoFarErr = sofar.skipped[0].err
	}
	return up, nil
}

// subscriptionCurrency is the currency of the price the organisation's
// subscription pays, in which its invoices and so its overage are; the
// plan's when the plans file no longer lists that price.
func subscriptionCurrency(st billing.State) string {
	if pr, ok := st.Plan.PriceByID(st.Subscription.PriceID); ok {
		return pr.Currency
	}
	return st.Plan.Currency
}
