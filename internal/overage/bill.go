package overage

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/stripe/stripe-go/v76"
	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/money"
	"github.com/tollgate-billing/tollgate/internal/stripeclient"
)

// Metadata keys Tollgate puts on the invoice items it creates; the key
// finds an item again when Tollgate's record of it was lost.
const (
	metaKey   = "tollgate_overage"
	metaOrgID = "org_id"
)

// InvoiceCreated bills the organisation's pending overage on a draft
// subscription-cycle invoice Stripe has just created. A finalized invoice
// takes nothing, and the charges wait for the next one. Call it with no
// transaction open; it is safe to call again for the same invoice.
func (s *Service) InvoiceCreated(ctx context.Context, orgID string, inv *stripe.Invoice) error {
	if s.stripe == nil {
		return nil
	}
	plan, _, err := s.usage.PlanOf(ctx, orgID)
	if err != nil {
		return fmt.Errorf("overage of org %s: %w", orgID, err)
	}
	// The invoice's currency is the subscription's price's, which the plan
	// prices its overage in (plans validation sees to it).
	currency := cmp.Or(string(inv.Currency), plan.Currency)
	pending, err := s.claim(ctx, orgID, inv.ID, currency, plan)
	if err != nil {
		return err
	}
	if inv.Status != stripe.InvoiceStatusDraft {
		if len(pending) > 0 {
			s.log.InfoContext(ctx, "invoice already finalized; overage waits for the next one",
				"org_id", orgID, "stripe_invoice_id", inv.ID, "charges", len(pending))
		}
		return nil
	}
	used, err := s.invoiceTotal(ctx, orgID, inv)
	if err != nil {
		return err
	}
	room, err := s.invoiceRoom(ctx, orgID, inv)
	if err != nil {
		return err
	}
	top := money.MaxAmount(currency)
	var errs []error
	for _, c := range pending { // oldest month first
		if room <= 0 && c.Currency == currency {
			// Stripe refuses an item past the most one invoice holds; the
			// charge waits for the next invoice, as one too large does.
			if err := s.unbilled(ctx, c.OrgID, c.Meter, c.Period, inv.ID, unbilledInvoiceLimit,
				"overage not billed: the invoice already holds as many items as Stripe allows; it is offered again to the next invoice",
				"amount", money.Format(c.Amount, c.Currency), "max_items", MaxInvoiceItems); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if c.Amount > top-used && c.Currency == currency {
			// Stripe charges an invoice's amount due at once, so the whole
			// invoice must stay within what it charges: past it, Stripe
			// refuses to finalize or pay it, whatever each item is. The
			// charge waits for the next invoice.
			if err := s.unbilled(ctx, c.OrgID, c.Meter, c.Period, inv.ID, unbilledInvoiceLimit,
				"overage not billed: it would take the invoice past what Stripe charges at once; it is offered again to the next invoice",
				"amount", money.Format(c.Amount, c.Currency), "invoice_total", money.Format(used, currency),
				"max", money.Format(top, currency)); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if err := s.bill(ctx, c, inv); err != nil {
			errs = append(errs, err)
			continue
		}
		if c.Currency == currency {
			used += c.Amount
			room--
		}
	}
	return errors.Join(errs...)
}

// MaxInvoiceItems is the most line items Stripe lets one invoice hold.
const MaxInvoiceItems = 250

// invoiceRoom is how many more items the draft invoice takes before
// Stripe's MaxInvoiceItems: its lines other than Tollgate's overage items,
// as Stripe sent them (read in full from Stripe when the payload was cut
// short), and every charge recorded billed on it, counted from Tollgate's
// records as in invoiceTotal, so a redelivery counts each once.
func (s *Service) invoiceRoom(ctx context.Context, orgID string, inv *stripe.Invoice) (int64, error) {
	var lines int64
	if inv.Lines != nil && inv.Lines.HasMore && inv.ID != "" {
		params := &stripe.InvoiceListLinesParams{Invoice: stripe.String(inv.ID)}
		params.Context = ctx
		it := s.stripe.Invoices.ListLines(params)
		for it.Next() {
			if l := it.InvoiceLineItem(); l != nil && l.Metadata[metaKey] == "" {
				lines++
			}
		}
		if err := it.Err(); err != nil {
			return 0, stripeclient.Error("list the lines of invoice "+inv.ID, err)
		}
	} else if inv.Lines != nil {
		for _, l := range inv.Lines.Data {
			if l != nil && l.Metadata[metaKey] == "" {
				lines++
			}
		}
	}
	var billed int64
	err := s.db.WithContext(ctx).Model(&Charge{}).Where("org_id = ? AND status = ? AND stripe_invoice_id = ?", orgID, Billed, inv.ID).
		Count(&billed).Error
	if err != nil {
		return 0, fmt.Errorf("overage items on invoice %s of org %s: %w", inv.ID, orgID, err)
	}
	return MaxInvoiceItems - lines - billed, nil
}

// invoiceTotal is what the draft invoice comes to before its pending
// overage is added: its total as Stripe sent it, without the lines of
// Tollgate's overage items Stripe listed, plus every charge recorded billed
// on it (so a redelivery, or `stripe sync` reading the invoice with items
// already on it, counts each once). A line list Stripe cut short may leave
// some overage lines in the total, counted twice: that errs towards billing
// less on this invoice, never towards an invoice Stripe refuses.
func (s *Service) invoiceTotal(ctx context.Context, orgID string, inv *stripe.Invoice) (int64, error) {
	total := max(inv.Total, 0)
	if inv.Lines != nil {
		for _, l := range inv.Lines.Data {
			if l != nil && l.Metadata[metaKey] != "" {
				total -= l.Amount
			}
		}
	}
	var billed struct{ Sum int64 }
	err := s.db.WithContext(ctx).Model(&Charge{}).Select("COALESCE(SUM(amount), 0) AS sum").
		Where("org_id = ? AND status = ? AND stripe_invoice_id = ?", orgID, Billed, inv.ID).Scan(&billed).Error
	if err != nil {
		return 0, fmt.Errorf("overage billed on invoice %s of org %s: %w", inv.ID, orgID, err)
	}
	return max(total, 0) + billed.Sum, nil
}

// bill adds one pending charge to a draft invoice: claim (commit which
// invoice and attempt), call Stripe, record.
func (s *Service) bill(ctx context.Context, c Charge, inv *stripe.Invoice) error {
	if inv.Currency != "" && string(inv.Currency) != c.Currency {
		// Recorded for an invoice in another currency (the subscription
		// moved to a price in another currency, or the charge predates
		// per-currency overage prices): it waits, and is counted, for an
		// invoice in its currency or for the operator.
		return s.unbilled(ctx, c.OrgID, c.Meter, c.Period, inv.ID, unbilledCurrency,
			"overage not billed: the invoice is in another currency",
			"invoice_currency", inv.Currency, "overage_currency", c.Currency)
	}
	c, ok, err := s.target(ctx, c, inv.ID)
	if err != nil || !ok {
		return err
	}
	params := &stripe.InvoiceItemParams{
		Invoice:     stripe.String(inv.ID),
		Amount:      stripe.Int64(c.Amount),
		Currency:    stripe.String(c.Currency),
		Description: stripe.String(c.Description()),
	}
	if inv.Customer != nil {
		params.Customer = stripe.String(inv.Customer.ID)
	}
	params.Context = ctx
	params.SetIdempotencyKey(c.IdempotencyKey())
	params.AddMetadata(metaKey, c.IdempotencyKey())
	params.AddMetadata(metaOrgID, c.OrgID)
	params.AddMetadata("meter", c.Meter)
	params.AddMetadata("period", c.Period)
	item, err := s.stripe.InvoiceItems.New(params)
	if err != nil {
		return s.notAdded(ctx, c, inv.ID, err)
	}
	return s.record(ctx, c, inv.ID, item.ID)
}

// notAdded decides what Stripe's failure to add a charge's item to
// invoiceID means. In every case the charge stays pending: a later invoice
// first looks for it on this one, then offers it again under a new
// attempt.
//
//   - Stripe unavailable (stripeclient.Error's UNAVAILABLE), or Tollgate's
//     API key refused: the error fails the delivery, and Stripe's retry
//     offers the charge to this invoice again.
//   - The invoice is no longer a draft (finalized meanwhile, or deleted):
//     the charge waits for the next invoice, as for one seen finalized.
//   - Any other refusal (an amount or currency Stripe will not take for
//     this customer) would be refused on every retry: it is counted as
//     refused and logged at ERROR with Stripe's request id, once per
//     invoice, and the delivery succeeds.
func (s *Service) notAdded(ctx context.Context, c Charge, invoiceID string, err error) error {
	failed := stripeclient.Error("add overage item to invoice "+invoiceID, err)
	var se *stripe.Error
	if apperr.CodeOf(failed) != apperr.PaymentProviderRejected || !errors.As(err, &se) ||
		se.HTTPStatusCode == http.StatusUnauthorized || se.HTTPStatusCode == http.StatusForbidden {
		return failed
	}
	if invoiceClosed(se) {
		s.log.WarnContext(ctx, "the invoice is no longer a draft; the overage waits for the next one",
			"org_id", c.OrgID, "meter", c.Meter, "period", c.Period, "stripe_invoice_id", invoiceID,
			"stripe_request_id", se.RequestID, "stripe_code", se.Code)
		return nil
	}
	return s.unbilled(ctx, c.OrgID, c.Meter, c.Period, invoiceID, unbilledRefused,
		"overage not billed: Stripe refused the invoice item; it is offered again to the next invoice",
		"amount", money.Format(c.Amount, c.Currency), "stripe_request_id", se.RequestID, "stripe_code", se.Code,
		"stripe_param", se.Param, "error", se.Msg)
}

// invoiceClosed reports whether Stripe refused an item because its invoice
// takes no more: finalized (invoice_not_editable), or deleted while a
// draft (resource_missing, naming the invoice parameter).
func invoiceClosed(se *stripe.Error) bool {
	return se.Code == stripe.ErrorCodeInvoiceNotEditable ||
		se.Code == stripe.ErrorCodeResourceMissing && se.Param == "invoice"
}

// target makes inv the charge's invoice, committed before Stripe is
// called; false means leave the charge for now.
//
// A charge offered moments ago may still be in flight: the same invoice
// sends it again under the same key (Stripe answers a key once), another
// invoice waits. An older offer may have landed with its record lost, and
// Stripe forgets keys after 24 hours, so it is looked for on its invoice
// first; only a charge Stripe shows is not there is sent again, and to
// another invoice under a new attempt.
func (s *Service) target(ctx context.Context, c Charge, invoiceID string) (Charge, bool, error) {
	if c.StripeInvoiceID != nil {
		same := *c.StripeInvoiceID == invoiceID
		if s.clock.Now().Sub(c.UpdatedAt) < claimLease {
			return c, same, nil
		}
		itemID, err := s.findItem(ctx, c)
		if err != nil {
			return c, false, err
		}
		if itemID != "" {
			return c, false, s.record(ctx, c, *c.StripeInvoiceID, itemID)
		}
		if !same {
			c.Attempt++
		}
	}
	prev := c.StripeInvoiceID
	c.StripeInvoiceID, c.UpdatedAt = &invoiceID, s.clock.Now()
	q := s.db.WithContext(ctx).Model(&Charge{}).
		Where("org_id = ? AND meter = ? AND period = ? AND status = ?", c.OrgID, c.Meter, c.Period, Pending)
	if prev == nil {
		q = q.Where("stripe_invoice_id IS NULL")
	} else {
		// Only a lapsed offer is taken over, and only once: the winner's
		// write renews updated_at.
		q = q.Where("stripe_invoice_id = ? AND updated_at <= ?", *prev, c.UpdatedAt.Add(-claimLease))
	}
	res := q.Updates(map[string]any{"stripe_invoice_id": invoiceID, "attempt": c.Attempt, "updated_at": c.UpdatedAt})
	if res.Error != nil {
		return c, false, fmt.Errorf("claim overage %s/%s/%s for invoice %s: %w", c.OrgID, c.Meter, c.Period, invoiceID, res.Error)
	}
	// Zero rows: another delivery or `stripe sync` claimed it first and
	// finishes it.
	return c, res.RowsAffected == 1, nil
}

// findItem looks for the charge's item on the invoice it was last offered
// to, by the metadata Tollgate put on it; "" when it is not there.
func (s *Service) findItem(ctx context.Context, c Charge) (string, error) {
	params := &stripe.InvoiceItemListParams{Invoice: c.StripeInvoiceID}
	params.Context = ctx
	it := s.stripe.InvoiceItems.List(params)
	for it.Next() {
		if ii := it.InvoiceItem(); ii.Metadata[metaKey] == c.IdempotencyKey() {
			return ii.ID, nil
		}
	}
	if err := it.Err(); err != nil {
		return "", stripeclient.Error("list items of invoice "+*c.StripeInvoiceID, err)
	}
	return "", nil
}

// record marks a charge billed as item itemID on invoiceID, and tells
// OnBilled in the same transaction.
func (s *Service) record(ctx context.Context, c Charge, invoiceID, itemID string) error {
	now := s.clock.Now()
	return s.db.Tx(ctx, func(tx *gorm.DB) error {
		res := tx.Model(&Charge{}).
			Where("org_id = ? AND meter = ? AND period = ? AND status = ?", c.OrgID, c.Meter, c.Period, Pending).
			Updates(map[string]any{"status": Billed, "stripe_invoice_id": invoiceID, "stripe_item_id": itemID,
				"billed_at": now, "updated_at": now})
		if res.Error != nil {
			return fmt.Errorf("record overage %s/%s/%s billed: %w", c.OrgID, c.Meter, c.Period, res.Error)
		}
		if res.RowsAffected == 0 || s.OnBilled == nil {
			return nil // already recorded by a concurrent retry
		}
		c.Status, c.StripeInvoiceID, c.StripeItemID, c.BilledAt, c.UpdatedAt = Billed, &invoiceID, &itemID, &now, now
		return s.OnBilled(ctx, tx, c)
	})
}
