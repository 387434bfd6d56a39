package graph

import (
	"context"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
)

func depthOf(t *testing.T, q string, max int) error {
	t.Helper()
	doc, err := parser.ParseQuery(&ast.Source{Input: q})
	if err != nil {
		t.Fatal(err)
	}
	// Link fragment spreads the way the validator would.
	for _, op := range doc.Operations {
		link(op.SelectionSet, doc)
	}
	for _, f := range doc.Fragments {
		link(f.SelectionSet, doc)
	}
	op := &graphql.OperationContext{Operation: doc.Operations[0]}
	if e := (DepthLimit{Max: max}).MutateOperationContext(context.Background(), op); e != nil {
		return e
	}
	return nil
}

func link(set ast.SelectionSet, doc *ast.QueryDocument) {
	for _, s := range set {
		switch s := s.(type) {
		case *ast.Field:
			link(s.SelectionSet, doc)
		case *ast.InlineFragment:
			link(s.SelectionSet, doc)
		case *ast.FragmentSpread:
			s.Definition = doc.Fragments.ForName(s.Name)
		}
	}
}

func nest(n int) string {
	return strings.Repeat("{ a ", n-1) + "{ b }" + strings.Repeat(" }", n-1)
}

func TestDepthLimit(t *testing.T) {
	cases := []struct {
		name   string
		query  string
		refuse bool
	}{
		{"ten levels pass", nest(10), false},
		{"eleven levels are refused", nest(11), true},
		{"nesting hidden in a fragment still counts", "{ a { ...F } } fragment F on T " + nest(10), true},
		{"nesting hidden in an inline fragment still counts", "{ a { ... on T " + nest(10) + " } }", true},
		{"a self-referencing fragment does not hang", "{ a { ...F } } fragment F on T { x { ...F } }", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := depthOf(t, tc.query, 10)
			if (err != nil) != tc.refuse {
				t.Fatalf("refused = %v, want %v (%v)", err != nil, tc.refuse, err)
			}
		})
	}
}
