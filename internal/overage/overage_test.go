package overage_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
	"github.com/stripe/stripe-go/v76/webhook"
	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/billing"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/invoices"
	"github.com/tollgate-billing/tollgate/internal/money"
	"github.com/tollgate-billing/tollgate/internal/orgs"
	"github.com/tollgate-billing/tollgate/internal/overage"
	"github.com/tollgate-billing/tollgate/internal/plans"
	"github.com/tollgate-billing/tollgate/internal/reconcile"
	"github.com/tollgate-billing/tollgate/internal/redisconn"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/stripeclient/stripetest"
	"github.com/tollgate-billing/tollgate/internal/stripehook"
	"github.com/tollgate-billing/tollgate/internal/testenv"
	"github.com/tollgate-billing/tollgate/internal/usage"
)

const secret = "whsec_overage_test"

// october is when the test's usage happens: mid-month on the fake clock.
var october = time.Date(2026, 10, 10, 12, 0, 0, 0, time.UTC)

// fixture is the webhook endpoint and `stripe sync` with the real services
// behind them, on a fake clock, billing a Starter organisation through
// stripe-mock; rec sees every request Tollgate sends to Stripe.
type fixture struct {
	t       *testing.T
	db      *store.DB
	clock   *clock.Fake
	catalog *plans.Catalog
	// prices are the overage prices the test wrote into catalog.
	prices   map[string]overagePrice
	rec      *stripetest.Recorder
	redis    *redisconn.Client
	sc       *client.API
	billing  *billing.Service
	invoices *invoices.Service
	usage    *usage.Service
	overage  *overage.Service
	handler  http.Handler
	org      string
	customer string
	sub      string
	// currency is that of the price the organisation subscribed to, and
	// of its invoices.
	currency string
	// billed are the charges OnBilled heard of, in order.
	billed []overage.Charge
	// logs is what the overage service logged.
	logs *stripetest.LogBuffer
}

// logged are the lines the overage service logged so far that contain
// every one of parts.
func (f *fixture) logged(parts ...string) []string {
	var out []string
	for _, l := range strings.Split(f.logs.String(), "\n") {
		if l != "" && !slices.ContainsFunc(parts, func(p string) bool { return !strings.Contains(l, p) }) {
			out = append(out, l)
		}
	}
	return out
}

func newFixture(t *testing.T, db *store.DB) *fixture {
	return newFixtureTo(t, db, http.DefaultTransport)
}

// newFixtureTo is a fixture whose requests to Stripe go through next, a
// stub that may answer some of them itself.
func newFixtureTo(t *testing.T, db *store.DB, next http.RoundTripper) *fixture {
	return newFixtureOn(t, db, next, starterOverage, "usd")
}

// newFixtureOn is a fixture whose organisation subscribes to starter,
// priced as prices says (starterCatalog), at its monthly price in
// currency.
func newFixtureOn(t *testing.T, db *store.DB, next http.RoundTripper, prices map[string]overagePrice, currency string) *fixture {
	t.Helper()
	f := newUnsubscribedFixture(t, db, next, prices, october)
	f.subscribe(currency)
	return f
}

// newUnsubscribedFixture is a fixture whose organisation is created at
// created, on the free plan, with no subscription yet; the clock starts
// there.
func newUnsubscribedFixture(t *testing.T, db *store.DB, next http.RoundTripper, prices map[string]overagePrice, created time.Time) *fixture {
	t.Helper()
	f := &fixture{t: t, db: db, clock: clock.NewFake(created), rec: stripetest.NewRecorderTo(next), redis: testenv.MiniRedis(t),
		logs: &stripetest.LogBuffer{}}
	f.sc = stripetest.Client(t, f.rec)
	f.start(prices)
	org, err := orgs.NewService(db, f.clock).Ensure(context.Background(), "ext-"+store.NewID(), "Acme", "")
	if err != nil {
		t.Fatal(err)
	}
	f.org, f.customer, f.sub = org, "cus_"+store.NewID()[:8], "sub_"+store.NewID()[:8]
	return f
}

// subscribe subscribes the organisation to starter now, at its monthly
// price in currency, as Stripe's subscription object tells it.
func (f *fixture) subscribe(currency string) {
	t, ctx, now := f.t, context.Background(), f.clock.Now()
	t.Helper()
	starter, _ := f.catalog.ByID("starter")
	price, ok := starter.PriceByID(starterPriceID(currency))
	if !ok {
		t.Fatalf("starter has no price in %s", currency)
	}
	f.currency = price.Currency
	sub := &stripe.Subscription{
		ID: f.sub, Customer: &stripe.Customer{ID: f.customer}, Status: stripe.SubscriptionStatusActive,
		Created: now.Unix(), CurrentPeriodStart: now.Unix(), CurrentPeriodEnd: now.AddDate(0, 1, 0).Unix(),
		Items: &stripe.SubscriptionItemList{Data: []*stripe.SubscriptionItem{{Price: &stripe.Price{ID: price.ID}}}},
	}
	err := f.db.Tx(ctx, func(tx *gorm.DB) error {
		if _, err := f.billing.LinkCustomer(ctx, tx, f.org, f.customer); err != nil {
			return err
		}
		_, err := f.billing.ApplySubscription(ctx, tx, billing.SubscriptionUpdate{Sub: sub, At: now, OrgID: f.org, Rank: billing.RankFetched})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	f.usage.InvalidatePlan(f.org)
	if p, _, err := f.billing.PlanOf(ctx, f.org); err != nil || p.ID != "starter" {
		t.Fatalf("organisation is on %q (err %v), want starter", p.ID, err)
	}
}

// start runs Tollgate's services on the fixture's database, billing by a
// plans file priced as prices says; calling it again is a restart with a
// new plans file.
func (f *fixture) start(prices map[string]overagePrice) {
	log := stripetest.Discard()
	f.catalog, f.prices = starterCatalog(f.t, prices), prices
	f.billing = billing.NewService(f.db, f.catalog, f.clock, f.sc, log)
	f.invoices = invoices.NewService(f.db, f.clock, log)
	f.usage = usage.NewService(f.db, f.redis, f.catalog, f.billing, f.clock, log)
	f.overage = overage.NewService(f.db, f.usage, f.billing, f.sc, f.clock, slog.New(slog.NewTextHandler(f.logs, nil)))
	f.overage.OnBilled = func(_ context.Context, _ *gorm.DB, c overage.Charge) error {
		f.billed = append(f.billed, c)
		return nil
	}
	f.billing.OnCycleInvoice(f.overage.InvoiceCreated)
	f.billing.OnSubscriptionEnded(f.overage.SubscriptionEnded)
	f.handler = stripehook.NewHandler(stripehook.Config{
		DB: f.db, Billing: f.billing, Invoices: f.invoices, Secret: secret, Clock: f.clock, Log: log,
	})
}

// record counts quantity of meter now, as one event.
func (f *fixture) record(meter string, quantity int64) {
	f.t.Helper()
	res, err := f.usage.Record(context.Background(), f.org, []usage.Event{{Meter: meter, Quantity: quantity, IdempotencyKey: store.NewID()}})
	if err != nil {
		f.t.Fatal(err)
	}
	if res.Accepted != 1 {
		f.t.Fatalf("recording %d %s: %+v", quantity, meter, res)
	}
}

// invoiceCreated is Stripe's invoice.created event for a subscription-cycle
// invoice of the organisation, created now.
func (f *fixture) invoiceCreated(eventID, invoiceID, status string) []byte {
	now := f.clock.Now().Unix()
	b, err := json.Marshal(map[string]any{
		"id": eventID, "object": "event", "api_version": "2024-06-20", "created": now,
		"type": "invoice.created", "livemode": false, "pending_webhooks": 1,
		"data": map[string]any{"object": map[string]any{
			"id": invoiceID, "object": "invoice", "customer": f.customer, "subscription": f.sub,
			"status": status, "currency": f.currency, "billing_reason": "subscription_cycle",
			"amount_due": 4900, "amount_paid": 0, "total": 4900, "created": now,
			"period_start": now, "period_end": now,
			"lines":    map[string]any{"object": "list", "data": []any{}, "has_more": false},
			"livemode": false,
		}},
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

// deliver signs body as Stripe does and posts it; it must be answered 200.
func (f *fixture) deliver(body []byte) {
	f.t.Helper()
	if code, msg := f.post(body); code != http.StatusOK {
		f.t.Fatalf("delivery answered %d: %s", code, msg)
	}
}

// deliverFailing delivers body and requires Stripe to be told to retry.
func (f *fixture) deliverFailing(body []byte) {
	f.t.Helper()
	if code, msg := f.post(body); code != http.StatusInternalServerError {
		f.t.Fatalf("delivery answered %d, want 500 so Stripe retries: %s", code, msg)
	}
}

// post signs body as Stripe would at the fixture's now: the handler judges
// a signature's age by its clock.
func (f *fixture) post(body []byte) (int, string) {
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: f.clock.Now()})
	req := httptest.NewRequest(http.MethodPost, "/webhooks/stripe", bytes.NewReader(body))
	req.Header.Set("Stripe-Signature", signed.Header)
	w := httptest.NewRecorder()
	f.handler.ServeHTTP(w, req)
	return w.Code, w.Body.String()
}

func (f *fixture) sync() {
	f.t.Helper()
	err := reconcile.New(f.db, f.billing, f.invoices, f.sc, f.clock, stripetest.Discard()).
		WithOverage(f.overage).Sync(context.Background(), f.org, io.Discard)
	if err != nil {
		f.t.Fatal(err)
	}
}

// items are the invoice items Tollgate asked Stripe to create.
func (f *fixture) items() []stripetest.Request {
	return f.rec.Matching(http.MethodPost, "/v1/invoiceitems")
}

// charges are the organisation's charges, pending or billed: its
// overage_charges rows but those that settle a meter's month at nothing.
func (f *fixture) charges() []overage.Charge {
	f.t.Helper()
	var out []overage.Charge
	if err := f.db.Where("org_id = ? AND status <> ?", f.org, overage.NoOverage).Order("period, meter").Find(&out).Error; err != nil {
		f.t.Fatal(err)
	}
	return out
}

// expected is what a meter's overage should cost, worked out from the
// usage the test recorded and the plan's prices in the fixture's currency.
type expected struct {
	meter, period           string
	over, amount, unit, per int64
	// unitText is the unit price as the description writes it.
	unitText string
}

// decimals are the digits of a minor unit in the currencies these tests
// bill in, as Stripe counts them.
var decimals = map[string]int64{"usd": 2, "eur": 2, "jpy": 0}

// expect works out what a meter's overage costs from the usage the test
// recorded and the prices it wrote into the plan (f.prices), in the
// fixture's currency: never from the code under test.
func (f *fixture) expect(meter, period string, used int64) expected {
	p, ok := f.prices[meter]
	if !ok {
		f.t.Fatalf("the test priced no overage of %s", meter)
	}
	over := used - p.limit
	packages := (over + p.per - 1) / p.per
	unit, ok := p.unit[f.currency]
	if !ok {
		f.t.Fatalf("the test priced %s's overage in no %s", meter, f.currency)
	}
	text := fmt.Sprintf("%d %s", unit, strings.ToUpper(f.currency))
	if d, ok := decimals[f.currency]; !ok {
		f.t.Fatalf("the test does not know how many decimals %s has", f.currency)
	} else if d == 2 {
		text = fmt.Sprintf("%d.%02d %s", unit/100, unit%100, strings.ToUpper(f.currency))
	}
	return expected{meter: meter, period: period, over: over, amount: packages * unit,
		unit: unit, per: p.per, unitText: fmt.Sprintf("at %s per %d", text, p.per)}
}

// overagePrice is how the test prices one meter's overage in starter:
// unit[currency] minor units for every started per units past limit.
type overagePrice struct {
	limit, per int64
	unit       map[string]int64
}

// starterOverage are the overage prices of the tests' starter plan, sold in
// usd (its headline currency), eur and jpy.
var starterOverage = map[string]overagePrice{
	"api_calls":  {limit: 100_000, per: 1000, unit: map[string]int64{"usd": 50, "eur": 45, "jpy": 75}},
	"llm_tokens": {limit: 1_000_000, per: 10_000, unit: map[string]int64{"usd": 20, "eur": 18, "jpy": 3}},
}

// proOverage are the overage prices of the tests' pro plan, sold in usd.
var proOverage = map[string]overagePrice{
	"api_calls":  {limit: 50_000, per: 1000, unit: map[string]int64{"usd": 80}},
	"llm_tokens": {limit: 500_000, per: 10_000, unit: map[string]int64{"usd": 30}},
}

// proPriceID is the Stripe id of pro's monthly price.
const proPriceID = "price_test_pro_usd"

// starterPriceID is the Stripe id of starter's monthly price in currency.
func starterPriceID(currency string) string { return "price_test_starter_" + currency }

// starterCatalog writes the plans file the tests bill by: a free plan, and
// starter, sold monthly in each currency its overage is priced in, with a
// soft limit priced as prices says on each of its meters and a hard limit
// on storage.
func starterCatalog(t *testing.T, prices map[string]overagePrice) *plans.Catalog {
	t.Helper()
	var sold []string
	for c := range prices["api_calls"].unit {
		sold = append(sold, c)
	}
	slices.Sort(sold)
	var b strings.Builder
	b.WriteString(`meters:
  - { name: api_calls, reset: monthly }
  - { name: llm_tokens, reset: monthly }
  - { name: storage_bytes, reset: never }
plans:
  - id: free
    name: Free
    rate_limit_per_second: 10
    limits:
      api_calls: { limit: 1000, hard: true }
      llm_tokens: { limit: 10000, hard: true }
      storage_bytes: { limit: 1048576, hard: true }
  - id: enterprise
    name: Enterprise
    price_cents: 0
    currency: usd
    interval: month
    contact_sales: true
    rate_limit_per_second: 2000
    limits:
      api_calls: { unlimited: true }
      llm_tokens: { unlimited: true }
      storage_bytes: { unlimited: true }
  - id: starter
    name: Starter
    rate_limit_per_second: 100
    prices:
      - { id: price_test_starter_usd, interval: month, amount_cents: 4900, currency: usd }
`)
	for _, c := range sold {
		if c != "usd" {
			fmt.Fprintf(&b, "      - { id: %s, interval: month, amount_cents: 4900, currency: %s }\n", starterPriceID(c), c)
		}
	}
	b.WriteString("    limits:\n      storage_bytes: { limit: 10737418240, hard: true }\n")
	for _, meter := range slices.Sorted(maps.Keys(prices)) {
		p := prices[meter]
		var others []string
		for _, c := range sold {
			if c != "usd" {
				others = append(others, fmt.Sprintf("%s: %d", c, p.unit[c]))
			}
		}
		fmt.Fprintf(&b, "      %s: { limit: %d, hard: false, overage: { unit_amount_cents: %d, per: %d, currency_amounts: { %s } } }\n",
			meter, p.limit, p.unit["usd"], p.per, strings.Join(others, ", "))
	}
	// pro: another paid plan, with other allowances and prices, to move to.
	fmt.Fprintf(&b, `  - id: pro
    name: Pro
    rate_limit_per_second: 100
    prices:
      - { id: %s, interval: month, amount_cents: 9900, currency: usd }
    limits:
      storage_bytes: { limit: 10737418240, hard: true }
`, proPriceID)
	for _, meter := range slices.Sorted(maps.Keys(proOverage)) {
		p := proOverage[meter]
		fmt.Fprintf(&b, "      %s: { limit: %d, hard: false, overage: { unit_amount_cents: %d, per: %d } }\n", meter, p.limit, p.unit["usd"], p.per)
	}
	catalog, err := plans.Parse([]byte(b.String()), "yaml")
	if err != nil {
		t.Fatal(err)
	}
	return catalog
}

// checkItems requires exactly one item per expected charge, each on
// invoiceID, for its amount, under a key naming (org, meter, month), and
// described so a customer can check it.
func (f *fixture) checkItems(invoiceID string, want ...expected) {
	f.t.Helper()
	on := make([]billedOn, len(want))
	for i, w := range want {
		on[i] = billedOn{w, invoiceID}
	}
	f.checkBilled(on...)
}

// billedOn is an expected charge and the invoice it should be billed on.
type billedOn struct {
	expected
	invoice string
}

// checkBilled requires exactly one item per expected charge, on its
// invoice, as checkItems does, and no other charge.
func (f *fixture) checkBilled(want ...billedOn) {
	f.t.Helper()
	items := f.items()
	if len(items) != len(want) {
		f.t.Fatalf("%d invoice items created, want %d: %+v", len(items), len(want), items)
	}
	invoiceOf := map[string]string{}
	for _, w := range want {
		invoiceOf[w.meter+" "+w.period] = w.invoice
		key := fmt.Sprintf("tollgate-overage:%s:%s:%s:", f.org, w.meter, w.period)
		var found []stripetest.Request
		for _, it := range items {
			if strings.HasPrefix(it.IdempotencyKey, key) {
				found = append(found, it)
			}
		}
		if len(found) != 1 {
			f.t.Fatalf("%d items for %s %s, want 1: %+v", len(found), w.meter, w.period, items)
		}
		form := found[0].Form
		month, _ := time.Parse("2006-01", w.period)
		if form.Get("invoice") != w.invoice || form.Get("customer") != f.customer || form.Get("currency") != f.currency ||
			form.Get("amount") != strconv.FormatInt(w.amount, 10) {
			f.t.Errorf("%s %s item = %v; want %d %s on %s", w.meter, w.period, form, w.amount, f.currency, w.invoice)
		}
		desc := form.Get("description")
		for _, part := range []string{w.meter, month.Format("January 2006"), strconv.FormatInt(w.over, 10) + " over", w.unitText} {
			if !strings.Contains(desc, part) {
				f.t.Errorf("description %q does not name %q", desc, part)
			}
		}
	}
	charges := f.charges()
	if len(charges) != len(want) {
		f.t.Fatalf("%d charges recorded, want %d: %+v", len(charges), len(want), charges)
	}
	for _, c := range charges {
		inv := invoiceOf[c.Meter+" "+c.Period]
		if c.Status != overage.Billed || c.StripeInvoiceID == nil || *c.StripeInvoiceID != inv || c.StripeItemID == nil || *c.StripeItemID == "" {
			f.t.Errorf("charge %s %s: status %s, invoice %v, item %v; want billed on %q", c.Meter, c.Period, c.Status, c.StripeInvoiceID, c.StripeItemID, inv)
		}
	}
	if len(f.billed) != len(want) {
		f.t.Errorf("OnBilled heard %d charges, want %d", len(f.billed), len(want))
	}
}

func TestOverageIsBilledOncePerMeterAndMonth(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		f.record("api_calls", 60_000)
		f.record("api_calls", 42_500)     // 2,500 over: three started packages
		f.record("llm_tokens", 1_000_001) // one token over: one package
		f.record("storage_bytes", 1<<20)  // hard-limited: never overage
		want := []expected{f.expect("api_calls", "2026-10", 102_500), f.expect("llm_tokens", "2026-10", 1_000_001)}

		// November's first cycle invoice; November's own usage so far is
		// not October's to bill.
		f.clock.Set(time.Date(2026, 11, 1, 0, 5, 0, 0, time.UTC))
		f.record("api_calls", 500_000)
		created := f.invoiceCreated("evt_"+store.NewID(), "in_nov_"+f.org[:8], "draft")
		f.deliver(created)
		f.checkItems("in_nov_"+f.org[:8], want...)

		t.Run("a redelivered invoice.created adds nothing", func(t *testing.T) {
			f.deliver(created)
			f.checkItems("in_nov_"+f.org[:8], want...)
		})
		t.Run("the same invoice announced under another event id adds nothing", func(t *testing.T) {
			f.deliver(f.invoiceCreated("evt_"+store.NewID(), "in_nov_"+f.org[:8], "draft"))
			f.checkItems("in_nov_"+f.org[:8], want...)
		})
		t.Run("stripe sync adds nothing", func(t *testing.T) {
			f.sync()
			f.checkItems("in_nov_"+f.org[:8], want...)
		})
	})
}

// An organisation on a contract plan (Enterprise: unlimited, and no Stripe
// invoices) that moves to Starter is billed overage from the month its
// subscription began: its earlier months were not on Starter, though
// their usage is far past Starter's allowance.
func TestOverageIsBilledOnlyFromTheMonthTheSubscriptionBegan(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newUnsubscribedFixture(t, db, http.DefaultTransport, starterOverage, time.Date(2026, 1, 15, 9, 0, 0, 0, time.UTC))
		if err := orgs.SetPlan(context.Background(), db.DB, f.org, "enterprise", f.clock.Now()); err != nil {
			t.Fatal(err)
		}
		f.usage.InvalidatePlan(f.org)
		for _, month := range []time.Month{time.February, time.March} {
			f.clock.Set(time.Date(2026, month, 10, 12, 0, 0, 0, time.UTC))
			f.record("api_calls", 10*f.prices["api_calls"].limit)
			f.record("llm_tokens", 10*f.prices["llm_tokens"].limit)
		}

		f.clock.Set(time.Date(2026, 4, 10, 12, 0, 0, 0, time.UTC))
		f.subscribe("usd")
		f.record("api_calls", 102_500)
		want := f.expect("api_calls", "2026-04", 102_500)

		// The subscription's first cycle invoice, a month after it began.
		f.clock.Set(time.Date(2026, 5, 10, 12, 5, 0, 0, time.UTC))
		may := "in_may_" + f.org[:8]
		f.deliver(f.invoiceCreated("evt_"+store.NewID(), may, "draft"))
		f.checkItems(may, want)
	})
}

// A month is priced by the plan the organisation was on at its end: a move
// to another plan after the month closed does not reprice it.
func TestAClosedMonthIsPricedByThePlanInForceThen(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db) // starter since October 10
		f.record("api_calls", 102_500)
		want := f.expect("api_calls", "2026-10", 102_500) // at starter's allowance and prices

		f.clock.Set(time.Date(2026, 11, 5, 12, 0, 0, 0, time.UTC))
		f.changePrice(proPriceID)
		if p, _, err := f.billing.PlanOf(context.Background(), f.org); err != nil || p.ID != "pro" {
			t.Fatalf("organisation is on %q (err %v), want pro", p.ID, err)
		}
		f.clock.Set(time.Date(2026, 11, 10, 12, 5, 0, 0, time.UTC))
		nov := "in_nov_" + f.org[:8]
		f.deliver(f.invoiceCreated("evt_"+store.NewID(), nov, "draft"))
		f.checkItems(nov, want)
	})
}

// In the subscription's first month, usage from the days before it began
// (under another plan) is not billed at its prices.
func TestUsageBeforeTheSubscriptionBeganIsNotBilled(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newUnsubscribedFixture(t, db, http.DefaultTransport, starterOverage, time.Date(2026, 10, 1, 9, 0, 0, 0, time.UTC))
		if err := orgs.SetPlan(context.Background(), db.DB, f.org, "enterprise", f.clock.Now()); err != nil {
			t.Fatal(err)
		}
		f.usage.InvalidatePlan(f.org)
		f.clock.Set(time.Date(2026, 10, 5, 12, 0, 0, 0, time.UTC))
		f.record("api_calls", 90_000) // under enterprise, before the subscription

		f.clock.Set(time.Date(2026, 10, 10, 12, 0, 0, 0, time.UTC))
		f.subscribe("usd")
		f.record("api_calls", 102_500)
		want := f.expect("api_calls", "2026-10", 102_500) // only what was used since the 10th

		f.clock.Set(time.Date(2026, 11, 10, 12, 5, 0, 0, time.UTC))
		nov := "in_nov_" + f.org[:8]
		f.deliver(f.invoiceCreated("evt_"+store.NewID(), nov, "draft"))
		f.checkItems(nov, want)
	})
}

// changePrice moves the organisation's subscription to another price now,
// as Stripe's customer.subscription.updated tells it.
func (f *fixture) changePrice(priceID string) {
	t, ctx, now := f.t, context.Background(), f.clock.Now()
	t.Helper()
	sub := &stripe.Subscription{
		ID: f.sub, Customer: &stripe.Customer{ID: f.customer}, Status: stripe.SubscriptionStatusActive,
		CurrentPeriodStart: now.Unix(), CurrentPeriodEnd: now.AddDate(0, 1, 0).Unix(),
		Items: &stripe.SubscriptionItemList{Data: []*stripe.SubscriptionItem{{Price: &stripe.Price{ID: priceID}}}},
	}
	err := f.db.Tx(ctx, func(tx *gorm.DB) error {
		_, err := f.billing.ApplySubscription(ctx, tx, billing.SubscriptionUpdate{Sub: sub, At: now, OrgID: f.org, Rank: billing.RankFetched})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	f.usage.InvalidatePlan(f.org)
}

func TestAFinalizedInvoiceLeavesOverageForTheNext(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		f.record("api_calls", 100_001)
		want := f.expect("api_calls", "2026-10", 100_001)

		// Tollgate sees November's invoice only once Stripe finalized it.
		f.clock.Set(time.Date(2026, 11, 1, 2, 0, 0, 0, time.UTC))
		f.deliver(f.invoiceCreated("evt_"+store.NewID(), "in_nov_"+f.org[:8], "open"))
		if n := len(f.items()); n != 0 {
			t.Fatalf("%d items added to a finalized invoice", n)
		}
		if cs := f.charges(); len(cs) != 1 || cs[0].Status != overage.Pending || cs[0].Amount != want.amount {
			t.Fatalf("charges after a finalized invoice = %+v, want one pending of %d", cs, want.amount)
		}

		// December's draft takes October's overage, once.
		f.clock.Set(time.Date(2026, 12, 1, 0, 5, 0, 0, time.UTC))
		dec := f.invoiceCreated("evt_"+store.NewID(), "in_dec_"+f.org[:8], "draft")
		f.deliver(dec)
		f.checkItems("in_dec_"+f.org[:8], want)
		f.deliver(dec)
		f.sync()
		f.checkItems("in_dec_"+f.org[:8], want)
	})
}

func TestNoOverageWithinTheAllowance(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		f.record("api_calls", 100_000) // exactly the allowance
		f.clock.Set(time.Date(2026, 11, 1, 0, 5, 0, 0, time.UTC))
		f.deliver(f.invoiceCreated("evt_"+store.NewID(), "in_nov_"+f.org[:8], "draft"))
		if n, cs := len(f.items()), f.charges(); n != 0 || len(cs) != 0 {
			t.Fatalf("%d items and charges %+v for usage within the allowance", n, cs)
		}
	})
}

// A meter whose overage is too large for any invoice item (a price at the
// plans file's maximum, usage near the largest countable value) is left
// out and logged; the other meters are billed and the delivery succeeds,
// so Stripe does not retry it for days with the same outcome.
func TestAnOverageTooLargeToBillDoesNotHoldUpTheInvoice(t *testing.T) {
	prices := maps.Clone(starterOverage)
	prices["api_calls"] = overagePrice{limit: 100_000, per: 1, unit: map[string]int64{"usd": 1_000_000, "eur": 1_000_000, "jpy": 1_000_000}}
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixtureOn(t, db, http.DefaultTransport, prices, "usd")
		f.record("api_calls", usage.MaxQuantity) // ~8.8e12 over at $10,000 each: past what one item carries
		f.record("llm_tokens", 1_000_001)
		want := f.expect("llm_tokens", "2026-10", 1_000_001)

		f.clock.Set(time.Date(2026, 11, 1, 0, 5, 0, 0, time.UTC))
		f.deliver(f.invoiceCreated("evt_"+store.NewID(), "in_nov_"+f.org[:8], "draft"))
		f.checkItems("in_nov_"+f.org[:8], want)
		for _, c := range f.charges() {
			if c.Meter == "api_calls" {
				t.Fatalf("a charge was recorded for the unbillable meter: %+v", c)
			}
		}
	})
}

// An overage whose one item would cost more than Stripe charges at once
// (money.MaxAmount) could never be paid: the preview says so with
// AMOUNT_OUT_OF_RANGE and leaves the meter out, and the invoice leaves it
// out too and counts it as too_large; the other meter is previewed and
// billed alike.
func TestAnOverageAboveStripesMaximumIsNeitherPreviewedNorBilled(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		calls := f.prices["api_calls"]
		// Enough started packages that their price passes Stripe's
		// maximum, yet far below what an int64 holds.
		packages := money.MaxAmount(f.currency)/calls.unit[f.currency] + 1
		used := calls.limit + packages*calls.per
		f.record("api_calls", used)
		f.record("llm_tokens", 1_000_001)
		tokens := f.expect("llm_tokens", "2026-10", 1_000_001)
		if tooMuch := f.expect("api_calls", "2026-10", used); tooMuch.amount <= money.MaxAmount(f.currency) {
			t.Fatalf("the test's api_calls overage costs %d, not more than Stripe's maximum", tooMuch.amount)
		}

		up, err := f.overage.Upcoming(context.Background(), f.org)
		if err != nil || up == nil {
			t.Fatalf("upcoming: %+v, %v", up, err)
		}
		if apperr.CodeOf(up.OverageSoFarErr) != overage.CodeAmountOutOfRange {
			t.Errorf("preview error = %v, want %s", up.OverageSoFarErr, overage.CodeAmountOutOfRange)
		}
		if len(up.OverageSoFar) != 1 || up.OverageSoFar[0].Meter != tokens.meter || up.OverageSoFar[0].Amount != tokens.amount {
			t.Errorf("overage so far = %+v, want only %s at %d", up.OverageSoFar, tokens.meter, tokens.amount)
		}

		before := unbilledCounts("too_large")
		f.clock.Set(time.Date(2026, 11, 1, 0, 5, 0, 0, time.UTC))
		f.deliver(f.invoiceCreated("evt_"+store.NewID(), "in_nov_"+f.org[:8], "draft"))
		f.checkItems("in_nov_"+f.org[:8], tokens)
		checkUnbilledRise(t, before, map[string]float64{"too_large": 1})
	})
}

// A meter left unbilled while the other meters of its month were billed
// (its overage too large for one invoice item: a typo in the plans file) is
// billed on a later invoice once the file is corrected, at the corrected
// price; the meter already billed is not billed again.
func TestAMeterLeftUnbilledIsBilledOnceThePlansFileIsCorrected(t *testing.T) {
	typo := maps.Clone(starterOverage)
	typo["api_calls"] = overagePrice{limit: 100_000, per: 1, unit: map[string]int64{"usd": 1_000_000, "eur": 1_000_000, "jpy": 1_000_000}}
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixtureOn(t, db, http.DefaultTransport, typo, "usd")
		// A million calls over: past what Stripe charges at once at the
		// typo's price, a few dollars at the corrected one.
		used := typo["api_calls"].limit + 1_000_000
		f.record("api_calls", used)
		f.record("llm_tokens", 1_000_001)
		tokens := f.expect("llm_tokens", "2026-10", 1_000_001)

		f.clock.Set(time.Date(2026, 11, 1, 0, 5, 0, 0, time.UTC))
		nov, dec := "in_nov_"+f.org[:8], "in_dec_"+f.org[:8]
		f.deliver(f.invoiceCreated("evt_"+store.NewID(), nov, "draft"))
		f.checkItems(nov, tokens)

		f.start(starterOverage) // restarted with the price corrected
		calls := f.expect("api_calls", "2026-10", used)
		f.clock.Set(time.Date(2026, 12, 1, 0, 5, 0, 0, time.UTC))
		f.deliver(f.invoiceCreated("evt_"+store.NewID(), dec, "draft"))
		f.checkBilled(billedOn{tokens, nov}, billedOn{calls, dec})
	})
}

// Usage can land in a month after the first invoice after it was created:
// an event accepted at 23:59:59 whose write commits after midnight, or one
// taken by a replica whose clock lags (recordUsage refuses any other event
// dated before the current month). That invoice settled the month, as the
// customer was shown it: a later invoice bills no more of it, whether the
// meter had overage then (never recomputed) or none.
func TestUsageLandingInABilledMonthIsNotBilledLater(t *testing.T) {
	for _, tc := range []struct {
		name  string
		calls int64 // api_calls used in October before its invoice
	}{
		{"a month with overage on another meter", 102_500},
		{"a month with no overage at all", 100_000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
				f := newFixture(t, db)
				f.record("api_calls", tc.calls)
				f.record("llm_tokens", 1_000_000) // exactly the allowance
				var want []expected
				if p := f.prices["api_calls"]; tc.calls > p.limit {
					want = append(want, f.expect("api_calls", "2026-10", tc.calls))
				}

				nov := "in_nov_" + f.org[:8]
				f.clock.Set(time.Date(2026, 11, 1, 0, 0, 30, 0, time.UTC))
				f.deliver(f.invoiceCreated("evt_"+store.NewID(), nov, "draft"))
				f.checkItems(nov, want...)

				// Late October usage, on both meters.
				f.clock.Set(time.Date(2026, 10, 31, 23, 59, 59, 0, time.UTC))
				f.record("api_calls", 50_000)
				f.record("llm_tokens", 50_000)
				f.clock.Set(time.Date(2026, 11, 1, 0, 0, 31, 0, time.UTC))
				_, meters, err := f.usage.Usage(context.Background(), f.org, "2026-10")
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range meters {
					if m.Meter != "storage_bytes" && m.Overage() == 0 {
						t.Fatalf("October's %s shows no overage after the late usage: %+v", m.Meter, m)
					}
				}

				f.clock.Set(time.Date(2026, 12, 1, 0, 5, 0, 0, time.UTC))
				f.deliver(f.invoiceCreated("evt_"+store.NewID(), "in_dec_"+f.org[:8], "draft"))
				f.checkItems(nov, want...)
			})
		})
	}
}

// lostAnswers stands for a Stripe that creates invoice items but whose
// answers never arrive, and that lists, once told to, the item an answer
// was lost for. Every other request goes to stripe-mock.
type lostAnswers struct {
	mu     sync.Mutex
	listed map[string]string // metadata of the item the list shows; nil: none
}

func (l *lostAnswers) RoundTrip(req *http.Request) (*http.Response, error) {
	if !strings.HasPrefix(req.URL.Path, "/v1/invoiceitems") {
		return http.DefaultTransport.RoundTrip(req)
	}
	if req.Method == http.MethodPost {
		return stubResponse(req, http.StatusServiceUnavailable, map[string]any{"error": map[string]any{"type": "api_error", "message": "lost"}}), nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	data := []any{}
	if l.listed != nil {
		data = append(data, map[string]any{"id": "ii_lost", "object": "invoiceitem", "invoice": req.URL.Query().Get("invoice"), "metadata": l.listed})
	}
	return stubResponse(req, http.StatusOK, map[string]any{"object": "list", "data": data, "has_more": false, "url": "/v1/invoiceitems"}), nil
}

func stubResponse(req *http.Request, status int, body any) *http.Response {
	b, _ := json.Marshal(body)
	return &http.Response{StatusCode: status, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(bytes.NewReader(b)), Request: req}
}

// refusingItems stands for a Stripe that refuses every invoice item with
// status and Stripe's error object, until refusal is set to nil; every
// other request goes to stripe-mock.
type refusingItems struct {
	mu      sync.Mutex
	status  int
	refusal map[string]any
}

// requestID is the id the stub gives its refusals, as Stripe does in its
// Request-Id header.
const requestID = "req_refused"

func (r *refusingItems) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	status, refusal := r.status, r.refusal
	r.mu.Unlock()
	if refusal == nil || req.Method != http.MethodPost || !strings.HasPrefix(req.URL.Path, "/v1/invoiceitems") {
		return http.DefaultTransport.RoundTrip(req)
	}
	resp := stubResponse(req, status, map[string]any{"error": refusal})
	resp.Header.Set("Request-Id", requestID)
	return resp, nil
}

// When Stripe refuses an overage item, the delivery succeeds (a retry
// would be refused alike) and the charge stays pending for the next
// invoice, which bills it once Stripe takes it. A refusal that is not "the
// invoice takes no more items" is counted as refused and logged at ERROR
// with Stripe's request id, once for the invoice however often it is
// delivered; an invoice finalized or deleted meanwhile is neither. A
// failure a retry can cure (Stripe busy with the same request, or
// Tollgate's API key refused until the operator fixes it) is no refusal:
// the delivery fails, and Stripe's retry bills the charge on its invoice.
func TestARefusedItemIsCountedAndOfferedToTheNextInvoice(t *testing.T) {
	for _, tc := range []struct {
		name    string
		status  int
		refusal map[string]any
		counted bool
		retried bool
	}{
		{"an amount Stripe will not charge", http.StatusBadRequest, map[string]any{"type": "invalid_request_error",
			"code": "amount_too_large", "param": "amount", "message": "Amount must be no more than $999,999.99"}, true, false},
		{"a currency the customer cannot be billed in", http.StatusBadRequest, map[string]any{"type": "invalid_request_error",
			"param": "currency", "message": "You cannot combine currencies on a single customer."}, true, false},
		{"the invoice finalized meanwhile", http.StatusBadRequest, map[string]any{"type": "invalid_request_error",
			"code": "invoice_not_editable", "message": "This invoice is no longer editable."}, false, false},
		{"the draft invoice deleted meanwhile", http.StatusNotFound, map[string]any{"type": "invalid_request_error",
			"code": "resource_missing", "param": "invoice", "message": "No such invoice: 'in_x'"}, false, false},
		{"Stripe busy with the same request", http.StatusConflict, map[string]any{"type": "idempotency_error",
			"message": "There is currently another in-progress request using this Stripe token."}, false, true},
		{"Tollgate's API key refused", http.StatusUnauthorized, map[string]any{"type": "invalid_request_error",
			"message": "Invalid API Key provided: sk_live_****1234"}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
				stub := &refusingItems{status: tc.status, refusal: tc.refusal}
				f := newFixtureTo(t, db, stub)
				f.record("api_calls", 100_001)
				want := f.expect("api_calls", "2026-10", 100_001)
				before := unbilledCounts("refused")

				f.clock.Set(time.Date(2026, 11, 1, 0, 5, 0, 0, time.UTC))
				nov := f.invoiceCreated("evt_"+store.NewID(), "in_nov_"+f.org[:8], "draft")
				if tc.retried {
					f.deliverFailing(nov)
				} else {
					f.deliver(nov)
					f.deliver(nov)
				}
				counted := map[bool]float64{true: 1}[tc.counted]
				checkUnbilledRise(t, before, map[string]float64{"refused": counted})
				if got := len(f.logged("level=ERROR", "stripe_request_id="+requestID, "api_calls")); float64(got) != counted {
					t.Errorf("%d ERROR lines with Stripe's request id, want %v:\n%s", got, counted, f.logs)
				}
				if cs := f.charges(); len(cs) != 1 || cs[0].Status != overage.Pending || cs[0].Amount != want.amount {
					t.Fatalf("charges after the refusal = %+v, want one pending of %d", cs, want.amount)
				}

				// Stripe takes it: on November's invoice when Stripe retries
				// the delivery, else on December's.
				stub.mu.Lock()
				stub.refusal = nil
				stub.mu.Unlock()
				on := "in_nov_" + f.org[:8]
				if tc.retried {
					f.deliver(nov)
				} else {
					on = "in_dec_" + f.org[:8]
					f.clock.Set(time.Date(2026, 12, 1, 0, 5, 0, 0, time.UTC))
					f.deliver(f.invoiceCreated("evt_"+store.NewID(), on, "draft"))
				}
				cs := f.charges()
				if len(cs) != 1 || cs[0].Status != overage.Billed || cs[0].StripeInvoiceID == nil || *cs[0].StripeInvoiceID != on ||
					cs[0].Amount != want.amount {
					t.Fatalf("charges after Stripe took the item = %+v, want %d billed on %s", cs, want.amount, on)
				}
				checkUnbilledRise(t, before, map[string]float64{"refused": counted})
			})
		})
	}
}

// TestALostAnswerIsRecordedNotBilledAgain: Stripe created the item but
// Tollgate never heard; the charge stays pending, and once Stripe lists the
// item, stripe sync records it instead of sending another.
func TestALostAnswerIsRecordedNotBilledAgain(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		stub := &lostAnswers{}
		f := newFixtureTo(t, db, stub)
		f.record("api_calls", 100_001)
		f.clock.Set(time.Date(2026, 11, 1, 0, 5, 0, 0, time.UTC))
		inv := "in_nov_" + f.org[:8]
		f.deliverFailing(f.invoiceCreated("evt_"+store.NewID(), inv, "draft"))
		sent := len(f.items())
		cs := f.charges()
		if sent == 0 || len(cs) != 1 || cs[0].Status != overage.Pending || cs[0].StripeInvoiceID == nil || *cs[0].StripeInvoiceID != inv {
			t.Fatalf("after a lost answer: %d item requests, charges %+v; want a pending charge offered to %s", sent, cs, inv)
		}
		for _, it := range f.items() {
			if it.IdempotencyKey != f.items()[0].IdempotencyKey {
				t.Fatalf("retries used keys %q and %q; one offer must keep one key", f.items()[0].IdempotencyKey, it.IdempotencyKey)
			}
		}

		stub.mu.Lock()
		stub.listed = map[string]string{"tollgate_overage": f.items()[0].IdempotencyKey}
		stub.mu.Unlock()
		f.clock.Advance(time.Hour)
		f.sync()
		if n := len(f.items()); n != sent {
			t.Fatalf("stripe sync sent %d more item requests for an item Stripe already holds", n-sent)
		}
		cs = f.charges()
		if cs[0].Status != overage.Billed || cs[0].StripeItemID == nil || *cs[0].StripeItemID != "ii_lost" || *cs[0].StripeInvoiceID != inv {
			t.Fatalf("charge after sync = %+v, want billed as ii_lost on %s", cs[0], inv)
		}
	})
}

// A subscriber on a price in eur or jpy sees the month's overage so far in
// that currency, and it is billed on the cycle invoice, in that currency,
// at the plans file's price in it: never left pending for want of an
// invoice in the plan's headline currency.
func TestOverageIsPreviewedAndBilledInTheSubscriptionsCurrency(t *testing.T) {
	for _, currency := range []string{"eur", "jpy"} {
		t.Run(currency, func(t *testing.T) {
			testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
				f := newFixtureOn(t, db, http.DefaultTransport, starterOverage, currency)
				f.record("api_calls", 102_500)
				f.record("llm_tokens", 1_000_001)
				want := []expected{f.expect("api_calls", "2026-10", 102_500), f.expect("llm_tokens", "2026-10", 1_000_001)}

				up, err := f.overage.Upcoming(context.Background(), f.org)
				if err != nil || up == nil {
					t.Fatalf("upcoming: %+v, %v", up, err)
				}
				if len(up.OverageSoFar) != len(want) || up.OverageSoFarCents != want[0].amount+want[1].amount {
					t.Fatalf("overage so far %+v (total %d), want %+v", up.OverageSoFar, up.OverageSoFarCents, want)
				}
				for i, c := range up.OverageSoFar {
					if c.Meter != want[i].meter || c.Currency != f.currency || c.UnitAmount != want[i].unit || c.Amount != want[i].amount ||
						!strings.HasSuffix(c.Description(), want[i].unitText) {
						t.Errorf("preview of %s = %+v (%q); want %d %s at %s", want[i].meter, c, c.Description(), want[i].amount, f.currency, want[i].unitText)
					}
				}

				f.clock.Set(time.Date(2026, 11, 1, 0, 5, 0, 0, time.UTC))
				f.deliver(f.invoiceCreated("evt_"+store.NewID(), "in_nov_"+f.org[:8], "draft"))
				f.checkItems("in_nov_"+f.org[:8], want...)
			})
		})
	}
}

// A charge recorded in another currency than the invoice's (the customer
// moved to a price in another currency, or the charge was recorded in the
// plan's currency before currency_amounts existed) cannot go on it: it
// stays pending, the metric an operator alerts on counts it on every such
// invoice, and the first invoice in its own currency bills it as recorded.
func TestAChargeInAnotherCurrencyIsCountedThenBilledInItsCurrency(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixtureOn(t, db, http.DefaultTransport, starterOverage, "eur")
		stale := f.pendingIn("usd")
		before := unbilledCounts("currency")
		f.clock.Set(time.Date(2026, 11, 1, 0, 5, 0, 0, time.UTC))
		f.deliver(f.invoiceCreated("evt_"+store.NewID(), "in_nov_"+f.org[:8], "draft"))
		if n := len(f.items()); n != 0 {
			t.Fatalf("%d items added for a usd charge to a eur invoice", n)
		}
		checkUnbilledRise(t, before, map[string]float64{"currency": 1})
		if cs := f.charges(); len(cs) != 1 || cs[0].Status != overage.Pending {
			t.Fatalf("charges = %+v, want the usd one still pending", cs)
		}

		// The customer moves back to the usd price: December's invoice is
		// in usd and takes the charge, at the amount it was recorded for.
		f.currency = "usd"
		f.clock.Set(time.Date(2026, 12, 1, 0, 5, 0, 0, time.UTC))
		before = unbilledCounts("currency")
		f.deliver(f.invoiceCreated("evt_"+store.NewID(), "in_dec_"+f.org[:8], "draft"))
		f.checkItems("in_dec_"+f.org[:8], expected{meter: stale.Meter, period: stale.Period, over: stale.Quantity,
			amount: stale.Amount, unit: stale.UnitAmount, per: stale.Per, unitText: "at 0.50 USD per 1000"})
		checkUnbilledRise(t, before, map[string]float64{"currency": 0})
	})
}

// pendingIn records a pending charge of September's api_calls in currency,
// as an invoice in that currency would have, and returns it.
func (f *fixture) pendingIn(currency string) overage.Charge {
	f.t.Helper()
	now := f.clock.Now()
	c := overage.Charge{OrgID: f.org, Meter: "api_calls", Period: "2026-09", Quantity: 1, Allowance: 100000,
		UnitAmount: 50, Per: 1000, Amount: 50, Currency: currency, Status: overage.Pending, Attempt: 1, CreatedAt: now, UpdatedAt: now}
	if err := f.db.Create(&c).Error; err != nil {
		f.t.Fatal(err)
	}
	return c
}

// unbilledCounts reads tollgate_overage_unbilled_total for reasons.
func unbilledCounts(reasons ...string) map[string]float64 {
	out := map[string]float64{}
	for _, r := range reasons {
		out[r] = testutil.ToFloat64(overage.Unbilled.WithLabelValues(r))
	}
	return out
}

// checkUnbilledRise requires tollgate_overage_unbilled_total to have risen
// by want, reason by reason, since before.
func checkUnbilledRise(t *testing.T, before, want map[string]float64) {
	t.Helper()
	for r, n := range want {
		if got := testutil.ToFloat64(overage.Unbilled.WithLabelValues(r)) - before[r]; got != n {
			t.Errorf("tollgate_overage_unbilled_total{reason=%s} rose by %v, want %v", r, got, n)
		}
	}
}

// Overage an invoice cannot carry is counted once per invoice, so that the
// alert on tollgate_overage_unbilled_total reads as invoices that missed
// revenue: a redelivered invoice.created, or the same invoice announced
// under another event id, counts nothing more, and the next invoice that
// cannot carry it counts it again.
func TestUnbilledOverageIsCountedOncePerInvoice(t *testing.T) {
	typo := maps.Clone(starterOverage)
	typo["api_calls"] = overagePrice{limit: 100_000, per: 1, unit: map[string]int64{"usd": 1_000_000, "eur": 1_000_000, "jpy": 1_000_000}}
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixtureOn(t, db, http.DefaultTransport, typo, "eur")
		f.record("api_calls", typo["api_calls"].limit+1_000_000) // too large for one item at the typo's price
		f.pendingIn("usd")                                       // no eur invoice can carry it
		before := unbilledCounts("too_large", "currency")

		for i, month := range []time.Month{time.November, time.December} {
			f.clock.Set(time.Date(2026, month, 1, 0, 5, 0, 0, time.UTC))
			inv := fmt.Sprintf("in_%d_%s", month, f.org[:8])
			created := f.invoiceCreated("evt_"+store.NewID(), inv, "draft")
			f.deliver(created)
			f.deliver(created)                                              // redelivered
			f.deliver(f.invoiceCreated("evt_"+store.NewID(), inv, "draft")) // announced again
			n := float64(i + 1)
			checkUnbilledRise(t, before, map[string]float64{"too_large": n, "currency": n})
		}
		if n := len(f.items()); n != 0 {
			t.Fatalf("%d items added for overage no invoice could carry", n)
		}
	})
}

// invoiceLimit stands for Stripe's bound on one invoice: it adds up the
// items created on each invoice over the invoice's own total (the
// fixture's 4900) and refuses, as Stripe would, an item that takes the
// invoice past money.MaxAmount; every other request goes to stripe-mock.
type invoiceLimit struct {
	mu      sync.Mutex
	base    int64
	top     int64
	total   map[string]int64
	refused int
	// unavailable, while set, answers 503 to every llm_tokens item.
	unavailable bool
}

func (l *invoiceLimit) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodPost || req.URL.Path != "/v1/invoiceitems" {
		return http.DefaultTransport.RoundTrip(req)
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, err
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	form, _ := url.ParseQuery(string(body))
	amount, _ := strconv.ParseInt(form.Get("amount"), 10, 64)
	inv := form.Get("invoice")
	l.mu.Lock()
	if l.unavailable && form.Get("metadata[meter]") == "llm_tokens" {
		l.mu.Unlock()
		return stubResponse(req, http.StatusServiceUnavailable, map[string]any{"error": map[string]any{"type": "api_error", "message": "busy"}}), nil
	}
	sum := l.base + l.total[inv] + amount
	over := sum > l.top
	if over {
		l.refused++
	} else {
		l.total[inv] += amount
	}
	l.mu.Unlock()
	if over {
		resp := stubResponse(req, http.StatusBadRequest, map[string]any{"error": map[string]any{"type": "invalid_request_error",
			"code": "amount_too_large", "param": "amount", "message": "The invoice total must be no more than $999,999.99"}})
		resp.Header.Set("Request-Id", requestID)
		return resp, nil
	}
	return http.DefaultTransport.RoundTrip(req)
}

// Two meters' overage, each within what one item carries, together take
// the invoice past what Stripe charges at once. The invoice takes the
// older-first charges that fit; the rest is counted as invoice_limit,
// logged at ERROR once however often the invoice is delivered, never sent
// for Stripe to refuse, and billed on the next invoice.
func TestOverageThatWouldTakeAnInvoicePastStripesMaximumWaitsForTheNext(t *testing.T) {
	prices := map[string]overagePrice{
		"api_calls":  {limit: 100_000, per: 1, unit: map[string]int64{"usd": 1_000_000, "eur": 1_000_000, "jpy": 1_000_000}},
		"llm_tokens": {limit: 1_000_000, per: 1, unit: map[string]int64{"usd": 1_000_000, "eur": 1_000_000, "jpy": 1_000_000}},
	}
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		stub := &invoiceLimit{base: 4900, top: money.MaxAmount("usd"), total: map[string]int64{}}
		f := newFixtureOn(t, db, stub, prices, "usd")
		f.record("api_calls", 100_060)
		f.record("llm_tokens", 1_000_060)
		calls, tokens := f.expect("api_calls", "2026-10", 100_060), f.expect("llm_tokens", "2026-10", 1_000_060)
		top := money.MaxAmount(f.currency)
		if calls.amount > top || tokens.amount > top || stub.base+calls.amount+tokens.amount <= top {
			t.Fatalf("the test's charges (%d, %d) must each fit one item and together not fit one invoice", calls.amount, tokens.amount)
		}
		nov := "in_nov_" + f.org[:8]
		f.clock.Set(time.Date(2026, 11, 1, 0, 5, 0, 0, time.UTC))
		f.checkLeftForTheNext(f.invoiceCreated("evt_"+store.NewID(), nov, "draft"), nov, calls, tokens, func() int { return stub.refused })
	})
}

// checkLeftForTheNext delivers body, the invoice.created of invoice nov,
// twice, and requires it to carry fits while left waits: counted as
// invoice_limit and logged at ERROR once, never sent for Stripe to refuse
// (refused counts what Stripe refused); the next cycle invoice, created on
// 1 December, bills left.
func (f *fixture) checkLeftForTheNext(body []byte, nov string, fits, left expected, refused func() int) {
	t := f.t
	t.Helper()
	before := unbilledCounts("invoice_limit", "refused")
	f.deliver(body)
	f.deliver(body)
	checkUnbilledRise(t, before, map[string]float64{"invoice_limit": 1, "refused": 0})
	if n := refused(); n != 0 {
		t.Errorf("Stripe refused %d items past the invoice's limit", n)
	}
	if got := f.logged("level=ERROR", "invoice_limit", left.meter); len(got) != 1 {
		t.Errorf("%d ERROR lines naming the meter left off, want 1:\n%s", len(got), f.logs)
	}

	dec := "in_dec_" + f.org[:8]
	f.clock.Set(time.Date(2026, 12, 1, 0, 5, 0, 0, time.UTC))
	f.deliver(f.invoiceCreated("evt_"+store.NewID(), dec, "draft"))
	f.checkBilled(billedOn{fits, nov}, billedOn{left, dec})
	checkUnbilledRise(t, before, map[string]float64{"invoice_limit": 1, "refused": 0})
}

// Stripe's retry of an invoice.created (or `stripe sync`) may carry the
// invoice as it is now, with the overage items already on it in its lines
// and total: each is counted once, so a charge that fits is billed.
func TestOverageAlreadyOnTheInvoiceIsCountedOnceTowardsItsLimit(t *testing.T) {
	prices := map[string]overagePrice{
		"api_calls":  {limit: 100_000, per: 1, unit: map[string]int64{"usd": 1_000_000, "eur": 1_000_000, "jpy": 1_000_000}},
		"llm_tokens": {limit: 1_000_000, per: 1, unit: map[string]int64{"usd": 1_000_000, "eur": 1_000_000, "jpy": 1_000_000}},
	}
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		stub := &invoiceLimit{base: 4900, top: money.MaxAmount("usd"), total: map[string]int64{}, unavailable: true}
		f := newFixtureOn(t, db, stub, prices, "usd")
		f.record("api_calls", 100_040)
		f.record("llm_tokens", 1_000_040)
		calls, tokens := f.expect("api_calls", "2026-10", 100_040), f.expect("llm_tokens", "2026-10", 1_000_040)
		if top := money.MaxAmount(f.currency); stub.base+calls.amount+tokens.amount > top || stub.base+2*calls.amount+tokens.amount <= top {
			t.Fatalf("the test's charges (%d, %d) must fit one invoice, and not if the first were counted twice", calls.amount, tokens.amount)
		}
		before := unbilledCounts("invoice_limit")

		nov := "in_nov_" + f.org[:8]
		f.clock.Set(time.Date(2026, 11, 1, 0, 5, 0, 0, time.UTC))
		f.deliverFailing(f.invoiceCreated("evt_"+store.NewID(), nov, "draft"))
		stub.mu.Lock()
		stub.unavailable = false
		stub.mu.Unlock()

		// Stripe's retry, with the api_calls item now on the invoice.
		var ev map[string]any
		if err := json.Unmarshal(f.invoiceCreated("evt_"+store.NewID(), nov, "draft"), &ev); err != nil {
			t.Fatal(err)
		}
		obj := ev["data"].(map[string]any)["object"].(map[string]any)
		obj["total"], obj["amount_due"] = stub.base+calls.amount, stub.base+calls.amount
		obj["lines"] = map[string]any{"object": "list", "has_more": false, "data": []any{
			map[string]any{"id": "il_1", "object": "line_item", "type": "invoiceitem", "amount": calls.amount, "currency": f.currency,
				"metadata": map[string]string{"tollgate_overage": "tollgate-overage:" + f.org + ":api_calls:2026-10:1"}},
		}}
		retry, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		f.deliver(retry)
		cs := f.charges()
		if len(cs) != 2 {
			t.Fatalf("charges = %+v, want api_calls and llm_tokens", cs)
		}
		for i, w := range []expected{calls, tokens} {
			if c := cs[i]; c.Meter != w.meter || c.Status != overage.Billed || c.Amount != w.amount || c.StripeInvoiceID == nil || *c.StripeInvoiceID != nov {
				t.Errorf("charge %+v, want %s billed at %d on %s", c, w.meter, w.amount, nov)
			}
		}
		checkUnbilledRise(t, before, map[string]float64{"invoice_limit": 0})
	})
}
