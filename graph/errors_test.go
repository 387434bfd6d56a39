package graph

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/observe"
)

// TestErrorPresenter: what a client sees for each kind of failure.
func TestErrorPresenter(t *testing.T) {
	var logged strings.Builder
	log := slog.New(slog.NewTextHandler(&logged, nil))
	present := ErrorPresenter(log)
	ctx := observe.WithRequestID(context.Background(), "rid-1")
	wrap := func(err error) error { return graphql.ErrorOnPath(ctx, err) } // as gqlgen does

	panicErr := RecoverFunc(slog.New(slog.NewTextHandler(io.Discard, nil)))(ctx, "boom")
	cases := []struct {
		name     string
		err      error
		code     string
		message  string
		hideText string
	}{
		{"domain error keeps its message and code", wrap(apperr.New(apperr.NotFound, "not found")), "NOT_FOUND", "not found", ""},
		{"database error is hidden behind INTERNAL", wrap(errors.New(`pq: relation "orgs" does not exist`)), "INTERNAL", "request id rid-1", "relation"},
		{"wrapped domain error is still found", wrap(errors.Join(errors.New("ctx"), apperr.New(apperr.Forbidden, "no"))), "FORBIDDEN", "no", ""},
		{"gqlgen's own validation error passes", gqlerror.Errorf("Cannot query field \"x\"").AsError(), "BAD_USER_INPUT", "Cannot query field", ""},
		{"a panic becomes INTERNAL with the request id", wrap(panicErr), "INTERNAL", "rid-1", "boom"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := present(ctx, tc.err)
			if got.Extensions["code"] != tc.code || !strings.Contains(got.Message, tc.message) {
				t.Fatalf("got %q %v", got.Message, got.Extensions)
			}
			if tc.hideText != "" && strings.Contains(got.Message, tc.hideText) {
				t.Fatalf("message leaks %q: %s", tc.hideText, got.Message)
			}
			if tc.code == "INTERNAL" && got.Extensions["requestId"] != "rid-1" {
				t.Fatalf("no request id: %v", got.Extensions)
			}
		})
	}
	if !strings.Contains(logged.String(), "relation") {
		t.Fatal("the real error was not logged")
	}
}
