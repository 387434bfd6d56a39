package stripehook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/stripe/stripe-go/v76"
	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/billing"
)

// Event types by what they change. Types not listed are acknowledged and
// ignored.
var (
	subscriptionEvents = []stripe.EventType{
		stripe.EventTypeCustomerSubscriptionCreated, stripe.EventTypeCustomerSubscriptionUpdated,
		stripe.EventTypeCustomerSubscriptionDeleted, stripe.EventTypeCustomerSubscriptionPaused,
		stripe.EventTypeCustomerSubscriptionResumed,
	}
	invoiceEvents = []stripe.EventType{
		stripe.EventTypeInvoicePaid, stripe.EventTypeInvoicePaymentSucceeded, stripe.EventTypeInvoiceFinalized,
		stripe.EventTypeInvoiceUpdated, stripe.EventTypeInvoiceVoided, stripe.EventTypeInvoiceMarkedUncollectible,
		stripe.EventTypeInvoicePaymentFailed,
	}
)

// handles reports whether Tollgate acts on events of type t.
func handles(t stripe.EventType) bool {
	return t == stripe.EventTypeCheckoutSessionCompleted || slices.Contains(subscriptionEvents, t) || slices.Contains(invoiceEvents, t)
}

// apply dispatches an event to what it changes.
func (h *handler) apply(ctx context.Context, tx *gorm.DB, ev stripe.Event, at time.Time, fetched *stripe.Subscription, res *result) error {
	switch {
	case ev.Type == stripe.EventTypeCheckoutSessionCompleted:
		return h.checkoutCompleted(ctx, tx, ev, at, fetched, res)
	case slices.Contains(subscriptionEvents, ev.Type):
		return h.subscriptionChanged(ctx, tx, ev, at, res)
	case slices.Contains(invoiceEvents, ev.Type):
		return h.invoiceChanged(ctx, tx, ev, at, res)
	default:
		res.outcome = outcomeIgnored
		return nil
	}
}

// checkoutCompleted links the session's customer to the organisation that
// started it and stores the new subscription, fetched from Stripe because
// the session does not carry its status, period or price.
func (h *handler) checkoutCompleted(ctx context.Context, tx *gorm.DB, ev stripe.Event, at time.Time, fetched *stripe.Subscription, res *result) error {
	var cs stripe.CheckoutSession
	if !h.decode(ctx, ev, &cs, res) {
		return nil
	}
	if cs.Mode != stripe.CheckoutSessionModeSubscription {
		res.outcome = outcomeIgnored
		return nil
	}
	customer := ""
	if cs.Customer != nil {
		customer = cs.Customer.ID
	}
	// A customer already linked decides, as for every other event: a
	// client_reference_id can be set by whoever opens a Payment Link.
	orgID, err := h.Billing.FindOrg(ctx, tx, billing.Owner{CustomerID: customer, MetadataOrgIDs: []string{cs.ClientReferenceID, cs.Metadata["org_id"]}})
	if err != nil {
		return err
	}
	if orgID == "" {
		res.outcome = outcomeUnknownOrg
		return nil
	}
	if cs.ClientReferenceID != "" && cs.ClientReferenceID != orgID {
		h.Log.WarnContext(ctx, "checkout's client_reference_id names another organisation than its customer's; keeping the customer's",
			"event_id", ev.ID, "client_reference_id", cs.ClientReferenceID, "org_id", orgID, "stripe_customer_id", customer)
	}
	linked, err := h.Billing.LinkCustomer(ctx, tx, orgID, customer)
	if err != nil {
		return err
	}
	res.add(linked)
	if fetched == nil {
		if cs.Subscription != nil && cs.Subscription.ID != "" {
			res.changes = append(res.changes, "subscription "+cs.Subscription.ID+" not fetched; its own events will store it")
		}
		return nil
	}
	applied, err := h.Billing.ApplySubscription(ctx, tx, billing.SubscriptionUpdate{
		Sub: fetched, At: at, OrgID: orgID, PlanHint: cs.Metadata["plan_id"], Rank: billing.RankFetched,
	})
	if err != nil {
		return err
	}
	res.add(applied)
	// The subscription is recorded: the session need not be checked at
	// Stripe before the next checkout.
	return h.Billing.CheckoutCompleted(tx, orgID, cs.ID, cs.Metadata[billing.CheckoutMetadataKey])
}

// checkoutSubscription fetches the subscription a completed subscription
// Checkout created; nil when there is none or no Stripe client.
func (h *handler) checkoutSubscription(ctx context.Context, ev stripe.Event) (*stripe.Subscription, error) {
	var cs stripe.CheckoutSession
	if err := json.Unmarshal(ev.Data.Raw, &cs); err != nil || h.Stripe == nil ||
		cs.Mode != stripe.CheckoutSessionModeSubscription || cs.Subscription == nil || cs.Subscription.ID == "" {
		return nil, nil
	}
	params := &stripe.SubscriptionParams{}
	params.Context = ctx
	sub, err := h.Stripe.Subscriptions.Get(cs.Subscription.ID, params)
	var se *stripe.Error
	if errors.As(err, &se) && se.HTTPStatusCode == http.StatusNotFound {
		// Gone for good (deleted, or another Stripe account's): retrying
		// cannot help, and the customer link is still worth keeping.
		h.Log.WarnContext(ctx, "subscription of a completed checkout is not found at Stripe",
			"event_id", ev.ID, "stripe_subscription_id", cs.Subscription.ID, "stripe_request_id", se.RequestID)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("fetch subscription %s of checkout %s: %w", cs.Subscription.ID, cs.ID, err)
	}
	return sub, nil
}

// subscriptionChanged stores the subscription an event carries.
func (h *handler) subscriptionChanged(ctx context.Context, tx *gorm.DB, ev stripe.Event, at time.Time, res *result) error {
	var sub stripe.Subscription
	if !h.decode(ctx, ev, &sub, res) {
		return nil
	}
	if ev.Type == stripe.EventTypeCustomerSubscriptionDeleted {
		// A deleted subscription is over, whatever status the payload's API
		// version spells.
		sub.Status = stripe.SubscriptionStatusCanceled
	}
	applied, err := h.Billing.ApplySubscription(ctx, tx, billing.SubscriptionUpdate{Sub: &sub, At: at, Rank: billing.RankForEvent(string(ev.Type))})
	if err != nil {
		return err
	}
	res.add(applied)
	return nil
}

// invoiceChanged stores the invoice an event carries; a failed payment also
// makes the subscription past_due.
func (h *handler) invoiceChanged(ctx context.Context, tx *gorm.DB, ev stripe.Event, at time.Time, res *result) error {
	var inv stripe.Invoice
	if !h.decode(ctx, ev, &inv, res) {
		return nil
	}
	owner := billing.Owner{MetadataOrgIDs: []string{inv.Metadata["org_id"]}}
	if inv.Customer != nil {
		owner.CustomerID = inv.Customer.ID
	}
	if inv.Subscription != nil {
		owner.SubscriptionID = inv.Subscription.ID
	}
	if inv.SubscriptionDetails != nil {
		owner.MetadataOrgIDs = append(owner.MetadataOrgIDs, inv.SubscriptionDetails.Metadata["org_id"])
	}
	orgID, err := h.Billing.FindOrg(ctx, tx, owner)
	if err != nil {
		return err
	}
	if orgID == "" {
		res.outcome = outcomeUnknownOrg
		return nil
	}
	applied, err := h.Invoices.Apply(ctx, tx, orgID, &inv, at)
	if err != nil {
		return err
	}
	res.orgID, res.outcome, res.changes = orgID, string(billing.Applied), append(res.changes, applied.Changes...)
	if applied.Stale {
		res.outcome = string(billing.Stale)
	}
	if ev.Type == stripe.EventTypeInvoicePaymentFailed && owner.SubscriptionID != "" {
		pastDue, err := h.Billing.MarkPastDue(ctx, tx, owner.SubscriptionID, at)
		if err != nil {
			return err
		}
		res.changes = append(res.changes, pastDue.Changes...)
	}
	return nil
}
