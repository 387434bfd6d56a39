package model

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/99designs/gqlgen/graphql"

	"github.com/tollgate-billing/tollgate/internal/apperr"
)

// MarshalInt64 writes a JSON number, as gqlgen's Int64 does.
func MarshalInt64(n int64) graphql.Marshaler { return graphql.MarshalInt64(n) }

// UnmarshalInt64 reads a whole number from -2^63 to 2^63-1: a JSON number,
// read exactly from its text (never through a float64, which would round
// 9223372036854775807), or a string of one, for clients whose numbers are
// doubles. 1e3 and 1.0 are whole numbers; 1.5 is not. A value it refuses is
// the client's mistake (BAD_USER_INPUT) with a message saying what was
// wrong, not the plain error gqlgen returns, which the error presenter must
// treat as INTERNAL.
func UnmarshalInt64(v any) (int64, error) {
	return unmarshalInteger(v, math.MinInt64, math.MaxInt64, true)
}

// MarshalInt writes a JSON number.
func MarshalInt(n int) graphql.Marshaler { return graphql.MarshalInt(n) }

// UnmarshalInt reads GraphQL's Int: a whole number from -2^31 to 2^31-1, as
// the specification asks (gqlgen's reads any 64-bit one), and not a string.
func UnmarshalInt(v any) (int, error) {
	n, err := unmarshalInteger(v, math.MinInt32, math.MaxInt32, false)
	return int(n), err
}

// maxExactFloat is the largest magnitude below which every whole float64 is
// exactly the integer its literal meant.
const maxExactFloat = 1 << 53

func unmarshalInteger(v any, lo, hi int64, strings bool) (int64, error) {
	bad := func(msg string) (int64, error) { return 0, apperr.New(apperr.BadInput, msg) }
	var text string
	switch v := v.(type) {
	case nil:
		return 0, nil
	case int:
		text = strconv.Itoa(v)
	case int32:
		text = strconv.FormatInt(int64(v), 10)
	case int64:
		text = strconv.FormatInt(v, 10)
	case json.Number:
		text = string(v)
	case string:
		if !strings {
			return bad("expected an integer, got a string")
		}
		if d := withoutMinus(v); d == "" || !digitsOnly(d) {
			// The string form is for clients whose numbers are doubles:
			// digits, as the schema says, not another notation to read.
			return bad("expected an integer; sent as a string it is digits with an optional leading minus, got " + shortQuote(v))
		}
		text = v
	case float64:
		// A literal written with a fraction or an exponent.
		if v != math.Trunc(v) {
			return bad("expected an integer, got " + strconv.FormatFloat(v, 'g', -1, 64))
		}
		if math.Abs(v) >= maxExactFloat {
			return bad("write integers beyond 2^53 without a fraction or exponent")
		}
		text = strconv.FormatInt(int64(v), 10)
	case bool:
		return bad("expected an integer, got a boolean")
	default:
		return bad("expected an integer")
	}
	n, msg := IntegerIn(text, lo, hi)
	if msg != "" {
		return bad(msg)
	}
	return n, nil
}

// IntegerIn reads text, a JSON number or a string of one, exactly as the
// whole number it is, and says what is wrong when it is not one or lies
// outside lo..hi, in words that name no type (a client's mistake must not
// hand out the schema's scalars).
func IntegerIn(text string, lo, hi int64) (int64, string) {
	n, o := exactInteger(text)
	switch {
	case o == notNumber:
		return 0, "expected an integer, got " + shortQuote(text)
	case o == fraction:
		return 0, "expected an integer, got " + short(text)
	case o == tooHigh || (o == whole && n > hi):
		return 0, fmt.Sprintf("%s is above %d, the largest integer taken here", short(text), hi)
	case o == tooLow || (o == whole && n < lo):
		return 0, fmt.Sprintf("%s is below %d, the smallest integer taken here", short(text), lo)
	}
	return n, ""
}

type integerOutcome int

const (
	whole integerOutcome = iota
	fraction
	tooHigh
	tooLow
	notNumber
)

// exactInteger reads a decimal number (sign, digits, fraction, exponent)
// without rounding: whole when its value is an integer that fits in int64.
func exactInteger(s string) (int64, integerOutcome) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, whole
	}
	rest, neg := s, false
	if rest != "" && (rest[0] == '-' || rest[0] == '+') {
		neg, rest = rest[0] == '-', rest[1:]
	}
	mant, exp := rest, "0"
	if i := strings.IndexAny(rest, "eE"); i >= 0 {
		mant, exp = rest[:i], rest[i+1:]
	}
	intPart, frac := mant, ""
	if i := strings.IndexByte(mant, '.'); i >= 0 {
		intPart, frac = mant[:i], mant[i+1:]
	}
	if intPart+frac == "" || !digitsOnly(intPart+frac) {
		return 0, notNumber
	}
	expNeg := false
	if exp != "" && (exp[0] == '-' || exp[0] == '+') {
		expNeg, exp = exp[0] == '-', exp[1:]
	}
	if exp == "" || !digitsOnly(exp) {
		return 0, notNumber
	}
	exp = strings.TrimLeft(exp, "0")
	if len(exp) > 6 {
		exp = "1000000" // far beyond any int64 either way
	}
	e, _ := strconv.Atoi("0" + exp)
	if expNeg {
		e = -e
	}
	digits := strings.TrimLeft(intPart+frac, "0")
	e -= len(frac)
	if digits == "" {
		return 0, whole
	}
	trimmed := strings.TrimRight(digits, "0")
	e += len(digits) - len(trimmed)
	digits = trimmed
	out := tooHigh
	if neg {
		out = tooLow
	}
	switch {
	case e < 0:
		return 0, fraction
	case len(digits)+e > 19:
		return 0, out
	}
	if neg {
		digits = "-" + digits
	}
	n, err := strconv.ParseInt(digits+strings.Repeat("0", e), 10, 64)
	if err != nil {
		return 0, out
	}
	return n, whole
}

// withoutMinus is s without one leading minus.
func withoutMinus(s string) string {
	if len(s) > 0 && s[0] == '-' {
		return s[1:]
	}
	return s
}

func digitsOnly(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// short is s, or its start when it is long: a message never carries a
// whole large value back.
func short(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}

func shortQuote(s string) string {
	if len(s) > 32 {
		return "a string"
	}
	return "a string, " + strconv.Quote(s)
}

// Describe names a JSON value's kind, with the value itself when it is
// short (numbers as json.Number): never a whole large value back.
func Describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return shortQuote(v)
	case json.Number:
		if len(v) <= 32 {
			return "a number, " + string(v)
		}
		return "a number"
	case bool:
		return "a boolean, " + strconv.FormatBool(v)
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return "a value of another kind"
}
