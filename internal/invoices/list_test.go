package invoices_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/invoices"
	"github.com/tollgate-billing/tollgate/internal/orgs"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/stripeclient/stripetest"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

var statuses = []stripe.InvoiceStatus{"paid", "open", "void", "paid", "uncollectible", "draft", "paid"}

// seed stores n invoices for a new organisation, several created in the
// same second so that the id breaks ties, and returns the organisation.
func seed(t *testing.T, db *store.DB, svc *invoices.Service, n int) string {
	t.Helper()
	ctx := context.Background()
	org, err := orgs.NewService(db, clock.Real{}).Ensure(ctx, "ext-"+store.NewID(), "Acme", "")
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	err = db.Tx(ctx, func(tx *gorm.DB) error {
		for i := range n {
			inv := &stripe.Invoice{
				ID: fmt.Sprintf("in_%s_%03d", org[:8], i), Status: statuses[i%len(statuses)],
				Created: base.Add(time.Duration(i/3) * time.Hour).Unix(), Currency: "usd",
				Total: int64(4900 + i), AmountDue: 4900, Customer: &stripe.Customer{ID: "cus_" + org},
			}
			if _, err := svc.Apply(ctx, tx, org, inv, base); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("seed invoices: %v", err)
	}
	return org
}

func TestPaginationVisitsEveryInvoiceOnceNewestFirst(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		svc := invoices.NewService(db, clock.Real{}, stripetest.Discard())
		org := seed(t, db, svc, 250)
		for _, pageSize := range []int{1, 7, 100} {
			t.Run(fmt.Sprintf("pages of %d", pageSize), func(t *testing.T) {
				seen := map[string]bool{}
				var prev *invoices.Invoice
				after, pages := "", 0
				for {
					p, err := svc.List(context.Background(), org, pageSize, after, "")
					if err != nil {
						t.Fatal(err)
					}
					pages++
					for i := range p.Invoices {
						inv := p.Invoices[i]
						if seen[inv.ID] {
							t.Fatalf("invoice %s listed twice", inv.ID)
						}
						seen[inv.ID] = true
						if prev != nil && (inv.CreatedAt.After(prev.CreatedAt) || inv.CreatedAt.Equal(prev.CreatedAt) && inv.ID >= prev.ID) {
							t.Fatalf("%s (%s) listed after %s (%s): not newest first", inv.ID, inv.CreatedAt, prev.ID, prev.CreatedAt)
						}
						prev = &inv
					}
					if len(p.Invoices) > 0 && p.EndCursor != p.Cursors[len(p.Cursors)-1] {
						t.Fatal("endCursor is not the last edge's cursor")
					}
					if !p.HasNextPage {
						break
					}
					after = p.EndCursor
				}
				if len(seen) != 250 {
					t.Fatalf("listed %d invoices, want 250", len(seen))
				}
				if want := (250 + pageSize - 1) / pageSize; pages != want {
					t.Fatalf("took %d pages, want %d", pages, want)
				}
			})
		}
		t.Run("first is capped at 100", func(t *testing.T) {
			p, err := svc.List(context.Background(), org, 1000, "", "")
			if err != nil || len(p.Invoices) != 100 || !p.HasNextPage {
				t.Fatalf("got %d invoices, next=%v, err %v; want 100 and more", len(p.Invoices), p.HasNextPage, err)
			}
		})
		t.Run("a middle cursor continues after its invoice", func(t *testing.T) {
			p, _ := svc.List(context.Background(), org, 10, "", "")
			rest, err := svc.List(context.Background(), org, 5, p.Cursors[4], "")
			if err != nil {
				t.Fatal(err)
			}
			for i := range 5 {
				if rest.Invoices[i].ID != p.Invoices[5+i].ID {
					t.Fatalf("after cursor 5: %s, want %s", rest.Invoices[i].ID, p.Invoices[5+i].ID)
				}
			}
		})
	})
}

func TestStatusFilter(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		svc := invoices.NewService(db, clock.Real{}, stripetest.Discard())
		org := seed(t, db, svc, 70)
		want := map[string]int{}
		for i := range 70 {
			want[string(statuses[i%len(statuses)])]++
		}
		for _, status := range invoices.Statuses {
			t.Run(status, func(t *testing.T) {
				got, after := 0, ""
				for {
					p, err := svc.List(context.Background(), org, 8, after, status)
					if err != nil {
						t.Fatal(err)
					}
					for _, inv := range p.Invoices {
						if inv.Status != status {
							t.Fatalf("filter %s returned a %s invoice", status, inv.Status)
						}
					}
					got += len(p.Invoices)
					if !p.HasNextPage {
						break
					}
					after = p.EndCursor
				}
				if got != want[status] {
					t.Fatalf("%d %s invoices, want %d", got, status, want[status])
				}
			})
		}
	})
}

func TestAnotherOrgSeesNoInvoices(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		svc := invoices.NewService(db, clock.Real{}, stripetest.Discard())
		owner := seed(t, db, svc, 5)
		other := seed(t, db, svc, 0)
		p, err := svc.List(context.Background(), other, 100, "", "")
		if err != nil || len(p.Invoices) != 0 || p.HasNextPage || p.EndCursor != "" {
			t.Fatalf("other org sees %d invoices (err %v), want none", len(p.Invoices), err)
		}
		// A cursor taken from the owner's list gives nothing of the owner's.
		mine, _ := svc.List(context.Background(), owner, 1, "", "")
		p, err = svc.List(context.Background(), other, 100, mine.EndCursor, "")
		if err != nil || len(p.Invoices) != 0 {
			t.Fatalf("other org with the owner's cursor sees %d invoices (err %v), want none", len(p.Invoices), err)
		}
	})
}

func TestListRejectsBadArguments(t *testing.T) {
	db := testenv.DB(t)
	svc := invoices.NewService(db, clock.Real{}, stripetest.Discard())
	forged := func(at string) string { return base64.RawURLEncoding.EncodeToString([]byte("v1|" + at + "|in_1")) }
	cases := []struct {
		name   string
		first  int
		after  string
		status string
	}{
		{"first of zero", 0, "", ""},
		{"negative first", -5, "", ""},
		{"a cursor that is not base64", 10, "%%%", ""},
		{"a cursor that is base64 of nothing useful", 10, "aGVsbG8", ""},
		{"an offset instead of a cursor", 10, "20", ""},
		// Cursors this list never writes: it writes UTC, in one form, of
		// an invoice's date.
		{"a cursor of year 1", 10, forged("0001-01-01T00:00:00Z"), ""},
		{"a cursor with a +24:00 offset", 10, forged("2026-01-02T00:00:00+24:00"), ""},
		{"a cursor with another offset", 10, forged("2026-01-01T02:00:00+02:00"), ""},
		{"an unknown status", 10, "", "refunded"},
		{"an upper-case status", 10, "", "PAID"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := svc.List(context.Background(), "org", tc.first, tc.after, tc.status)
			if apperr.CodeOf(err) != apperr.BadInput {
				t.Fatalf("error = %v, want BAD_USER_INPUT", err)
			}
		})
	}
}
