package outbound

import (
	"encoding/json"
	"time"
)

// The `data` object of each event type. Emitters pass these to Emit so that
// every emitter of a type sends the same shape; receivers read the JSON
// names.

// Optional is a text member of an event's data that may name nothing: ""
// is sent as null, never as "", so a receiver tests every "none" the same
// way (as it does current_period_end and failing_since).
type Optional string

// MarshalJSON writes "" as null.
func (o Optional) MarshalJSON() ([]byte, error) {
	if o == "" {
		return []byte("null"), nil
	}
	return json.Marshal(string(o))
}

// UsageThresholdData is the data of usage.threshold_reached and, at 100%,
// usage.limit_reached.
type UsageThresholdData struct {
	Meter   string   `json:"meter"`
	Period  Optional `json:"period"` // YYYY-MM; null on a meter that never resets
	Percent int      `json:"percent"`
	Used    int64    `json:"used"`
	Limit   int64    `json:"limit"`
}

// SubscriptionUpdatedData is the data of subscription.updated: the plan or
// status changed.
type SubscriptionUpdatedData struct {
	Plan             string     `json:"plan"`
	Status           Optional   `json:"status"` // null without a subscription
	PreviousPlan     string     `json:"previous_plan"`
	PreviousStatus   Optional   `json:"previous_status"`
	CurrentPeriodEnd *time.Time `json:"current_period_end"`
}

// InvoiceData is the data of invoice.paid and invoice.payment_failed.
type InvoiceData struct {
	InvoiceID        string   `json:"invoice_id"` // Stripe's
	Number           Optional `json:"number"`
	Status           string   `json:"status"`
	AmountDue        int64    `json:"amount_due"` // minor units
	AmountPaid       int64    `json:"amount_paid"`
	Currency         string   `json:"currency"`
	HostedInvoiceURL Optional `json:"hosted_invoice_url"`
}

// OverageBilledData is the data of overage.billed: one meter's overage of
// one month put on a Stripe invoice.
type OverageBilledData struct {
	Meter     string   `json:"meter"`
	Period    string   `json:"period"` // YYYY-MM
	Quantity  int64    `json:"quantity"`
	Amount    int64    `json:"amount"` // minor units
	Currency  string   `json:"currency"`
	InvoiceID Optional `json:"invoice_id"`
}

// EndpointDisabledData is the data of webhook_endpoint.disabled.
type EndpointDisabledData struct {
	EndpointID   string     `json:"endpoint_id"`
	URL          string     `json:"url"`
	FailingSince *time.Time `json:"failing_since"`
	LastError    Optional   `json:"last_error"`
}
