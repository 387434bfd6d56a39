package graph

import (
	"bytes"
	"context"
	"fmt"
	"strconv"

	"github.com/99designs/gqlgen/graphql"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/tollgate-billing/tollgate/graph/generated"
	"github.com/tollgate-billing/tollgate/graph/model"
	"github.com/tollgate-billing/tollgate/internal/cache"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/observe"
)

// preparedSchema is the generated executable schema with a second, narrow way
// to run the operations host backends send most: usageGate, recordUsage and
// consumeUsage, each alone at the root. For those it calls the same
// @hasScope and the same resolver as the generated code, and writes the
// answer itself, skipping what gqlgen's general execution spends per field
// (a field context, a marshaler and a middleware call for every field, an
// input unmarshaler map per operation, and the field collection that serves
// @skip/@include and abstract types). Measured with 64 one-event recordUsage
// callers, gqlgen's execution was about a third of the server's CPU per call
// (cmd/bench, ingest).
//
// What it takes: one root field, without directives, selecting fields of
// its payload by name or alias, nested object fields included, written out
// or through fragments on the payload's own types (as genqlient writes
// them), each response key once, with argument values the generated code
// would read without an error. Anything else (directives, a second root
// field, a repeated key, a fragment on another type, an argument the
// generated code would refuse) runs through the generated code unchanged,
// which answers it as before.
//
// The answer, errors included, is byte for byte the generated code's: a
// test runs the same documents through both and compares them. What it does
// not do: run root-field middleware (gqlgen's AroundRootFields; NewHandler
// registers none) or fill the field context's Args.
type preparedSchema struct {
	graphql.ExecutableSchema
	roots map[rootKey]*rootField
	// plans keeps what was recognised of each operation the query cache
	// holds (nil: not the prepared shape), so a repeated document is
	// checked once.
	plans *cache.Cache[*ast.OperationDefinition, *plan]
}

type rootKey struct {
	op   ast.Operation
	name string
}

// rootField is a root field the prepared path runs.
type rootField struct {
	name   string
	result *objectType
	// call reads the field's arguments as the generated code does and
	// returns its resolver call; ok is false for any value the generated
	// code would not read without an error, which then answers it.
	call   func(f *ast.Field, vars map[string]any) (resolve func(context.Context) (any, error), ok bool)
	scopes []model.Scope
	runs   prometheus.Counter
}

// plan is an operation the prepared path takes: its root field and what to
// write of the result.
type plan struct {
	root  *rootField
	field *ast.Field
	sel   []selected
}

// selected is one response key: how to write the value, and the selection
// of an object-valued field.
type selected struct {
	key   string
	write func(b *bytes.Buffer, v any, sel []selected)
	sel   []selected
}

// objectType is what the prepared path knows of an object type: how to
// write each field, and the type of each object-valued one.
type objectType struct {
	name   string
	fields map[string]objectField
}

type objectField struct {
	write func(b *bytes.Buffer, v any, sel []selected)
	// of is the object type of an object-valued (or list of objects)
	// field; nil for a leaf.
	of *objectType
}

// maxPreparedFields bounds the fields (nested and through fragments) an
// operation on the prepared path selects.
const maxPreparedFields = 64

func newPreparedSchema(es graphql.ExecutableSchema, q generated.QueryResolver, m generated.MutationResolver) *preparedSchema {
	p := &preparedSchema{ExecutableSchema: es, roots: map[rootKey]*rootField{},
		plans: cache.New[*ast.OperationDefinition, *plan](queryCacheSize, 0, clock.Real{})}
	add := func(op ast.Operation, r *rootField) {
		var def *ast.Definition
		if op == ast.Query {
			def = es.Schema().Query
		} else {
			def = es.Schema().Mutation
		}
		r.scopes = fieldScopes(def, r.name)
		r.runs = observe.PreparedOperations.WithLabelValues(r.name)
		p.roots[rootKey{op, r.name}] = r
	}
	add(ast.Query, &rootField{name: "usageGate", result: usageGateType, call: func(f *ast.Field, vars map[string]any) (func(context.Context) (any, error), bool) {
		meter, quantity, ok := readGateArguments(f, vars)
		if !ok {
			return nil, false
		}
		return func(ctx context.Context) (any, error) { return nonNil(q.UsageGate(ctx, meter, quantity)) }, true
	}})
	add(ast.Mutation, &rootField{name: "recordUsage", result: recordUsagePayloadType, call: withInput(readRecordUsageInput, m.RecordUsage)})
	add(ast.Mutation, &rootField{name: "consumeUsage", result: consumeUsagePayloadType, call: withInput(readConsumeUsageInput, m.ConsumeUsage)})
	return p
}

// withInput reads a root field whose one argument is input with read, and
// calls resolve with it.
func withInput[T, P any](read func(any) (T, bool), resolve func(context.Context, T) (*P, error)) func(*ast.Field, map[string]any) (func(context.Context) (any, error), bool) {
	return func(f *ast.Field, vars map[string]any) (func(context.Context) (any, error), bool) {
		v, ok := onlyArgument(f, "input", vars)
		if !ok {
			return nil, false
		}
		in, ok := read(v)
		if !ok {
			return nil, false
		}
		return func(ctx context.Context) (any, error) { return nonNil(resolve(ctx, in)) }, true
	}
}

// nonNil turns a resolver's nil pointer into a nil interface, so the caller
// can tell that the field resolved to null.
func nonNil[T any](v *T, err error) (any, error) {
	if v == nil {
		return nil, err
	}
	return v, err
}

// fieldScopes reads a root field's @hasScope(anyOf:) from the schema, so
// the prepared path asks for exactly what the schema declares.
func fieldScopes(root *ast.Definition, field string) []model.Scope {
	def := root.Fields.ForName(field)
	if def == nil || def.Directives.ForName("hasScope") == nil {
		panic("graph: " + root.Name + "." + field + " has no @hasScope")
	}
	arg := def.Directives.ForName("hasScope").Arguments.ForName("anyOf")
	var out []model.Scope
	for _, c := range arg.Value.Children {
		s := model.Scope(c.Value.Raw)
		if !s.IsValid() {
			panic(fmt.Sprintf("graph: %s.%s: @hasScope names unknown scope %q", root.Name, field, c.Value.Raw))
		}
		out = append(out, s)
	}
	return out
}

// readGateArguments reads usageGate's meter and its optional quantity
// (default 1, as the schema declares it); anything else is left to the
// generated code.
func readGateArguments(f *ast.Field, vars map[string]any) (meter string, quantity int64, ok bool) {
	quantity = 1
	var gotMeter bool
	for _, a := range f.Arguments {
		v, err := a.Value.Value(vars)
		if err != nil || v == nil {
			return "", 0, false
		}
		switch a.Name {
		case "meter":
			meter, gotMeter = v.(string)
		case "quantity":
			if quantity, err = model.UnmarshalInt64(v); err != nil {
				return "", 0, false
			}
		default:
			return "", 0, false
		}
	}
	return meter, quantity, gotMeter && len(f.Arguments) <= 2
}

// onlyArgument is the value of f's one argument, which must be name.
func onlyArgument(f *ast.Field, name string, vars map[string]any) (any, bool) {
	if len(f.Arguments) != 1 || f.Arguments[0].Name != name {
		return nil, false
	}
	v, err := f.Arguments[0].Value.Value(vars)
	return v, err == nil && v != nil
}

// Exec runs an operation of the prepared shape on the prepared path and
// anything else on the generated one.
func (p *preparedSchema) Exec(ctx context.Context) graphql.ResponseHandler {
	op := graphql.GetOperationContext(ctx)
	pl := p.plan(op.Operation)
	if pl == nil {
		return p.ExecutableSchema.Exec(ctx)
	}
	resolve, ok := pl.root.call(pl.field, op.Variables)
	if !ok {
		return p.ExecutableSchema.Exec(ctx)
	}
	done := false
	return func(ctx context.Context) *graphql.Response {
		// Like the generated handler: one response, then the end of the
		// stream.
		if done {
			return nil
		}
		done = true
		pl.root.runs.Inc()
		return &graphql.Response{Data: p.run(ctx, op, pl, resolve)}
	}
}

// plan recognises the prepared shape in a parsed, validated operation, once
// per operation.
func (p *preparedSchema) plan(o *ast.OperationDefinition) *plan {
	if o == nil {
		return nil
	}
	if pl, ok := p.plans.Get(o); ok {
		return pl
	}
	pl := recognise(p.roots, o)
	p.plans.Put(o, pl)
	return pl
}

func recognise(roots map[rootKey]*rootField, o *ast.OperationDefinition) *plan {
	if len(o.Directives) != 0 || len(o.SelectionSet) != 1 {
		return nil
	}
	f, ok := o.SelectionSet[0].(*ast.Field)
	if !ok || len(f.Directives) != 0 {
		return nil
	}
	root := roots[rootKey{o.Operation, f.Name}]
	if root == nil {
		return nil
	}
	budget := maxPreparedFields
	sel, ok := flatten(f.SelectionSet, root.result, &budget, nil)
	if !ok {
		return nil
	}
	return &plan{root: root, field: f, sel: sel}
}

// flatten lists the response keys set selects on an object of type t, in
// the order gqlgen's field collection gives them, or reports that the set
// is not the prepared shape.
func flatten(set ast.SelectionSet, t *objectType, budget *int, out []selected) ([]selected, bool) {
	for _, s := range set {
		switch s := s.(type) {
		case *ast.Field:
			*budget--
			if *budget < 0 || len(s.Directives) != 0 || len(s.Arguments) != 0 {
				return nil, false
			}
			for _, earlier := range out {
				if earlier.key == s.Alias {
					return nil, false
				}
			}
			if s.Name == "__typename" {
				if len(s.SelectionSet) != 0 {
					return nil, false
				}
				name := strconv.Quote(t.name) // a GraphQL name: nothing else to escape
				out = append(out, selected{key: s.Alias, write: func(b *bytes.Buffer, _ any, _ []selected) { b.WriteString(name) }})
				continue
			}
			f, ok := t.fields[s.Name]
			if !ok || (f.of == nil) != (len(s.SelectionSet) == 0) {
				return nil, false
			}
			var sub []selected
			if f.of != nil {
				if sub, ok = flatten(s.SelectionSet, f.of, budget, nil); !ok {
					return nil, false
				}
			}
			out = append(out, selected{key: s.Alias, write: f.write, sel: sub})
		case *ast.FragmentSpread:
			d := s.Definition
			if len(s.Directives) != 0 || d == nil || len(d.Directives) != 0 || d.TypeCondition != t.name {
				return nil, false
			}
			var ok bool
			if out, ok = flatten(d.SelectionSet, t, budget, out); !ok {
				return nil, false
			}
		case *ast.InlineFragment:
			if len(s.Directives) != 0 || (s.TypeCondition != "" && s.TypeCondition != t.name) {
				return nil, false
			}
			var ok bool
			if out, ok = flatten(s.SelectionSet, t, budget, out); !ok {
				return nil, false
			}
		default:
			return nil, false
		}
	}
	return out, true
}

// run resolves the root field as the generated code does (@hasScope around
// the resolver, inside the operation's field middleware, a panic recovered
// into an error) and writes the data.
func (p *preparedSchema) run(ctx context.Context, op *graphql.OperationContext, pl *plan, resolve func(context.Context) (any, error)) (data []byte) {
	f := pl.field
	fc := &graphql.FieldContext{Object: string(rootObject(op.Operation.Operation)), Field: graphql.CollectedField{Field: f}, IsMethod: true, IsResolver: true}
	ctx = graphql.WithFieldContext(ctx, fc)
	defer func() {
		if r := recover(); r != nil {
			op.Error(ctx, op.Recover(ctx, r))
			data = []byte("null")
		}
	}()
	res, err := op.ResolverMiddleware(ctx, func(ctx context.Context) (any, error) {
		return hasScope(ctx, nil, resolve, pl.root.scopes)
	})
	if err != nil {
		op.Error(ctx, graphql.AddFieldLocationToError(ctx, err))
		return []byte("null")
	}
	if res == nil {
		if !graphql.HasFieldError(ctx, fc) {
			op.Errorf(ctx, "must not be null")
		}
		return []byte("null")
	}
	fc.Result = res
	var b bytes.Buffer
	b.Grow(256)
	b.WriteString(`{"`)
	b.WriteString(f.Alias) // a GraphQL name: nothing to escape
	b.WriteString(`":`)
	writeObject(&b, res, pl.sel)
	b.WriteByte('}')
	return b.Bytes()
}

func rootObject(o ast.Operation) string {
	if o == ast.Mutation {
		return "Mutation"
	}
	return "Query"
}

// writeObject writes {"<key>":<value>,...} for the selected fields of v.
func writeObject(b *bytes.Buffer, v any, sel []selected) {
	b.WriteByte('{')
	for i, s := range sel {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		b.WriteString(s.key)
		b.WriteString(`":`)
		s.write(b, v, s.sel)
	}
	b.WriteByte('}')
}
