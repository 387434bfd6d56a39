package billing

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate-billing/tollgate/internal/observe"
)

var (
	// UntrustedCheckouts counts completed Checkout sessions ignored because
	// nothing Tollgate put on them names an organisation: no
	// metadata.org_id and no customer already linked. A payer can set
	// client_reference_id on a Payment Link, so it is never trusted.
	UntrustedCheckouts = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tollgate_billing_untrusted_checkouts_total",
		Help: "Completed Stripe Checkout sessions ignored because Tollgate did not create them for a known organisation.",
	})
	// UntrustedObjects counts subscription and invoice events ignored
	// because only their metadata.org_id names an organisation, and
	// Tollgate opened no checkout of it for their customer (Owner), by
	// object ("subscription", "invoice").
	UntrustedObjects = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_billing_untrusted_objects_total",
		Help: "Stripe subscriptions and invoices ignored because Tollgate opened no checkout of the organisation their metadata names for their customer.",
	}, []string{"object"})
	// PlanMismatches counts subscription updates applied with no price the
	// plans file knows: the plan kept is the last a known price named.
	PlanMismatches = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tollgate_billing_plan_mismatches_total",
		Help: "Stripe subscription updates whose prices are all missing from the plans file.",
	})
)

func init() { observe.Registry.MustRegister(UntrustedCheckouts, UntrustedObjects, PlanMismatches) }
