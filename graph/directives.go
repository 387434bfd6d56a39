package graph

import (
	"context"
	"strings"

	"github.com/99designs/gqlgen/graphql"

	"github.com/tollgate-billing/tollgate/graph/model"
	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/auth"
	"github.com/tollgate-billing/tollgate/internal/observe"
)

// hasScope enforces @hasScope: every root field declares the scopes it
// needs, and a test checks none is left without one.
func hasScope(ctx context.Context, _ any, next graphql.Resolver, anyOf []model.Scope) (any, error) {
	p, ok := auth.FromContext(ctx)
	if !ok {
		return nil, unauthenticated(ctx)
	}
	for _, s := range anyOf {
		if p.HasAny(scopeFromModel(s)) {
			return next(ctx)
		}
	}
	need := scopesFromModel(anyOf)
	names := make([]string, len(need))
	for i, s := range need {
		names[i] = string(s)
	}
	e := apperr.New(apperr.Forbidden, "this operation needs the scope "+strings.Join(names, " or "))
	e.Extensions = map[string]any{"requiredScopes": names}
	return nil, e
}

// unauthenticated is the answer to a request without a principal: why the
// credentials it presented were refused, that they could not be checked
// (UNAVAILABLE), or that it presented none.
func unauthenticated(ctx context.Context) *apperr.Error {
	e := apperr.New(apperr.Unauthenticated, "authentication required: send Authorization: Bearer <token> or X-API-Key")
	// Every refusal names its reason; a request that reached here without
	// passing the auth middleware presented nothing it read.
	e.Extensions = map[string]any{"reason": auth.ReasonMissing}
	if f, ok := auth.FailureFromContext(ctx); ok {
		if f.Err != nil {
			// The credentials could not be checked: an outage, answered
			// like any other one so clients retry the same way.
			u := apperr.Wrap(apperr.Unavailable, f.Message, f.Err)
			u.Extensions = map[string]any{"reason": f.Reason, "retryable": true, "requestId": observe.RequestID(ctx)}
			return u
		}
		e.Message = f.Message
		e.Extensions = map[string]any{"reason": f.Reason}
	}
	return e
}

// principal is the caller; @hasScope has already guaranteed there is one.
func principal(ctx context.Context) *auth.Principal {
	p, ok := auth.FromContext(ctx)
	if !ok {
		// Unreachable through the schema: every root field has @hasScope.
		panic("graph: resolver reached without a principal")
	}
	return p
}
