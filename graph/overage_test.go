package graph_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/apptest"
	"github.com/tollgate-billing/tollgate/internal/billing"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/invoices"
	"github.com/tollgate-billing/tollgate/internal/overage"
	"github.com/tollgate-billing/tollgate/internal/plans"
	"github.com/tollgate-billing/tollgate/internal/testenv"
	"github.com/tollgate-billing/tollgate/internal/usage"
)

func orgID(t *testing.T, h *apptest.Harness, org string) string {
	t.Helper()
	var o struct{ Organization struct{ ID string } }
	h.Query(org, `{ organization { id } }`, nil).Decode(t, &o)
	return o.Organization.ID
}

// TestInvoicesShowTheirOverageLines: a dashboard reads what overage went on
// each invoice, and never another organisation's.
func TestInvoicesShowTheirOverageLines(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	acme, other := orgID(t, h, "acme"), orgID(t, h, "other")
	now := h.Clock.Now()
	if err := h.App.DB.Create(&invoices.Invoice{ID: "in_ov", OrgID: acme, Status: "draft", Currency: "usd", CreatedAt: now, UpdatedAt: now}).Error; err != nil {
		t.Fatal(err)
	}
	inv, item := "in_ov", "ii_1"
	charge := func(org string) overage.Charge {
		return overage.Charge{OrgID: org, Meter: "api_calls", Period: "2026-10", Quantity: 2500, Allowance: 100000,
			UnitAmount: 50, Per: 1000, Amount: 150, Currency: "usd", Status: overage.Billed, Attempt: 1,
			StripeInvoiceID: &inv, StripeItemID: &item, BilledAt: &now, CreatedAt: now, UpdatedAt: now}
	}
	// A charge of another organisation naming the same invoice id must not
	// leak into acme's invoice.
	if err := h.App.DB.Create([]overage.Charge{charge(acme), charge(other)}).Error; err != nil {
		t.Fatal(err)
	}
	var got struct {
		Invoices struct {
			Nodes []struct {
				ID      string
				Overage []struct {
					Meter, Period, Description string
					Quantity, AmountCents      int64
				}
			}
		}
	}
	h.Query("acme", `{ invoices { nodes { id overage { meter period quantity amountCents description } } } }`, nil).Decode(t, &got)
	if len(got.Invoices.Nodes) != 1 || len(got.Invoices.Nodes[0].Overage) != 1 {
		t.Fatalf("invoices = %+v, want one with one overage line", got)
	}
	l := got.Invoices.Nodes[0].Overage[0]
	if l.Meter != "api_calls" || l.Period != "2026-10" || l.Quantity != 2500 || l.AmountCents != 150 ||
		!strings.Contains(l.Description, "October 2026") {
		t.Fatalf("overage line = %+v", l)
	}
}

// TestUpcomingInvoice: null on free; on Starter, Stripe's preview beside
// the overage of the month so far, worked out from the usage recorded.
func TestUpcomingInvoice(t *testing.T) {
	// The plan's price, which the expected amounts are worked out from.
	const limit, unit, per = 20_000, 37, 500
	fc := clock.NewFake(time.Date(2026, 10, 10, 12, 0, 0, 0, time.UTC))
	h := apptest.New(t, apptest.Options{Clock: fc, Env: map[string]string{
		"STRIPE_SECRET_KEY": "sk_test_tollgate", "STRIPE_API_BASE": testenv.StripeMock(t),
		"PLANS_FILE": plansFileWith(t, "api_calls:     { limit: 100000, hard: false, overage: { unit_amount_cents: 50, per: 1000 } }",
			fmt.Sprintf("api_calls:     { limit: %d, hard: false, overage: { unit_amount_cents: %d, per: %d } }", limit, unit, per)),
	}})
	const q = `{ upcomingInvoice { stripe { currency total lines { kind amountCents } }
	  overageSoFar { meter period quantity amountCents } overageSoFarCents } }`
	type upcoming struct {
		UpcomingInvoice *struct {
			Stripe struct {
				Currency string
				Lines    []struct{ Kind string }
			}
			OverageSoFar []struct {
				Meter, Period         string
				Quantity, AmountCents int64
			}
			OverageSoFarCents int64
		}
	}
	var free upcoming
	h.Query("acme", q, nil).Decode(t, &free)
	if free.UpcomingInvoice != nil {
		t.Fatalf("free plan has an upcoming invoice: %+v", free.UpcomingInvoice)
	}

	ctx := context.Background()
	org := orgID(t, h, "acme")
	subscribeToStarter(t, h, fc, org, "up")
	const used = limit + 1500
	if _, err := h.App.Usage.Record(ctx, org, []usage.Event{{Meter: "api_calls", Quantity: used, IdempotencyKey: "up-1"}}); err != nil {
		t.Fatal(err)
	}

	var up upcoming
	h.Query("acme", q, nil).Decode(t, &up)
	u := up.UpcomingInvoice
	if u == nil || u.Stripe.Currency == "" {
		t.Fatalf("upcoming invoice on starter = %+v", u)
	}
	const want = (used - limit + per - 1) / per * unit // three started packages
	if len(u.OverageSoFar) != 1 || u.OverageSoFar[0].Meter != "api_calls" || u.OverageSoFar[0].Period != "2026-10" ||
		u.OverageSoFar[0].Quantity != used-limit || u.OverageSoFar[0].AmountCents != want || u.OverageSoFarCents != want {
		t.Fatalf("overage so far = %+v (total %d), want api_calls %d over for %d", u.OverageSoFar, u.OverageSoFarCents, used-limit, want)
	}
}

// TestUpcomingInvoiceWithAnOverageTooLargeToBill: a meter's overage past
// what one invoice item carries nulls overageSoFarCents alone, with
// AMOUNT_OUT_OF_RANGE at that field; Stripe's preview and the meters that
// can be billed still show.
func TestUpcomingInvoiceWithAnOverageTooLargeToBill(t *testing.T) {
	fc := clock.NewFake(time.Date(2026, 10, 10, 12, 0, 0, 0, time.UTC))
	h := apptest.New(t, apptest.Options{Clock: fc, Env: map[string]string{
		"STRIPE_SECRET_KEY": "sk_test_tollgate", "STRIPE_API_BASE": testenv.StripeMock(t),
		"PLANS_FILE": plansFileWith(t, "overage: { unit_amount_cents: 50, per: 1000 }", "overage: { unit_amount_cents: 1000000, per: 1 }"),
	}})
	ctx := context.Background()
	org := orgID(t, h, "acme")
	starter, _ := h.App.Catalog.ByID("starter")
	subscribeToStarter(t, h, fc, org, "big")
	tokens, _ := starter.LimitFor("llm_tokens")
	_, err := h.App.Usage.Record(ctx, org, []usage.Event{
		{Meter: "api_calls", Quantity: usage.MaxQuantity, IdempotencyKey: "big-1"},
		{Meter: "llm_tokens", Quantity: tokens.Limit + 1, IdempotencyKey: "big-2"},
	})
	if err != nil {
		t.Fatal(err)
	}

	res := h.Query("acme", `{ upcomingInvoice { stripe { currency } overageSoFar { meter amountCents } overageSoFarCents } }`, nil)
	if len(res.Errors) != 1 || res.Code() != string(overage.CodeAmountOutOfRange) ||
		fmt.Sprint(res.Errors[0].Path) != fmt.Sprint([]any{"upcomingInvoice", "overageSoFarCents"}) {
		t.Fatalf("errors = %+v; want one AMOUNT_OUT_OF_RANGE at upcomingInvoice.overageSoFarCents", res.Errors)
	}
	var got struct {
		UpcomingInvoice *struct {
			Stripe            struct{ Currency string }
			OverageSoFar      []struct{ Meter string }
			OverageSoFarCents *int64
		}
	}
	if err := json.Unmarshal(res.Data, &got); err != nil {
		t.Fatal(err)
	}
	u := got.UpcomingInvoice
	if u == nil || u.Stripe.Currency == "" {
		t.Fatalf("upcomingInvoice = %s; want Stripe's preview beside the error", res.Data)
	}
	if len(u.OverageSoFar) != 1 || u.OverageSoFar[0].Meter != "llm_tokens" || u.OverageSoFarCents != nil {
		t.Fatalf("overage so far = %s; want llm_tokens only and a null total", res.Data)
	}
}

// plansFileWith writes the default plans with the first occurrence of old
// (starter's lines come before growth's) replaced by repl, and returns its
// path.
func plansFileWith(t *testing.T, old, repl string) string {
	t.Helper()
	yaml := string(plans.DefaultsYAML())
	if !strings.Contains(yaml, old) {
		t.Fatalf("the default plans no longer hold %q", old)
	}
	path := filepath.Join(t.TempDir(), "plans.yaml")
	if err := os.WriteFile(path, []byte(strings.Replace(yaml, old, repl, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// subscribeToStarter links the customer cus_<name> to org and applies an
// active starter subscription sub_<name> whose period starts now, as
// Stripe's events would.
func subscribeToStarter(t *testing.T, h *apptest.Harness, fc *clock.Fake, org, name string) {
	t.Helper()
	ctx := context.Background()
	starter, _ := h.App.Catalog.ByID("starter")
	sub := &stripe.Subscription{
		ID: "sub_" + name, Customer: &stripe.Customer{ID: "cus_" + name}, Status: stripe.SubscriptionStatusActive,
		Created: fc.Now().Unix(), CurrentPeriodStart: fc.Now().Unix(), CurrentPeriodEnd: fc.Now().AddDate(0, 1, 0).Unix(),
		Items: &stripe.SubscriptionItemList{Data: []*stripe.SubscriptionItem{{Price: &stripe.Price{ID: starter.StripePriceID}}}},
	}
	err := h.App.DB.Tx(ctx, func(tx *gorm.DB) error {
		if _, err := h.App.Billing.LinkCustomer(ctx, tx, org, "cus_"+name); err != nil {
			return err
		}
		_, err := h.App.Billing.ApplySubscription(ctx, tx, billing.SubscriptionUpdate{Sub: sub, At: fc.Now(), OrgID: org, Rank: billing.RankFetched})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	h.App.Usage.InvalidatePlan(org)
}
