// Package graph is Tollgate's GraphQL layer: the gqlgen executable schema
// (graph/generated, graph/model), thin resolvers that call one domain service
// each, the @hasScope directive and the error presenter.
package graph

//go:generate go tool gqlgen generate

import (
	"github.com/tollgate-billing/tollgate/internal/auth"
	"github.com/tollgate-billing/tollgate/internal/billing"
	"github.com/tollgate-billing/tollgate/internal/invoices"
	"github.com/tollgate-billing/tollgate/internal/orgs"
	"github.com/tollgate-billing/tollgate/internal/outbound"
	"github.com/tollgate-billing/tollgate/internal/overage"
	"github.com/tollgate-billing/tollgate/internal/plans"
	"github.com/tollgate-billing/tollgate/internal/signing"
	"github.com/tollgate-billing/tollgate/internal/usage"
)

// Resolver is the root resolver. It holds one service per capability; each
// resolver parses its input, calls one service method and maps the result.
type Resolver struct {
	Catalog   *plans.Catalog
	Orgs      *orgs.Service
	Keys      *auth.Keys
	Billing   *billing.Service
	Invoicing *invoices.Service
	Metering  *usage.Service
	Signing   signing.Registrar
	Webhooks  *outbound.Service

	// OverageBilling reads billed and upcoming overage.
	OverageBilling *overage.Service
}
