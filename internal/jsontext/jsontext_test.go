package jsontext

import (
	"strings"
	"testing"
)

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

// TestMembers: the walk yields each top-level member's name as it reads and
// its value as sent, whatever the white space and whatever the values hold,
// and ends at the closing brace; text that is not one object ends it with
// -1, after the members read whole before the fault.
func TestMembers(t *testing.T) {
	for _, tc := range []struct {
		doc   string
		after string // what follows the object, for a whole one
		want  string // name=value, separated by spaces
		whole bool   // End is len(doc), or -1 when false
	}{
		{`{}`, ``, ``, true},
		{` { }`, ` x`, ``, true},
		{`{"a":1}`, ``, `a=1`, true},
		{"{ \"a\" :\t1 ,\r\n\"b\" : \"x\" }", "\n", `a=1 b="x"`, true},
		{`{"\u006frg":"a","o\"k":2}`, ``, `org="a" o"k=2`, true},
		{`{"a":{"b":[1,"}",{"c":"]"}]},"d":[],"e":null}`, ``, `a={"b":[1,"}",{"c":"]"}]} d=[] e=null`, true},
		{`{"a":"x\",\"b\":1"}`, ``, `a="x\",\"b\":1"`, true},
		{`{"a":1}`, `{"b":2}`, `a=1`, true},
		{`{"a":1,}`, ``, `a=1`, false},
		{`{"a":1 "b":2}`, ``, ``, false},
		{`{"a" 1}`, ``, ``, false},
		{`{"a":}`, ``, ``, false},
		{`{"a":1,"b":}`, ``, `a=1`, false},
		{`{a:1}`, ``, ``, false},
		{`{"a":1`, ``, ``, false},
		{`{"a":"1}`, ``, ``, false},
		{`{"a":"\ud800"}`, ``, ``, false},
		{`{"\ud800":1}`, ``, ``, false},
		{`{`, ``, ``, false},
		{`[{"a":1}]`, ``, ``, false},
		{``, ``, ``, false},
	} {
		var got []string
		m := MembersOf([]byte(tc.doc + tc.after))
		for m.Next() {
			got = append(got, string(m.Name())+"="+string(m.Value()))
		}
		end := -1
		if tc.whole {
			end = len(tc.doc)
		}
		if g := strings.Join(got, " "); g != tc.want || m.End() != end {
			t.Errorf("%s%s: members %q, end %d; want %q, end %d", tc.doc, tc.after, g, m.End(), tc.want, end)
		}
	}
}

// TestMembersAllocatesNothingForPlainNames: the walk reads every new
// token's claims, so names without escapes cost no allocation.
func TestMembersAllocatesNothingForPlainNames(t *testing.T) {
	doc := []byte(`{"org":"acme","org_name":"Acme Inc","scope":"billing:read usage:write","sub":"user-123","exp":1900000000,"x":{"y":[1,2]}}`)
	if n := testing.AllocsPerRun(100, func() {
		m := MembersOf(doc)
		for m.Next() {
		}
		if m.End() != len(doc) {
			t.Fatal("not read to its end")
		}
	}); n != 0 {
		t.Fatalf("the walk allocates %v times per object", n)
	}
}
