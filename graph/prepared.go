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
	"github.com/tollgate-billing/tollgate/internal/observe"
)

// preparedSchema is the generated executable schema with a second, narrow way
// to run the operation host backends send most: a query whose only root
// field is usageGate, selecting leaf fields of UsageGate by name or alias.
// For that shape it calls the same @hasScope and the same resolver as the
// generated code, and writes the answer itself, skipping what gqlgen's
// general execution spends per field (a field context, a marshaler and a
// middleware call for every leaf, and the field collection that serves
// fragments and @skip/@include). Any other operation, and any usageGate
// query with fragments, directives, arguments on leaves or a response key
// used twice, runs through the generated code unchanged.
//
// The answer, errors included, is byte for byte the generated code's: a
// test runs the same documents through both and compares them. What it does
// not do: run root-field middleware (gqlgen's AroundRootFields; NewHandler
// registers none) or fill the field context's Args.
type preparedSchema struct {
	graphql.ExecutableSchema
	gate       func(ctx context.Context, meter string) (*model.UsageGate, error)
	gateScopes []model.Scope
	gateRuns   prometheus.Counter
}

func newPreparedSchema(es graphql.ExecutableSchema, q generated.QueryResolver) *preparedSchema {
	return &preparedSchema{ExecutableSchema: es, gate: q.UsageGate, gateScopes: fieldScopes(es, "usageGate"),
		gateRuns: observe.PreparedOperations.WithLabelValues("usageGate")}
}

// fieldScopes reads a Query field's @hasScope(anyOf:) from the schema, so
// the prepared path asks for exactly what the schema declares.
func fieldScopes(es graphql.ExecutableSchema, field string) []model.Scope {
	def := es.Schema().Query.Fields.ForName(field)
	if def == nil || def.Directives.ForName("hasScope") == nil {
		panic("graph: Query." + field + " has no @hasScope")
	}
	arg := def.Directives.ForName("hasScope").Arguments.ForName("anyOf")
	var out []model.Scope
	for _, c := range arg.Value.Children {
		s := model.Scope(c.Value.Raw)
		if !s.IsValid() {
			panic(fmt.Sprintf("graph: Query.%s: @hasScope names unknown scope %q", field, c.Value.Raw))
		}
		out = append(out, s)
	}
	return out
}

// Exec runs a usageGate query on the prepared path and anything else on the
// generated one.
func (p *preparedSchema) Exec(ctx context.Context) graphql.ResponseHandler {
	op := graphql.GetOperationContext(ctx)
	f, meter, ok := gateCall(op)
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
		p.gateRuns.Inc()
		return &graphql.Response{Data: p.runGate(ctx, op, f, meter)}
	}
}

// gateFields are the UsageGate fields the prepared path takes, each with
// how it writes the field's value: as gqlgen's marshaler for its type does.
var gateFields = map[string]func(b *bytes.Buffer, g *model.UsageGate){
	"__typename": func(b *bytes.Buffer, _ *model.UsageGate) { b.WriteString(`"UsageGate"`) },
	"allowed":    func(b *bytes.Buffer, g *model.UsageGate) { b.Write(strconv.AppendBool(b.AvailableBuffer(), g.Allowed)) },
	"reason":     func(b *bytes.Buffer, g *model.UsageGate) { g.Reason.MarshalGQL(b) },
	"retryAfterMs": func(b *bytes.Buffer, g *model.UsageGate) {
		if g.RetryAfterMs == nil {
			b.WriteString("null")
			return
		}
		b.Write(strconv.AppendInt(b.AvailableBuffer(), int64(*g.RetryAfterMs), 10))
	},
	"used":      func(b *bytes.Buffer, g *model.UsageGate) { b.Write(strconv.AppendInt(b.AvailableBuffer(), g.Used, 10)) },
	"limit":     func(b *bytes.Buffer, g *model.UsageGate) { writeOptInt64(b, g.Limit) },
	"remaining": func(b *bytes.Buffer, g *model.UsageGate) { writeOptInt64(b, g.Remaining) },
	"plan":      func(b *bytes.Buffer, g *model.UsageGate) { graphql.MarshalID(g.Plan).MarshalGQL(b) },
	"billingStatus": func(b *bytes.Buffer, g *model.UsageGate) {
		if g.BillingStatus == nil {
			b.WriteString("null")
			return
		}
		g.BillingStatus.MarshalGQL(b)
	},
}

// maxPreparedFields bounds the selection the prepared path takes, which
// keeps its check for repeated response keys trivially cheap.
const maxPreparedFields = 16

// gateCall recognises the prepared shape in a parsed, validated operation and
// returns its root field and meter.
func gateCall(op *graphql.OperationContext) (*ast.Field, string, bool) {
	o := op.Operation
	if o == nil || o.Operation != ast.Query || len(o.Directives) != 0 || len(o.SelectionSet) != 1 {
		return nil, "", false
	}
	f, ok := o.SelectionSet[0].(*ast.Field)
	if !ok || f.Name != "usageGate" || len(f.Directives) != 0 || len(f.Arguments) != 1 ||
		f.Arguments[0].Name != "meter" || len(f.SelectionSet) > maxPreparedFields {
		return nil, "", false
	}
	v, err := f.Arguments[0].Value.Value(op.Variables)
	meter, ok := v.(string)
	if err != nil || !ok {
		return nil, "", false
	}
	for i, s := range f.SelectionSet {
		leaf, ok := s.(*ast.Field)
		if !ok || gateFields[leaf.Name] == nil || len(leaf.Directives) != 0 || len(leaf.Arguments) != 0 || len(leaf.SelectionSet) != 0 {
			return nil, "", false
		}
		for _, earlier := range f.SelectionSet[:i] {
			if earlier.(*ast.Field).Alias == leaf.Alias {
				return nil, "", false
			}
		}
	}
	return f, meter, true
}

// runGate resolves usageGate as the generated code does (@hasScope around
// the resolver, inside the operation's field middleware, a panic recovered
// into an error) and writes the data.
func (p *preparedSchema) runGate(ctx context.Context, op *graphql.OperationContext, f *ast.Field, meter string) (data []byte) {
	fc := &graphql.FieldContext{Object: "Query", Field: graphql.CollectedField{Field: f}, IsMethod: true, IsResolver: true}
	ctx = graphql.WithFieldContext(ctx, fc)
	defer func() {
		if r := recover(); r != nil {
			op.Error(ctx, op.Recover(ctx, r))
			data = []byte("null")
		}
	}()
	res, err := op.ResolverMiddleware(ctx, func(ctx context.Context) (any, error) {
		return hasScope(ctx, nil, func(ctx context.Context) (any, error) { return p.gate(ctx, meter) }, p.gateScopes)
	})
	if err != nil {
		op.Error(ctx, graphql.AddFieldLocationToError(ctx, err))
		return []byte("null")
	}
	g, _ := res.(*model.UsageGate)
	if g == nil {
		if !graphql.HasFieldError(ctx, fc) {
			op.Errorf(ctx, "must not be null")
		}
		return []byte("null")
	}
	fc.Result = g
	return writeGate(f, g)
}

// writeGate writes {"<alias>":{...}} with the selected fields in order.
func writeGate(f *ast.Field, g *model.UsageGate) []byte {
	var b bytes.Buffer
	b.Grow(64 + 24*len(f.SelectionSet))
	b.WriteString(`{"`)
	b.WriteString(f.Alias) // a GraphQL name: nothing to escape
	b.WriteString(`":{`)
	for i, s := range f.SelectionSet {
		leaf := s.(*ast.Field)
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		b.WriteString(leaf.Alias)
		b.WriteString(`":`)
		gateFields[leaf.Name](&b, g)
	}
	b.WriteString("}}")
	return b.Bytes()
}

// writeOptInt64 writes n as a JSON number, or null.
func writeOptInt64(b *bytes.Buffer, n *int64) {
	if n == nil {
		b.WriteString("null")
		return
	}
	b.Write(strconv.AppendInt(b.AvailableBuffer(), *n, 10))
}
