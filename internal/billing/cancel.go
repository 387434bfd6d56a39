package billing

import (
	"context"
	"fmt"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/stripeclient"
	"github.com/tollgate-billing/tollgate/internal/stripein"
)

// Cancel cancels the organisation's subscription at the end of the current
// period (atPeriodEnd) or at once, and returns the state Stripe answered
// with. Cancelling at period end twice is a no-op.
func (s *Service) Cancel(ctx context.Context, orgID string, atPeriodEnd bool) (State, error) {
	sc, sub, st, err := s.cancellable(ctx, orgID)
	if err != nil {
		return st, err
	}
	var updated *stripe.Subscription
	if atPeriodEnd {
		if sub.CancelAtPeriodEnd {
			return st, nil
		}
		params := &stripe.SubscriptionParams{CancelAtPeriodEnd: stripe.Bool(true)}
		params.Context = ctx
		updated, err = sc.Subscriptions.Update(sub.StripeSubscriptionID, params)
	} else {
		params := &stripe.SubscriptionCancelParams{}
		params.Context = ctx
		updated, err = sc.Subscriptions.Cancel(sub.StripeSubscriptionID, params)
	}
	if err == nil {
		err = stripein.Subscription(updated, nil)
	}
	if err != nil {
		return st, stripeclient.Error("cancel subscription "+sub.StripeSubscriptionID, err)
	}
	st, err = s.applyResponse(ctx, orgID, updated)
	if err != nil || atPeriodEnd {
		return st, err
	}
	// Ended at once, now: its final bill is made now. A failure here
	// leaves the cancellation standing; the customer.subscription.deleted
	// webhook finds the bill claimed and finishes it, as `stripe sync`
	// does.
	if err := s.subscriptionEnded(ctx, sub.StripeSubscriptionID, s.clock.Now()); err != nil {
		s.log.WarnContext(ctx, "final bill of a cancelled subscription not finished; the webhook or stripe sync finishes it",
			"org_id", orgID, "stripe_subscription_id", updated.ID, "error", err)
	}
	return st, nil
}

// Resume undoes a cancellation scheduled for the period end. A subscription
// that is not scheduled to cancel is returned unchanged.
func (s *Service) Resume(ctx context.Context, orgID string) (State, error) {
	sc, sub, st, err := s.cancellable(ctx, orgID)
	if err != nil {
		return st, err
	}
	if !sub.CancelAtPeriodEnd {
		return st, nil
	}
	params := &stripe.SubscriptionParams{CancelAtPeriodEnd: stripe.Bool(false)}
	params.Context = ctx
	updated, err := sc.Subscriptions.Update(sub.StripeSubscriptionID, params)
	if err == nil {
		err = stripein.Subscription(updated, nil)
	}
	if err != nil {
		return st, stripeclient.Error("resume subscription "+sub.StripeSubscriptionID, err)
	}
	return s.applyResponse(ctx, orgID, updated)
}

// cancellable finds the subscription Cancel and Resume act on: the current
// one, while it still grants access.
func (s *Service) cancellable(ctx context.Context, orgID string) (sc *client.API, sub *Subscription, st State, err error) {
	if sc, err = s.stripeClient(); err != nil {
		return nil, nil, st, err
	}
	if st, err = s.Current(ctx, orgID); err != nil {
		return nil, nil, st, err
	}
	if st.Subscription == nil || !GrantsAccess(st.Subscription.Status) {
		return nil, nil, st, apperr.FieldErrors{{Code: CodeNoSubscription,
			Message: "The organisation has no active subscription."}}
	}
	return sc, st.Subscription, st, nil
}

// applyResponse stores the subscription Stripe answered a change with, as of
// now: the answer is newer than any event Stripe sent before it. The caller
// judged it (stripein.Subscription) where it came from Stripe.
func (s *Service) applyResponse(ctx context.Context, orgID string, sub *stripe.Subscription) (State, error) {
	err := s.db.Tx(ctx, func(tx *gorm.DB) error {
		_, err := s.ApplySubscription(ctx, tx, SubscriptionUpdate{Sub: sub, At: s.clock.Now(), OrgID: orgID, Rank: RankFetched})
		return err
	})
	if err != nil {
		return State{}, fmt.Errorf("store subscription %s of org %s: %w", sub.ID, orgID, err)
	}
	return s.Current(ctx, orgID)
}
