package graph

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// exactEnums refuses a variable whose enum value differs from the schema's
// only in case. gqlparser's variable coercion compares enum values without
// case, so "month" passes it, but gqlgen's generated models compare exactly
// and fail with a plain error that the presenter must call INTERNAL. Here it
// is the validation failure it is.
//
// Only variables whose type can hold an enum value are walked: a
// recordUsage of a thousand events has none, and walking it cost ten
// allocations an event.
type exactEnums struct {
	schema *ast.Schema
	// enumful holds the input types that hold an enum value, directly or
	// through their fields.
	enumful map[string]bool
}

func newExactEnums(schema *ast.Schema) exactEnums {
	e := exactEnums{schema: schema, enumful: map[string]bool{}}
	var reaches func(name string, seen map[string]bool) bool
	reaches = func(name string, seen map[string]bool) bool {
		def := schema.Types[name]
		if def == nil || seen[name] {
			return false
		}
		seen[name] = true
		switch def.Kind {
		case ast.Enum:
			return true
		case ast.InputObject:
			for _, f := range def.Fields {
				if reaches(f.Type.Name(), seen) {
					return true
				}
			}
		}
		return false
	}
	for name, def := range schema.Types {
		if (def.Kind == ast.Enum || def.Kind == ast.InputObject) && reaches(name, map[string]bool{}) {
			e.enumful[name] = true
		}
	}
	return e
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = exactEnums{}

func (exactEnums) ExtensionName() string                   { return "ExactEnums" }
func (exactEnums) Validate(graphql.ExecutableSchema) error { return nil }

func (e exactEnums) MutateOperationContext(_ context.Context, op *graphql.OperationContext) *gqlerror.Error {
	if op.Operation == nil {
		return nil
	}
	for _, def := range op.Operation.VariableDefinitions {
		if !e.enumful[def.Type.Name()] {
			continue
		}
		if err := e.check(def.Type, op.Variables[def.Variable], ast.Path{ast.PathName("variable"), ast.PathName(def.Variable)}); err != nil {
			errcode.Set(err, errcode.ValidationFailed)
			return err
		}
	}
	return nil
}

// check walks v as a value of type t: through lists and input objects down
// to every enum value it holds.
func (e exactEnums) check(t *ast.Type, v any, path ast.Path) *gqlerror.Error {
	if v == nil || t == nil {
		return nil
	}
	if t.Elem != nil {
		list, ok := v.([]any)
		if !ok {
			return e.check(t.Elem, v, path) // a single value coerces to a list
		}
		for i, item := range list {
			if err := e.check(t.Elem, item, append(path, ast.PathIndex(i))); err != nil {
				return err
			}
		}
		return nil
	}
	def := e.schema.Types[t.NamedType]
	if def == nil || !e.enumful[def.Name] {
		return nil
	}
	switch def.Kind {
	case ast.Enum:
		if s, ok := v.(string); ok && def.EnumValues.ForName(s) == nil {
			return gqlerror.ErrorPathf(path, "variable %s: %s", describePath(path), notAnEnumValue(s))
		}
	case ast.InputObject:
		fields, _ := v.(map[string]any)
		for _, f := range def.Fields {
			if err := e.check(f.Type, fields[f.Name], append(path, ast.PathName(f.Name))); err != nil {
				return err
			}
		}
	}
	return nil
}
