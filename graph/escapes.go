package graph

import (
	"context"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// surrogateEscapes reads \uXXXX escapes of UTF-16 surrogates in the
// document's strings as GraphQL asks (October 2021, 2.4.4, and as JSON
// does for variables): an escaped pair is the one character it encodes,
// and a lone half is a syntax error. gqlparser's lexer writes U+FFFD for
// each half, so "\ud800", "\udfff" and "\ufffd" were one idempotency key,
// and "\ud83d\ude00" was two U+FFFD, not 😀. It rewrites each pair as the
// character before gqlgen parses the document (after persisted queries
// have checked the text's hash), and refuses a lone half.
type surrogateEscapes struct{}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationParameterMutator
} = surrogateEscapes{}

func (surrogateEscapes) ExtensionName() string                   { return "SurrogateEscapes" }
func (surrogateEscapes) Validate(graphql.ExecutableSchema) error { return nil }

func (surrogateEscapes) MutateOperationParameters(_ context.Context, params *graphql.RawParams) *gqlerror.Error {
	if !strings.Contains(params.Query, `\u`) {
		return nil
	}
	fixed, at, ok := joinSurrogates(params.Query)
	if !ok {
		line, col := position(params.Query, at)
		err := gqlerror.ErrorLocf("", line, col, "Invalid Unicode escape sequence %s: half of a UTF-16 surrogate pair "+
			"without its other half; write the character itself, or both halves (\\ud83d\\ude00 for 😀)", params.Query[at:at+6])
		errcode.Set(err, errcode.ParseFailed)
		return err
	}
	params.Query = fixed
	return nil
}

// joinSurrogates returns doc with every escaped surrogate pair in a string
// written as its character, or the offset of the first lone half. Escapes
// are read only where GraphQL reads them: in strings, not in block strings
// or comments.
func joinSurrogates(doc string) (string, int, bool) {
	var b strings.Builder
	copied := 0
	for i := 0; i < len(doc); {
		switch {
		case doc[i] == '#': // a comment, to the end of the line
			for i < len(doc) && doc[i] != '\n' && doc[i] != '\r' {
				i++
			}
		case strings.HasPrefix(doc[i:], `"""`): // a block string: no escapes but \"""
			i += 3
			for i < len(doc) && !strings.HasPrefix(doc[i:], `"""`) {
				if strings.HasPrefix(doc[i:], `\"""`) {
					i += 4
					continue
				}
				i++
			}
			i += 3
		case doc[i] == '"':
			for i++; i < len(doc) && doc[i] != '"' && doc[i] != '\n' && doc[i] != '\r'; {
				if doc[i] != '\\' {
					i++
					continue
				}
				hi, ok := escapedUnit(doc, i)
				switch {
				case !ok || !utf16.IsSurrogate(rune(hi)):
					i += 2 // any other escape; the parser judges it
					continue
				case hi >= 0xDC00: // a low half first
					return "", i, false
				}
				lo, ok := escapedUnit(doc, i+6)
				if !ok || lo < 0xDC00 || lo > 0xDFFF {
					return "", i, false
				}
				if b.Len() == 0 {
					b.Grow(len(doc))
				}
				b.WriteString(doc[copied:i])
				b.WriteRune(utf16.DecodeRune(rune(hi), rune(lo)))
				i += 12
				copied = i
			}
			i++
		default:
			i++
		}
	}
	if copied == 0 {
		return doc, 0, true
	}
	b.WriteString(doc[copied:])
	return b.String(), 0, true
}

// escapedUnit reads the \uXXXX escape at doc[i:], if there is one.
func escapedUnit(doc string, i int) (uint16, bool) {
	if i+6 > len(doc) || doc[i] != '\\' || doc[i+1] != 'u' {
		return 0, false
	}
	n, err := strconv.ParseUint(doc[i+2:i+6], 16, 16)
	return uint16(n), err == nil
}

// position is the 1-based line and column (in characters) of doc[at], as
// gqlparser counts them.
func position(doc string, at int) (int, int) {
	line, start := 1, 0
	for i := 0; i < at; i++ {
		switch doc[i] {
		case '\n':
			line, start = line+1, i+1
		case '\r':
			if i+1 < len(doc) && doc[i+1] == '\n' {
				i++
			}
			line, start = line+1, i+1
		}
	}
	return line, utf8.RuneCountInString(doc[start:at]) + 1
}
