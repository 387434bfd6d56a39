package graph

import (
	"encoding/json"
	"math"
	"strconv"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/validator/core"
	"github.com/vektah/gqlparser/v2/validator/rules"

	"github.com/tollgate-billing/tollgate/graph/model"
	"github.com/tollgate-billing/tollgate/internal/apperr"
)

// Literals of the schema's own scalars (Int64, Time, Date) written in the
// document itself, as arguments, input fields, list items or variables'
// defaults. gqlparser's validation passes every one of them, and gqlgen
// then reads a number through strconv: one beyond int64 or float64 made it
// panic while it read a field's arguments (an INTERNAL answer to a client's
// typo), and a fraction reached Int64 already rounded to a float64
// (1.0000000000000001 counted as 1). So validation judges each literal with
// the scalar's own unmarshaler, from the literal's text, as a variable of
// that scalar is judged: the same value is refused in the same words, and
// as BAD_USER_INPUT (the error presenter maps this rule's errors, as every
// error about a value: isValueError), however it is sent.

// customScalarLiteralsRule names the rule, which the error presenter knows.
const customScalarLiteralsRule = "CustomScalarLiterals"

// scalarChecks are the literal checks, by scalar: the schema's own scalars'
// unmarshalers, and Int's range; each says what is wrong, or "".
var scalarChecks = map[string]func(any) string{
	"Int":   checkIntLiteral,
	"Int64": func(v any) string { _, err := model.UnmarshalInt64(v); return refusal(err) },
	"Time":  func(v any) string { _, err := model.UnmarshalTime(v); return refusal(err) },
	"Date":  func(v any) string { _, err := model.UnmarshalDate(v); return refusal(err) },
}

// refusal is what an unmarshaler's error says to a client ("" for none).
func refusal(err error) string {
	if err == nil {
		return ""
	}
	if ae, ok := apperr.As(err); ok {
		return ae.Message
	}
	return err.Error()
}

// checkIntLiteral refuses an Int literal past 32 bits that fits in 64:
// gqlparser refuses one past 64 bits itself, and passed 5000000000, which
// then failed while the field's arguments were read, a step later than the
// same value in a variable, and in other words.
func checkIntLiteral(v any) string {
	n, ok := v.(json.Number)
	if !ok {
		return "" // not a number: ValuesOfCorrectType says so
	}
	if _, err := strconv.ParseInt(string(n), 10, 64); err != nil {
		return "" // a fraction, or past 64 bits: ValuesOfCorrectType says so
	}
	_, msg := model.IntegerIn(string(n), math.MinInt32, math.MaxInt32)
	return msg
}

var customScalarLiterals = core.Rule{Name: customScalarLiteralsRule, RuleFunc: func(observers *core.Events, addError core.AddErrFunc) {
	observers.OnField(func(_ *core.Walker, field *ast.Field) {
		for _, arg := range field.Arguments {
			checkLiteral(addError, arg.Value, arg.Name)
		}
	})
	observers.OnOperation(func(_ *core.Walker, op *ast.OperationDefinition) {
		for _, v := range op.VariableDefinitions {
			if v.DefaultValue != nil {
				checkLiteral(addError, v.DefaultValue, "$"+v.Variable+" (default)")
			}
		}
	})
}}

// quietParents wraps gqlparser's ValuesOfCorrectType rule (inner) so that
// it says nothing of an object or list holding a literal that
// CustomScalarLiterals refuses: it reads such an object's value and fails
// on the number inside, and would answer "Expected value of type
// UsageEventInput!, found {…}", the whole object written back, for every
// object and list around it.
func quietParents(inner core.RuleFunc) core.RuleFunc {
	return func(observers *core.Events, addError core.AddErrFunc) {
		holdsRefused := false
		// Registered before inner's, so it runs first for each value.
		observers.OnValue(func(_ *core.Walker, value *ast.Value) {
			holdsRefused = (value.Kind == ast.ObjectValue || value.Kind == ast.ListValue) &&
				checkLiteral(func(...core.ErrorOption) {}, value, "") ||
				nullForNonNull(value) // said with its path by checkLiteral
		})
		inner(observers, func(options ...core.ErrorOption) {
			if !holdsRefused {
				addError(options...)
			}
		})
	}
}

// checkLiteral reports the first literal in value (named at, as
// input.events[0].quantity) that its scalar refuses.
func checkLiteral(addError core.AddErrFunc, value *ast.Value, at string) bool {
	if value == nil {
		return false
	}
	switch value.Kind {
	case ast.NullValue:
		if nullForNonNull(value) {
			addError(core.Message("%s: a value is required here, got null", at), core.At(value.Position))
			return true
		}
		return false
	case ast.Variable:
		return false
	case ast.ObjectValue:
		if value.Definition != nil && value.Definition.Kind == ast.InputObject {
			for _, child := range value.Children {
				if checkLiteral(addError, child.Value, at+"."+child.Name) {
					return true
				}
			}
			return false
		}
	case ast.ListValue:
		if value.ExpectedType != nil && value.ExpectedType.Elem != nil {
			for i, child := range value.Children {
				if checkLiteral(addError, child.Value, at+"["+strconv.Itoa(i)+"]") {
					return true
				}
			}
			return false
		}
	}
	if value.Definition == nil || value.Definition.Kind != ast.Scalar {
		return false
	}
	check, ok := scalarChecks[value.Definition.Name]
	if !ok {
		return false
	}
	if msg := check(literalAsJSON(value)); msg != "" {
		addError(core.Message("%s: %s", at, msg), core.At(value.Position))
		return true
	}
	return false
}

// nullForNonNull reports a null literal where a value is required, which
// gqlparser refuses as "Expected value of type \"Int64!\", found null":
// the type, and not where.
func nullForNonNull(v *ast.Value) bool {
	return v.Kind == ast.NullValue && v.ExpectedType != nil && v.ExpectedType.NonNull
}

// literalAsJSON is the value a variable holding the same text would carry:
// numbers as written (json.Number), never through a float64.
func literalAsJSON(v *ast.Value) any {
	switch v.Kind {
	case ast.IntValue, ast.FloatValue:
		return json.Number(v.Raw)
	case ast.BooleanValue:
		return v.Raw == "true"
	case ast.ListValue:
		return []any{}
	case ast.ObjectValue:
		return map[string]any{}
	}
	return v.Raw // strings, block strings, enum names
}

// isValueError reports whether err is about a value the client gave, not
// about the document's shape: a literal its type refuses (gqlparser's
// ValuesOfCorrectType, or this rule) or a variable's value (its path starts
// at "variable"). Those answer BAD_USER_INPUT, the same whether the value
// was written in the document or sent as a variable; an unknown field, a
// missing argument or a syntax error stays GRAPHQL_VALIDATION_FAILED or
// GRAPHQL_PARSE_FAILED.
func isValueError(err *gqlerror.Error) bool {
	// Production runs the rule's variant without suggestions, by its own name.
	switch err.Rule {
	case customScalarLiteralsRule, rules.ValuesOfCorrectTypeRule.Name, rules.ValuesOfCorrectTypeRuleWithoutSuggestions.Name:
		return true
	}
	return len(err.Path) > 0 && err.Path[0] == ast.PathName("variable")
}
