package graph

import (
	"fmt"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
)

func costOf(t *testing.T, q string) cost {
	t.Helper()
	doc, err := parser.ParseQuery(&ast.Source{Input: q})
	if err != nil {
		t.Fatal(err)
	}
	return measureDocument(doc)
}

func nest(n int) string {
	return strings.Repeat("{ a ", n-1) + "{ b }" + strings.Repeat(" }", n-1)
}

// fragmentBomb is n fragments each spreading the next one twice: a few
// bytes per level, 2^n fields once expanded.
func fragmentBomb(n int) string {
	var b strings.Builder
	b.WriteString("query B { ...F0 }\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "fragment F%d on Query { ...F%d ...F%d }\n", i, i+1, i+1)
	}
	fmt.Fprintf(&b, "fragment F%d on Query { __typename }\n", n)
	return b.String()
}

func TestMeasureDocumentDepth(t *testing.T) {
	cases := []struct {
		name  string
		query string
		depth int
	}{
		{"ten levels are ten", nest(10), 10},
		{"nesting hidden in a fragment still counts", "{ a { ...F } } fragment F on T " + nest(10), 11},
		{"nesting hidden in an inline fragment still counts", "{ a { ... on T " + nest(10) + " } }", 11},
		{"a fragment no operation spreads is measured too", "{ a } fragment F on T " + nest(12), 12},
		{"a self-referencing fragment does not hang", "{ a { ...F } } fragment F on T { x { ...F } }", 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := costOf(t, tc.query).depth; got != tc.depth {
				t.Fatalf("depth = %d, want %d", got, tc.depth)
			}
		})
	}
}

func TestMeasureDocumentCountsExpandedFields(t *testing.T) {
	if got := costOf(t, "{ a { b c } ...F ...F } fragment F on T { d e }").fields; got != 7 {
		t.Fatalf("fields = %d, want 7 (a, b, c, and d, e twice)", got)
	}
	if got := costOf(t, fragmentBomb(10)).fields; got != 1<<10 {
		t.Fatalf("10-level bomb: fields = %d, want %d", got, 1<<10)
	}
	// 2^60 fields saturate instead of overflowing, and are measured
	// without expanding them.
	if got := costOf(t, fragmentBomb(60)).fields; got != MaxFields+1 {
		t.Fatalf("60-level bomb: fields = %d, want the saturated %d", got, MaxFields+1)
	}
}
