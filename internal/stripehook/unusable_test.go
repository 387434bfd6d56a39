package stripehook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/tollgate-billing/tollgate/internal/billing"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/invoices"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/stripehook"
	"github.com/tollgate-billing/tollgate/internal/stripein/stripeintest"
	"github.com/tollgate-billing/tollgate/internal/testenv"
	"github.com/tollgate-billing/tollgate/internal/weburl/weburltest"
)

// A completed checkout places a customer only through what Tollgate
// recorded: metadata.org_id on a session Tollgate never opened for that
// organisation (or opened for another customer) links nothing, whatever
// organisation it names.
func TestACheckoutTollgateNeverOpenedLinksNobody(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		victim, other := f.newOrg(), newScenario(f)
		now := time.Now().UTC()
		cases := []struct {
			name string
			obj  map[string]any
		}{
			{"a session nobody recorded, naming an organisation", checkoutObject("cs_evil2", victim, "cus_evil", "sub_evil", "growth", now)},
			{"another organisation's recorded session, naming this one", checkoutObject("cs_"+other.sub, victim, "cus_evil", "sub_evil", "growth", now)},
			{"the organisation's recorded session, paid by another customer", func() map[string]any {
				f.openCheckoutFor(victim, "cs_victim", "cus_victims_own", true)
				return checkoutObject("cs_victim", victim, "cus_evil", "sub_evil", "growth", now)
			}()},
			{"a record id in metadata for a session recorded under another id", func() map[string]any {
				record := f.openCheckoutFor(victim, "cs_victim_2", "", true)
				obj := checkoutObject("cs_evil3", victim, "cus_evil", "sub_evil", "growth", now)
				obj["metadata"].(map[string]any)["tollgate_checkout_id"] = record
				return obj
			}()},
		}
		before := testutil.ToFloat64(billing.UntrustedCheckouts)
		for i, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := f.deliver(event("evt_untrusted_"+store.NewID(), "checkout.session.completed", now, tc.obj))
				if r.Status != http.StatusOK || r.Outcome != "ignored" {
					t.Fatalf("answered %d %q, want 200 ignored", r.Status, r.Outcome)
				}
				if o := orgOf(f, victim); o.StripeCustomerID != nil || o.PlanID != "free" {
					t.Fatalf("the named organisation got customer %v and plan %s", o.StripeCustomerID, o.PlanID)
				}
				if n := f.count(&billing.Subscription{}); n != 0 {
					t.Fatalf("%d subscriptions stored, want none", n)
				}
				if got := testutil.ToFloat64(billing.UntrustedCheckouts) - before; got != float64(i+1) {
					t.Errorf("untrusted checkouts counted %v times, want %d", got, i+1)
				}
			})
		}
		if !strings.Contains(f.logs.String(), `"checkout_session_id":"cs_evil2"`) {
			t.Errorf("no log line names the ignored session")
		}
	})
}

// A subscription or invoice whose customer is linked to no organisation is
// placed by its metadata.org_id only if Tollgate opened a checkout of that
// organisation for that customer: a stranger's subscription naming an
// organisation gets neither the customer linked nor a plan, whoever else's
// checkout Tollgate recorded.
func TestSubscriptionsAndInvoicesOfAStrangersCustomerPlaceNothing(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		victim, other := f.newOrg(), f.newOrg()
		f.openCheckoutFor(victim, "cs_victims_"+store.NewID(), "cus_victims_own", true)
		stranger := "cus_evil_" + store.NewID()[:8]
		// Tollgate did open a checkout for this customer, of another
		// organisation: that places nothing in the victim's.
		f.openCheckoutFor(other, "cs_others_"+store.NewID(), stranger, true)
		now := time.Now().UTC().Truncate(time.Second)
		sub, inv := "sub_evil_"+store.NewID()[:8], "in_evil_"+store.NewID()[:8]
		cases := []struct {
			object, typ string
			obj         map[string]any
		}{
			{"subscription", "customer.subscription.created", subscriptionObject(subSpec{id: sub, customer: stranger, orgID: victim,
				plan: "growth", status: "active", created: now, periodStart: now})},
			{"subscription", "customer.subscription.updated", subscriptionObject(subSpec{id: sub, customer: stranger, orgID: victim,
				plan: "growth", status: "active", created: now, periodStart: now})},
			{"invoice", "invoice.paid", invoiceObject(invoiceSpec{id: inv, customer: stranger, subscription: sub, orgID: victim,
				status: "paid", created: now, paidAt: now, amount: 19900})},
			{"invoice", "invoice.payment_failed", invoiceObject(invoiceSpec{id: inv, customer: stranger, subscription: sub, orgID: victim,
				status: "open", created: now, paidAt: now, amount: 19900})},
		}
		for _, tc := range cases {
			t.Run(tc.typ, func(t *testing.T) {
				before := testutil.ToFloat64(billing.UntrustedObjects.WithLabelValues(tc.object))
				r := f.deliver(event("evt_stranger_"+store.NewID(), tc.typ, now, tc.obj))
				if r.Status != http.StatusOK || r.Outcome != "ignored" {
					t.Fatalf("answered %d %q, want 200 ignored", r.Status, r.Outcome)
				}
				if o := orgOf(f, victim); o.StripeCustomerID != nil || o.PlanID != "free" {
					t.Fatalf("the named organisation got customer %v and plan %s", o.StripeCustomerID, o.PlanID)
				}
				if o := orgOf(f, other); o.StripeCustomerID != nil || o.PlanID != "free" {
					t.Fatalf("the organisation Tollgate opened the customer's checkout for got customer %v and plan %s", o.StripeCustomerID, o.PlanID)
				}
				if n, m := f.count(&billing.Subscription{}), f.count(&invoices.Invoice{}); n != 0 || m != 0 {
					t.Fatalf("%d subscriptions and %d invoices stored, want none", n, m)
				}
				if got := testutil.ToFloat64(billing.UntrustedObjects.WithLabelValues(tc.object)) - before; got != 1 {
					t.Errorf("untrusted %ss counted %v times, want 1", tc.object, got)
				}
			})
		}
		if !strings.Contains(f.logs.String(), `"object_id":"`+sub+`"`) || !strings.Contains(f.logs.String(), `"object_id":"`+inv+`"`) {
			t.Errorf("no warning names the ignored subscription and invoice")
		}
	})
}

// Stripe may send a subscription's and its invoice's events before the
// checkout.session.completed that sold it, before Tollgate has linked the
// customer: the checkout Tollgate recorded when it opened the session,
// for that customer, places them.
func TestEventsBeforeTheirCheckoutCompletesArePlacedByTheRecordedCheckout(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		org := f.newOrg()
		suffix := store.NewID()[:8]
		customer, sub, inv := "cus_early_"+suffix, "sub_early_"+suffix, "in_early_"+suffix
		f.openCheckoutFor(org, "cs_early_"+suffix, customer, true)
		now := time.Now().UTC().Truncate(time.Second)
		r := f.deliver(event("evt_early_inv_"+suffix, "invoice.paid", now, invoiceObject(invoiceSpec{id: inv, customer: customer,
			subscription: sub, orgID: org, status: "paid", created: now, paidAt: now, amount: 4900})))
		if r.Status != http.StatusOK || r.Outcome != "applied" {
			t.Fatalf("invoice.paid before anything else answered %d %q, want 200 applied", r.Status, r.Outcome)
		}
		r = f.deliver(event("evt_early_sub_"+suffix, "customer.subscription.created", now, subscriptionObject(subSpec{id: sub,
			customer: customer, orgID: org, plan: "starter", status: "active", created: now, periodStart: now})))
		if r.Status != http.StatusOK || r.Outcome != "applied" {
			t.Fatalf("customer.subscription.created before its checkout completed answered %d %q, want 200 applied", r.Status, r.Outcome)
		}
		o := orgOf(f, org)
		if o.StripeCustomerID == nil || *o.StripeCustomerID != customer || o.PlanID != "starter" {
			t.Fatalf("organisation has customer %v and plan %s, want %s and starter", o.StripeCustomerID, o.PlanID, customer)
		}
		if n, m := f.count(&billing.Subscription{}), f.count(&invoices.Invoice{}); n != 1 || m != 1 {
			t.Fatalf("%d subscriptions and %d invoices stored, want one of each", n, m)
		}
	})
}

// Well-signed events whose values Tollgate cannot store or act on answer
// 200 with outcome invalid (a 500 would have Stripe retry them for three
// days, a 400 would have it disable the endpoint) and change nothing.
func TestWellSignedEventsWithUnusableValuesChangeNothing(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixtureOnStub(t, db)
		s := newScenario(f)
		f.stub.setObject(t, s.sub, s.subscription("starter", "active", 1))
		for _, stp := range s.steps()[:4] { // checkout, growth, payment failed, invoice paid
			f.mustDeliver(stp.body)
		}
		n := 0
		sub := func(edit func(o map[string]any)) []byte {
			n++
			o := s.subscription("starter", "active", 10+n)
			edit(o)
			return event("evt_bad_"+store.NewID(), "customer.subscription.updated", s.at(10+n), o)
		}
		inv := func(edit func(o map[string]any)) []byte {
			n++
			o := s.invoiceObj("paid", 10+n)
			edit(o)
			return event("evt_bad_"+store.NewID(), "invoice.paid", s.at(10+n), o)
		}
		envelope := func(edit func(ev map[string]any)) []byte {
			var ev map[string]any
			if err := json.Unmarshal(event("evt_bad_"+store.NewID(), "invoice.paid", s.at(30), s.invoiceObj("paid", 30)), &ev); err != nil {
				t.Fatal(err)
			}
			edit(ev)
			b, _ := json.Marshal(ev)
			return b
		}
		checkout := func(edit func(o map[string]any)) []byte {
			o := checkoutObject("cs_"+s.sub, s.org, s.customer, s.sub, "starter", s.at(1))
			edit(o)
			return event("evt_bad_"+store.NewID(), "checkout.session.completed", s.at(31), o)
		}
		cases := []struct {
			name string
			body []byte
		}{
			{"an event created in the year 3170843", envelope(func(ev map[string]any) { ev["created"] = int64(99999999999999) })},
			{"an event id with a NUL byte", envelope(func(ev map[string]any) { ev["id"] = "evt_\u0000" })},
			{"an event type that is not one", envelope(func(ev map[string]any) { ev["type"] = "invoice.paid\u0000" })},
			{"an object that is an array", envelope(func(ev map[string]any) { ev["data"] = map[string]any{"object": []any{1, 2}} })},
			{"an object that is a string", envelope(func(ev map[string]any) { ev["data"] = map[string]any{"object": "in_1"} })},
			{"an object that is null", envelope(func(ev map[string]any) { ev["data"] = map[string]any{"object": nil} })},
			{"a checkout session id with a NUL byte", checkout(func(o map[string]any) { o["id"] = "cs_\u0000" })},
			{"a checkout metadata.org_id with a NUL byte", checkout(func(o map[string]any) { o["metadata"].(map[string]any)["org_id"] = s.org + "\u0000" })},
		}
		for _, c := range stripeintest.Subscriptions() {
			cases = append(cases, struct {
				name string
				body []byte
			}{c.Name, sub(c.Edit)})
		}
		for _, c := range stripeintest.Invoices() {
			cases = append(cases, struct {
				name string
				body []byte
			}{c.Name, inv(c.Edit)})
		}
		want := f.state(s)
		subs, invs := f.count(&billing.Subscription{}), f.count(&invoices.Invoice{})
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := f.deliver(tc.body)
				if r.Status != http.StatusOK || r.Outcome != "invalid" {
					t.Fatalf("answered %d %q, want 200 invalid", r.Status, r.Outcome)
				}
				// The operator is told which value, in the answer Stripe's
				// dashboard shows and in the one log line of the event.
				if r.Field == "" || r.Reason == "" {
					t.Fatalf("the answer names field %q and reason %q; want both", r.Field, r.Reason)
				}
				line, _ := json.Marshal(map[string]string{"field": r.Field})
				if !strings.Contains(f.logs.String(), strings.Trim(string(line), "{}")) {
					t.Fatalf("no log line names field %q", r.Field)
				}
				if got := f.state(s); !reflect.DeepEqual(got, want) {
					t.Fatalf("state changed:\n%+v\nwant\n%+v", got, want)
				}
				if gs, gi := f.count(&billing.Subscription{}), f.count(&invoices.Invoice{}); gs != subs || gi != invs {
					t.Fatalf("%d subscriptions and %d invoices, want %d and %d", gs, gi, subs, invs)
				}
			})
		}
		if st := f.state(s); st.OrgPlan != "growth" || st.Sub.Status != "past_due" || st.Invoice.Status != "paid" {
			t.Fatalf("ended on plan %s, status %s, invoice %s; want what the usable events left: growth, past_due, paid",
				st.OrgPlan, st.Sub.Status, st.Invoice.Status)
		}
		if !strings.Contains(f.logs.String(), `"object":"subscription `+s.sub+`","field":"status","reason":"is not a subscription status`) {
			t.Errorf("no log line says what was wrong with the status")
		}
	})
}

// A subscription the webhook fetches from Stripe is judged as one an event
// carries: the one a completed checkout sold, and the one fetched to order
// two updates of one second. One Tollgate cannot use makes the event
// invalid, and nothing of it is kept.
func TestFetchedSubscriptionsWithUnusableValuesChangeNothing(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixtureOnStub(t, db)
		s := newScenario(f)
		far := s.subscription("starter", "active", 1)
		far["current_period_end"] = int64(99999999999999)
		f.stub.setObject(t, s.sub, far)
		checkout := s.steps()[0]
		if out := f.mustDeliver(checkout.body); out != "invalid" {
			t.Fatalf("a checkout whose subscription is unusable: outcome %q, want invalid", out)
		}
		if n := f.count(&billing.Subscription{}); n != 0 || orgOf(f, s.org).StripeCustomerID != nil {
			t.Fatalf("kept %d subscriptions and customer %v from an invalid checkout", n, orgOf(f, s.org).StripeCustomerID)
		}

		f.mustDeliver(event("evt_first_"+s.sub, "customer.subscription.updated", s.at(2), s.subscription("starter", "active", 2)))
		want := f.state(s)
		if out := f.mustDeliver(event("evt_second_"+s.sub, "customer.subscription.updated", s.at(2), s.subscription("growth", "active", 2))); out != "invalid" {
			t.Fatalf("a second update of the same second, fetched unusable: outcome %q, want invalid", out)
		}
		if got := f.state(s); !reflect.DeepEqual(got, want) {
			t.Fatalf("state changed:\n%+v\nwant\n%+v", got, want)
		}
	})
}

// A link on an invoice that is not an https URL is dropped: the invoice is
// kept, and neither the list nor the billing page's href ever shows a
// javascript: or data: URL. A negative total (credits larger than the
// charges) is Stripe's and is kept.
func TestInvoiceLinksThatAreNotHTTPSAreNeverServed(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		s := newScenario(f)
		obj := s.invoiceObj("paid", 4)
		obj["hosted_invoice_url"] = "javascript:alert(1)"
		obj["invoice_pdf"] = "data:text/html,<script>alert(1)</script>"
		obj["total"] = -500
		if out := f.mustDeliver(event("evt_links_"+s.sub, "invoice.paid", s.at(4), obj)); out != "applied" {
			t.Fatalf("outcome %q, want applied", out)
		}
		page, err := invoices.NewService(db, clock.Real{}, nil).List(context.Background(), s.org, 10, "", "")
		if err != nil || len(page.Invoices) != 1 {
			t.Fatalf("listed %d invoices (err %v), want 1", len(page.Invoices), err)
		}
		got := page.Invoices[0]
		if got.HostedInvoiceURL != nil || got.PDFURL != nil {
			t.Fatalf("served links %v and %v, want none", deref(got.HostedInvoiceURL), deref(got.PDFURL))
		}
		if got.Total != -500 || got.Status != "paid" || got.PaidAt == nil {
			t.Fatalf("invoice %+v, want it kept: paid, total -500", got)
		}
		// A row stored before links were judged is served without its link.
		if err := db.Model(&invoices.Invoice{}).Where("id = ?", s.invoice).Update("hosted_invoice_url", "javascript:alert(2)").Error; err != nil {
			t.Fatal(err)
		}
		page, err = invoices.NewService(db, clock.Real{}, nil).List(context.Background(), s.org, 10, "", "")
		if err != nil || page.Invoices[0].HostedInvoiceURL != nil {
			t.Fatalf("served a stored javascript: link (err %v)", err)
		}
	})
}

// An invoice link whose host or port weburl refuses for every stored URL
// (127.1, 0x7f000001, port 0, …) is neither stored nor served, as one
// with credentials or over http is not: the billing page would send the
// customer there. The invoice itself is kept.
func TestInvoiceLinksWithHostsWeburlRefusesAreNotStored(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		s := newScenario(f)
		bad := weburltest.RefusedHosts()
		bad["https://user:pass@invoice.stripe.com/i/x"] = "credentials"
		bad["http://invoice.stripe.com/i/x"] = "not https"
		n := 4
		for raw := range bad {
			n++
			obj := s.invoiceObj("paid", n)
			obj["hosted_invoice_url"], obj["invoice_pdf"] = raw, raw
			if out := f.mustDeliver(event(fmt.Sprintf("evt_link_%d_%s", n, s.sub), "invoice.paid", s.at(n), obj)); out != "applied" {
				t.Fatalf("%q: outcome %q, want applied", raw, out)
			}
			var row invoices.Invoice
			if err := db.Where("id = ?", s.invoice).Take(&row).Error; err != nil {
				t.Fatal(err)
			}
			if row.HostedInvoiceURL != nil || row.PDFURL != nil {
				t.Errorf("stored links %q and %q from %q, want none", deref(row.HostedInvoiceURL), deref(row.PDFURL), raw)
			}
		}
	})
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// A signature dated ahead of now by more than the tolerance is refused, as
// one dated behind by as much is: a captured delivery must not replay.
func TestSignaturesDatedTooFarAheadAreRefused(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		s := newScenario(f)
		now := time.Now()
		sign := func(b []byte, at time.Time) string {
			return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: b, Secret: secret, Timestamp: at}).Header
		}
		body := event("evt_ahead_"+s.sub, "customer.subscription.created", s.at(1), s.subscription("growth", "active", 1))
		if r := f.post(body, sign(body, now.Add(stripehook.Tolerance+100*time.Second))); r.Status != http.StatusBadRequest {
			t.Fatalf("a signature 400 s ahead answered %d, want 400", r.Status)
		}
		if n := f.count(&stripehook.WebhookEvent{}) + f.count(&billing.Subscription{}); n != 0 {
			t.Fatalf("stored %d rows from a refused delivery", n)
		}
		if r := f.post(body, sign(body, now.Add(time.Minute))); r.Status != http.StatusOK || r.Outcome != "applied" {
			t.Fatalf("a signature a minute ahead (clock skew) answered %d %q, want 200 applied", r.Status, r.Outcome)
		}
	})
}

// A signature whose t= is a number no clock reaches (the int64 limits, the
// edge where time.Unix overflows, before 2000) is refused as stale however
// well it is signed, and nothing is stored: no value wraps round to now.
func TestSignaturesDatedOutsideTheYearsAreRefused(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		s := newScenario(f)
		body := event("evt_t_"+s.sub, "customer.subscription.created", s.at(1), s.subscription("growth", "active", 1))
		signed := func(ts string) string {
			mac := hmac.New(sha256.New, []byte(secret))
			mac.Write([]byte(ts + "." + string(body)))
			return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
		}
		for _, ts := range []string{"9223372036854775807", "-9223372036854775808", "9223372035854775808", "253402300800", "0", "-1"} {
			if r := f.post(body, signed(ts)); r.Status != http.StatusBadRequest {
				t.Errorf("a signature dated t=%s answered %d, want 400", ts, r.Status)
			}
		}
		if n := f.count(&stripehook.WebhookEvent{}) + f.count(&billing.Subscription{}); n != 0 {
			t.Fatalf("stored %d rows from refused deliveries", n)
		}
		// The same signing, dated now, is taken: only the date was at fault.
		if r := f.post(body, signed(strconv.FormatInt(time.Now().Unix(), 10))); r.Status != http.StatusOK {
			t.Fatalf("the delivery signed now answered %d, want 200", r.Status)
		}
	})
}
