package billing

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/stripe/stripe-go/v76"
	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/stripeclient"
	"github.com/tollgate-billing/tollgate/internal/stripein"
)

// This file holds what Stripe's webhook events mean for an organisation's
// standing. The webhook handler verifies and records each event and hands
// it here; every rule about what an event changes lives in this package.

// FetchFirst is returned by ApplySubscription (and the event methods that
// use it) when an update cannot be ordered against the one stored, because
// both come from one second and one kind of event: the caller must roll
// back, fetch the subscription from Stripe with no transaction open, and
// apply that instead. A network call must not hold a database connection.
type FetchFirst struct{ SubscriptionID string }

func (e *FetchFirst) Error() string {
	return "subscription " + e.SubscriptionID + ": two updates in one second; fetch it from Stripe first"
}

// FetchSubscription reads a subscription from Stripe, as of now. Call it
// with no transaction open. One with a value Tollgate cannot use gives an
// error that wraps a *stripein.Unusable.
func (s *Service) FetchSubscription(ctx context.Context, id string) (*stripe.Subscription, error) {
	sc, err := s.stripeClient()
	if err != nil {
		return nil, err
	}
	params := &stripe.SubscriptionParams{}
	params.Context = ctx
	sub, err := sc.Subscriptions.Get(id, params)
	if err == nil {
		err = stripein.Subscription(sub, nil)
	}
	if err != nil {
		return nil, stripeclient.Error("fetch subscription "+id, err)
	}
	return sub, nil
}

// CheckoutSubscription fetches the subscription a completed subscription
// Checkout created, which the session does not carry; nil when there is
// none, when Stripe is not configured (its own events will store it), or
// when Stripe no longer has it. Call it with no transaction open.
//
// The caller judged the session (stripein.CheckoutSession) where it came
// from Stripe, so its subscription id is one to ask Stripe about. A
// subscription with a value Tollgate cannot use gives a *stripein.Unusable
// error.
func (s *Service) CheckoutSubscription(ctx context.Context, cs *stripe.CheckoutSession) (*stripe.Subscription, error) {
	if s.stripe == nil || cs.Mode != stripe.CheckoutSessionModeSubscription || cs.Subscription == nil || cs.Subscription.ID == "" {
		return nil, nil
	}
	params := &stripe.SubscriptionParams{}
	params.Context = ctx
	sub, err := s.stripe.Subscriptions.Get(cs.Subscription.ID, params)
	var se *stripe.Error
	if errors.As(err, &se) && se.HTTPStatusCode == http.StatusNotFound {
		// Gone for good (deleted, or another Stripe account's): retrying
		// cannot help, and the customer link is still worth keeping.
		s.log.WarnContext(ctx, "subscription of a completed checkout is not found at Stripe",
			"checkout_session_id", cs.ID, "stripe_subscription_id", cs.Subscription.ID, "stripe_request_id", se.RequestID)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("fetch subscription %s of checkout %s: %w", cs.Subscription.ID, cs.ID, err)
	}
	return sub, stripein.Subscription(sub, nil)
}

// ApplyCheckoutCompleted links a completed Checkout session's customer to
// the organisation that started it and stores the subscription it sold
// (fetched, as CheckoutSubscription returned it; nil to leave it to its own
// events). at is the event's time. The caller judged the session
// (stripein.CheckoutSession) where it came from Stripe.
func (s *Service) ApplyCheckoutCompleted(ctx context.Context, tx *gorm.DB, cs *stripe.CheckoutSession, fetched *stripe.Subscription, at time.Time) (Result, error) {
	if cs.Mode != stripe.CheckoutSessionModeSubscription {
		return Result{Outcome: Ignored}, nil
	}
	customer := ""
	if cs.Customer != nil {
		customer = cs.Customer.ID
	}
	// Only what Tollgate itself put on the session places it: a customer
	// already linked, else the metadata.org_id of a session Tollgate
	// recorded for that organisation (createdCheckoutOrg).
	// client_reference_id is never trusted: whoever opens a Payment Link
	// can set it to any organisation's id, and metadata alone is no better:
	// anyone with access to the Stripe account can write it.
	orgID, _, err := s.FindOrg(ctx, tx, Owner{CustomerID: customer})
	if err == nil && orgID == "" {
		orgID, err = s.createdCheckoutOrg(ctx, tx, cs, customer)
	}
	if err != nil {
		return Result{}, err
	}
	if orgID == "" {
		UntrustedCheckouts.Inc()
		s.log.WarnContext(ctx, "ignoring a completed checkout Tollgate did not create: its customer is linked to no organisation, and Tollgate recorded no such session for its metadata.org_id",
			"checkout_session_id", cs.ID, "stripe_customer_id", customer,
			"metadata_org_id", cs.Metadata["org_id"], "client_reference_id", cs.ClientReferenceID)
		return Result{Outcome: Ignored}, nil
	}
	if cs.ClientReferenceID != "" && cs.ClientReferenceID != orgID {
		s.log.WarnContext(ctx, "checkout's client_reference_id names another organisation; keeping the one Tollgate recorded",
			"checkout_session_id", cs.ID, "client_reference_id", cs.ClientReferenceID, "org_id", orgID, "stripe_customer_id", customer)
	}
	res, err := s.LinkCustomer(ctx, tx, orgID, customer)
	if err != nil {
		return res, err
	}
	if fetched == nil {
		if cs.Subscription != nil && cs.Subscription.ID != "" {
			res.note("subscription " + cs.Subscription.ID + " not fetched; its own events will store it")
		}
		return res, nil
	}
	applied, err := s.ApplySubscription(ctx, tx, SubscriptionUpdate{
		Sub: fetched, At: at, OrgID: orgID, PlanHint: cs.Metadata["plan_id"], Rank: RankFetched,
	})
	if err != nil {
		return res, err
	}
	res.merge(applied)
	// The subscription is recorded: the session need not be checked at
	// Stripe before the next checkout.
	return res, s.CheckoutCompleted(tx, orgID, cs.ID, cs.Metadata[CheckoutMetadataKey])
}

// ApplySubscriptionEvent stores the subscription a customer.subscription.*
// event carries, decoded from raw (the event's object). fresh, when not
// nil, is the same subscription fetched after a FetchFirst
// (FetchSubscription judged it), and is applied instead.
//
// This is where a subscription enters from a webhook: one with a value
// Tollgate cannot use (stripein.Subscription) gives a *stripein.Unusable
// error before anything is read or written.
func (s *Service) ApplySubscriptionEvent(ctx context.Context, tx *gorm.DB, eventType string, sub *stripe.Subscription, raw []byte, at time.Time, fresh *stripe.Subscription) (Result, error) {
	u := SubscriptionUpdate{Sub: sub, At: at, Rank: RankForEvent(eventType), Raw: raw}
	switch {
	case fresh != nil && fresh.ID == sub.ID:
		u.Sub, u.Rank, u.Raw = fresh, RankFetched, nil
		return s.ApplySubscription(ctx, tx, u)
	case eventType == string(stripe.EventTypeCustomerSubscriptionDeleted):
		// A deleted subscription is over, whatever status the payload's API
		// version spells.
		sub.Status = stripe.SubscriptionStatusCanceled
	}
	if err := stripein.Subscription(sub, raw); err != nil {
		return Result{Outcome: Invalid}, err
	}
	return s.ApplySubscription(ctx, tx, u)
}

// InvoiceOrg returns the organisation an invoice belongs to: by customer,
// stored subscription, then the metadata Tollgate put on the invoice or its
// subscription, when Tollgate opened a checkout of that organisation for
// the invoice's customer (FindOrg). When none, "" and the outcome says why.
// The caller judged the invoice (stripein.Invoice) where it came from
// Stripe.
func (s *Service) InvoiceOrg(ctx context.Context, tx *gorm.DB, inv *stripe.Invoice) (string, Outcome, error) {
	return s.FindOrg(ctx, tx, invoiceOwner(inv))
}

// invoiceOwner is what an invoice says about its organisation.
func invoiceOwner(inv *stripe.Invoice) Owner {
	owner := Owner{MetadataOrgIDs: []string{inv.Metadata["org_id"]}, Object: "invoice", ObjectID: inv.ID}
	if inv.Customer != nil {
		owner.CustomerID = inv.Customer.ID
	}
	if inv.Subscription != nil {
		owner.SubscriptionID = inv.Subscription.ID
	}
	if inv.SubscriptionDetails != nil {
		owner.MetadataOrgIDs = append(owner.MetadataOrgIDs, inv.SubscriptionDetails.Metadata["org_id"])
	}
	return owner
}

// ApplyInvoiceEvent applies what an invoice event of the organisation means
// beyond the invoice itself: a failed payment is announced
// (invoice.payment_failed, once per event: the caller applies each Stripe
// event once) and makes the subscription past_due at once.
func (s *Service) ApplyInvoiceEvent(ctx context.Context, tx *gorm.DB, orgID, eventType string, inv *stripe.Invoice, at time.Time) (Result, error) {
	if eventType != string(stripe.EventTypeInvoicePaymentFailed) {
		return Result{Outcome: Ignored}, nil
	}
	if err := s.announcePaymentFailed(ctx, tx, orgID, inv); err != nil {
		return Result{}, err
	}
	if inv.Subscription == nil || inv.Subscription.ID == "" {
		return Result{Outcome: Ignored}, nil
	}
	return s.MarkPastDue(ctx, tx, inv.Subscription.ID, at)
}

// OnCycleInvoice registers fn to hear of each subscription-cycle invoice
// Stripe creates, with the organisation it bills: the moment charges for
// the closed period (overage) can still be added to it. fn runs with no
// transaction open, may call Stripe, and must be safe to run again for the
// same invoice: it runs on every delivery of the event, and an error makes
// Stripe deliver it again. Register at start-up.
func (s *Service) OnCycleInvoice(fn func(ctx context.Context, orgID string, inv *stripe.Invoice) error) {
	s.cycleInvoice = append(s.cycleInvoice, fn)
}

// OnSubscriptionEnded registers fn to hear of each subscription that ended
// (customer.subscription.deleted, or cancelled at once through Cancel),
// with its organisation and the instant it ended: Stripe makes no further
// cycle invoice for it, so what it still owes (overage) must be billed
// now. fn runs with no transaction open, may call Stripe, and must be safe
// to run again: it runs on every delivery of the event, and an error makes
// Stripe deliver it again. Register at start-up.
func (s *Service) OnSubscriptionEnded(fn func(ctx context.Context, orgID, subscriptionID string, endedAt time.Time) error) {
	s.ended = append(s.ended, fn)
}

// SubscriptionEnded tells the OnSubscriptionEnded hooks that sub, a
// subscription Tollgate stored, has ended. Call it after the transaction
// that stored it commits, with none open. A subscription Tollgate does not
// know is ignored.
func (s *Service) SubscriptionEnded(ctx context.Context, sub *stripe.Subscription) error {
	if sub == nil || sub.ID == "" {
		return nil
	}
	// ended_at is when it ended; canceled_at, for one cancelled at the
	// period end, is when that was asked, so it is only a fallback.
	end := sub.EndedAt
	if end == 0 {
		end = sub.CanceledAt
	}
	endedAt := s.clock.Now()
	if end != 0 {
		endedAt = time.Unix(end, 0).UTC()
	}
	return s.subscriptionEnded(ctx, sub.ID, endedAt)
}

// subscriptionEnded tells the OnSubscriptionEnded hooks that the stored
// subscription subID ended at endedAt.
func (s *Service) subscriptionEnded(ctx context.Context, subID string, endedAt time.Time) error {
	if len(s.ended) == 0 {
		return nil
	}
	var stored Subscription
	err := s.db.WithContext(ctx).Where("stripe_subscription_id = ?", subID).Limit(1).Find(&stored).Error
	if err != nil {
		return fmt.Errorf("find subscription %s: %w", subID, err)
	}
	if stored.OrgID == "" {
		return nil
	}
	var errs []error
	for _, fn := range s.ended {
		errs = append(errs, fn(ctx, stored.OrgID, subID, endedAt))
	}
	return errors.Join(errs...)
}

// InvoiceCreated applies what an invoice.created event means beyond the
// invoice itself: a subscription-cycle invoice is offered to the
// OnCycleInvoice hooks, draft or not (a finalized one takes nothing, and
// they keep what they would have added for the next). Call it after the
// event's transaction commits, with none open, with an invoice judged
// (stripein.Invoice) where it came from Stripe.
func (s *Service) InvoiceCreated(ctx context.Context, inv *stripe.Invoice) error {
	if inv.BillingReason != stripe.InvoiceBillingReasonSubscriptionCycle || len(s.cycleInvoice) == 0 {
		return nil
	}
	// The event's own handling (InvoiceOrg) already warned of and counted
	// an invoice it would not place.
	owner := invoiceOwner(inv)
	owner.quiet = true
	orgID, _, err := s.FindOrg(ctx, s.db.WithContext(ctx), owner)
	if err != nil || orgID == "" {
		return err
	}
	var errs []error
	for _, fn := range s.cycleInvoice {
		errs = append(errs, fn(ctx, orgID, inv))
	}
	return errors.Join(errs...)
}
