// Package stripein judges what Tollgate reads from Stripe before it is used.
// A well-signed webhook event, or an object `stripe sync` lists, is Stripe's
// word on what happened, but not a promise that every value fits what
// Tollgate stores and serves: an id with a NUL byte that Postgres refuses, a
// period ending in the year 248073 that no Time can write, a status Tollgate
// has no rule for, a currency of a hundred thousand characters. Each object
// passes one check here, shared by the webhook handler and reconciliation,
// before any of its values reaches a query, a row or a client; an object
// that fails is an *Unusable error, which the webhook acknowledges (Stripe
// would redeliver it unchanged for three days) and sync reports and skips.
package stripein

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/stripe/stripe-go/v76"

	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/money"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/stripeshape"
	"github.com/tollgate-billing/tollgate/internal/usertext"
	"github.com/tollgate-billing/tollgate/internal/weburl"
)

// Bounds of the values Tollgate keeps from Stripe objects.
const (
	// MaxIDLength bounds an object id. Stripe's are far shorter.
	MaxIDLength = store.MaxIDLength
	// MaxMetadataLength is Stripe's own limit on a metadata value.
	MaxMetadataLength = 500
	// MaxNumberLength bounds an invoice number (Stripe's are a prefix and a
	// sequence, around 15 characters).
	MaxNumberLength = 64
	// MaxAmount bounds an amount in minor units: 999,999,999,999 is the
	// largest Stripe accepts in any currency (IDR, 12 digits); USD stops at
	// 8. Amounts due and paid are never negative; an invoice's total may be
	// (credits larger than its charges), down to -MaxAmount.
	MaxAmount = 999_999_999_999
	// maxTokenLength bounds an enum value such as a status.
	maxTokenLength     = 32
	maxEventTypeLength = 128
)

// Unusable is a Stripe object, or an event, Tollgate cannot use: one of its
// values is not one Tollgate can store, serve or act on. Nothing of it is
// applied.
type Unusable struct {
	// Object names what was judged: its kind, and its id when that is
	// usable ("subscription sub_123").
	Object string
	// Field is the field at fault, as Stripe spells it.
	Field string
	// Reason says what is wrong; it quotes at most a short, escaped prefix
	// of the value, so it is safe to log.
	Reason string
}

func (e *Unusable) Error() string {
	return fmt.Sprintf("unusable Stripe %s: %s %s", e.Object, e.Field, e.Reason)
}

// check collects the first fault of one object.
type check struct {
	object string
	err    *Unusable
}

// newCheck starts the check of an object of a kind with its id, which
// every object must have.
func newCheck(kind, id string) *check {
	c := &check{object: kind}
	if validID(id) {
		c.object = kind + " " + id
	}
	c.id("id", id)
	return c
}

// refs checks the customer and subscription an object names, when it
// names them.
func (c *check) refs(customer *stripe.Customer, sub *stripe.Subscription) {
	if customer != nil {
		c.optionalID("customer", customer.ID)
	}
	if sub != nil {
		c.optionalID("subscription", sub.ID)
	}
}

// missing is the error of an object that is not there at all.
func missing(kind string) error {
	return &Unusable{Object: kind, Field: "object", Reason: "is missing"}
}

func (c *check) fail(field, reason string) {
	if c.err == nil {
		c.err = &Unusable{Object: c.object, Field: field, Reason: reason}
	}
}

func (c *check) result() error {
	if c.err == nil {
		return nil
	}
	return c.err
}

// quote is a short, escaped rendering of a value for a reason.
func quote(v string) string { return fmt.Sprintf("%.40q", v) }

// objectID is the shape of every id Stripe gives an object ("cus_Nx3…"):
// ASCII letters, digits and underscores (hyphens allowed too). stripe-go
// reads an expandable field's id from the raw JSON without unescaping it,
// so "cus_\u0000" arrives as those ten characters, backslash included: a
// rule on the characters, not only on storability, refuses it.
var objectID = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// validID reports whether id can name a Stripe object: 1 to MaxIDLength
// bytes in objectID's shape.
func validID(id string) bool {
	return id != "" && len(id) <= MaxIDLength && objectID.MatchString(id)
}

// ValidID reports whether id can name a Stripe object, the rule every
// check here applies to ids.
func ValidID(id string) bool { return validID(id) }

// id checks a required object id.
func (c *check) id(field, v string) {
	if !validID(v) {
		c.fail(field, "is not an id: "+quote(v))
	}
}

// optionalID checks an id that may be absent ("").
func (c *check) optionalID(field, v string) {
	if v != "" {
		c.id(field, v)
	}
}

// text checks optional free text: printable, at most max bytes. Printable
// text is storable: valid UTF-8 without NUL.
func (c *check) text(field, v string, max int) {
	switch {
	case len(v) > max:
		c.fail(field, fmt.Sprintf("is longer than %d bytes", max))
	case !usertext.Printable(v):
		c.fail(field, "is not printable text: "+quote(v))
	}
}

// metadata checks the metadata values Tollgate reads.
func (c *check) metadata(field string, m map[string]string, keys ...string) {
	for _, k := range keys {
		c.text(field+"."+k, m[k], MaxMetadataLength)
	}
}

// timestamp checks a Stripe timestamp (Unix seconds; 0 when unset).
func (c *check) timestamp(field string, sec int64, required bool) {
	if sec == 0 && !required {
		return
	}
	if !clock.InYears(sec) {
		c.fail(field, fmt.Sprintf("%d is not a time from %d to %d", sec, clock.MinYear, clock.MaxYear))
	}
}

// period checks a start and end; an end before its start is no period.
func (c *check) period(field string, start, end int64) {
	c.timestamp(field+"_start", start, false)
	c.timestamp(field+"_end", end, false)
	if start != 0 && end != 0 && end < start {
		c.fail(field+"_end", "is before "+field+"_start")
	}
}

func (c *check) amount(field string, v, min int64) {
	if v < min || v > MaxAmount {
		c.fail(field, fmt.Sprintf("%d is outside %d to %d", v, min, int64(MaxAmount)))
	}
}

var (
	// token is an enum value: a status.
	token = regexp.MustCompile(`^[a-z][a-z_]*$`)
	// eventType is an event's type, "customer.subscription.updated".
	eventType = regexp.MustCompile(`^[a-z0-9_]+(\.[a-z0-9_]+)+$`)
)

// apiVersion is the shape of a Stripe API version: a date, and from basil
// on the release's name ("2025-03-31.basil").
var apiVersion = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}(\.[a-z]{1,32})?$`)

// APIVersion reports whether v looks like a Stripe API version, so that it
// may be logged and listed on /readyz.
func APIVersion(v string) bool { return apiVersion.MatchString(v) }

// Event checks what Tollgate keeps of an event itself: its id and type,
// stored with the record of its delivery, and its time, which orders it
// against the others.
func Event(id, typ string, created int64) error {
	c := newCheck("event", id)
	if len(typ) > maxEventTypeLength || !eventType.MatchString(typ) {
		c.fail("type", "is not an event type: "+quote(typ))
	}
	c.timestamp("created", created, true)
	return c.result()
}

// subscriptionStatuses are the statuses Stripe documents for a
// subscription; Tollgate has a rule for each (GrantsAccess).
var subscriptionStatuses = []stripe.SubscriptionStatus{
	stripe.SubscriptionStatusActive, stripe.SubscriptionStatusCanceled, stripe.SubscriptionStatusIncomplete,
	stripe.SubscriptionStatusIncompleteExpired, stripe.SubscriptionStatusPastDue, stripe.SubscriptionStatusPaused,
	stripe.SubscriptionStatusTrialing, stripe.SubscriptionStatusUnpaid,
}

// Subscription checks every value Tollgate reads from a subscription: its
// id, customer, status, the price of each item, the metadata Tollgate put
// on it, and its times, including the per-item periods in raw (the event's
// object in the basil shape; nil for one read through the pinned API
// version). A status Stripe does not document is refused rather than
// stored: Tollgate could not say whether it grants the plan.
func Subscription(sub *stripe.Subscription, raw []byte) error {
	if sub == nil {
		return missing("subscription")
	}
	c := newCheck("subscription", sub.ID)
	c.refs(sub.Customer, nil)
	status := stripe.SubscriptionStatus(strings.ToLower(string(sub.Status)))
	known := false
	for _, s := range subscriptionStatuses {
		known = known || s == status
	}
	if !known {
		c.fail("status", "is not a subscription status Tollgate knows: "+quote(string(sub.Status)))
	}
	if sub.Items != nil {
		for i, it := range sub.Items.Data {
			if it != nil && it.Price != nil && it.Price.ID != "" {
				c.text(fmt.Sprintf("items.data[%d].price.id", i), it.Price.ID, MaxIDLength)
			}
		}
	}
	c.metadata("metadata", sub.Metadata, "org_id", "plan_id")
	c.timestamp("created", sub.Created, false)
	c.timestamp("canceled_at", sub.CanceledAt, false)
	c.period("current_period", sub.CurrentPeriodStart, sub.CurrentPeriodEnd)
	for price, p := range stripeshape.ItemPeriods(raw) {
		c.text("items.data.price.id", price, MaxIDLength)
		c.period("items.data.current_period", p.Start, p.End)
	}
	return c.result()
}

// Invoice checks every value Tollgate reads from an invoice, once
// stripeshape.Invoice has completed it: ids, number, status, currency,
// amounts, times and the metadata Tollgate put on it or its subscription.
// Its links are not judged here: one that is not a safe https URL is
// dropped (PageURL), not worth refusing the invoice's money for.
func Invoice(inv *stripe.Invoice) error {
	if inv == nil {
		return missing("invoice")
	}
	c := newCheck("invoice", inv.ID)
	c.refs(inv.Customer, inv.Subscription)
	c.text("number", inv.Number, MaxNumberLength)
	if s := string(inv.Status); s != "" && (len(s) > maxTokenLength || !token.MatchString(strings.ToLower(s))) {
		c.fail("status", "is not a status: "+quote(s))
	}
	if !money.ValidCurrency(string(inv.Currency)) {
		c.fail("currency", "is not a three-letter ISO currency code: "+quote(string(inv.Currency)))
	}
	c.amount("amount_due", inv.AmountDue, 0)
	c.amount("amount_paid", inv.AmountPaid, 0)
	c.amount("total", inv.Total, -MaxAmount)
	c.timestamp("created", inv.Created, false)
	c.period("period", inv.PeriodStart, inv.PeriodEnd)
	if inv.StatusTransitions != nil {
		c.timestamp("status_transitions.paid_at", inv.StatusTransitions.PaidAt, false)
	}
	c.metadata("metadata", inv.Metadata, "org_id")
	if inv.SubscriptionDetails != nil {
		c.metadata("subscription_details.metadata", inv.SubscriptionDetails.Metadata, "org_id")
	}
	return c.result()
}

// CheckoutSession checks what Tollgate reads from a completed Checkout
// session: its id, customer and subscription, and the metadata Tollgate
// put on it. client_reference_id is only logged, never used.
func CheckoutSession(cs *stripe.CheckoutSession) error {
	if cs == nil {
		return missing("checkout session")
	}
	c := newCheck("checkout session", cs.ID)
	c.refs(cs.Customer, cs.Subscription)
	c.metadata("metadata", cs.Metadata, "org_id", "plan_id", "tollgate_checkout_id")
	return c.result()
}

// Customer checks a customer Stripe created for an organisation, whose id
// Tollgate stores as the organisation's.
func Customer(c *stripe.Customer) error {
	if c == nil {
		return missing("customer")
	}
	return newCheck("customer", c.ID).result()
}

// Session checks a Checkout or Customer Portal session Stripe opened (kind
// names which): its id, which Tollgate stores, and its URL, where the
// client sends the customer, which must be a link PageURL keeps.
func Session(kind, id, url string) error {
	c := newCheck(kind, id)
	if PageURL(url) == "" {
		c.fail("url", "is not an https URL a customer may be sent to: "+quote(url))
	}
	return c.result()
}

// PageURL returns raw when it is a link Tollgate may store and put in an
// href (an invoice's hosted page or PDF, a Checkout or portal session): an
// https link weburl.Link accepts, under the rules of every URL Tollgate
// stores. Anything else gives "": a javascript: or data: URL, credentials,
// an invisible character, or a host that is not a real name or address
// (127.1, 0x7f000001, port 0). Stripe's links are always https,
// stripe-mock's too.
func PageURL(raw string) string {
	if raw == "" || !weburl.Link(raw) {
		return ""
	}
	return raw
}
