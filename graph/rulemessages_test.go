package graph

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"
	"github.com/vektah/gqlparser/v2/validator"
	"github.com/vektah/gqlparser/v2/validator/rules"

	"github.com/tollgate-billing/tollgate/graph/generated"
)

// TestEveryValidationRuleHasAProductionSentence: a rule gqlparser adds
// must get its own sentence, or its text (which may name schema types)
// would reach production clients through the fallback.
func TestEveryValidationRuleHasAProductionSentence(t *testing.T) {
	for name := range rules.NewDefaultRules().GetInner() {
		if _, ok := ruleMessage(name, ""); !ok {
			t.Errorf("validation rule %s has no production message", name)
		}
	}
}

// TestProductionValidationMessagesReadAndNameNoType: each validation
// rule's errors, as gqlparser writes them for documents against
// Tollgate's schema, read as a sentence in production and name none of
// the schema's types; development keeps gqlparser's text.
func TestProductionValidationMessagesReadAndNameNoType(t *testing.T) {
	schema := generated.NewExecutableSchema(generated.Config{}).Schema()
	var typeNames []string
	for name, def := range schema.Types {
		if !def.BuiltIn {
			typeNames = append(typeNames, regexp.QuoteMeta(name))
		}
	}
	namesType := regexp.MustCompile(`\b(` + strings.Join(typeNames, "|") + `)\b`)
	for _, tc := range []struct {
		rule, doc, want string
	}{
		{"FieldsOnCorrectType", `{ organizatio { id } }`, `Cannot query field "organizatio": there is no such field here.`},
		{"FragmentsOnCompositeTypes", `{ organization { ...F } } fragment F on InvoiceStatus { x }`, `Fragment "F" must be on a type with fields.`},
		{"FragmentsOnCompositeTypes", `{ organization { ... on InvoiceStatus { x } } }`, `An inline fragment must be on a type with fields.`},
		{"KnownArgumentNames", `{ organization(x: 1) { id } }`, `Field "organization" has no argument "x".`},
		{"KnownArgumentNames", `{ organization { id @skip(when: true, if: true) } }`, `Directive "@skip" has no argument "when".`},
		{"KnownDirectives", `{ organization { id @nope } }`, `Unknown directive "@nope".`},
		{"KnownDirectives", `query Q @skip(if: true) { plans { id } }`, `Directive "@skip" may not be used on QUERY.`},
		{"KnownFragmentNames", `{ organization { ...Nope } }`, `Unknown fragment "Nope".`},
		{"KnownRootType", `subscription { x }`, `This API does not support subscription operations.`},
		{"KnownTypeNames", `query Q($v: Nope) { plans { id } }`, `Unknown type "Nope".`},
		{"LoneAnonymousOperation", `{ plans { id } } query Q { plans { id } }`, `This anonymous operation must be the only defined operation.`},
		{"NoFragmentCycles", `{ organization { ...A } } fragment A on Organization { ...A }`, `Cannot spread fragment "A" within itself.`},
		{"NoUndefinedVariables", `query Q { usageGate(meter: $m) { allowed } }`, `Variable "$m" is not defined by operation "Q".`},
		{"NoUnusedFragments", `{ plans { id } } fragment F on Organization { id }`, `Fragment "F" is never used.`},
		{"NoUnusedVariables", `query Q($v: Int) { plans { id } }`, `Variable "$v" is never used in operation "Q".`},
		{"OverlappingFieldsCanBeMerged", `{ organization { x: id x: name } }`, `Fields "x" conflict: the same response name selects different fields, arguments or kinds of value. Use different aliases on the fields to fetch both if this was intentional.`},
		{"PossibleFragmentSpreads", `{ organization { ...F } } fragment F on Plan { id }`, `Fragment "F" cannot be spread here: its type can never match the value it is spread on.`},
		{"PossibleFragmentSpreads", `{ organization { ... on Plan { id } } }`, `This inline fragment cannot be spread here: its type can never match the value it is spread on.`},
		{"ProvidedRequiredArguments", `{ usageGate { allowed } }`, `Field "usageGate" requires argument "meter", which was not provided.`},
		{"ProvidedRequiredArguments", `{ plans { id @skip } }`, `Directive "@skip" requires argument "if", which was not provided.`},
		{"ScalarLeafs", `{ organization { id { x } } }`, `Field "id" must not have a selection: its value has no subfields.`},
		{"ScalarLeafs", `{ organization }`, `Field "organization" must have a selection of subfields.`},
		{"UniqueArgumentNames", `{ invoices(first: 1, first: 2) { nodes { id } } }`, `There can be only one argument named "first".`},
		{"UniqueDirectivesPerLocation", `{ plans { id @skip(if: true) @skip(if: false) } }`, `The directive "@skip" can only be used once at this location.`},
		{"UniqueFragmentNames", `{ organization { ...F } } fragment F on Organization { id } fragment F on Organization { id }`, `There can be only one fragment named "F".`},
		{"UniqueInputFieldNames", `mutation { createApiKey(input: {name: "a", name: "b", scopes: [BILLING_READ]}) { secret } }`, `There can be only one input field named "name".`},
		{"UniqueOperationNames", `query Q { plans { id } } query Q { plans { id } }`, `There can be only one operation named "Q".`},
		{"UniqueVariableNames", `query Q($v: Int, $v: Int) { invoices(first: $v) { nodes { id } } }`, `There can be only one variable named "$v".`},
		{"ValuesOfCorrectType", `{ invoices(status: PAYED) { nodes { id } } }`, `Value "PAYED" is not one of the values this enum takes.`},
		{"ValuesOfCorrectType", `{ invoices(status: "PAID") { nodes { id } } }`, `Value "PAID" is not one of the values this enum takes.`},
		{"ValuesOfCorrectType", `mutation { createApiKey(input: "x") { secret } }`, `Value "x" is not of the kind this position takes.`},
		{"ValuesOfCorrectType", `mutation { createApiKey(input: {scopes: [BILLING_READ]}) { secret } }`, `Input field "name" is required but was not provided.`},
		{"ValuesOfCorrectType", `mutation { createApiKey(input: {name: "a", colour: 1, scopes: [BILLING_READ]}) { secret } }`, `Input field "colour" does not exist here.`},
		{"ValuesOfCorrectType", `{ invoices(first: "x") { nodes { id } } }`, `Int cannot represent non-integer value: "x"`},
		{"VariablesAreInputTypes", `query Q($v: Organization) { organization { id } a: usageGate(meter: $v) { allowed } }`, `Variable "$v" must be of an input type.`},
		{"VariablesInAllowedPosition", `query Q($v: Int) { usageGate(meter: $v) { allowed } }`, `Variable "$v" cannot be used here: its type is not the one this position takes.`},
	} {
		t.Run(tc.rule+" "+tc.doc, func(t *testing.T) {
			doc, err := parser.ParseQuery(&ast.Source{Input: tc.doc})
			if err != nil {
				t.Fatal(err)
			}
			errs := validator.ValidateWithRules(schema, doc, rulesWithoutSuggestions())
			var found *gqlerror.Error
			for _, e := range errs {
				if strings.TrimSuffix(e.Rule, "WithoutSuggestions") == tc.rule {
					found = e
					break
				}
			}
			if found == nil {
				t.Fatalf("no %s error, got %v", tc.rule, errs)
			}
			dev := found.Message
			present := hideTypeNames(schema, func(_ context.Context, err error) *gqlerror.Error { return err.(*gqlerror.Error) })
			got := present(context.Background(), found).Message
			if got != tc.want {
				t.Errorf("production message %q (gqlparser's: %q), want %q", got, dev, tc.want)
			}
			if m := namesType.FindString(got); m != "" {
				t.Errorf("production message %q names the schema's type %s", got, m)
			}
		})
	}
}
