package graph

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/99designs/gqlgen/complexity"
	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/tollgate-billing/tollgate/graph/generated"
	"github.com/tollgate-billing/tollgate/graph/model"
	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/auth"
	"github.com/tollgate-billing/tollgate/internal/cache"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/invoices"
	"github.com/tollgate-billing/tollgate/internal/outbound"
	"github.com/tollgate-billing/tollgate/internal/usage"
)

// Limits that keep one request from costing the server more than a page of
// a dashboard would.
const (
	MaxDepth        = 10
	MaxComplexity   = 5000
	MaxParserTokens = 15000
	// MaxFields bounds the fields an operation selects once every fragment
	// spread is expanded. Each field costs at least 1 in gqlgen's complexity,
	// so no operation under MaxComplexity is refused by it; it exists so
	// that the complexity walk, which expands every spread, only ever runs
	// on documents it can finish quickly.
	MaxFields = MaxComplexity
	// MaxStripeCalls bounds the fields that call Stripe in one operation:
	// each costs StripeCallCost, so aliases of createCheckoutSession or
	// upcomingInvoice cannot turn one request into hundreds of calls on the
	// Stripe account every organisation shares (and its rate limit), while
	// four of them, with their selections, still fit beside a page.
	MaxStripeCalls = 4
	StripeCallCost = MaxComplexity / (MaxStripeCalls + 1)
)

// StripeFields are the root fields that call Stripe as they run: the ones
// listCosts prices at StripeCallCost, and the ones an organisation's Stripe
// budget (ratelimit.StripeCharge) counts. A field that starts calling
// Stripe belongs in both.
var StripeFields = []string{"upcomingInvoice", "createCheckoutSession", "createPortalSession", "cancelSubscription", "resumeSubscription"}

// listCosts prices list fields by how many items they can return, so
// complexity reflects rows read rather than fields named. Where a service
// bounds a list, its own limit is used, so the two cannot drift apart. It
// returns the fields ("Type.field") whose price reads their arguments: only
// through them can an operation's price depend on its variables.
func listCosts(c *generated.ComplexityRoot) (argPriced map[string]bool) {
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
	c.Query.UsageByEndpoint = func(child int, _ *string, _ *string, first *int, _ *string) int {
		n := usage.DefaultEndpointPage
		if first != nil && *first > 0 {
			n = min(*first, usage.MaxEndpointPage)
		}
		return 1 + n*child
	}
	c.Query.APIKeys = func(child int, first *int, _ *string) int {
		n := auth.DefaultPageSize
		if first != nil && *first > 0 {
			n = min(*first, auth.MaxPageSize)
		}
		return 1 + n*child
	}
	c.Query.Plans = func(child int) int { return 1 + 10*child }
	c.Query.WebhookDeliveries = func(child int, _ string, first *int, _ *string, _ []model.WebhookDeliveryStatus) int {
		n := outbound.DefaultDeliveries
		if first != nil && *first > 0 {
			n = min(*first, outbound.MaxDeliveries)
		}
		return 1 + n*child
	}
	// A delivery's attempts are priced per delivery, so 100 deliveries of
	// 30 attempts each cost what 3,000 rows do.
	c.WebhookDelivery.Attempts = func(child int) int { return 1 + outbound.MaxAttemptsShown*child }
	// Each field that calls Stripe as it runs.
	c.Query.UpcomingInvoice = func(child int) int { return StripeCallCost + child }
	c.Mutation.CreateCheckoutSession = func(child int, _ model.CreateCheckoutSessionInput) int { return StripeCallCost + child }
	c.Mutation.CreatePortalSession = func(child int, _ model.CreatePortalSessionInput) int { return StripeCallCost + child }
	c.Mutation.CancelSubscription = func(child int, _ *model.CancelSubscriptionInput) int { return StripeCallCost + child }
	c.Mutation.ResumeSubscription = func(child int) int { return StripeCallCost + child }
	// recordUsage is priced by complexityLimit from its raw argument:
	// gqlgen would unmarshal every event a second time to call a price
	// function here.
	return map[string]bool{"Query.invoices": true, "Query.usageSeries": true, "Query.apiKeys": true,
		"Query.usageByEndpoint": true, "Query.webhookDeliveries": true}
}

// complexityLimit is gqlgen's fixed complexity limit with recordUsage
// priced at one more per event it sends, counted from the raw argument
// (variables or literal) without unmarshalling the events: gqlgen's own
// complexity function for a field decodes its whole input again, which for
// a 1,000-event call was a seventh of its allocations. The answer over the
// limit is gqlgen's, word for word.
//
// The walk's price of an operation whose price cannot depend on its
// variables (no argument-priced field takes one) is remembered per parsed
// operation: gqlgen's document cache hands every request with the same
// text the same *ast.OperationDefinition, so a gate or a one-event
// recordUsage is not walked again on each request.
type complexityLimit struct {
	es    graphql.ExecutableSchema
	limit int
	// argPriced is listCosts' answer; fixed holds the remembered prices.
	argPriced map[string]bool
	fixed     *cache.Cache[*ast.OperationDefinition, int]
}

// newComplexityLimit prices operations of es against limit.
func newComplexityLimit(es graphql.ExecutableSchema, limit int, argPriced map[string]bool) complexityLimit {
	// As many as gqlgen's document cache holds: an entry keeps its
	// document alive, so the bound is also a bound on memory.
	return complexityLimit{es: es, limit: limit, argPriced: argPriced,
		fixed: cache.New[*ast.OperationDefinition, int](queryCacheSize, 0, clock.Real{})}
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = complexityLimit{}

// ExtensionName names the extension.
func (complexityLimit) ExtensionName() string { return "ComplexityLimit" }

// Validate accepts any schema.
func (complexityLimit) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationContext prices the operation before it runs.
func (c complexityLimit) MutateOperationContext(ctx context.Context, op *graphql.OperationContext) *gqlerror.Error {
	if op.Operation == nil {
		return nil
	}
	walked, ok := c.fixed.Get(op.Operation)
	if !ok {
		walked = complexity.Calculate(ctx, c.es, op.Operation, op.Variables)
		if !c.readsVariables(op.Operation.SelectionSet) {
			c.fixed.Put(op.Operation, walked)
		}
	}
	n := walked + eventsSent(op.Operation.SelectionSet, op.Variables)
	if n > c.limit {
		err := gqlerror.Errorf("operation has complexity %d, which exceeds the limit of %d", n, c.limit)
		errcode.Set(err, string(CodeComplexityLimit))
		return err
	}
	return nil
}

// readsVariables reports whether the walk's price of set can depend on
// variables: some argument-priced field in it, or in a fragment it spreads,
// takes a variable. A field of an interface or union is priced by its
// implementations, so one with a variable argument counts too.
func (c complexityLimit) readsVariables(set ast.SelectionSet) bool {
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			priced := s.ObjectDefinition == nil || s.ObjectDefinition.Kind != ast.Object ||
				c.argPriced[s.ObjectDefinition.Name+"."+s.Name]
			if priced && slices.ContainsFunc(s.Arguments, func(a *ast.Argument) bool { return hasVariable(a.Value) }) {
				return true
			}
			if c.readsVariables(s.SelectionSet) {
				return true
			}
		case *ast.InlineFragment:
			if c.readsVariables(s.SelectionSet) {
				return true
			}
		case *ast.FragmentSpread:
			if s.Definition != nil && c.readsVariables(s.Definition.SelectionSet) {
				return true
			}
		}
	}
	return false
}

// hasVariable reports whether v is or contains a variable.
func hasVariable(v *ast.Value) bool {
	if v == nil {
		return false
	}
	if v.Kind == ast.Variable {
		return true
	}
	return slices.ContainsFunc(v.Children, func(c *ast.ChildValue) bool { return hasVariable(c.Value) })
}

// eventsSent counts the events of every recordUsage at the root of a
// mutation, through fragments as often as they are spread (as the
// complexity walk does; Admission has bounded the expanded document).
func eventsSent(set ast.SelectionSet, vars map[string]any) int {
	n := 0
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			if s.Name != "recordUsage" || s.ObjectDefinition == nil || s.ObjectDefinition.Name != "Mutation" {
				continue
			}
			arg := s.Arguments.ForName("input")
			if arg == nil {
				continue
			}
			v, err := arg.Value.Value(vars)
			if err != nil {
				continue
			}
			in, _ := v.(map[string]any)
			switch events := in["events"].(type) {
			case nil:
			case []any:
				n += len(events)
			default: // a single value coerces to a list of one
				n++
			}
		case *ast.InlineFragment:
			n += eventsSent(s.SelectionSet, vars)
		case *ast.FragmentSpread:
			if s.Definition != nil {
				n += eventsSent(s.Definition.SelectionSet, vars)
			}
		}
		n = min(n, MaxComplexity+1)
	}
	return n
}

// Admission decides whether a document is worth validating and pricing, in
// time linear in its size, before gqlgen does either. Validation and
// gqlgen's complexity walk expand every fragment spread where it stands, so
// a kilobyte of fragments that each spread the next one twice costs them
// 2^n; here each fragment is measured once and its size reused.
//
// A request without credentials costs nothing beyond this: it is refused
// unless it only asks about the schema and introspection is on (GraphiQL in
// development loads the schema before anyone has pasted a token).
type Admission struct {
	// Introspection is true when __schema and __type are answered; when
	// false, asking for them is refused here as INTROSPECTION_DISABLED.
	Introspection bool
	TokenLimit    int
	// Cache is gqlgen's cache of parsed and validated documents. A document
	// in it was admitted before (what is measured here does not depend on
	// variables), so the hot path does not parse twice.
	Cache graphql.Cache[*ast.QueryDocument]
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationParameterMutator
} = Admission{}

// ExtensionName names the extension.
func (Admission) ExtensionName() string { return "Admission" }

// Validate accepts any schema.
func (Admission) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationParameters runs before gqlgen parses, validates or prices
// the document.
func (a Admission) MutateOperationParameters(ctx context.Context, params *graphql.RawParams) *gqlerror.Error {
	_, authenticated := auth.FromContext(ctx)
	if !authenticated && !a.Introspection {
		return requestError(unauthenticated(ctx))
	}
	if authenticated && a.Cache != nil {
		if _, ok := a.Cache.Get(ctx, params.Query); ok {
			return nil
		}
	}
	doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: params.Query}, a.TokenLimit)
	if err != nil {
		// gqlgen parses again and reports the same error in its own words.
		return nil
	}
	if !authenticated && !onlyIntrospection(doc) {
		return requestError(unauthenticated(ctx))
	}
	if !a.Introspection && asksForSchema(doc) {
		return requestError(apperr.New(CodeIntrospectionDisabled, "introspection is disabled on this server"))
	}
	c := measureDocument(doc)
	if c.depth > MaxDepth {
		return requestError(apperr.New(CodeQueryTooDeep,
			fmt.Sprintf("operation is nested %d levels deep, more than the limit of %d", c.depth, MaxDepth)))
	}
	if c.fields > MaxFields {
		return requestError(apperr.New(CodeComplexityLimit,
			fmt.Sprintf("operation selects more than %d fields once its fragments are expanded", MaxFields)))
	}
	return nil
}

// Codes of the errors Admission answers.
const (
	CodeIntrospectionDisabled apperr.Code = "INTROSPECTION_DISABLED"
	CodeQueryTooDeep          apperr.Code = "QUERY_TOO_DEEP"
	// CodeComplexityLimit is the code gqlgen's own complexity limit uses, so
	// clients see one code for "this operation costs too much".
	CodeComplexityLimit apperr.Code = "COMPLEXITY_LIMIT_EXCEEDED"
)

// requestError carries a client error out of an extension; the error
// presenter finds the *apperr.Error inside.
func requestError(e *apperr.Error) *gqlerror.Error {
	return &gqlerror.Error{Message: e.Message, Err: e, Extensions: map[string]any{"code": string(e.Code)}}
}

// onlyIntrospection reports whether every operation selects nothing but
// __schema, __type and __typename at its root, written out as fields.
func onlyIntrospection(doc *ast.QueryDocument) bool {
	for _, op := range doc.Operations {
		if op.Operation != ast.Query {
			return false
		}
		for _, sel := range op.SelectionSet {
			f, ok := sel.(*ast.Field)
			if !ok || (f.Name != "__schema" && f.Name != "__type" && f.Name != "__typename") {
				return false
			}
		}
	}
	return true
}

// asksForSchema reports whether any operation selects __schema or __type at
// its root, through fragments too. Those fields exist only on the root, so
// each fragment is looked into at most once.
func asksForSchema(doc *ast.QueryDocument) bool {
	seen := map[string]bool{}
	var walk func(ast.SelectionSet) bool
	walk = func(set ast.SelectionSet) bool {
		for _, sel := range set {
			switch s := sel.(type) {
			case *ast.Field:
				if s.Name == "__schema" || s.Name == "__type" {
					return true
				}
			case *ast.InlineFragment:
				if walk(s.SelectionSet) {
					return true
				}
			case *ast.FragmentSpread:
				if seen[s.Name] {
					continue
				}
				seen[s.Name] = true
				if f := doc.Fragments.ForName(s.Name); f != nil && walk(f.SelectionSet) {
					return true
				}
			}
		}
		return false
	}
	for _, op := range doc.Operations {
		if walk(op.SelectionSet) {
			return true
		}
	}
	return false
}

// cost is what a selection set adds once every spread is expanded: how
// many fields, and how deeply they nest.
type cost struct{ fields, depth int }

// measureDocument returns the largest cost of any operation or fragment in
// doc, in time linear in its size: each fragment's cost is computed once
// and reused wherever it is spread. Field counts saturate at MaxFields+1, so
// they cannot overflow however many times a fragment is spread.
func measureDocument(doc *ast.QueryDocument) cost {
	m := measurer{doc: doc, done: map[string]cost{}, active: map[string]bool{}}
	var worst cost
	for _, op := range doc.Operations {
		worst = worse(worst, m.set(op.SelectionSet))
	}
	// Validation walks fragments that no operation spreads, too.
	for _, f := range doc.Fragments {
		worst = worse(worst, m.fragment(f.Name))
	}
	return worst
}

type measurer struct {
	doc    *ast.QueryDocument
	done   map[string]cost
	active map[string]bool // fragments being measured, to stop at cycles
}

func (m *measurer) set(set ast.SelectionSet) cost {
	var c cost
	for _, sel := range set {
		var s cost
		switch sel := sel.(type) {
		case *ast.Field:
			s = m.set(sel.SelectionSet)
			s = cost{fields: s.fields + 1, depth: s.depth + 1}
		case *ast.InlineFragment:
			s = m.set(sel.SelectionSet)
		case *ast.FragmentSpread:
			s = m.fragment(sel.Name)
		}
		c = cost{fields: min(c.fields+s.fields, MaxFields+1), depth: max(c.depth, s.depth)}
	}
	return c
}

// fragment measures a fragment once. A cycle (which validation refuses
// later) and an unknown fragment count as empty.
func (m *measurer) fragment(name string) cost {
	if c, ok := m.done[name]; ok {
		return c
	}
	def := m.doc.Fragments.ForName(name)
	if def == nil || m.active[name] {
		return cost{}
	}
	m.active[name] = true
	c := m.set(def.SelectionSet)
	delete(m.active, name)
	m.done[name] = c
	return c
}

func worse(a, b cost) cost {
	return cost{fields: max(a.fields, b.fields), depth: max(a.depth, b.depth)}
}
