package app

import (
	"net/http"

	"github.com/tollgate-billing/tollgate/graph"
	"github.com/tollgate-billing/tollgate/internal/signing"
	"github.com/tollgate-billing/tollgate/internal/stripehook"
)

func (a *App) resolver() *graph.Resolver {
	return &graph.Resolver{
		Catalog:   a.Catalog,
		Orgs:      a.Orgs,
		Keys:      a.Keys,
		Billing:   a.Billing,
		Invoicing: a.Invoices,
		Metering:  a.Usage,
		Signing:   signing.Registrar{Keys: a.Keys},
		Webhooks:  a.Webhooks,

		OverageBilling: a.Overage,
	}
}

// mountWebhooks serves Stripe's deliveries. Without STRIPE_WEBHOOK_SECRET
// nothing could be verified, so the route is not mounted at all.
func (a *App) mountWebhooks(mux *http.ServeMux) {
	if a.Config.StripeWebhookSecret == "" {
		return
	}
	mux.Handle("POST /webhooks/stripe", stripehook.NewHandler(stripehook.Config{
		DB: a.DB, Billing: a.Billing, Invoices: a.Invoices,
		Secret: a.Config.StripeWebhookSecret, Clock: a.Clock, Log: a.Log,
	}))
}

// rateLimit protects Tollgate's own API: each request costs its credential
// (or, without one, its address) one unit before it runs, and
// ratelimit.WorkCharge charges its other root fields once parsed.
func (a *App) rateLimit(next http.Handler) http.Handler { return a.API.Middleware(next) }
