package graph

import (
	"context"
	"regexp"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// hideTypeNames wraps the error presenter in production, where
// introspection is off: gqlparser's messages quote the schema's own type
// names ("expecting type \"InvoiceStatus\"", "Field
// \"CreateApiKeyInput.name\" of required type \"String!\" was not
// provided"), handing out the schema one mistake at a time. A validation
// error gets its rule's own sentence (rulemessages.go), which names no
// type. In any other message (variable values, Tollgate's own rules) each
// quoted name of a type the schema defines gives way: Type.field to the
// field's name (the argument path the client wrote), a type to what kind
// of value it takes. GraphQL's built-in types (String, Int, …) say nothing
// about the schema and stay.
func hideTypeNames(schema *ast.Schema, next graphql.ErrorPresenterFunc) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		e := next(ctx, err)
		if e == nil {
			return e
		}
		if msg, ok := ruleMessage(e.Rule, e.Message); ok {
			e.Message = msg
		} else {
			e.Message = quotedName.ReplaceAllStringFunc(e.Message, func(q string) string {
				return withoutTypeName(schema, q)
			})
		}
		return e
	}
}

// quotedName is a double-quoted name, a Type.field, or a type with list and
// non-null wrappers, as gqlparser quotes them.
var quotedName = regexp.MustCompile(`"\[*[_A-Za-z][_0-9A-Za-z]*(\.[_A-Za-z][_0-9A-Za-z]*)?\]*!?\]*!?"`)

func withoutTypeName(schema *ast.Schema, quoted string) string {
	name := strings.Trim(quoted, `"[]!`)
	typeName, field, isField := strings.Cut(name, ".")
	def := schema.Types[typeName]
	if def == nil || def.BuiltIn {
		return quoted
	}
	if isField {
		return `"` + field + `"`
	}
	kind := map[ast.DefinitionKind]string{
		ast.Enum: "an enum value", ast.InputObject: "an input object", ast.Scalar: "a scalar value",
	}[def.Kind]
	if kind == "" {
		kind = "an object"
	}
	if strings.HasPrefix(quoted, `"[`) {
		return "a list of " + strings.TrimPrefix(strings.TrimPrefix(kind, "an "), "a ") + "s"
	}
	return kind
}
