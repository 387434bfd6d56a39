package invoices

import "time"

// Invoice mirrors one Stripe invoice of an organisation. Its id is Stripe's.
type Invoice struct {
	ID                   string `gorm:"primaryKey"`
	OrgID                string
	StripeCustomerID     string
	StripeSubscriptionID string
	Number               *string
	Status               string // Stripe's status, lower-case: draft, open, paid, void, uncollectible
	AmountDue            int64  // minor units of Currency
	AmountPaid           int64
	Total                int64
	Currency             string // lower-case ISO code, as Stripe sends it
	PeriodStart          *time.Time
	PeriodEnd            *time.Time
	PaidAt               *time.Time
	HostedInvoiceURL     *string
	PDFURL               *string `gorm:"column:pdf_url"`
	// LastEventAt is the `created` time of the newest Stripe event applied.
	LastEventAt *time.Time
	// CreatedAt is when Stripe created the invoice; listings sort by it.
	CreatedAt time.Time
	UpdatedAt time.Time
}

func (Invoice) TableName() string { return "invoices" }
