package graph

import (
	"regexp"
	"strings"
)

// ruleMessage is the production message of a gqlparser validation error:
// a sentence that quotes only what the client wrote (field, argument,
// variable, fragment and directive names, its own values), never a type
// the schema defines, so a mistake does not hand out the schema. ok is
// false for an error of no gqlparser rule.
//
// Each rule's messages are matched by their gqlparser text
// (validator/rules in gqlparser v2); a form a rule gains in a later
// version falls back to that rule's general sentence, which names nothing.
func ruleMessage(rule, msg string) (string, bool) {
	r, ok := ruleRewrites[strings.TrimSuffix(rule, "WithoutSuggestions")]
	if !ok {
		return "", false
	}
	for _, f := range r.forms {
		if m := f.re.FindStringSubmatchIndex(msg); m != nil {
			if f.template == "" {
				return msg, true
			}
			return string(f.re.ExpandString(nil, f.template, msg, m)), true
		}
	}
	return r.general, true
}

type ruleForm struct {
	re       *regexp.Regexp
	template string // regexp.Expand's, "" to keep the message
}

type ruleRewrite struct {
	forms   []ruleForm
	general string
}

// keep is a form whose gqlparser text names nothing of the schema.
func keep(pattern string) ruleForm { return ruleForm{re: regexp.MustCompile(pattern)} }

// as rewrites a form: template's ${1}, ${2}… are the pattern's groups
// (regexp.Expand; $$ is a dollar sign).
func as(pattern, template string) ruleForm {
	return ruleForm{regexp.MustCompile(pattern), template}
}

// name is a GraphQL name as gqlparser quotes it; value is a literal as it
// prints one (anything up to the closing period).
const (
	name  = `([_A-Za-z][_0-9A-Za-z]*)`
	qname = `"` + name + `"`
	qtype = `"[^"]*"`
	value = `(.*)`
)

var ruleRewrites = map[string]ruleRewrite{
	"FieldsOnCorrectType": {forms: []ruleForm{
		as(`^Cannot query field `+qname+` on type `+qtype, `Cannot query field "${1}": there is no such field here.`),
	}, general: "Cannot query a field that does not exist here."},
	"FragmentsOnCompositeTypes": {forms: []ruleForm{
		as(`^Fragment `+qname+` cannot condition on non composite type`, `Fragment "${1}" must be on a type with fields.`),
		as(`^Fragment cannot condition on non composite type`, `An inline fragment must be on a type with fields.`),
	}, general: "A fragment must be on a type with fields."},
	"KnownArgumentNames": {forms: []ruleForm{
		as(`^Unknown argument `+qname+` on field "(?:`+name+`\.)?`+name+`"`, `Field "${3}" has no argument "${1}".`),
		as(`^Unknown argument `+qname+` on directive "@`+name+`"`, `Directive "@${2}" has no argument "${1}".`),
	}, general: "An argument given does not exist here."},
	"KnownDirectives": {forms: []ruleForm{
		keep(`^Unknown directive "@` + name + `"\.$`),
		keep(`^Directive "@` + name + `" may not be used on [A-Z_]+\.$`),
	}, general: "A directive is unknown or not allowed here."},
	"KnownFragmentNames": {forms: []ruleForm{keep(`^Unknown fragment ` + qname + `\.$`)}, general: "A fragment spread names no fragment of the document."},
	"KnownRootType": {forms: []ruleForm{
		as(`^Schema does not support operation type "(query|mutation|subscription)"`, `This API does not support ${1} operations.`),
	}, general: "This API does not support this kind of operation."},
	"KnownTypeNames":         {forms: []ruleForm{keep(`^Unknown type ` + qname + `\.$`)}, general: "A type named in the document does not exist."},
	"LoneAnonymousOperation": {general: "This anonymous operation must be the only defined operation."},
	"MaxIntrospectionDepth":  {general: "Maximum introspection depth exceeded."},
	"NoFragmentCycles": {forms: []ruleForm{
		keep(`^Cannot spread fragment ` + qname + ` within itself( via "[^.]*)?\.$`),
	}, general: "A fragment spreads itself."},
	"NoUndefinedVariables": {forms: []ruleForm{
		keep(`^Variable "\$?` + name + `" is not defined( by operation ` + qname + `)?\.$`),
	}, general: "A variable used is not defined by its operation."},
	"NoUnusedFragments": {forms: []ruleForm{keep(`^Fragment ` + qname + ` is never used\.$`)}, general: "A fragment is never used."},
	"NoUnusedVariables": {forms: []ruleForm{
		keep(`^Variable "\$` + name + `" is never used( in operation ` + qname + `)?\.$`),
	}, general: "A variable is never used."},
	"OverlappingFieldsCanBeMerged": {forms: []ruleForm{
		as(`^Fields `+qname+` conflict because`, `Fields "${1}" conflict: the same response name selects different fields, arguments or kinds of value. Use different aliases on the fields to fetch both if this was intentional.`),
	}, general: "Two fields with one response name conflict. Use different aliases on the fields to fetch both if this was intentional."},
	"PossibleFragmentSpreads": {forms: []ruleForm{
		as(`^Fragment `+qname+` cannot be spread here`, `Fragment "${1}" cannot be spread here: its type can never match the value it is spread on.`),
		as(`^Fragment cannot be spread here`, `This inline fragment cannot be spread here: its type can never match the value it is spread on.`),
	}, general: "A fragment cannot be spread here: its type can never match the value it is spread on."},
	"ProvidedRequiredArguments": {forms: []ruleForm{
		as(`^Field `+qname+` argument `+qname+` of type `+qtype+` is required`, `Field "${1}" requires argument "${2}", which was not provided.`),
		as(`^Directive "@`+name+`" argument `+qname+` of type `+qtype+` is required`, `Directive "@${1}" requires argument "${2}", which was not provided.`),
	}, general: "A required argument was not provided."},
	"ScalarLeafs": {forms: []ruleForm{
		as(`^Field `+qname+` must not have a selection since type `+qtype+` has no subfields`, `Field "${1}" must not have a selection: its value has no subfields.`),
		as(`^Field `+qname+` of type `+qtype+` must have a selection of subfields`, `Field "${1}" must have a selection of subfields.`),
	}, general: "A field's selection of subfields is missing or not allowed."},
	"SingleFieldSubscriptions": {forms: []ruleForm{
		keep(`^(Anonymous Subscription|Subscription ` + qname + `) must (select only one top level field|not select an introspection top level field)\.$`),
	}, general: "A subscription must select exactly one top level field."},
	"UniqueArgumentNames":         {forms: []ruleForm{keep(`^There can be only one argument named ` + qname + `\.$`)}, general: "An argument is given more than once."},
	"UniqueDirectivesPerLocation": {forms: []ruleForm{keep(`^The directive "@` + name + `" can only be used once at this location\.$`)}, general: "A directive is used more than once at one location."},
	"UniqueFragmentNames":         {forms: []ruleForm{keep(`^There can be only one fragment named ` + qname + `\.$`)}, general: "Two fragments have one name."},
	"UniqueInputFieldNames":       {forms: []ruleForm{keep(`^There can be only one input field named ` + qname + `\.$`)}, general: "An input field is given more than once."},
	"UniqueOperationNames":        {forms: []ruleForm{keep(`^There can be only one operation named ` + qname + `\.$`)}, general: "Two operations have one name."},
	"UniqueVariableNames":         {forms: []ruleForm{keep(`^There can be only one variable named "\$` + name + `"\.$`)}, general: "A variable is defined more than once."},
	"ValuesOfCorrectType": {forms: []ruleForm{
		as(`^Value "`+value+`" does not exist in `+qtype+` enum`, `Value "${1}" is not one of the values this enum takes.`),
		as(`^Enum `+qtype+` cannot represent non-enum value: `+value+`\.$`, `Value ${1} is not one of the values this enum takes.`),
		as(`^Expected value of type `+qtype+`, found `+value+`\.$`, `Value ${1} is not of the kind this position takes.`),
		as(`^Field "(?:`+name+`\.)?`+name+`" of required type `+qtype+` was not provided`, `Input field "${2}" is required but was not provided.`),
		as(`^Field `+qname+` is not defined by type `+qtype, `Input field "${1}" does not exist here.`),
		as(`^Field "(?:`+name+`\.)?`+name+`" must be non-null`, `Input field "${2}" must not be null.`),
		as(`^OneOf Input Object `+qtype+` must specify exactly one key`, `Exactly one input field must be given here.`),
		as(`^Variable "\$?`+name+`" is of type `+qtype+` but must be non-nullable`, `Variable "${1}" must be of a non-null type to be used here.`),
		keep(`^(Int|Float|String|Boolean|ID) cannot represent .*$`),
	}, general: "A value is not of the kind its position takes."},
	"VariablesAreInputTypes": {forms: []ruleForm{
		as(`^Variable "\$?`+name+`" cannot be non-input type`, `Variable "$$${1}" must be of an input type.`),
	}, general: "A variable must be of an input type."},
	"VariablesInAllowedPosition": {forms: []ruleForm{
		as(`^Variable "\$?`+name+`" of type `+qtype+` used in position expecting`, `Variable "$$${1}" cannot be used here: its type is not the one this position takes.`),
	}, general: "A variable's type is not the one its position takes."},
}
