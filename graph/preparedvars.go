package graph

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/validator"

	"github.com/tollgate-billing/tollgate/internal/cache"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/observe"
)

// Prepared variables. Before any operation runs, gqlgen checks and coerces
// its variables with gqlparser's validator.VariableValues, which walks them
// by reflection: most of the allocations of a 1,000-event recordUsage (59
// per event; 14 this way) and about 35 of the ~355 of a one-event call
// (cmd/bench, ingest; on a disk-bound machine the one-event throughput did
// not move, in seven alternating pairs of runs). gqlgen has no hook to
// replace that step, so for the operations the prepared path runs
// (recordUsage, consumeUsage), when every variable is an input object, POST
// requests take this way:
//
//  1. check walks the variables with type switches (they are JSON:
//     maps, lists, strings, numbers, booleans) under the same rules as
//     VariableValues, and takes them only when VariableValues would accept
//     them unchanged: no error, and no value it would coerce (a single value
//     where a list is expected, a number in an Int variable);
//  2. gqlgen then runs as always, extensions and all, except that
//     VariableValues is handed the smallest valid value of each variable
//     (built from the schema once per operation), which it checks quickly;
//  3. the first operation-context extension (preparedVariables, registered
//     before the work charge, the exact enums and the complexity limit, which
//     read variables) puts the checked variables back, as VariableValues
//     would have returned them.
//
// Anything else, and any variable check would not take, goes
// through VariableValues as before, so its errors are the same bytes: a test
// compares the answers of both ways for valid and invalid variables.

// preparedVars decides which requests skip VariableValues.
type preparedVars struct {
	schema *ast.Schema
	docs   graphql.Cache[*ast.QueryDocument]
	// prepared reports whether the prepared path takes an operation.
	prepared func(*ast.OperationDefinition) bool
	// ops keeps what was decided of each cached operation: nil when its
	// variables go through VariableValues.
	ops *cache.Cache[*ast.OperationDefinition, *varsPlan]
}

// varsPlan is an operation whose variables are checked here: the smallest
// valid value of each non-null variable, handed to VariableValues instead of
// the request's.
type varsPlan struct {
	defs    ast.VariableDefinitionList
	minimal map[string]func() any
}

// preparedVarsKey carries a request's checked variables from
// CreateOperationContext to the preparedVariables extension.
type preparedVarsKey struct{}

func newPreparedVars(schema *ast.Schema, docs graphql.Cache[*ast.QueryDocument], prepared func(*ast.OperationDefinition) bool) *preparedVars {
	return &preparedVars{schema: schema, docs: docs, prepared: prepared,
		ops: cache.New[*ast.OperationDefinition, *varsPlan](queryCacheSize, 0, clock.Real{})}
}

// preparedExec is the executor POST requests run on (transport.go).
type preparedExec struct {
	graphql.GraphExecutor
	vars *preparedVars
}

// CreateOperationContext is gqlgen's, with VariableValues handed the
// smallest valid variables when the request's were checked here (step 2
// above).
func (e preparedExec) CreateOperationContext(ctx context.Context, params *graphql.RawParams) (*graphql.OperationContext, gqlerror.List) {
	checked, standIn, ok := e.vars.check(ctx, params)
	if !ok {
		return e.GraphExecutor.CreateOperationContext(ctx, params)
	}
	sent := params.Variables
	params.Variables = standIn
	defer func() { params.Variables = sent }()
	return e.GraphExecutor.CreateOperationContext(context.WithValue(ctx, preparedVarsKey{}, checked), params)
}

// check returns the request's variables as VariableValues would, and the
// smallest valid ones to hand it instead, when both are known here.
func (v *preparedVars) check(ctx context.Context, params *graphql.RawParams) (checked, standIn map[string]any, ok bool) {
	// Persisted queries fill in the query later; leave them to gqlgen. And
	// only input objects are checked here, which JSON sends as objects: a
	// request without one (usageGate's) is let go before any lookup.
	if len(params.Extensions) > 0 || !anObject(params.Variables) {
		return nil, nil, false
	}
	doc, cached := v.docs.Get(ctx, params.Query)
	if !cached {
		return nil, nil, false
	}
	op := doc.Operations.ForName(params.OperationName)
	if op == nil {
		return nil, nil, false
	}
	plan := v.plan(op)
	if plan == nil {
		return nil, nil, false
	}
	checked = make(map[string]any, len(plan.defs))
	standIn = make(map[string]any, len(plan.defs))
	for _, def := range plan.defs {
		val, present := params.Variables[def.Variable]
		switch {
		case !present && def.Type.NonNull:
			return nil, nil, false // "must be defined"
		case !present:
			continue
		case val == nil && def.Type.NonNull:
			return nil, nil, false // "cannot be null"
		case val != nil && !v.walk(def.Type, val, 0):
			return nil, nil, false
		}
		checked[def.Variable] = val
		if val == nil {
			standIn[def.Variable] = nil
		} else {
			standIn[def.Variable] = plan.minimal[def.Variable]()
		}
	}
	observe.PreparedVariables.Inc()
	return checked, standIn, true
}

// anObject reports whether some variable's value is a JSON object.
func anObject(vars map[string]any) bool {
	for _, v := range vars {
		if _, ok := v.(map[string]any); ok {
			return true
		}
	}
	return false
}

// plan decides, once per cached operation, whether its variables are
// checked here: the prepared path must take it, and each variable must be
// an input object without a default value.
func (v *preparedVars) plan(op *ast.OperationDefinition) *varsPlan {
	if p, ok := v.ops.Get(op); ok {
		return p
	}
	var p *varsPlan
	if v.prepared(op) {
		p = &varsPlan{defs: op.VariableDefinitions, minimal: map[string]func() any{}}
		for _, def := range op.VariableDefinitions {
			t := v.schema.Types[def.Type.NamedType]
			if def.DefaultValue != nil || def.Type.Elem != nil || t == nil || t.Kind != ast.InputObject {
				p = nil
				break
			}
			minimal, ok := v.minimal(def.Type, 0)
			if !ok {
				p = nil
				break
			}
			p.minimal[def.Variable] = minimal
		}
		// The stand-ins must pass VariableValues, or the request would
		// answer with an error about values it never sent.
		if p != nil {
			standIn := map[string]any{}
			for name, minimal := range p.minimal {
				standIn[name] = minimal()
			}
			if _, err := validator.VariableValues(v.schema, op, standIn); err != nil {
				p = nil
			}
		}
	}
	v.ops.Put(op, p)
	return p
}

// minimal returns a maker of the smallest value of t that VariableValues
// accepts unchanged: each required field of an input object, an empty list.
// A new value each time: VariableValues writes into the maps it checks.
func (v *preparedVars) minimal(t *ast.Type, depth int) (func() any, bool) {
	if depth > maxInputDepth {
		return nil, false
	}
	if t.Elem != nil {
		return func() any { return []any{} }, true
	}
	def := v.schema.Types[t.NamedType]
	if def == nil {
		return nil, false
	}
	switch def.Kind {
	case ast.Enum:
		if len(def.EnumValues) == 0 {
			return nil, false
		}
		name := def.EnumValues[0].Name
		return func() any { return name }, true
	case ast.Scalar:
		var leaf any
		switch def.Name {
		case "Int", "Float":
			leaf = int64(0)
		case "Boolean":
			leaf = false
		default: // String, ID, and custom scalars, which VariableValues does not check
			leaf = ""
		}
		return func() any { return leaf }, true
	case ast.InputObject:
		type field struct {
			name string
			make func() any
		}
		var fields []field
		for _, f := range def.Fields {
			if !f.Type.NonNull || f.DefaultValue != nil {
				continue
			}
			m, ok := v.minimal(f.Type, depth+1)
			if !ok {
				return nil, false
			}
			fields = append(fields, field{f.Name, m})
		}
		return func() any {
			out := make(map[string]any, len(fields))
			for _, f := range fields {
				out[f.name] = f.make()
			}
			return out
		}, true
	}
	return nil, false
}

// maxInputDepth bounds the nesting of input types built or walked here.
const maxInputDepth = 16

// walk reports whether VariableValues accepts val, a JSON value that is
// not null, as a value of t without changing it; depth is how deep in an
// input val lies. False also means "not sure": VariableValues then decides.
func (v *preparedVars) walk(t *ast.Type, val any, depth int) bool {
	if depth > maxInputDepth {
		return false
	}
	if t.Elem != nil {
		list, ok := val.([]any)
		if !ok {
			return false // VariableValues would wrap it in a list
		}
		for _, item := range list {
			if item == nil {
				if t.Elem.NonNull {
					return false
				}
				continue
			}
			if !v.walk(t.Elem, item, depth+1) {
				return false
			}
		}
		return true
	}
	def := v.schema.Types[t.NamedType]
	if def == nil {
		return false
	}
	switch def.Kind {
	case ast.Enum:
		s, ok := val.(string)
		if !ok {
			return false
		}
		for _, e := range def.EnumValues {
			if strings.EqualFold(s, e.Name) {
				return true
			}
		}
		return false
	case ast.Scalar:
		return scalarTakes(def.Name, val)
	case ast.InputObject:
		fields, ok := val.(map[string]any)
		if !ok {
			return false
		}
		for name := range fields {
			if name != "__typename" && def.Fields.ForName(name) == nil {
				return false // "unknown field"
			}
		}
		for _, f := range def.Fields {
			x, present := fields[f.Name]
			switch {
			case !present && f.Type.NonNull && f.DefaultValue == nil:
				return false // "must be defined"
			case !present:
				continue
			case x == nil && f.Type.NonNull:
				return false // "cannot be null"
			case x == nil:
				continue
			}
			if !v.walk(f.Type, x, depth+1) {
				return false
			}
		}
		return true
	}
	return false
}

// scalarTakes is VariableValues' check of a built-in scalar, for the Go
// types a JSON request decodes to (json.Number is a string to reflection);
// custom scalars are left to their unmarshalers, as there.
func scalarTakes(name string, val any) bool {
	switch name {
	case "Int":
		n, ok := val.(json.Number)
		return ok && validator.IsValidIntString(reflect.ValueOf(n), reflect.String)
	case "Float":
		n, ok := val.(json.Number)
		return ok && validator.IsValidFloatString(reflect.ValueOf(n), reflect.String)
	case "String":
		_, ok := val.(string)
		return ok
	case "Boolean":
		_, ok := val.(bool)
		return ok
	case "ID":
		switch val.(type) {
		case string, json.Number:
			return true
		}
		return false
	}
	return true
}

// preparedVariables is the operation-context extension of step 3: it puts
// back the variables CreateOperationContext checked. NewHandler registers
// it before every extension that reads variables.
type preparedVariables struct{}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = preparedVariables{}

func (preparedVariables) ExtensionName() string                   { return "PreparedVariables" }
func (preparedVariables) Validate(graphql.ExecutableSchema) error { return nil }

func (preparedVariables) MutateOperationContext(ctx context.Context, op *graphql.OperationContext) *gqlerror.Error {
	if checked, ok := ctx.Value(preparedVarsKey{}).(map[string]any); ok {
		op.Variables = checked
	}
	return nil
}
