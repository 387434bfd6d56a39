package jsontext

import "testing"

// TestCheck: what two readers could read differently is found, in any
// object and list, and nothing else is.
func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		doc     string
		foldTop bool
		want    Ambiguity
	}{
		{`{"a": 1, "b": {"a": 2}, "c": [{"a": 3}, {"a": 4}]}`, false, Ambiguity{}},
		{`{"a": 1, "a": 2}`, false, Ambiguity{Twice: "a"}},
		{`{"a": {"x": 1, "y": [1, {"z": 1, "z": 2}]}}`, false, Ambiguity{Twice: "z"}},
		{`{"org": 1, "\u006frg": 2}`, false, Ambiguity{Twice: "org"}},
		{`{"org": 1, "ORG": 2}`, false, Ambiguity{}},
		{`{"org": 1, "ORG": 2}`, true, Ambiguity{Twice: "ORG"}},
		{`{"v": {"m": 1, "M": 2}}`, true, Ambiguity{}},
		{`{"a": "x\"a\": 1, \"a"}`, false, Ambiguity{}},
		{`{"a": "\ud83d\ude00"}`, false, Ambiguity{}},
		{`{"a": "\ud800"}`, false, Ambiguity{LoneSurrogate: true}},
		{`{"a": "\udc00x"}`, false, Ambiguity{LoneSurrogate: true}},
		{`["\ud800\u0041"]`, false, Ambiguity{LoneSurrogate: true}},
	} {
		if got := Check([]byte(tc.doc), tc.foldTop); got != tc.want {
			t.Errorf("Check(%s, %v) = %+v, want %+v", tc.doc, tc.foldTop, got, tc.want)
		}
	}
}

// TestCheckAllocatesNothingForPlainNames: a request body is checked on
// every call, so a body without escaped names costs no allocation.
func TestCheckAllocatesNothingForPlainNames(t *testing.T) {
	doc := []byte(`{"query": "mutation($in: RecordUsageInput!) { recordUsage(input: $in) { accepted } }", "variables": {"in": {"events": [{"meter": "api_calls", "quantity": 1, "idempotencyKey": "k1"}, {"meter": "api_calls", "quantity": 1, "idempotencyKey": "k2"}]}}}`)
	if n := testing.AllocsPerRun(100, func() { Check(doc, true) }); n != 0 {
		t.Fatalf("Check allocates %v times per body", n)
	}
}
