package stripehook

import (
	"context"
	"slices"
	"time"

	"github.com/stripe/stripe-go/v76"
	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/billing"
	"github.com/tollgate-billing/tollgate/internal/stripein"
	"github.com/tollgate-billing/tollgate/internal/stripeshape"
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
		stripe.EventTypeInvoicePaymentFailed, stripe.EventTypeInvoiceCreated,
	}
)

// handles reports whether Tollgate acts on events of type t.
func handles(t stripe.EventType) bool {
	return t == stripe.EventTypeCheckoutSessionCompleted || slices.Contains(subscriptionEvents, t) || slices.Contains(invoiceEvents, t)
}

// object is the object of an event Tollgate acts on, decoded once where it
// enters from Stripe. A checkout session and an invoice are judged here
// (stripein), once, and every later step trusts them; a subscription is
// judged by billing.ApplySubscriptionEvent, after "deleted means canceled".
type object struct {
	checkout *stripe.CheckoutSession
	sub      *stripe.Subscription
	inv      *stripe.Invoice
	// undecodable is why the object could not be decoded, if it could not.
	undecodable error
}

// decodeObject reads the object of an event Tollgate acts on. A value
// Tollgate cannot use gives a *stripein.Unusable error.
func decodeObject(ev stripe.Event) (object, error) {
	var o object
	switch {
	case ev.Type == stripe.EventTypeCheckoutSessionCompleted:
		var cs stripe.CheckoutSession
		if o.undecodable = unmarshalObject(ev, &cs); o.undecodable != nil {
			return o, nil
		}
		o.checkout = &cs
		if cs.Mode == stripe.CheckoutSessionModeSubscription {
			return o, stripein.CheckoutSession(&cs)
		}
	case slices.Contains(subscriptionEvents, ev.Type):
		var sub stripe.Subscription
		if o.undecodable = unmarshalObject(ev, &sub); o.undecodable == nil {
			o.sub = &sub
		}
	case slices.Contains(invoiceEvents, ev.Type):
		var inv stripe.Invoice
		if o.undecodable = unmarshalObject(ev, &inv); o.undecodable != nil {
			return o, nil
		}
		stripeshape.Invoice(&inv, ev.Data.Raw)
		o.inv = &inv
		return o, stripein.Invoice(&inv)
	}
	return o, nil
}

// fetched is what an event needed from Stripe, read before its
// transaction: a network call must not hold a database connection.
type fetched struct {
	// checkout is the subscription a completed Checkout sold.
	checkout *stripe.Subscription
	// fresh is a subscription billing asked to see as it is now
	// (billing.FetchFirst).
	fresh *stripe.Subscription
}

// prefetch reads what the event does not carry.
func (h *handler) prefetch(ctx context.Context, o object) (fetched, error) {
	if o.checkout == nil {
		return fetched{}, nil
	}
	sub, err := h.Billing.CheckoutSubscription(ctx, o.checkout)
	return fetched{checkout: sub}, err
}

// apply dispatches an event's object to the services it changes.
func (h *handler) apply(ctx context.Context, tx *gorm.DB, ev stripe.Event, o object, at time.Time, f fetched, res *result) error {
	if o.undecodable != nil {
		// A well-signed object Tollgate cannot read is logged and
		// acknowledged: Stripe would redeliver it unchanged for three
		// days, and `stripe sync` heals what it carried.
		h.Log.ErrorContext(ctx, "stripe webhook object could not be decoded; run `stripe sync` after fixing",
			"event_id", ev.ID, "type", ev.Type, "error", o.undecodable)
		res.outcome = outcomeUndecodable
		return nil
	}
	switch {
	case o.checkout != nil:
		applied, err := h.Billing.ApplyCheckoutCompleted(ctx, tx, o.checkout, f.checkout, at)
		res.add(applied)
		return err
	case o.sub != nil:
		applied, err := h.Billing.ApplySubscriptionEvent(ctx, tx, string(ev.Type), o.sub, ev.Data.Raw, at, f.fresh)
		res.add(applied)
		return err
	case o.inv != nil:
		return h.invoiceChanged(ctx, tx, ev, o.inv, at, res)
	default:
		res.outcome = outcomeIgnored
		return nil
	}
}

// invoiceChanged stores the invoice an event carries and lets billing apply
// what the event means for its subscription.
func (h *handler) invoiceChanged(ctx context.Context, tx *gorm.DB, ev stripe.Event, inv *stripe.Invoice, at time.Time, res *result) error {
	orgID, outcome, err := h.Billing.InvoiceOrg(ctx, tx, inv)
	if err != nil {
		return err
	}
	if orgID == "" {
		res.outcome = string(outcome)
		return nil
	}
	// The organisation's lock first, as every path that emits its events
	// takes it: storing the invoice may emit invoice.paid.
	if err := h.Billing.LockOrg(ctx, tx, orgID); err != nil {
		return err
	}
	applied, err := h.Invoices.Apply(ctx, tx, orgID, inv, at)
	if err != nil {
		return err
	}
	res.orgID, res.outcome, res.changes = orgID, string(billing.Applied), append(res.changes, applied.Changes...)
	if applied.Stale {
		res.outcome = string(billing.Stale)
	}
	sub, err := h.Billing.ApplyInvoiceEvent(ctx, tx, orgID, string(ev.Type), inv, at)
	res.changes = append(res.changes, sub.Changes...)
	return err
}
