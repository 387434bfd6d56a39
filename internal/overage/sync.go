package overage

import (
	"context"
	"fmt"

	"github.com/stripe/stripe-go/v76"

	"github.com/tollgate-billing/tollgate/internal/money"
)

// Sync finishes the organisation's pending charges for `stripe sync`, given
// its invoices as just listed from Stripe: the newest draft
// subscription-cycle invoice, if any, is offered them as if its
// invoice.created had arrived; otherwise a charge whose last offer did land
// is recorded from the item Stripe holds. It returns one line per charge
// this run recorded billed.
func (s *Service) Sync(ctx context.Context, orgID string, invs []*stripe.Invoice) ([]string, error) {
	if s.stripe == nil {
		return nil, nil
	}
	if err := s.finishFinals(ctx, orgID); err != nil {
		return nil, err
	}
	before, err := s.pending(ctx, orgID)
	if err != nil {
		return nil, err
	}
	var draft *stripe.Invoice
	for _, inv := range invs {
		if inv.Status == stripe.InvoiceStatusDraft && inv.BillingReason == stripe.InvoiceBillingReasonSubscriptionCycle &&
			(draft == nil || inv.Created > draft.Created) {
			draft = inv
		}
	}
	if draft != nil {
		err = s.InvoiceCreated(ctx, orgID, draft)
	} else {
		err = s.settleOffered(ctx, before)
	}
	if err != nil {
		return nil, err
	}
	var lines []string
	for _, c := range before {
		var now Charge
		err := s.db.WithContext(ctx).Where("org_id = ? AND meter = ? AND period = ?", c.OrgID, c.Meter, c.Period).Take(&now).Error
		if err != nil {
			return nil, fmt.Errorf("read overage %s/%s/%s: %w", c.OrgID, c.Meter, c.Period, err)
		}
		if now.Status == Billed {
			lines = append(lines, fmt.Sprintf("overage %s %s: %s billed on invoice %s",
				now.Meter, now.Period, money.Format(now.Amount, now.Currency), *now.StripeInvoiceID))
		}
	}
	return lines, nil
}

func (s *Service) pending(ctx context.Context, orgID string) ([]Charge, error) {
	var out []Charge
	err := s.db.WithContext(ctx).Where("org_id = ? AND status = ?", orgID, Pending).Order("period, meter").Find(&out).Error
	if err != nil {
		return nil, fmt.Errorf("list pending overage of org %s: %w", orgID, err)
	}
	return out, nil
}

// settleOffered records the charges whose last offer Stripe shows landed,
// when there is no new invoice to offer the rest to.
func (s *Service) settleOffered(ctx context.Context, pending []Charge) error {
	for _, c := range pending {
		if c.StripeInvoiceID == nil {
			continue
		}
		itemID, err := s.findItem(ctx, c)
		if err != nil {
			return err
		}
		if itemID != "" {
			if err := s.record(ctx, c, *c.StripeInvoiceID, itemID); err != nil {
				return err
			}
		}
	}
	return nil
}

// finishFinals takes each final bill of the organisation interrupted
// between its steps as far as it goes.
func (s *Service) finishFinals(ctx context.Context, orgID string) error {
	var open []finalBill
	if err := s.db.WithContext(ctx).Where("org_id = ? AND status = ?", orgID, finalPending).Find(&open).Error; err != nil {
		return fmt.Errorf("list final bills of org %s: %w", orgID, err)
	}
	for _, fb := range open {
		if err := s.finishFinal(ctx, fb); err != nil {
			return err
		}
	}
	return nil
}
