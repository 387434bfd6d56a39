package billing

import (
	"net/url"
	"strings"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/store"
)

// Codes of the userErrors billing mutations return.
const (
	CodeRequired          = "REQUIRED"
	CodeTooLong           = "TOO_LONG"
	CodeInvalidURL        = "INVALID_URL"
	CodeUnknownPlan       = "UNKNOWN_PLAN"
	CodeNotPurchasable    = "NOT_PURCHASABLE"
	CodeAlreadySubscribed = "ALREADY_SUBSCRIBED"
	CodeCheckoutPending   = "CHECKOUT_PENDING"
	CodeNoBillingHistory  = "NO_BILLING_HISTORY"
	CodeNoSubscription    = "NO_SUBSCRIPTION"
)

// maxURLLength bounds redirect URLs; Stripe's own limit is higher, but a
// longer one is a mistake or an attempt to store data in Stripe.
const maxURLLength = 2000

// checkRedirectURL validates a URL Stripe sends the customer back to.
func checkRedirectURL(fe *apperr.FieldErrors, field, v string) {
	if strings.TrimSpace(v) == "" {
		fe.Add(field, CodeRequired, "A URL is required.")
		return
	}
	if len(v) > maxURLLength {
		fe.Add(field, CodeTooLong, "The URL must be at most 2,000 characters.")
		return
	}
	u, err := url.Parse(v)
	if err != nil || !store.StorableText(v) || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.ContainsAny(v, " \t\r\n") {
		fe.Add(field, CodeInvalidURL, "The URL must be absolute and start with http:// or https://.")
	}
}
