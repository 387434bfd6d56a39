package overage

import (
	"fmt"
	"time"

	"github.com/tollgate-billing/tollgate/internal/money"
)

// Charge statuses.
const (
	// Pending charges are claimed but not known to be on an invoice.
	Pending = "pending"
	// Billed charges are an invoice item on StripeInvoiceID.
	Billed = "billed"
	// NoOverage rows settle a monthly meter's month at nothing: when the
	// month was claimed its usage was within the allowance, or the plan
	// priced no overage on it. Like a charge, the row is never recomputed,
	// so usage counted into the month after it closed is not billed later.
	NoOverage = "none"
)

// Charge is one meter's overage in one closed month: a row of
// overage_charges.
type Charge struct {
	OrgID  string `gorm:"primaryKey"`
	Meter  string `gorm:"primaryKey"`
	Period string `gorm:"primaryKey"` // YYYY-MM
	// Quantity is the usage over Allowance.
	Quantity  int64
	Allowance int64
	// UnitAmount is the price of each started package of Per units, in
	// minor units of Currency; Amount is the total.
	UnitAmount int64
	Per        int64
	Amount     int64
	Currency   string
	Status     string
	// Attempt numbers the invoices the charge has been offered to; it is
	// part of the idempotency key, so moving to a new invoice is a new
	// Stripe request and a retry on the same one is not.
	Attempt         int
	StripeInvoiceID *string
	StripeItemID    *string
	BilledAt        *time.Time
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

func (Charge) TableName() string { return "overage_charges" }

// IdempotencyKey is the Stripe idempotency key of the charge's current
// attempt, derived from (organisation, meter, month).
func (c Charge) IdempotencyKey() string {
	return fmt.Sprintf("tollgate-overage:%s:%s:%s:%d", c.OrgID, c.Meter, c.Period, c.Attempt)
}

// Description is the invoice item's text: the meter, the month, the
// quantity over the allowance and the unit price.
func (c Charge) Description() string {
	month, err := time.Parse("2006-01", c.Period)
	label := c.Period
	if err == nil {
		label = month.Format("January 2006")
	}
	return fmt.Sprintf("Overage: %s, %s: %d over the allowance of %d, at %s per %d",
		c.Meter, label, c.Quantity, c.Allowance, money.Format(c.UnitAmount, c.Currency), c.Per)
}
