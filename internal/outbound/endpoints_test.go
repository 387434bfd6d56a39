package outbound_test

import (
	"context"
	"log/slog"
	"net/netip"
	"testing"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/jobs"
	"github.com/tollgate-billing/tollgate/internal/outbound"
	"github.com/tollgate-billing/tollgate/internal/plans"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

func TestEndpointCountIsCappedByThePlan(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		const allowed = 2
		h := newHarness(t, db, allowed)
		var ids []string
		for range allowed {
			ep, secret := h.endpoint(t, "https://hooks.acme.test/tollgate", outbound.InvoicePaid)
			if len(secret) < len("whsec_")+40 || secret[:6] != "whsec_" {
				t.Fatalf("secret %q is not a whsec_ secret", secret)
			}
			ids = append(ids, ep.ID)
		}
		_, _, err := h.svc.CreateEndpoint(ctx, h.org, "https://hooks.acme.test/third", []string{outbound.InvoicePaid})
		wantUserError(t, err, outbound.CodePlanLimit)

		if err := h.svc.DeleteEndpoint(ctx, h.org, ids[0]); err != nil {
			t.Fatal(err)
		}
		if _, _, err := h.svc.CreateEndpoint(ctx, h.org, "https://hooks.acme.test/third", []string{outbound.InvoicePaid}); err != nil {
			t.Fatalf("after deleting one, creating one more: %v", err)
		}
		eps, err := h.svc.Endpoints(ctx, h.org)
		if err != nil || len(eps) != allowed {
			t.Fatalf("endpoints = %d (%v), want %d", len(eps), err, allowed)
		}
	})
}

// The refusal names the plan's allowance in words that read right for
// every count: "allows 1 webhook endpoints" did not.
func TestThePlanLimitMessageCountsEndpoints(t *testing.T) {
	for _, tc := range []struct {
		allowed int
		want    string
	}{
		{0, "The Growth plan includes no webhook endpoints; upgrade to add one."},
		{1, "The Growth plan allows 1 webhook endpoint; delete it or upgrade."},
		{2, "The Growth plan allows 2 webhook endpoints; delete one or upgrade."},
	} {
		h := newHarness(t, testenv.DB(t), tc.allowed)
		for range tc.allowed {
			h.endpoint(t, "https://hooks.acme.test/", outbound.InvoicePaid)
		}
		_, _, err := h.svc.CreateEndpoint(context.Background(), h.org, "https://hooks.acme.test/one-more", []string{outbound.InvoicePaid})
		if fe, _ := apperr.AsFieldErrors(err); len(fe) != 1 || fe[0].Code != outbound.CodePlanLimit || fe[0].Message != tc.want {
			t.Errorf("with %d allowed, one more: %v, want %s %q", tc.allowed, err, outbound.CodePlanLimit, tc.want)
		}
	}
}

func TestFreePlanHasNoEndpoints(t *testing.T) {
	h := newHarness(t, testenv.DB(t), 0)
	_, _, err := h.svc.CreateEndpoint(context.Background(), h.org, "https://hooks.acme.test/", []string{outbound.InvoicePaid})
	wantUserError(t, err, outbound.CodePlanLimit)
}

func TestEndpointsOfAnotherOrganisationAreNotFound(t *testing.T) {
	h := newHarness(t, testenv.DB(t), 3)
	ctx := context.Background()
	ep, _ := h.endpoint(t, "https://hooks.acme.test/", outbound.InvoicePaid)
	stranger := "org-" + store.NewID()
	url := "https://evil.test/"
	if _, err := h.svc.UpdateEndpoint(ctx, stranger, ep.ID, outbound.EndpointInput{URL: &url}); err == nil {
		t.Fatal("another organisation updated the endpoint")
	} else {
		wantUserError(t, err, outbound.CodeNotFound)
	}
	wantUserError(t, h.svc.DeleteEndpoint(ctx, stranger, ep.ID), outbound.CodeNotFound)
	if _, err := h.svc.Deliveries(ctx, stranger, ep.ID, 10, ""); err == nil {
		t.Fatal("another organisation listed the endpoint's deliveries")
	}
}

func TestUpdateChangesEventsAndReenablesAnEndpoint(t *testing.T) {
	h := newHarness(t, testenv.DB(t), 3)
	ctx := context.Background()
	ep, _ := h.endpoint(t, "https://hooks.acme.test/", outbound.InvoicePaid)
	off, on := false, true
	events := []string{outbound.OverageBilled, outbound.InvoicePaid, outbound.OverageBilled}
	got, err := h.svc.UpdateEndpoint(ctx, h.org, ep.ID, outbound.EndpointInput{Events: &events, Enabled: &off})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != outbound.StatusDisabled || len(got.Events) != 2 {
		t.Fatalf("after update: %+v", got)
	}
	if got, err = h.svc.UpdateEndpoint(ctx, h.org, ep.ID, outbound.EndpointInput{Enabled: &on}); err != nil || got.Status != outbound.StatusEnabled || got.DisabledAt != nil {
		t.Fatalf("after re-enabling: %+v, %v", got, err)
	}
	bad := []string{"invoice.exploded"}
	_, err = h.svc.UpdateEndpoint(ctx, h.org, ep.ID, outbound.EndpointInput{Events: &bad})
	wantUserError(t, err, outbound.CodeUnknownEvent)
}

// In production an endpoint's URL must name a public address whether it
// is created or changed, unless the operator allowed its network; a
// refused change leaves the endpoint as it was.
func TestProductionEndpointsNameOnlyPublicOrAllowedAddresses(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		h := newHarnessWith(t, db, 5, func(o *outbound.Options) {
			o.Production, o.AllowedNetworks = true, []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")}
		})
		for _, raw := range []string{"https://10.0.0.1:6379/x", "https://192.168.1.1/x", "https://[fd00::2]:18481/", "https://168.63.129.16/x"} {
			_, _, err := h.svc.CreateEndpoint(ctx, h.org, raw, []string{outbound.InvoicePaid})
			wantUserError(t, err, outbound.CodeForbiddenURL)
		}
		ep, _ := h.endpoint(t, "https://10.20.0.5/hooks", outbound.InvoicePaid)
		for _, raw := range []string{"https://10.21.0.5/hooks", "https://100.64.0.1/x", "https://[64:ff9b::a00:1]/x", "https://192.0.0.192/x"} {
			_, err := h.svc.UpdateEndpoint(ctx, h.org, ep.ID, outbound.EndpointInput{URL: &raw})
			wantUserError(t, err, outbound.CodeForbiddenURL)
		}
		eps, err := h.svc.Endpoints(ctx, h.org)
		if err != nil || len(eps) != 1 || eps[0].URL != "https://10.20.0.5/hooks" {
			t.Fatalf("endpoints after refused changes = %+v (%v), want only https://10.20.0.5/hooks", eps, err)
		}
		public := "https://hooks.acme.test/tollgate"
		if got, err := h.svc.UpdateEndpoint(ctx, h.org, ep.ID, outbound.EndpointInput{URL: &public}); err != nil || got.URL != public {
			t.Fatalf("changing to a public name: %+v, %v", got, err)
		}
	})
}

// An endpoint saved where production may no longer deliver (here into a
// network the operator has since taken out of WEBHOOK_ALLOWED_NETWORKS) and
// then disabled cannot be re-enabled as it is: the answer is the one a new
// endpoint with that URL gets, field, code and words, and the endpoint
// stays disabled. Re-enabling it with a public URL in the same call works.
func TestReenablingAnEndpointWhoseURLIsNowForbiddenIsRefused(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		const saved = "https://10.20.0.5/hooks"
		before := newHarnessWith(t, db, 5, func(o *outbound.Options) {
			o.Production, o.AllowedNetworks = true, []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")}
		})
		ep, _ := before.endpoint(t, saved, outbound.InvoicePaid)
		off, on := false, true
		if _, err := before.svc.UpdateEndpoint(ctx, before.org, ep.ID, outbound.EndpointInput{Enabled: &off}); err != nil {
			t.Fatal(err)
		}

		// The same database after a restart without the allowed network.
		idle, err := jobs.New(ctx, db, jobs.Config{Logger: slog.New(slog.DiscardHandler), TestOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		after := outbound.NewService(outbound.Options{DB: db, Jobs: idle, Clock: before.clock, Log: slog.New(slog.DiscardHandler),
			Plans: fixedPlan{plans.Plan{ID: "growth", Name: "Growth", Webhooks: 5}}, Production: true})
		_, _, createErr := after.CreateEndpoint(ctx, before.org, saved, []string{outbound.InvoicePaid})
		want, ok := apperr.AsFieldErrors(createErr)
		if !ok || len(want) != 1 || want[0].Code != outbound.CodeForbiddenURL {
			t.Fatalf("creating %s after the restart: %v, want %s", saved, createErr, outbound.CodeForbiddenURL)
		}
		_, err = after.UpdateEndpoint(ctx, before.org, ep.ID, outbound.EndpointInput{Enabled: &on})
		got, ok := apperr.AsFieldErrors(err)
		if !ok || len(got) != 1 || got[0] != want[0] {
			t.Fatalf("re-enabling: %v, want the create's answer %v", err, want)
		}
		eps, err := after.Endpoints(ctx, before.org)
		if err != nil || len(eps) != 1 || eps[0].Status != outbound.StatusDisabled {
			t.Fatalf("after the refused re-enable: %+v (%v), want it still disabled", eps, err)
		}
		public := "https://hooks.acme.test/tollgate"
		if ep, err := after.UpdateEndpoint(ctx, before.org, ep.ID, outbound.EndpointInput{URL: &public, Enabled: &on}); err != nil || ep.Status != outbound.StatusEnabled {
			t.Fatalf("re-enabling with a public URL: %+v, %v", ep, err)
		}
	})
}
