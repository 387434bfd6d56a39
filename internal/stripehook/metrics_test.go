package stripehook_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/tollgate-billing/tollgate/internal/observe"
	"github.com/tollgate-billing/tollgate/internal/observe/observetest"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/stripehook"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

func TestEveryDeliveryIsCountedOnceByTypeAndOutcome(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		s := newScenario(f)
		sign := func(b []byte) string {
			return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: b, Secret: secret, Timestamp: time.Now()}).Header
		}
		created := event("evt_"+s.sub+"_m1", "customer.subscription.created", s.at(2), s.subscription("growth", "active", 2))
		older := event("evt_"+s.sub+"_m0", "customer.subscription.updated", s.at(1), s.subscription("starter", "active", 1))
		stranger := event("evt_"+s.sub+"_m2", "customer.subscription.updated", s.at(2), subscriptionObject(subSpec{
			id: "sub_nobody_" + s.sub, customer: "cus_nobody_" + s.sub, orgID: "org_nobody", plan: "growth", status: "active",
			created: s.at(1), periodStart: s.at(1)}))
		garbled := event("evt_"+s.sub+"_m3", "customer.subscription.updated", s.at(3), map[string]any{"id": s.sub, "status": 42})
		ignored := event("evt_"+s.sub+"_m4", "customer.created", s.at(4), map[string]any{"id": s.customer})
		madeUp := event("evt_"+s.sub+"_m5", "made.up."+s.sub, s.at(5), map[string]any{})
		notEvent := []byte(`{"hello":"world"}`)
		huge := append(bytes.Repeat([]byte(" "), stripehook.MaxBodyBytes), created...)
		cases := []struct {
			name          string
			body          []byte
			header        string
			before, after func() // break and mend the database
			typ, outcome  string
		}{
			{name: "a new subscription event", body: created, header: sign(created),
				typ: "customer.subscription.created", outcome: "applied"},
			{name: "the same event redelivered", body: created, header: sign(created),
				typ: "customer.subscription.created", outcome: "duplicate"},
			{name: "an event older than the one applied", body: older, header: sign(older),
				typ: "customer.subscription.updated", outcome: "stale"},
			{name: "a subscription no organisation owns", body: stranger, header: sign(stranger),
				typ: "customer.subscription.updated", outcome: "unknown_org"},
			{name: "an object Tollgate cannot read", body: garbled, header: sign(garbled),
				typ: "customer.subscription.updated", outcome: "undecodable"},
			{name: "a type Tollgate does not act on", body: ignored, header: sign(ignored), typ: "other", outcome: "ignored"},
			{name: "a type nobody has heard of", body: madeUp, header: sign(madeUp), typ: "other", outcome: "ignored"},
			{name: "an unsigned body", body: created, typ: "other", outcome: "bad_signature"},
			{name: "a signed body that is not an event", body: notEvent, header: sign(notEvent), typ: "other", outcome: "undecodable"},
			{name: "a body over 1 MiB", body: huge, header: sign(huge), typ: "other", outcome: "too_large"},
			{name: "a database failure", body: created, header: sign(created),
				before: func() { mustExec(t, db, "ALTER TABLE webhook_events RENAME TO webhook_events_away") },
				after:  func() { mustExec(t, db, "ALTER TABLE webhook_events_away RENAME TO webhook_events") },
				typ:    "customer.subscription.created", outcome: "error"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				series := observe.WebhookEvents.WithLabelValues(tc.typ, tc.outcome)
				before, total := testutil.ToFloat64(series), observetest.Sum(observe.WebhookEvents)
				if tc.before != nil {
					tc.before()
					defer tc.after()
				}
				f.post(tc.body, tc.header)
				if got := testutil.ToFloat64(series) - before; got != 1 {
					t.Errorf("webhook_events{type=%q, outcome=%q} moved by %v, want 1", tc.typ, tc.outcome, got)
				}
				if got := observetest.Sum(observe.WebhookEvents) - total; got != 1 {
					t.Errorf("webhook_events moved by %v in all, want one delivery counted once", got)
				}
			})
		}
	})
}

func mustExec(t *testing.T, db *store.DB, sql string) {
	t.Helper()
	if err := db.Exec(sql).Error; err != nil {
		t.Fatal(err)
	}
}
