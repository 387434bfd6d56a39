package reconcile_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-billing/tollgate/internal/billing"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/invoices"
	"github.com/tollgate-billing/tollgate/internal/orgs"
	"github.com/tollgate-billing/tollgate/internal/plans"
	"github.com/tollgate-billing/tollgate/internal/reconcile"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/stripeclient/stripetest"
	"github.com/tollgate-billing/tollgate/internal/stripein/stripeintest"
	"github.com/tollgate-billing/tollgate/internal/testenv"
	"github.com/tollgate-billing/tollgate/internal/weburl/weburltest"
)

// stripe sync judges what it lists as the webhooks judge events: an
// object Tollgate cannot use is reported and skipped, and the others of
// the organisation are still applied.
func TestSyncSkipsObjectsTollgateCannotUse(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
		sub := func(id, status string, periodEnd int64) map[string]any {
			return map[string]any{"id": id, "object": "subscription", "customer": "cus_acme", "status": status,
				"created": now.Unix(), "current_period_start": now.Unix(), "current_period_end": periodEnd,
				"items": map[string]any{"object": "list", "data": []any{map[string]any{"id": "si_" + id, "object": "subscription_item",
					"price": map[string]any{"id": "price_tollgate_starter_monthly", "object": "price"}}}}}
		}
		inv := func(id, currency string) map[string]any {
			return map[string]any{"id": id, "object": "invoice", "customer": "cus_acme", "status": "paid", "currency": currency,
				"amount_due": 4900, "amount_paid": 4900, "total": 4900, "created": now.Unix(),
				"hosted_invoice_url": "javascript:alert(1)"}
		}
		lists := map[string][]any{
			"/v1/subscriptions": {sub("sub_good", "active", now.AddDate(0, 1, 0).Unix()), sub("sub_far", "active", 99999999999999), sub("sub_weird", "weird_status", now.AddDate(0, 1, 0).Unix())},
			"/v1/invoices":      {inv("in_good", "usd"), inv("in_accents", "ééé")},
		}
		// Every value the webhooks refuse is refused here too.
		bad := 0
		for i, c := range stripeintest.Subscriptions() {
			o := sub(fmt.Sprintf("sub_bad%d", i), "active", now.AddDate(0, 1, 0).Unix())
			c.Edit(o)
			lists["/v1/subscriptions"] = append(lists["/v1/subscriptions"], o)
			bad++
		}
		for i, c := range stripeintest.Invoices() {
			o := inv(fmt.Sprintf("in_bad%d", i), "usd")
			c.Edit(o)
			lists["/v1/invoices"] = append(lists["/v1/invoices"], o)
			bad++
		}
		// Links whose host or port weburl refuses for every stored URL:
		// each invoice is kept, without its link.
		links := map[string]string{}
		for raw := range weburltest.RefusedHosts() {
			id := fmt.Sprintf("in_link%d", len(links))
			links[id] = raw
			i := inv(id, "usd")
			i["hosted_invoice_url"], i["invoice_pdf"] = raw, raw
			lists["/v1/invoices"] = append(lists["/v1/invoices"], i)
		}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			data, ok := lists[r.URL.Path]
			if !ok || r.Method != http.MethodGet {
				http.Error(w, `{"error":{"type":"invalid_request_error"}}`, http.StatusNotFound)
				return
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": data, "has_more": false, "url": r.URL.Path})
		}))
		t.Cleanup(srv.Close)
		sc := stripetest.ClientAt(srv.URL, nil, 0)
		log := stripetest.Discard()
		b := billing.NewService(db, plans.Default(), clock.Real{}, sc, log)
		invs := invoices.NewService(db, clock.Real{}, log)
		org, err := orgs.NewService(db, clock.Real{}).Ensure(ctx, "acme", "Acme", "")
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Model(&orgs.Organization{}).Where("id = ?", org).Update("stripe_customer_id", "cus_acme").Error; err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := reconcile.New(db, b, invs, sc, clock.Real{}, log).Sync(ctx, "", &out); err != nil {
			t.Fatalf("sync: %v\n%s", err, out.String())
		}
		for _, want := range []string{"skipped: unusable Stripe subscription sub_far: current_period_end",
			"skipped: unusable Stripe subscription sub_weird: status", "skipped: unusable Stripe invoice in_accents: currency"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("sync output lacks %q:\n%s", want, out.String())
			}
		}
		if n := strings.Count(out.String(), "skipped: unusable Stripe"); n != 3+bad {
			t.Errorf("sync skipped %d objects, want %d:\n%s", n, 3+bad, out.String())
		}
		var subs []billing.Subscription
		db.Find(&subs)
		if len(subs) != 1 || subs[0].StripeSubscriptionID != "sub_good" || subs[0].Status != "active" {
			t.Fatalf("stored subscriptions %+v, want only sub_good, active", subs)
		}
		var stored []invoices.Invoice
		db.Find(&stored)
		if len(stored) != 1+len(links) {
			t.Fatalf("stored %d invoices, want in_good and the %d with refused links", len(stored), len(links))
		}
		for _, i := range stored {
			if i.ID == "in_accents" || i.HostedInvoiceURL != nil || i.PDFURL != nil {
				t.Errorf("stored invoice %s with links %v and %v (from %q), want none, and no in_accents", i.ID, i.HostedInvoiceURL, i.PDFURL, links[i.ID])
			}
		}
		if st, _ := b.Current(ctx, org); st.Plan.ID != "starter" {
			t.Fatalf("plan %s, want starter from the usable subscription", st.Plan.ID)
		}
	})
}
