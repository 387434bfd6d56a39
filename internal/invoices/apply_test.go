package invoices_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/invoices"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/stripeclient/stripetest"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

func TestApplyKeepsTheNewestInvoiceState(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		svc := invoices.NewService(db, clock.Real{}, stripetest.Discard())
		org := seed(t, db, svc, 0)
		ctx := context.Background()
		t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		apply := func(status stripe.InvoiceStatus, paid int64, at time.Time) invoices.Applied {
			inv := &stripe.Invoice{ID: "in_order", Status: status, Currency: "usd", Total: 4900, AmountDue: 4900,
				AmountPaid: paid, Created: t0.Unix(), Number: "ACME-0001", HostedInvoiceURL: "https://invoice.stripe.com/i/x",
				InvoicePDF: "https://pay.stripe.com/invoice/x/pdf", PeriodStart: t0.Unix(), PeriodEnd: t0.AddDate(0, 1, 0).Unix()}
			if status == "paid" {
				inv.StatusTransitions = &stripe.InvoiceStatusTransitions{PaidAt: at.Unix()}
			}
			var res invoices.Applied
			if err := db.Tx(ctx, func(tx *gorm.DB) error {
				var err error
				res, err = svc.Apply(ctx, tx, org, inv, at)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			return res
		}
		apply("paid", 4900, t0.Add(2*time.Minute))
		if res := apply("open", 0, t0.Add(time.Minute)); !res.Stale {
			t.Fatal("an older open event was applied over paid")
		}
		p, err := svc.List(ctx, org, 10, "", "")
		if err != nil || len(p.Invoices) != 1 {
			t.Fatalf("%d invoices, err %v", len(p.Invoices), err)
		}
		inv := p.Invoices[0]
		if inv.Status != "paid" || inv.AmountPaid != 4900 || inv.PaidAt == nil || !inv.PaidAt.Equal(t0.Add(2*time.Minute)) ||
			inv.Number == nil || *inv.Number != "ACME-0001" || inv.PDFURL == nil || inv.PeriodEnd == nil || !inv.CreatedAt.Equal(t0) {
			t.Fatalf("stored %+v, want the paid invoice with its number, URLs, period and paid time", inv)
		}
		if res := apply("void", 0, t0.Add(3*time.Minute)); res.Stale || len(res.Changes) == 0 {
			t.Fatalf("a newer event: %+v, want applied with changes", res)
		}
	})
}

// TestPaidAndFinalizedInTheSameSecond: Stripe sends invoice.finalized (open)
// and invoice.paid in one second, in either order; the invoice ends paid.
func TestPaidAndFinalizedInTheSameSecond(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		svc := invoices.NewService(db, clock.Real{}, stripetest.Discard())
		org := seed(t, db, svc, 0)
		ctx := context.Background()
		at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		for _, paidFirst := range []bool{true, false} {
			id := fmt.Sprintf("in_tie_%v", paidFirst)
			open := &stripe.Invoice{ID: id, Status: "open", Currency: "usd", Total: 4900, AmountDue: 4900, Created: at.Unix()}
			paid := &stripe.Invoice{ID: id, Status: "paid", Currency: "usd", Total: 4900, AmountDue: 4900, AmountPaid: 4900, Created: at.Unix()}
			order := []*stripe.Invoice{open, paid}
			if paidFirst {
				order = []*stripe.Invoice{paid, open}
			}
			for _, inv := range order {
				if err := db.Tx(ctx, func(tx *gorm.DB) error { _, err := svc.Apply(ctx, tx, org, inv, at); return err }); err != nil {
					t.Fatal(err)
				}
			}
			var row invoices.Invoice
			db.Where("id = ?", id).Take(&row)
			if row.Status != "paid" || row.AmountPaid != 4900 {
				t.Fatalf("paid first %v: stored %s, paid %d; want paid 4900", paidFirst, row.Status, row.AmountPaid)
			}
		}
	})
}
