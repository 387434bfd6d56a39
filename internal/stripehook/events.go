package stripehook

import (
	"context"
	"slices"
	"time"

	"github.com/stripe/stripe-go/v76"
	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/billing"
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
func (h *handler) prefetch(ctx context.Context, ev stripe.Event) (fetched, error) {
	if ev.Type != stripe.EventTypeCheckoutSessionCompleted {
		return fetched{}, nil
	}
	var cs stripe.CheckoutSession
	if err := decodeObject(ev, &cs); err != nil {
		return fetched{}, nil // apply reports it
	}
	sub, err := h.Billing.CheckoutSubscription(ctx, &cs)
	return fetched{checkout: sub}, err
}

// apply decodes an event and dispatches it to the services it changes.
func (h *handler) apply(ctx context.Context, tx *gorm.DB, ev stripe.Event, at time.Time, f fetched, res *result) error {
	switch {
	case ev.Type == stripe.EventTypeCheckoutSessionCompleted:
		var cs stripe.CheckoutSession
		if !h.decode(ctx, ev, &cs, res) {
			return nil
		}
		applied, err := h.Billing.ApplyCheckoutCompleted(ctx, tx, &cs, f.checkout, at)
		res.add(applied)
		return err
	case slices.Contains(subscriptionEvents, ev.Type):
		var sub stripe.Subscription
		if !h.decode(ctx, ev, &sub, res) {
			return nil
		}
		applied, err := h.Billing.ApplySubscriptionEvent(ctx, tx, string(ev.Type), &sub, ev.Data.Raw, at, f.fresh)
		res.add(applied)
		return err
	case slices.Contains(invoiceEvents, ev.Type):
		var inv stripe.Invoice
		if !h.decode(ctx, ev, &inv, res) {
			return nil
		}
		stripeshape.Invoice(&inv, ev.Data.Raw)
		return h.invoiceChanged(ctx, tx, ev, &inv, at, res)
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
