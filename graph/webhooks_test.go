package graph_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/apptest"
	"github.com/tollgate-billing/tollgate/internal/auth"
	"github.com/tollgate-billing/tollgate/internal/orgs"
	"github.com/tollgate-billing/tollgate/internal/outbound"
)

const createEndpoint = `mutation($in: CreateWebhookEndpointInput!) {
  createWebhookEndpoint(input: $in) {
    secret
    webhookEndpoint { id url events status }
    userErrors { field code message }
  }
}`

type createEndpointResult struct {
	CreateWebhookEndpoint struct {
		Secret          *string
		WebhookEndpoint *struct {
			ID, URL, Status string
			Events          []string
		}
		UserErrors []struct{ Field, Code, Message string }
	}
}

type deliveriesResult struct {
	WebhookDeliveries []struct {
		ID, EventID, EventType, Status string
		Sequence                       int64
		Attempts                       []struct{ StatusCode *int }
	}
}

// TestWebhookEndpointsThroughGraphQL: free gets PLAN_LIMIT; a plan with
// webhooks gets a secret once, receives a signed event, sees the delivery
// and can replay it.
func TestWebhookEndpointsThroughGraphQL(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	got := make(chan *http.Request, 10)
	bodies := make(chan []byte, 10)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies <- b
		got <- r
	}))
	defer rcv.Close()
	in := map[string]any{"in": map[string]any{"url": rcv.URL + "/hooks", "events": []string{"invoice.paid"}}}

	var free createEndpointResult
	h.Query("acme", createEndpoint, in).Decode(t, &free)
	if ue := free.CreateWebhookEndpoint.UserErrors; len(ue) != 1 || ue[0].Code != "PLAN_LIMIT" || free.CreateWebhookEndpoint.Secret != nil {
		t.Fatalf("free plan: %+v", free.CreateWebhookEndpoint)
	}

	orgID := enterpriseOrg(t, h)

	r := h.Do(map[string]string{"Authorization": "Bearer " + h.Token("acme", auth.BillingRead)}, createEndpoint, in)
	if r.Code() != "FORBIDDEN" {
		t.Fatalf("billing:read created an endpoint: %s", r.Data)
	}

	var created createEndpointResult
	h.Query("acme", createEndpoint, in).Decode(t, &created)
	c := created.CreateWebhookEndpoint
	if len(c.UserErrors) > 0 || c.Secret == nil || c.WebhookEndpoint == nil || c.WebhookEndpoint.Status != "ENABLED" {
		t.Fatalf("create: %+v", c)
	}
	var list struct{ WebhookEndpoints []map[string]any }
	h.Query("acme", `{ webhookEndpoints { id url events status } }`, nil).Decode(t, &list)
	if len(list.WebhookEndpoints) != 1 || list.WebhookEndpoints[0]["url"] != rcv.URL+"/hooks" {
		t.Fatalf("webhookEndpoints = %+v", list.WebhookEndpoints)
	}

	done, stop := h.App.Jobs.Subscribe(river.EventKindJobCompleted)
	defer stop()
	emitInvoicePaid(t, h, orgID)
	req, body := <-got, <-bodies
	wh, _ := standardwebhooks.NewWebhook(*c.Secret)
	if err := wh.Verify(body, req.Header); err != nil {
		t.Fatalf("signature: %v", err)
	}
	waitJob(t, done)

	q := `query($id: ID!) { webhookDeliveries(endpointId: $id) { id eventId eventType status sequence attempts { statusCode } } }`
	var ds deliveriesResult
	h.Query("acme", q, map[string]any{"id": c.WebhookEndpoint.ID}).Decode(t, &ds)
	if len(ds.WebhookDeliveries) != 1 || ds.WebhookDeliveries[0].Status != "SUCCEEDED" || ds.WebhookDeliveries[0].Sequence != 1 ||
		ds.WebhookDeliveries[0].EventID != req.Header.Get("webhook-id") || *ds.WebhookDeliveries[0].Attempts[0].StatusCode != 200 {
		t.Fatalf("webhookDeliveries = %+v", ds)
	}
	// The status filter keeps only the deliveries in the statuses asked for.
	for status, want := range map[string]int{"SUCCEEDED": 1, "FAILED": 0, "PENDING": 0} {
		var only deliveriesResult
		h.Query("acme", `query($id: ID!, $s: [WebhookDeliveryStatus!]) { webhookDeliveries(endpointId: $id, status: $s) { id status } }`,
			map[string]any{"id": c.WebhookEndpoint.ID, "s": []string{status}}).Decode(t, &only)
		if len(only.WebhookDeliveries) != want {
			t.Errorf("webhookDeliveries(status: [%s]) = %+v, want %d", status, only.WebhookDeliveries, want)
		}
	}
	// A page of fewer than one delivery is refused, as invoices refuses it.
	for _, first := range []int{0, -1} {
		r := h.Query("acme", `query($id: ID!, $n: Int) { webhookDeliveries(endpointId: $id, first: $n) { id } }`,
			map[string]any{"id": c.WebhookEndpoint.ID, "n": first})
		if r.Code() != "BAD_USER_INPUT" || r.Errors[0].Message != "first must be at least 1" {
			t.Errorf("webhookDeliveries(first: %d): %s %+v, want BAD_USER_INPUT", first, r.Data, r.Errors)
		}
	}

	var retried struct {
		RetryWebhookDelivery struct {
			WebhookDelivery struct{ Status string }
			UserErrors      []struct{ Code string }
		}
	}
	h.Query("acme", `mutation($id: ID!) { retryWebhookDelivery(id: $id) { webhookDelivery { status } userErrors { code } } }`,
		map[string]any{"id": ds.WebhookDeliveries[0].ID}).Decode(t, &retried)
	if retried.RetryWebhookDelivery.WebhookDelivery.Status != "PENDING" {
		t.Fatalf("retry: %+v", retried)
	}
	if again := <-got; again.Header.Get("webhook-id") != req.Header.Get("webhook-id") {
		t.Fatal("a replay changed webhook-id")
	}
	<-bodies
	waitJob(t, done)

	// Another organisation sees none of it.
	r = h.Query("globex", q, map[string]any{"id": c.WebhookEndpoint.ID})
	if r.Code() != "NOT_FOUND" {
		t.Fatalf("another organisation's webhookDeliveries: %s %+v", r.Data, r.Errors)
	}

	// Nor can it change it: each mutation names its own id field, and an
	// endpoint or a delivery of another organisation reads as none.
	for _, c := range []struct {
		doc, field, message string
		vars                map[string]any
	}{
		{`mutation($in: UpdateWebhookEndpointInput!) { updateWebhookEndpoint(input: $in) { userErrors { field code message } } }`,
			"input.id", "No such webhook endpoint in this organisation.", map[string]any{"in": map[string]any{"id": c.WebhookEndpoint.ID, "enabled": false}}},
		{`mutation($id: ID!) { deleteWebhookEndpoint(id: $id) { userErrors { field code message } } }`,
			"id", "No such webhook endpoint in this organisation.", map[string]any{"id": c.WebhookEndpoint.ID}},
		{`mutation($id: ID!) { retryWebhookDelivery(id: $id) { userErrors { field code message } } }`,
			"id", "No such webhook delivery in this organisation.", map[string]any{"id": ds.WebhookDeliveries[0].ID}},
	} {
		var out map[string]struct {
			UserErrors []struct{ Field, Code, Message string }
		}
		h.Query("globex", c.doc, c.vars).Decode(t, &out)
		for name, p := range out {
			if ue := p.UserErrors; len(ue) != 1 || ue[0].Field != c.field || ue[0].Code != "NOT_FOUND" || ue[0].Message != c.message {
				t.Fatalf("another organisation's %s: %+v, want %s NOT_FOUND %q", name, ue, c.field, c.message)
			}
		}
	}

	var deleted struct {
		DeleteWebhookEndpoint struct{ DeletedID *string }
	}
	h.Query("acme", `mutation($id: ID!) { deleteWebhookEndpoint(id: $id) { deletedId } }`, map[string]any{"id": c.WebhookEndpoint.ID}).Decode(t, &deleted)
	if deleted.DeleteWebhookEndpoint.DeletedID == nil {
		t.Fatal("delete failed")
	}
}

// enterpriseOrg moves acme to the enterprise plan, which has room for
// webhook endpoints, and returns its id.
func enterpriseOrg(t *testing.T, h *apptest.Harness) string {
	t.Helper()
	var org struct{ Organization struct{ ID string } }
	h.Query("acme", `{ organization { id } }`, nil).Decode(t, &org)
	orgID := org.Organization.ID
	h.App.DB.Model(&orgs.Organization{}).Where("id = ?", orgID).Update("plan_id", "enterprise")
	h.App.Usage.InvalidatePlan(orgID)
	return orgID
}

// emitInvoicePaid records an invoice.paid event for orgID, as billing does.
func emitInvoicePaid(t *testing.T, h *apptest.Harness, orgID string) {
	t.Helper()
	err := h.App.DB.Tx(context.Background(), func(tx *gorm.DB) error {
		return h.App.Webhooks.Emit(context.Background(), tx, orgID, outbound.InvoicePaid, map[string]string{"invoice_id": "in_1"})
	})
	if err != nil {
		t.Fatal(err)
	}
}

type updateEndpointPayload struct {
	WebhookEndpoint *struct{ URL string }
	UserErrors      []struct{ Field, Code string }
}

// updateEndpointURL changes an endpoint's URL through updateWebhookEndpoint.
func updateEndpointURL(t *testing.T, h *apptest.Harness, id, url string) updateEndpointPayload {
	t.Helper()
	var out struct{ UpdateWebhookEndpoint updateEndpointPayload }
	h.Query("acme", `mutation($in: UpdateWebhookEndpointInput!) { updateWebhookEndpoint(input: $in) { webhookEndpoint { url } userErrors { field code } } }`,
		map[string]any{"in": map[string]any{"id": id, "url": url}}).Decode(t, &out)
	return out.UpdateWebhookEndpoint
}

func waitJob(t *testing.T, ch <-chan *river.Event) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatal("delivery job did not complete within 30 s")
	}
}

// TestWebhookArgumentsNeverAnswerInternal: ids, URLs and event names that
// cannot exist (NUL, invalid UTF-8, too long) are client errors on both
// databases, like every other argument; Postgres refuses such text, and
// that refusal must not surface as INTERNAL.
func TestWebhookArgumentsNeverAnswerInternal(t *testing.T) {
	apptest.EachDialect(t, apptest.Options{}, func(t *testing.T, h *apptest.Harness) {
		enterpriseOrg(t, h)
		bad := []string{"\x00", "in\xff", strings.Repeat("x", 300), "5f0c2a4e-0000-4000-8000-00000000000\x00"}
		for _, v := range bad {
			calls := []struct {
				query string
				vars  map[string]any
			}{
				{createEndpoint, map[string]any{"in": map[string]any{"url": "https://hooks.acme.test/" + v, "events": []string{"invoice.paid"}}}},
				{createEndpoint, map[string]any{"in": map[string]any{"url": "https://hooks.acme.test/", "events": []string{v}}}},
				{`mutation($in: UpdateWebhookEndpointInput!) { updateWebhookEndpoint(input: $in) { userErrors { code } } }`,
					map[string]any{"in": map[string]any{"id": v, "url": "https://hooks.acme.test/" + v}}},
				{`mutation($id: ID!) { deleteWebhookEndpoint(id: $id) { userErrors { code } } }`, map[string]any{"id": v}},
				{`mutation($id: ID!) { retryWebhookDelivery(id: $id) { userErrors { code } } }`, map[string]any{"id": v}},
				{`query($id: ID!) { webhookDeliveries(endpointId: $id) { id } }`, map[string]any{"id": v}},
				// This session's other new arguments.
				{`mutation($m: String!) { setUsageAlerts(meter: $m, percents: [50]) { userErrors { code } } }`, map[string]any{"m": v}},
				{`query($p: String) { usageAlerts(period: $p) { meter } }`, map[string]any{"p": v}},
			}
			for _, c := range calls {
				r := h.Query("acme", c.query, c.vars)
				if r.Status >= 500 || r.Code() == "INTERNAL" {
					t.Errorf("%q in %s answered %d %s", v, strings.Fields(c.query)[0], r.Status, r.Data)
				}
			}
		}
	})
}

// TestWebhookURLsNeverCarryCredentials: a URL with a user name or password
// is refused on create and update; one stored before that rule is listed,
// and quoted in attempt errors, without them, to every billing:read caller.
func TestWebhookURLsNeverCarryCredentials(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	got := make(chan struct{}, 10)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		got <- struct{}{}
	}))
	defer rcv.Close()
	orgID := enterpriseOrg(t, h)
	withCreds := strings.Replace(rcv.URL, "http://", "http://hook-user:s3cret@", 1) + "/hooks"

	for _, u := range []string{withCreds, "https://hook-user:s3cret@hooks.acme.test/", "https://s3cret@hooks.acme.test/", "https://@hooks.acme.test/"} {
		var out createEndpointResult
		h.Query("acme", createEndpoint, map[string]any{"in": map[string]any{"url": u, "events": []string{"invoice.paid"}}}).Decode(t, &out)
		c := out.CreateWebhookEndpoint
		if c.WebhookEndpoint != nil || len(c.UserErrors) != 1 || c.UserErrors[0].Code != "INVALID_URL" || c.UserErrors[0].Field != "input.url" ||
			!strings.Contains(c.UserErrors[0].Message, "Credentials in URLs are not allowed") {
			t.Fatalf("create with %q = %+v, want INVALID_URL about credentials", u, c)
		}
	}
	var created createEndpointResult
	h.Query("acme", createEndpoint, map[string]any{"in": map[string]any{"url": rcv.URL + "/hooks", "events": []string{"invoice.paid"}}}).Decode(t, &created)
	ep := created.CreateWebhookEndpoint.WebhookEndpoint
	if ep == nil {
		t.Fatalf("create: %+v", created.CreateWebhookEndpoint)
	}
	if u := updateEndpointURL(t, h, ep.ID, withCreds); u.WebhookEndpoint != nil || len(u.UserErrors) != 1 || u.UserErrors[0].Code != "INVALID_URL" {
		t.Fatalf("update to a URL with credentials = %+v, want INVALID_URL", u)
	}

	// An endpoint saved before the rule, as the database may still hold.
	if err := h.App.DB.Table("webhook_endpoints").Where("id = ?", ep.ID).Update("url", withCreds).Error; err != nil {
		t.Fatal(err)
	}
	settled, stop := h.App.Jobs.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed, river.EventKindJobSnoozed)
	defer stop()
	emitInvoicePaid(t, h, orgID)
	<-got
	waitJob(t, settled)
	reader := map[string]string{"Authorization": "Bearer " + h.Token("acme", auth.BillingRead)}
	r := h.Do(reader, `query($id: ID!) { webhookEndpoints { url disabledReason } webhookDeliveries(endpointId: $id) { attempts { statusCode error } } }`, map[string]any{"id": ep.ID})
	if len(r.Errors) > 0 {
		t.Fatalf("errors: %+v", r.Errors)
	}
	if d := string(r.Data); strings.Contains(d, "s3cret") || strings.Contains(d, "hook-user") {
		t.Fatalf("a stored URL's credentials reached a billing:read caller: %s", d)
	}
	if !strings.Contains(string(r.Data), strings.TrimPrefix(rcv.URL, "http://")+"/hooks") || !strings.Contains(string(r.Data), "500") {
		t.Fatalf("the redacted URL or the attempt is missing: %s", r.Data)
	}
}

// TestProductionWebhooksReachPublicAddressesOnly: in production a private,
// shared or metadata address is FORBIDDEN_URL on create and update, except
// in the networks WEBHOOK_ALLOWED_NETWORKS lists, and an endpoint saved
// before the rule is never connected to: its attempt says only that the
// destination is not public, whatever listens there.
func TestProductionWebhooksReachPublicAddressesOnly(t *testing.T) {
	apptest.EachDialect(t, apptest.Options{Env: map[string]string{
		"TOLLGATE_ENV": "production", "DATABASE_URL": "postgres://unused/x", "REDIS_URL": "redis://unused:6379",
		"WEBHOOK_ALLOWED_NETWORKS": "10.20.0.0/16",
	}}, productionWebhooksReachPublicAddressesOnly)
}

func productionWebhooksReachPublicAddressesOnly(t *testing.T, h *apptest.Harness) {
	orgID := enterpriseOrg(t, h)

	for _, u := range []string{"https://10.0.0.1:6379/x", "https://192.168.1.1/x", "https://100.64.0.1/x", "https://168.63.129.16/x",
		"https://192.0.0.192/x", "https://[fc00::1]/x", "https://[fd00::2]:18481/", "https://255.255.255.255/x", "https://[64:ff9b::a00:1]/x"} {
		var out createEndpointResult
		h.Query("acme", createEndpoint, map[string]any{"in": map[string]any{"url": u, "events": []string{"invoice.paid"}}}).Decode(t, &out)
		c := out.CreateWebhookEndpoint
		if c.WebhookEndpoint != nil || len(c.UserErrors) != 1 || c.UserErrors[0].Code != "FORBIDDEN_URL" || c.UserErrors[0].Field != "input.url" {
			t.Fatalf("create with %q = %+v, want FORBIDDEN_URL on input.url", u, c)
		}
	}
	var created createEndpointResult
	h.Query("acme", createEndpoint, map[string]any{"in": map[string]any{"url": "https://10.20.0.5/hooks", "events": []string{"invoice.paid"}}}).Decode(t, &created)
	ep := created.CreateWebhookEndpoint.WebhookEndpoint
	if ep == nil {
		t.Fatalf("create in an allowed network: %+v", created.CreateWebhookEndpoint)
	}
	if u := updateEndpointURL(t, h, ep.ID, "https://10.21.0.5/hooks"); u.WebhookEndpoint != nil || len(u.UserErrors) != 1 || u.UserErrors[0].Code != "FORBIDDEN_URL" {
		t.Fatalf("update to a private address outside the allowed network = %+v, want FORBIDDEN_URL", u)
	}

	// An endpoint saved before the rule, as the database may still hold.
	if err := h.App.DB.Table("webhook_endpoints").Where("id = ?", ep.ID).Update("url", "https://10.0.0.1:6379/x").Error; err != nil {
		t.Fatal(err)
	}
	settled, stop := h.App.Jobs.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed, river.EventKindJobSnoozed)
	defer stop()
	emitInvoicePaid(t, h, orgID)
	waitJob(t, settled)
	var ds struct {
		WebhookDeliveries []struct{ Attempts []struct{ Error *string } }
	}
	h.Query("acme", `query($id: ID!) { webhookDeliveries(endpointId: $id) { attempts { error } } }`, map[string]any{"id": ep.ID}).Decode(t, &ds)
	if len(ds.WebhookDeliveries) != 1 || len(ds.WebhookDeliveries[0].Attempts) != 1 || ds.WebhookDeliveries[0].Attempts[0].Error == nil ||
		*ds.WebhookDeliveries[0].Attempts[0].Error != "cannot deliver to this destination: webhooks go to public addresses only" {
		t.Fatalf("deliveries to an endpoint saved before the rule = %+v, want one attempt refused as not public", ds.WebhookDeliveries)
	}
}

// TestWebhookEndpointEventsDefaultToAll: omitted events, or "*", subscribe
// to every event; an empty list is still refused.
func TestWebhookEndpointEventsDefaultToAll(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	enterpriseOrg(t, h)
	for _, tc := range []struct {
		name   string
		in     map[string]any
		events []string
	}{
		{"omitted", map[string]any{"url": "http://127.0.0.1:9/a"}, []string{"*"}},
		{"star", map[string]any{"url": "http://127.0.0.1:9/b", "events": []string{"invoice.paid", "*"}}, []string{"*"}},
		{"listed", map[string]any{"url": "http://127.0.0.1:9/c", "events": []string{"invoice.paid"}}, []string{"invoice.paid"}},
	} {
		var got createEndpointResult
		h.Query("acme", createEndpoint, map[string]any{"in": tc.in}).Decode(t, &got)
		c := got.CreateWebhookEndpoint
		if len(c.UserErrors) > 0 || c.WebhookEndpoint == nil || strings.Join(c.WebhookEndpoint.Events, " ") != strings.Join(tc.events, " ") {
			t.Errorf("%s: %+v, want events %v", tc.name, c, tc.events)
		}
	}
	var empty createEndpointResult
	h.Query("acme", createEndpoint, map[string]any{"in": map[string]any{"url": "http://127.0.0.1:9/d", "events": []string{}}}).Decode(t, &empty)
	if ue := empty.CreateWebhookEndpoint.UserErrors; len(ue) != 1 || ue[0].Field != "input.events" || ue[0].Code != "REQUIRED" {
		t.Errorf("events: []: %+v, want REQUIRED on input.events", empty.CreateWebhookEndpoint)
	}
}
