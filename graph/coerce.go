package graph

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/tollgate-billing/tollgate/graph/model"
)

// Variables are coerced as the GraphQL specification asks, which gqlparser's
// VariableValues does not: it takes "50" for an Int, a number for a
// String, an Int of any 64-bit size, and answers a fraction in a list with
// "cannot use string as Int". The request's variables, as sent, travel in
// the context (the prepared path hands VariableValues stand-ins, so it never
// sees them); strictVariables, the first extension to read them, refuses
// what the specification refuses, in words that say what was wrong; and
// when VariableValues refused first, the transport asks the same check for
// its words instead (betterVariableErrors).

type rawVariablesKey struct{}

func withRawVariables(ctx context.Context, vars map[string]any) context.Context {
	if len(vars) == 0 {
		return ctx
	}
	return context.WithValue(ctx, rawVariablesKey{}, vars)
}

// strictVariables is the operation-context extension that checks the
// request's variables; NewHandler registers it before every other
// extension that reads them (and before the work charge).
type strictVariables struct{ schema *ast.Schema }

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = strictVariables{}

func (strictVariables) ExtensionName() string                   { return "StrictVariables" }
func (strictVariables) Validate(graphql.ExecutableSchema) error { return nil }

func (s strictVariables) MutateOperationContext(ctx context.Context, op *graphql.OperationContext) *gqlerror.Error {
	raw, _ := ctx.Value(rawVariablesKey{}).(map[string]any)
	return checkVariables(s.schema, op.Operation, raw)
}

// betterVariableErrors replaces VariableValues' refusal with the check's,
// when the check finds what is wrong.
func betterVariableErrors(schema *ast.Schema, op *graphql.OperationContext, raw map[string]any, errs gqlerror.List) gqlerror.List {
	if op == nil || op.Operation == nil {
		return errs
	}
	if e := checkVariables(schema, op.Operation, raw); e != nil {
		return gqlerror.List{e}
	}
	// VariableValues' own words are terse ("unknown field", "cannot be
	// null") or name a schema type ("is not a valid InvoiceStatus"); say
	// which value they are about, in a sentence that names no type.
	for _, e := range errs {
		if len(e.Path) > 1 && e.Path[0] == ast.PathName("variable") && !strings.HasPrefix(e.Message, "variable ") {
			e.Message = "variable " + describePath(e.Path) + ": " + variableValuesWords(e.Message)
		}
	}
	return errs
}

// variableValuesWords is a sentence for each of gqlparser's VariableValues
// refusals (validator/vars.go in gqlparser v2) that names no type; a form
// it gains in a later version gets the general sentence, which names
// nothing either.
func variableValuesWords(msg string) string {
	switch {
	case msg == "must be defined":
		return "a value is required here but none was given"
	case msg == "cannot be null":
		return "a value is required here, got null"
	case msg == "unknown field":
		return "there is no input field of this name here"
	case strings.HasSuffix(msg, " is not a valid "+lastWord(msg)):
		return notAnEnumValue(strings.TrimSuffix(msg, " is not a valid "+lastWord(msg)))
	case strings.HasPrefix(msg, "enums must be"):
		return "expected one of the enum's values, as a string"
	}
	return "the value is not of the kind this position takes"
}

func lastWord(s string) string { return s[strings.LastIndexByte(s, ' ')+1:] }

// notAnEnumValue refuses s for an enum, quoting a bounded part of it and
// naming neither the enum nor its values.
func notAnEnumValue(s string) string {
	return fmt.Sprintf("%.32q is not one of the values this enum takes (enum values are case-sensitive)", s)
}

// checkVariables reports the first variable whose value the specification's
// input coercion refuses. What VariableValues already words well (a missing
// or null required value, an unknown input field) is left to it.
func checkVariables(schema *ast.Schema, op *ast.OperationDefinition, raw map[string]any) *gqlerror.Error {
	if op == nil || len(raw) == 0 {
		return nil
	}
	for _, def := range op.VariableDefinitions {
		val, ok := raw[def.Variable]
		if !ok || val == nil {
			continue
		}
		if msg, below := checkValue(schema, def.Type, val, 0); msg != "" {
			at := ast.Path{ast.PathName("variable"), ast.PathName(def.Variable)}
			for i := len(below) - 1; i >= 0; i-- {
				at = append(at, below[i])
			}
			err := &gqlerror.Error{Message: "variable " + describePath(at) + ": " + msg, Path: at}
			errcode.Set(err, errcode.ValidationFailed)
			return err
		}
	}
	return nil
}

// describePath writes variable.events.0.quantity as $events[0].quantity.
func describePath(p ast.Path) string {
	var b strings.Builder
	for i, e := range p[1:] {
		switch e := e.(type) {
		case ast.PathName:
			if i == 0 {
				b.WriteByte('$')
			} else {
				b.WriteByte('.')
			}
			b.WriteString(string(e))
		case ast.PathIndex:
			b.WriteString("[" + strconv.Itoa(int(e)) + "]")
		}
	}
	return b.String()
}

// checkValue reports what is wrong with val as a value of t, and where:
// the path below val, innermost first, built only on the way back from an
// error, so that a good value (a 1,000-event recordUsage) costs no
// allocation.
func checkValue(schema *ast.Schema, t *ast.Type, val any, depth int) (string, ast.Path) {
	if val == nil || depth > maxInputDepth {
		return "", nil
	}
	if t.Elem != nil {
		if list, ok := val.([]any); ok {
			for i, item := range list {
				if msg, at := checkValue(schema, t.Elem, item, depth+1); msg != "" {
					return msg, append(at, ast.PathIndex(i))
				}
			}
			return "", nil
		}
		// VariableValues, when it refused another variable first, may have
		// put one value it took for a list of one in a typed list
		// ([]map[string]any) in place.
		if rv := reflect.ValueOf(val); rv.Kind() == reflect.Slice {
			for i := range rv.Len() {
				if msg, at := checkValue(schema, t.Elem, rv.Index(i).Interface(), depth+1); msg != "" {
					return msg, append(at, ast.PathIndex(i))
				}
			}
			return "", nil
		}
		// One value stands for a list of one.
		return checkValue(schema, t.Elem, val, depth+1)
	}
	def := schema.Types[t.NamedType]
	if def == nil {
		return "", nil
	}
	switch def.Kind {
	case ast.Scalar:
		if msg := checkScalar(def.Name, val); msg != "" {
			return msg, nil
		}
	case ast.Enum:
		s, ok := val.(string)
		if !ok {
			return "expected one of the enum's values, as a string, got " + model.Describe(val), nil
		}
		if def.EnumValues.ForName(s) == nil {
			return notAnEnumValue(s), nil
		}
	case ast.InputObject:
		fields, ok := val.(map[string]any)
		if !ok {
			return "expected an object of input fields, got " + model.Describe(val), nil
		}
		for _, f := range def.Fields {
			if x, ok := fields[f.Name]; ok {
				if msg, at := checkValue(schema, f.Type, x, depth+1); msg != "" {
					return msg, append(at, ast.PathName(f.Name))
				}
			}
		}
	}
	return "", nil
}

// checkScalar is the specification's input coercion of the built-in
// scalars for a JSON value (numbers as json.Number), and the schema's own
// scalars' unmarshalers (scalarChecks), so that a bad Int64, Time or Date
// in a variable is refused before anything runs, as the same literal is.
func checkScalar(name string, val any) string {
	switch name {
	case "Int64", "Time", "Date":
		return scalarChecks[name](val)
	case "Int":
		n, ok := val.(json.Number)
		if !ok {
			return "expected an integer, got " + model.Describe(val)
		}
		_, msg := model.IntegerIn(string(n), math.MinInt32, math.MaxInt32)
		return msg
	case "Float":
		if _, ok := val.(json.Number); !ok {
			return "expected a number, got " + model.Describe(val)
		}
	case "String":
		if _, ok := val.(string); !ok {
			return "expected a string, got " + model.Describe(val)
		}
	case "Boolean":
		if _, ok := val.(bool); !ok {
			return "expected true or false, got " + model.Describe(val)
		}
	case "ID":
		switch v := val.(type) {
		case string:
		case json.Number:
			if _, err := strconv.ParseInt(string(v), 10, 64); err != nil {
				return "expected a string or an integer, got " + model.Describe(val)
			}
		default:
			return "expected a string or an integer, got " + model.Describe(val)
		}
	}
	return ""
}
