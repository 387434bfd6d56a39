package billing

import (
	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/weburl"
)

// Codes of the userErrors billing mutations return.
const (
	CodeRequired          = weburl.CodeRequired
	CodeTooLong           = weburl.CodeTooLong
	CodeInvalidURL        = weburl.CodeInvalidURL
	CodeUnknownPlan       = "UNKNOWN_PLAN"
	CodeNotPurchasable    = "NOT_PURCHASABLE"
	CodeAlreadySubscribed = "ALREADY_SUBSCRIBED"
	CodeCheckoutPending   = "CHECKOUT_PENDING"
	CodeNoBillingHistory  = "NO_BILLING_HISTORY"
	CodeNoSubscription    = "NO_SUBSCRIPTION"
)

// checkRedirectURL validates a URL Stripe sends the customer back to.
func checkRedirectURL(fe *apperr.FieldErrors, field, v string) {
	weburl.Check(fe, field, v, "The URL must be absolute and start with http:// or https://.")
}
