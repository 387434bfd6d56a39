package graph

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/validator/core"
	"github.com/vektah/gqlparser/v2/validator/rules"

	"github.com/tollgate-billing/tollgate/graph/generated"
	"github.com/tollgate-billing/tollgate/internal/observe"
)

// Options shape the GraphQL server.
type Options struct {
	// Production turns off introspection and "did you mean" suggestions, so
	// the schema is not handed to whoever asks.
	Production bool
	Log        *slog.Logger
	// Work, when set, charges each operation's work against Tollgate's own
	// rate limit; it runs before the complexity limit.
	Work graphql.HandlerExtension
	// StripeBudget, when set, charges each operation's StripeFields against
	// its organisation's Stripe budget; it runs after the complexity limit.
	StripeBudget graphql.HandlerExtension
}

// queryCacheSize is how many parsed and validated documents are kept.
const queryCacheSize = 1000

// NewHandler builds the GraphQL HTTP handler: POST and GET only (no
// multipart uploads, no websockets, no batches; every other request is
// refused as a GraphQL error, transport.go), a parsed-query cache, automatic
// persisted queries, admission (credentials, depth and size, in linear
// time) before validation, limits on tokens and complexity, operation
// metrics, Tollgate's error presenter, and the status codes the GraphQL over
// HTTP specification asks for.
func NewHandler(r *Resolver, o Options) http.Handler {
	cfg := generated.Config{Resolvers: r}
	cfg.Directives.HasScope = hasScope
	argPriced := listCosts(&cfg.Complexity)
	es := newPreparedSchema(generated.NewExecutableSchema(cfg), r.Query(), r.Mutation())
	srv := handler.New(es)
	docs := lru.New[*ast.QueryDocument](queryCacheSize)
	srv.AddTransport(httpTransport{schema: es.Schema(), vars: newPreparedVars(es.Schema(), docs, func(op *ast.OperationDefinition) bool { return es.plan(op) != nil })})
	srv.SetQueryCache(docs)
	srv.SetParserTokenLimit(MaxParserTokens)
	if o.Production {
		srv.SetDisableSuggestion(true)
		srv.SetValidationRulesFn(withCustomScalarLiterals(rulesWithoutSuggestions))
	} else {
		srv.SetValidationRulesFn(withCustomScalarLiterals(rules.NewDefaultRules))
		srv.Use(extension.Introspection{})
	}
	srv.Use(extension.AutomaticPersistedQuery{Cache: lru.New[string](1000)})
	// After persisted queries, which fill in the query text.
	srv.Use(Admission{Introspection: !o.Production, TokenLimit: MaxParserTokens, Cache: docs})
	// Before gqlgen parses the text (escapes.go).
	srv.Use(surrogateEscapes{})
	// Before every extension that reads variables (coerce.go,
	// preparedvars.go).
	srv.Use(strictVariables{schema: es.Schema()})
	srv.Use(preparedVariables{})
	if o.Work != nil {
		srv.Use(o.Work)
	}
	srv.Use(newExactEnums(es.Schema()))
	srv.Use(newComplexityLimit(es, MaxComplexity, argPriced))
	if o.StripeBudget != nil {
		srv.Use(o.StripeBudget)
	}
	srv.AroundResponses(measure(es.Schema()))
	if o.Production {
		srv.SetErrorPresenter(hideTypeNames(es.Schema(), ErrorPresenter(o.Log)))
	} else {
		srv.SetErrorPresenter(ErrorPresenter(o.Log))
	}
	srv.SetRecoverFunc(RecoverFunc(o.Log))
	return specStatus(srv)
}

// rulesWithoutSuggestions is gqlparser's validation with every rule that
// would answer "Did you mean ..." (field, argument, enum value, input field,
// type) swapped for its variant without suggestions, so production does not
// hand out the schema's names one guess at a time. gqlgen's own switch only
// covers fields and scalar leaves.
func rulesWithoutSuggestions() *rules.Rules {
	r := rules.NewDefaultRules()
	for _, swap := range []struct{ with, without core.Rule }{
		{rules.FieldsOnCorrectTypeRule, rules.FieldsOnCorrectTypeRuleWithoutSuggestions},
		{rules.ScalarLeafsRule, rules.ScalarLeafsRuleWithoutSuggestions},
		{rules.KnownArgumentNamesRule, rules.KnownArgumentNamesRuleWithoutSuggestions},
		{rules.KnownTypeNamesRule, rules.KnownTypeNamesRuleWithoutSuggestions},
		{rules.ValuesOfCorrectTypeRule, rules.ValuesOfCorrectTypeRuleWithoutSuggestions},
	} {
		r.RemoveRule(swap.with.Name)
		r.AddRule(swap.without.Name, swap.without.RuleFunc)
	}
	return r
}

// withCustomScalarLiterals adds the check of the schema's own scalars'
// literals (literals.go) to a set of rules.
func withCustomScalarLiterals(base func() *rules.Rules) func() *rules.Rules {
	return func() *rules.Rules {
		r := base()
		for name, rule := range r.GetInner() {
			if name == rules.ValuesOfCorrectTypeRule.Name || name == rules.ValuesOfCorrectTypeRuleWithoutSuggestions.Name {
				r.ReplaceRule(name, quietParents(rule))
			}
		}
		r.AddRule(customScalarLiterals.Name, customScalarLiterals.RuleFunc)
		return r
	}
}

// measure records each operation's latency under the root field it runs,
// so a dashboard's slow query can be found without reading logs.
func measure(schema *ast.Schema) graphql.ResponseMiddleware {
	return func(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
		start := time.Now()
		resp := next(ctx)
		var op *ast.OperationDefinition
		if graphql.HasOperationContext(ctx) {
			op = graphql.GetOperationContext(ctx).Operation
		}
		outcome := "ok"
		if resp != nil && len(resp.Errors) > 0 {
			outcome = "error"
		}
		observe.GraphQLOperations.WithLabelValues(opLabel(schema, op), outcome).Observe(observe.Since(start))
		return resp
	}
}

// Labels of operations that are not one root field of the schema.
const (
	opLabelNone     = "none"     // no operation: the request was refused first
	opLabelMultiple = "multiple" // several distinct root fields
	opLabelUnknown  = "unknown"  // a root field the schema lacks (refused by validation)
)

// opLabel names an operation for the metrics by the root field it selects,
// as the schema spells it. Never by the operation's name or anything else a
// client wrote: a label is shared by every tenant of the process (one
// could fill the label space, or write text for anyone reading /metrics
// to see), and the schema's fields are a fixed, small set.
func opLabel(schema *ast.Schema, op *ast.OperationDefinition) string {
	if op == nil {
		return opLabelNone
	}
	var root *ast.Definition
	switch op.Operation {
	case ast.Mutation:
		root = schema.Mutation
	case ast.Subscription:
		root = schema.Subscription
	default:
		root = schema.Query
	}
	label := ""
	var walk func(ast.SelectionSet) bool
	walk = func(set ast.SelectionSet) bool {
		for _, sel := range set {
			var name string
			switch sel := sel.(type) {
			case *ast.Field:
				name = sel.Name
			case *ast.InlineFragment:
				if !walk(sel.SelectionSet) {
					return false
				}
				continue
			case *ast.FragmentSpread:
				if sel.Definition == nil || !walk(sel.Definition.SelectionSet) {
					label = opLabelUnknown
					return false
				}
				continue
			}
			var def *ast.FieldDefinition
			if root != nil {
				def = root.Fields.ForName(name)
			}
			if def == nil && name == "__typename" {
				continue
			}
			switch {
			case def == nil:
				label = opLabelUnknown
				return false
			case label == "" || label == def.Name:
				label = def.Name
			default:
				label = opLabelMultiple
			}
		}
		return true
	}
	walk(op.SelectionSet)
	if label == "" {
		return "__typename"
	}
	return label
}
