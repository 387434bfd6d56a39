package graph

import (
	"context"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/tollgate-billing/tollgate/graph/generated"
	"github.com/tollgate-billing/tollgate/graph/model"
	"github.com/tollgate-billing/tollgate/internal/invoices"
	"github.com/tollgate-billing/tollgate/internal/usage"
)

// Limits that keep one request from costing the server more than a page of
// a dashboard would.
const (
	MaxDepth        = 10
	MaxComplexity   = 5000
	MaxParserTokens = 15000
)

// listCosts prices list fields by how many items they can return, so
// complexity reflects rows read rather than fields named. Where a service
// bounds a list, its own limit is used, so the two cannot drift apart.
func listCosts(c *generated.ComplexityRoot) {
	c.Query.Invoices = func(child int, first *int, _ *string, _ *model.InvoiceStatus) int {
		n := invoices.DefaultPageSize
		if first != nil && *first > 0 {
			n = min(*first, invoices.MaxPageSize)
		}
		return 1 + n*child
	}
	c.Query.UsageSeries = func(child int, _ string, from, to time.Time) int {
		days := int(to.Sub(from).Hours()/24) + 1
		return 1 + min(max(days, 1), usage.MaxSeriesDays)*child
	}
	c.Query.UsageByEndpoint = func(child int, _ *string, _ *string) int { return 1 + 100*child }
	c.Query.APIKeys = func(child int) int { return 1 + 50*child }
	c.Query.Plans = func(child int) int { return 1 + 10*child }
	c.Mutation.RecordUsage = func(child int, in model.RecordUsageInput) int { return 1 + len(in.Events) }
}

// DepthLimit refuses operations nested deeper than Max. gqlgen has no depth
// limit of its own; this walks the operation once, following fragments.
type DepthLimit struct{ Max int }

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = DepthLimit{}

// ExtensionName names the extension.
func (DepthLimit) ExtensionName() string { return "DepthLimit" }

// Validate accepts any schema.
func (DepthLimit) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationContext measures the operation before it runs.
func (d DepthLimit) MutateOperationContext(_ context.Context, op *graphql.OperationContext) *gqlerror.Error {
	if op.Operation == nil {
		return nil
	}
	if depth := selectionDepth(op.Operation.SelectionSet, 0, d.Max, map[string]bool{}); depth > d.Max {
		err := gqlerror.Errorf("operation is nested %d levels deep, more than the limit of %d", depth, d.Max)
		err.Extensions = map[string]any{"code": "QUERY_TOO_DEEP"}
		return err
	}
	return nil
}

// selectionDepth returns the depth of set, stopping once it passes limit.
// visiting guards against fragment cycles (which validation also refuses).
func selectionDepth(set ast.SelectionSet, depth, limit int, visiting map[string]bool) int {
	if depth > limit {
		return depth
	}
	deepest := depth
	for _, sel := range set {
		var d int
		switch s := sel.(type) {
		case *ast.Field:
			if len(s.SelectionSet) == 0 {
				d = depth + 1
			} else {
				d = selectionDepth(s.SelectionSet, depth+1, limit, visiting)
			}
		case *ast.InlineFragment:
			d = selectionDepth(s.SelectionSet, depth, limit, visiting)
		case *ast.FragmentSpread:
			if s.Definition == nil || visiting[s.Name] {
				continue
			}
			visiting[s.Name] = true
			d = selectionDepth(s.Definition.SelectionSet, depth, limit, visiting)
			delete(visiting, s.Name)
		}
		deepest = max(deepest, d)
	}
	return deepest
}
