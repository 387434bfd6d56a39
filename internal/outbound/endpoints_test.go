package outbound_test

import (
	"context"
	"testing"

	"github.com/tollgate-billing/tollgate/internal/outbound"
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
	if _, err := h.svc.Deliveries(ctx, stranger, ep.ID, 10); err == nil {
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
