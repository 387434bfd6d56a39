package overage

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm/clause"
)

// unbilledNotice is a row of overage_unbilled: one meter's month that one
// invoice could not carry, counted and logged when the row was written.
type unbilledNotice struct {
	OrgID           string `gorm:"primaryKey"`
	Meter           string `gorm:"primaryKey"`
	Period          string `gorm:"primaryKey"`
	StripeInvoiceID string `gorm:"primaryKey"`
	Reason          string
	CreatedAt       time.Time
}

func (unbilledNotice) TableName() string { return "overage_unbilled" }

// unbilled reports a meter's month that invoiceID could not carry, for
// reason, once per invoice: it counts it in Unbilled and logs msg at ERROR
// with attrs the first time, and does nothing when the invoice's
// invoice.created is delivered again, announced under another event id, or
// offered by `stripe sync`. Each count is then revenue one invoice missed,
// whichever replica and delivery saw it.
func (s *Service) unbilled(ctx context.Context, orgID, meter, period, invoiceID, reason, msg string, attrs ...any) error {
	n := unbilledNotice{OrgID: orgID, Meter: meter, Period: period, StripeInvoiceID: invoiceID, Reason: reason,
		CreatedAt: s.clock.Now()}
	res := s.db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(&n)
	if res.Error != nil {
		return fmt.Errorf("record overage %s/%s/%s unbilled on invoice %s: %w", orgID, meter, period, invoiceID, res.Error)
	}
	if res.RowsAffected == 0 {
		return nil // counted when this invoice was first seen
	}
	Unbilled.WithLabelValues(reason).Inc()
	s.log.ErrorContext(ctx, msg, append([]any{"reason", reason, "org_id", orgID, "meter", meter, "period", period,
		"stripe_invoice_id", invoiceID}, attrs...)...)
	return nil
}
