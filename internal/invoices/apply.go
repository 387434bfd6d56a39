package invoices

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/tollgate-billing/tollgate/internal/money"
	"github.com/tollgate-billing/tollgate/internal/outbound"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/stripeclient"
	"github.com/tollgate-billing/tollgate/internal/stripein"
)

// Applied is what applying a Stripe invoice did.
type Applied struct {
	// Stale: a newer event for this invoice was applied already, and this
	// one was dropped.
	Stale bool
	// Changes are human-readable differences, e.g. "invoice in_1 status:
	// open → paid"; empty when nothing differed.
	Changes []string
}

// Apply stores a Stripe invoice of the organisation in tx, the transaction
// that also records the event that carried it. at is the event's `created`
// time (or when the invoice was fetched); an invoice already updated by a
// newer event is left alone, so events applied in any order end in
// Stripe's latest state. The caller judged the invoice (stripein.Invoice)
// where it came from Stripe, a webhook event or `stripe sync`; only its
// links are judged here (PageURL), and one that is not safe is dropped.
func (s *Service) Apply(ctx context.Context, tx *gorm.DB, orgID string, inv *stripe.Invoice, at time.Time) (Applied, error) {
	if inv == nil || inv.ID == "" {
		return Applied{}, nil
	}
	tx = tx.WithContext(ctx)
	at = at.UTC()
	// Two first events for one invoice race to insert it; the loser's insert
	// does nothing (Postgres waits for the winner to commit) and its second
	// pass updates the winner's row like any later event.
	for attempt := 0; attempt < 2; attempt++ {
		var row Invoice
		err := s.db.ForUpdate(tx).Where("id = ?", inv.ID).Take(&row).Error
		if err != nil && !store.IsNotFound(err) {
			return Applied{}, fmt.Errorf("lock invoice %s: %w", inv.ID, err)
		}
		if err == nil {
			if row.LastEventAt != nil && (at.Before(*row.LastEventAt) ||
				at.Equal(row.LastEventAt.UTC()) && statusRank(string(inv.Status)) < statusRank(row.Status)) {
				return Applied{Stale: true}, nil
			}
			if row.OrgID != orgID {
				s.log.Warn("invoice is stored under another organisation; keeping it there",
					"stripe_invoice_id", inv.ID, "stored_org_id", row.OrgID, "claimed_org_id", orgID)
			}
			next := row
			s.copyFromStripe(&next, inv, at)
			if err := tx.Save(&next).Error; err != nil {
				return Applied{}, fmt.Errorf("update invoice %s: %w", inv.ID, err)
			}
			return Applied{Changes: invoiceDiff(row, next)}, s.announcePaid(ctx, tx, row.Status, next)
		}
		next := Invoice{ID: inv.ID, OrgID: orgID}
		s.copyFromStripe(&next, inv, at)
		res := tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "id"}}, DoNothing: true}).Create(&next)
		if res.Error != nil {
			return Applied{}, fmt.Errorf("insert invoice %s: %w", inv.ID, res.Error)
		}
		if res.RowsAffected == 1 {
			return Applied{Changes: []string{fmt.Sprintf("invoice %s created: %s, total %s",
				inv.ID, next.Status, money.Format(next.Total, next.Currency))}}, s.announcePaid(ctx, tx, "", next)
		}
	}
	return Applied{}, fmt.Errorf("invoice %s: neither inserted nor found", inv.ID)
}

// announcePaid emits invoice.paid when the stored status becomes paid. It
// fires on that transition only: a redelivered or older event finds the
// invoice paid already (or is dropped as stale), and Stripe never takes a
// paid invoice back to another status.
func (s *Service) announcePaid(ctx context.Context, tx *gorm.DB, was string, now Invoice) error {
	if s.emitter == nil || was == "paid" || now.Status != "paid" {
		return nil
	}
	return s.emitter.Emit(ctx, tx, now.OrgID, outbound.InvoicePaid, outbound.InvoiceData{
		InvoiceID: now.ID, Number: outbound.Optional(deref(now.Number)), Status: now.Status, AmountDue: now.AmountDue,
		AmountPaid: now.AmountPaid, Currency: now.Currency, HostedInvoiceURL: outbound.Optional(deref(now.HostedInvoiceURL)),
	})
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// copyFromStripe overwrites row with what Stripe says.
func (s *Service) copyFromStripe(row *Invoice, inv *stripe.Invoice, at time.Time) {
	if inv.Customer != nil && inv.Customer.ID != "" {
		row.StripeCustomerID = inv.Customer.ID
	}
	if inv.Subscription != nil && inv.Subscription.ID != "" {
		row.StripeSubscriptionID = inv.Subscription.ID
	}
	row.Number = optional(inv.Number)
	if inv.Status != "" {
		row.Status = strings.ToLower(string(inv.Status))
		if !slices.Contains(Statuses, row.Status) {
			s.log.Warn("invoice has a status Tollgate does not list; it is stored but not shown",
				"stripe_invoice_id", inv.ID, "status", row.Status)
		}
	} else if row.Status == "" {
		row.Status = "draft"
	}
	row.AmountDue, row.AmountPaid, row.Total = inv.AmountDue, inv.AmountPaid, inv.Total
	row.Currency = strings.ToLower(string(inv.Currency))
	row.PeriodStart = stripeclient.Time(inv.PeriodStart)
	row.PeriodEnd = stripeclient.Time(inv.PeriodEnd)
	row.PaidAt = nil
	if inv.StatusTransitions != nil {
		row.PaidAt = stripeclient.Time(inv.StatusTransitions.PaidAt)
	}
	row.HostedInvoiceURL = s.link(inv, "hosted_invoice_url", inv.HostedInvoiceURL)
	row.PDFURL = s.link(inv, "invoice_pdf", inv.InvoicePDF)
	if created := stripeclient.Time(inv.Created); created != nil {
		row.CreatedAt = *created
	} else if row.CreatedAt.IsZero() {
		row.CreatedAt = at
	}
	row.LastEventAt = &at
	row.UpdatedAt = s.clock.Now()
}

// link keeps one of an invoice's links only when it is safe to put in an
// href: anything but an https URL (javascript:, data:, …) is dropped, and
// the invoice is kept without it rather than refused for it.
func (s *Service) link(inv *stripe.Invoice, field, raw string) *string {
	safe := stripein.PageURL(raw)
	if safe == "" && raw != "" {
		s.log.Warn("invoice link is not an https URL; stored without it",
			"stripe_invoice_id", inv.ID, "field", field, "value", fmt.Sprintf("%.60q", raw))
	}
	return optional(safe)
}

func invoiceDiff(a, b Invoice) []string {
	var out []string
	add := func(name string, x, y any) {
		if fmt.Sprint(x) != fmt.Sprint(y) {
			out = append(out, fmt.Sprintf("invoice %s %s: %v → %v", b.ID, name, x, y))
		}
	}
	add("status", a.Status, b.Status)
	amount := func(minor int64) string { return money.Format(minor, b.Currency) }
	add("amount_due", amount(a.AmountDue), amount(b.AmountDue))
	add("amount_paid", amount(a.AmountPaid), amount(b.AmountPaid))
	add("total", amount(a.Total), amount(b.Total))
	return out
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// statusRank orders an invoice's statuses along its life. Stripe's event
// times have one-second resolution, and invoice.finalized (open) and
// invoice.paid often share a second and arrive in either order: within one
// second the later status wins, so a paid invoice never reads open again.
func statusRank(status string) int {
	switch status {
	case "draft":
		return 0
	case "open":
		return 1
	case "uncollectible":
		return 2
	case "paid", "void":
		return 3
	}
	return 1
}
