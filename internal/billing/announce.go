package billing

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76"
	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/orgs"
	"github.com/tollgate-billing/tollgate/internal/outbound"
	"github.com/tollgate-billing/tollgate/internal/stripein"
)

// Emitter tells the host application what changed (outbound.Service). Emit
// runs in the transaction that makes the change, so a rolled-back change
// sends nothing.
type Emitter interface {
	Emit(ctx context.Context, tx *gorm.DB, orgID, eventType string, data any) error
}

// EmitTo sends the organisation's subscription.updated and
// invoice.payment_failed events to e. Call it at start-up; without it
// billing emits nothing.
func (s *Service) EmitTo(e Emitter) { s.emitter = e }

// LockOrg locks the organisation's row for the rest of tx. Whoever writes
// facts that emit events takes it first, so that two transactions of one
// organisation never wait for each other's event sequence in the opposite
// order.
func (s *Service) LockOrg(ctx context.Context, tx *gorm.DB, orgID string) error {
	_, _, err := orgs.Lock(ctx, s.db, tx, orgID)
	return err
}

// standing is what subscription.updated reports: the organisation's
// effective plan and the status of the subscription that decides it ("" with
// none).
type standing struct {
	plan, status string
	periodEnd    *time.Time
}

// standingOf reads the organisation's standing in tx.
func (s *Service) standingOf(tx *gorm.DB, org orgs.Organization) (standing, error) {
	var subs []Subscription
	if err := tx.Where("org_id = ?", org.ID).Find(&subs).Error; err != nil {
		return standing{}, fmt.Errorf("load subscriptions of org %s: %w", org.ID, err)
	}
	cur := currentSubscription(subs)
	st := standing{plan: EffectivePlanID(org.PlanID, cur)}
	if cur != nil {
		st.status, st.periodEnd = cur.Status, cur.CurrentPeriodEnd
	}
	return st, nil
}

// announceStanding emits subscription.updated when the organisation's plan
// or subscription status differs from before. Other changes (a period
// rolled over, a cancellation scheduled) are not announced.
func (s *Service) announceStanding(ctx context.Context, tx *gorm.DB, orgID string, before, after standing) error {
	if s.emitter == nil || before.plan == after.plan && before.status == after.status {
		return nil
	}
	return s.emitter.Emit(ctx, tx, orgID, outbound.SubscriptionUpdated, outbound.SubscriptionUpdatedData{
		Plan: after.plan, Status: outbound.Optional(after.status), PreviousPlan: before.plan,
		PreviousStatus:   outbound.Optional(before.status),
		CurrentPeriodEnd: after.periodEnd,
	})
}

// announcePaymentFailed emits invoice.payment_failed for one Stripe event.
func (s *Service) announcePaymentFailed(ctx context.Context, tx *gorm.DB, orgID string, inv *stripe.Invoice) error {
	if s.emitter == nil {
		return nil
	}
	return s.emitter.Emit(ctx, tx, orgID, outbound.InvoicePaymentFailed, outbound.InvoiceData{
		InvoiceID: inv.ID, Number: outbound.Optional(inv.Number), Status: strings.ToLower(string(inv.Status)),
		AmountDue: inv.AmountDue, AmountPaid: inv.AmountPaid, Currency: strings.ToLower(string(inv.Currency)),
		HostedInvoiceURL: outbound.Optional(stripein.PageURL(inv.HostedInvoiceURL)),
	})
}
