package graph_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/tollgate-billing/tollgate/internal/apptest"
)

// TestEscapedSurrogatesInTheDocument: GraphQL reads an escaped surrogate
// pair in a string as the one character it encodes and refuses a lone
// half, as JSON variables are read. gqlparser wrote U+FFFD for each half:
// "\ud800", "\udfff" and "\ufffd" were one idempotency key, and
// "\ud83d\ude00" was not 😀.
func TestEscapedSurrogatesInTheDocument(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	record := func(key string) string { // key as written in the document
		return `mutation { recordUsage(input: {events: [{meter: "api_calls", quantity: 1, idempotencyKey: ` + key + `}]}) { accepted duplicates } }`
	}
	type result struct {
		RecordUsage struct{ Accepted, Duplicates int }
	}
	send := func(body map[string]any) rawAnswer {
		b, _ := json.Marshal(body)
		return sendRaw(t, h, http.MethodPost, "/graphql", "application/json", "", strings.NewReader(string(b)))
	}
	counted := func(a rawAnswer) result {
		t.Helper()
		var out struct{ Data result }
		if err := json.Unmarshal(a.body, &out); err != nil || len(a.errors) != 0 {
			t.Fatalf("answered %d %s", a.status, a.body)
		}
		return out.Data
	}

	for _, key := range []string{`"a\ud800"`, `"a\udfff"`, `"a\ud800x"`, `"a\ud83d"`, `"a\ude00\ud83d"`} {
		a := send(map[string]any{"query": record(key)})
		if len(a.errors) != 1 || a.errors[0].Extensions["code"] != "GRAPHQL_PARSE_FAILED" || !strings.Contains(a.errors[0].Message, "half of a UTF-16 surrogate pair") {
			t.Fatalf("key %s answered %d %s, want GRAPHQL_PARSE_FAILED", key, a.status, a.body)
		}
	}
	// Nothing was counted: "a\ufffd" is new.
	if got := counted(send(map[string]any{"query": record(`"a\ufffd"`)})); got.RecordUsage.Accepted != 1 {
		t.Fatalf(`"a\ufffd" after the refusals: %+v, want accepted (nothing else was counted)`, got)
	}
	// A pair is its character, however it is written.
	if got := counted(send(map[string]any{"query": record(`"b\ud83d\ude00"`)})); got.RecordUsage.Accepted != 1 {
		t.Fatalf("escaped pair: %+v", got)
	}
	if got := counted(send(map[string]any{"query": record(`"b😀"`)})); got.RecordUsage.Duplicates != 1 {
		t.Fatalf("the same key written as the character: %+v, want a duplicate", got)
	}
	if got := counted(send(map[string]any{"query": strings.Replace(record(`$k`), "mutation", "mutation($k: String!)", 1), "variables": map[string]any{"k": "b😀"}})); got.RecordUsage.Duplicates != 1 {
		t.Fatalf("the same key as a variable: %+v, want a duplicate", got)
	}
	// Block strings and comments hold no escapes.
	if got := counted(send(map[string]any{"query": "# \\ud800 in a comment\n" + record(`"""c\ud800"""`)})); got.RecordUsage.Accepted != 1 {
		t.Fatalf("block string: %+v", got)
	}
	if got := counted(send(map[string]any{"query": record(`"c\\ud800"`)})); got.RecordUsage.Duplicates != 1 {
		t.Fatalf(`"c\\ud800" (an escaped backslash) is the block string's key: %+v`, got)
	}
	// A persisted query is checked against the text as sent, then read.
	doc := record(`"d\ud83d\ude00"`)
	sum := sha256.Sum256([]byte(doc))
	apq := map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hex.EncodeToString(sum[:])}}
	if got := counted(send(map[string]any{"query": doc, "extensions": apq})); got.RecordUsage.Accepted != 1 {
		t.Fatalf("persisted query, first sent: %+v", got)
	}
	if got := counted(send(map[string]any{"extensions": apq})); got.RecordUsage.Duplicates != 1 {
		t.Fatalf("persisted query by its hash: %+v", got)
	}
	if got := counted(send(map[string]any{"query": record(`"d😀"`)})); got.RecordUsage.Duplicates != 1 {
		t.Fatalf("the persisted query's key: %+v", got)
	}
}
