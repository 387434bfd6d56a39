package overage

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate-billing/tollgate/internal/observe"
)

// Unbilled counts overage an invoice was created for but could not carry,
// by reason: "too_large" (more than one invoice item holds), "currency"
// (no overage price in the invoice's currency, or a charge recorded in
// another currency than the invoice's) or "refused" (Stripe refused the
// item for a reason other than the invoice being no longer a draft) or
// "invoice_limit" (the invoice, with the overage already on it, would come
// to more than Stripe charges at once, money.MaxAmount, or already holds
// MaxInvoiceItems; the charge waits for the next invoice). Each
// is revenue not billed until an operator acts; the log line beside it
// names the organisation, meter and month. A meter's month counts once per
// invoice that could not carry it (see unbilled), however often that
// invoice is delivered.
var Unbilled = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "tollgate_overage_unbilled_total",
	Help: "Overage charges an invoice was created for but could not carry, by reason (too_large, currency, refused, invoice_limit).",
}, []string{"reason"})

// Reasons of Unbilled.
const (
	unbilledTooLarge = "too_large"
	unbilledCurrency = "currency"
	unbilledRefused  = "refused"
	// unbilledInvoiceLimit: see InvoiceCreated.
	unbilledInvoiceLimit = "invoice_limit"
)

func init() { observe.Registry.MustRegister(Unbilled) }
