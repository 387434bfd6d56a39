package overage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stripe/stripe-go/v76"
	"gorm.io/gorm/clause"

	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/plans"
	"github.com/tollgate-billing/tollgate/internal/stripeclient"
)

// Final bill statuses.
const (
	finalPending  = "pending"
	finalInvoiced = "invoiced"
	finalNone     = "none"
)

// finalBill is a row of overage_final_bills: the one final bill of an
// ended subscription.
type finalBill struct {
	OrgID                string `gorm:"primaryKey"`
	StripeSubscriptionID string `gorm:"primaryKey"`
	EndedAt              time.Time
	Status               string
	StripeInvoiceID      *string
	CreatedAt            time.Time
	UpdatedAt            time.Time
}

func (finalBill) TableName() string { return "overage_final_bills" }

// metaFinal marks the one-off invoice of a final bill.
const metaFinal = "tollgate_final"

// SubscriptionEnded bills, on one final one-off invoice, what the ended
// subscription subID still owes: the overage of its closed months not yet
// billed (within Lookback), and the overage of the month it ended in,
// counted up to endedAt. Stripe makes no further cycle invoice for it, so
// nothing else would bill them.
//
// The month it ended in is priced by the plan in force just before the
// end, with that plan's FULL monthly allowance: the month's base fee was
// paid and Tollgate's cancel refunds nothing, so the customer keeps the
// allowance they paid for. Usage is kept per UTC day, so the day the
// subscription ended counts whole, as the day it began does. The month's
// row in overage_charges settles it, so usage after the end (under the
// free plan) is never billed, and a subscription taken again later starts
// from its own creation.
//
// Claim, commit, call, record: the final bill row and the charges are
// committed before Stripe is asked; the invoice is created under an
// idempotency key derived from (organisation, subscription), each item
// under its charge's key, and the invoice is finalized last. Nothing owed
// creates no invoice. Call it with no transaction open; it is safe to call
// again (a redelivered webhook, `stripe sync`).
func (s *Service) SubscriptionEnded(ctx context.Context, orgID, subID string, endedAt time.Time) error {
	if s.stripe == nil || subID == "" {
		return nil
	}
	now := s.clock.Now()
	fb := finalBill{OrgID: orgID, StripeSubscriptionID: subID, EndedAt: endedAt.UTC(), Status: finalPending,
		CreatedAt: now, UpdatedAt: now}
	if err := s.db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(&fb).Error; err != nil {
		return fmt.Errorf("claim final bill of org %s: %w", orgID, err)
	}
	if err := s.db.WithContext(ctx).Where("org_id = ? AND stripe_subscription_id = ?", orgID, subID).Take(&fb).Error; err != nil {
		return fmt.Errorf("read final bill of org %s: %w", orgID, err)
	}
	if fb.Status != finalPending {
		return nil // billed, or nothing owed, on an earlier delivery
	}
	return s.finishFinal(ctx, fb)
}

// finishFinal takes a pending final bill as far as it goes.
func (s *Service) finishFinal(ctx context.Context, fb finalBill) error {
	st, err := s.standing.Current(ctx, fb.OrgID)
	if err != nil {
		return fmt.Errorf("final bill of org %s: %w", fb.OrgID, err)
	}
	if st.Subscription == nil || st.Subscription.StripeSubscriptionID != fb.StripeSubscriptionID {
		// Another subscription followed: the ended one's months were
		// claimed when it ended, or are left as they are.
		return s.settleFinal(ctx, fb, finalNone, nil)
	}
	plan, err := s.standing.PlanAt(ctx, fb.OrgID, fb.EndedAt.Add(-time.Microsecond))
	if err != nil {
		return fmt.Errorf("final bill of org %s: %w", fb.OrgID, err)
	}
	currency := plan.Currency
	if pr, ok := plan.PriceByID(st.Subscription.PriceID); ok {
		currency = pr.Currency
	}
	invKey := "final:" + fb.StripeSubscriptionID
	since, _ := billedSince(st)
	if err := s.claimFinal(ctx, fb, since, invKey, currency, plan); err != nil {
		return err
	}
	pending, err := s.pending(ctx, fb.OrgID)
	if err != nil {
		return err
	}
	if len(pending) == 0 && fb.StripeInvoiceID == nil {
		s.log.InfoContext(ctx, "subscription ended with no overage owed; no final invoice",
			"org_id", fb.OrgID, "stripe_subscription_id", fb.StripeSubscriptionID)
		return s.settleFinal(ctx, fb, finalNone, nil)
	}
	inv, err := s.finalInvoice(ctx, &fb, st.Subscription.StripeCustomerID, currency)
	if err != nil {
		return err
	}
	var errs []error
	if inv.Status == stripe.InvoiceStatusDraft {
		for _, c := range pending {
			if err := s.bill(ctx, c, inv); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	var billed int64
	if err := s.db.WithContext(ctx).Model(&Charge{}).Where("org_id = ? AND status = ? AND stripe_invoice_id = ?",
		fb.OrgID, Billed, inv.ID).Count(&billed).Error; err != nil {
		return fmt.Errorf("final bill of org %s: %w", fb.OrgID, err)
	}
	if inv.Status == stripe.InvoiceStatusDraft && billed > 0 {
		params := &stripe.InvoiceFinalizeInvoiceParams{AutoAdvance: stripe.Bool(true)}
		params.Context = ctx
		params.SetIdempotencyKey("tollgate-final-finalize:" + fb.OrgID + ":" + fb.StripeSubscriptionID)
		if _, err := s.stripe.Invoices.FinalizeInvoice(inv.ID, params); err != nil {
			return stripeclient.Error("finalize final invoice "+inv.ID, err)
		}
	}
	s.log.InfoContext(ctx, "final invoice for an ended subscription",
		"org_id", fb.OrgID, "stripe_subscription_id", fb.StripeSubscriptionID, "stripe_invoice_id", inv.ID, "items", billed)
	return s.settleFinal(ctx, fb, finalInvoiced, &inv.ID)
}

// finalInvoice is the final bill's one-off invoice: created once (under an
// idempotency key from organisation and subscription) and recorded, or
// read back from the id recorded.
func (s *Service) finalInvoice(ctx context.Context, fb *finalBill, customer, currency string) (*stripe.Invoice, error) {
	if fb.StripeInvoiceID != nil {
		params := &stripe.InvoiceParams{}
		params.Context = ctx
		inv, err := s.stripe.Invoices.Get(*fb.StripeInvoiceID, params)
		if err != nil {
			return nil, stripeclient.Error("read final invoice "+*fb.StripeInvoiceID, err)
		}
		return inv, nil
	}
	params := &stripe.InvoiceParams{
		Customer:                    stripe.String(customer),
		Currency:                    stripe.String(currency),
		AutoAdvance:                 stripe.Bool(false), // finalized once its items are on it
		PendingInvoiceItemsBehavior: stripe.String("exclude"),
		Description:                 stripe.String("Usage past the plan's allowance, up to the end of the subscription"),
	}
	params.Context = ctx
	params.SetIdempotencyKey("tollgate-final:" + fb.OrgID + ":" + fb.StripeSubscriptionID)
	params.AddMetadata(metaFinal, fb.StripeSubscriptionID)
	params.AddMetadata(metaOrgID, fb.OrgID)
	inv, err := s.stripe.Invoices.New(params)
	if err != nil {
		return nil, stripeclient.Error("create final invoice for "+fb.StripeSubscriptionID, err)
	}
	now := s.clock.Now()
	err = s.db.WithContext(ctx).Model(&finalBill{}).
		Where("org_id = ? AND stripe_subscription_id = ?", fb.OrgID, fb.StripeSubscriptionID).
		Updates(map[string]any{"stripe_invoice_id": inv.ID, "updated_at": now}).Error
	if err != nil {
		return nil, fmt.Errorf("record final invoice of org %s: %w", fb.OrgID, err)
	}
	fb.StripeInvoiceID = &inv.ID
	return inv, nil
}

func (s *Service) settleFinal(ctx context.Context, fb finalBill, status string, invoiceID *string) error {
	up := map[string]any{"status": status, "updated_at": s.clock.Now()}
	if invoiceID != nil {
		up["stripe_invoice_id"] = *invoiceID
	}
	err := s.db.WithContext(ctx).Model(&finalBill{}).
		Where("org_id = ? AND stripe_subscription_id = ? AND status = ?", fb.OrgID, fb.StripeSubscriptionID, finalPending).
		Updates(up).Error
	if err != nil {
		return fmt.Errorf("settle final bill of org %s: %w", fb.OrgID, err)
	}
	return nil
}

// claimFinal records as charges the overage of the subscription's closed
// months before the one it ended in (within Lookback) and of the month it
// ended in up to its end, for those not yet recorded.
func (s *Service) claimFinal(ctx context.Context, fb finalBill, since time.Time, invKey, currency string, endPlan plans.Plan) error {
	endMonth := clock.MonthStart(fb.EndedAt)
	months := closedMonths(since, fb.EndedAt)
	type slot struct{ period, meter string }
	var recorded []Charge
	if err := s.db.WithContext(ctx).Select("period", "meter").Where("org_id = ?", fb.OrgID).Find(&recorded).Error; err != nil {
		return fmt.Errorf("overage of org %s: %w", fb.OrgID, err)
	}
	done := map[slot]bool{}
	for _, c := range recorded {
		done[slot{c.Period, c.Meter}] = true
	}
	var fresh []Charge
	add := func(period string, mo monthOverage) error {
		for _, u := range mo.skipped {
			if err := s.unbilled(ctx, fb.OrgID, u.meter, period, invKey, u.reason, "overage not billed",
				"currency", currency, "error", u.err); err != nil {
				return err
			}
		}
		for _, c := range append(mo.charges, mo.none...) {
			if !done[slot{period, c.Meter}] {
				fresh = append(fresh, c)
			}
		}
		return nil
	}
	for _, period := range months {
		priced, err := s.monthPlan(ctx, fb.OrgID, period)
		if err != nil {
			return err
		}
		mo, err := s.overageOf(ctx, fb.OrgID, period, currency, priced, since, time.Time{})
		if err != nil {
			return err
		}
		if err := add(period, mo); err != nil {
			return err
		}
	}
	if !endMonth.Before(clock.MonthStart(since)) {
		period := endMonth.Format("2006-01")
		mo, err := s.overageOf(ctx, fb.OrgID, period, currency, endPlan, since, fb.EndedAt)
		if err != nil {
			return err
		}
		if err := add(period, mo); err != nil {
			return err
		}
	}
	now := s.clock.Now()
	for i := range fresh {
		fresh[i].CreatedAt, fresh[i].UpdatedAt = now, now
	}
	if len(fresh) > 0 {
		if err := s.db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(&fresh).Error; err != nil {
			return fmt.Errorf("record overage of org %s: %w", fb.OrgID, err)
		}
	}
	return nil
}
