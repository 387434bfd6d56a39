package graph

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/observe"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/stripeclient"
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

// TestErrorPresenterUnavailable: a database that cannot be reached answers
// UNAVAILABLE, retryable, with the request id, and none of the driver's text;
// the server logs the real error at WARN under the request id.
func TestErrorPresenterUnavailable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, dbErr := store.Open(context.Background(), store.Options{URL: "postgres://postgres@" + addr + "/test?sslmode=disable"})
	if dbErr == nil {
		t.Fatal("opened a database on a closed port")
	}

	var logged strings.Builder
	log := slog.New(observe.ContextHandler{Handler: slog.NewTextHandler(&logged, nil)})
	ctx := observe.WithRequestID(context.Background(), "rid-2")
	got := ErrorPresenter(log)(ctx, graphql.ErrorOnPath(ctx, fmt.Errorf("record usage: %w", dbErr)))

	if got.Extensions["code"] != "UNAVAILABLE" || got.Extensions["retryable"] != true || got.Extensions["requestId"] != "rid-2" {
		t.Fatalf("extensions %v", got.Extensions)
	}
	if !strings.Contains(got.Message, "retry") {
		t.Fatalf("message does not say to retry: %q", got.Message)
	}
	for _, leak := range []string{addr, "refused", "dial", "postgres", "user="} {
		if strings.Contains(got.Message, leak) {
			t.Fatalf("message leaks %q: %s", leak, got.Message)
		}
	}
	line := logged.String()
	if !strings.Contains(line, "level=WARN") || !strings.Contains(line, "request_id=rid-2") || !strings.Contains(line, "refused") {
		t.Fatalf("log line: %s", line)
	}
}

// TestStripeOutageIsAnOutage: Stripe failing (here, unreachable) answers as
// every dependency outage does: UNAVAILABLE, retryable, with the request id,
// and the reason that names Stripe. It answered PAYMENT_PROVIDER_UNAVAILABLE
// without retryable, a code no client's retry rule knew.
func TestStripeOutageIsAnOutage(t *testing.T) {
	ctx := observe.WithRequestID(context.Background(), "rid-3")
	unreachable := &url.Error{Op: "Post", URL: "https://api.stripe.com/v1/checkout/sessions", Err: errors.New("connection refused")}
	got := ErrorPresenter(slog.New(slog.NewTextHandler(io.Discard, nil)))(ctx, graphql.ErrorOnPath(ctx, stripeclient.Error("create checkout session", unreachable)))
	if got.Extensions["code"] != "UNAVAILABLE" || got.Extensions["retryable"] != true || got.Extensions["requestId"] != "rid-3" ||
		got.Extensions["reason"] != apperr.ReasonPaymentProvider {
		t.Fatalf("extensions %v", got.Extensions)
	}
	if strings.Contains(got.Message, "refused") || strings.Contains(got.Message, "api.stripe.com") {
		t.Fatalf("message leaks the cause: %q", got.Message)
	}
}
