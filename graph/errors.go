package graph

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/observe"
	"github.com/tollgate-billing/tollgate/internal/store"
)

// ErrorPresenter is the one place that decides what an error looks like to a
// client. Domain errors (*apperr.Error) keep their message and code; errors
// gqlgen raised about the request itself (parse, validation, input coercion)
// are already client-safe; a database that is briefly out of reach is
// UNAVAILABLE (retryable); anything else is logged with the request id and
// shown only as INTERNAL, so database and driver text never leave the server.
func ErrorPresenter(log *slog.Logger) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		path := graphql.GetPath(ctx)
		if ae, ok := apperr.As(err); ok && ae.Code != apperr.Internal {
			if ae.Err != nil {
				log.WarnContext(ctx, "request failed", "code", ae.Code, "path", path.String(), "err", ae.Err)
			}
			ext := map[string]any{"code": string(ae.Code)}
			for k, v := range ae.Extensions {
				ext[k] = v
			}
			if ae.Code == apperr.Unavailable { // every outage reads alike
				ext["retryable"], ext["requestId"] = true, observe.RequestID(ctx)
			}
			msg := ae.Message
			if at := argumentPath(err, path); at != "" {
				msg = at + ": " + msg
			}
			msg = capAt(msg, maxServiceMessage)
			return &gqlerror.Error{Message: msg, Path: path, Extensions: ext}
		}
		// gqlgen wraps every error in a *gqlerror.Error. Only those it made
		// itself (parse, validation, variable coercion: nothing inside, or
		// another gqlerror inside) are about the request and safe to show.
		var gqlErr *gqlerror.Error
		if errors.As(err, &gqlErr) && (gqlErr.Err == nil || errors.As(gqlErr.Err, new(*gqlerror.Error))) {
			if gqlErr.Path == nil {
				gqlErr.Path = path
			}
			if gqlErr.Extensions == nil {
				gqlErr.Extensions = map[string]any{"code": string(apperr.BadInput)}
			}
			if isValueError(gqlErr) {
				gqlErr.Extensions["code"] = string(apperr.BadInput)
			}
			gqlErr.Message = capMessage(gqlErr.Message)
			return gqlErr
		}
		rid := observe.RequestID(ctx)
		if store.IsUnavailable(err) {
			log.WarnContext(ctx, "database unavailable", "path", path.String(), "err", err)
			return &gqlerror.Error{
				Message: "the database is briefly unavailable; retry the request " +
					"(recordUsage with the same idempotency keys is safe to retry)",
				Path:       path,
				Extensions: map[string]any{"code": string(apperr.Unavailable), "requestId": rid, "retryable": true},
			}
		}
		log.ErrorContext(ctx, "internal error", "path", path.String(), "err", err)
		return &gqlerror.Error{
			Message:    "internal error; quote request id " + rid + " when reporting it",
			Path:       path,
			Extensions: map[string]any{"code": string(apperr.Internal), "requestId": rid},
		}
	}
}

// maxMessage bounds a message gqlgen or gqlparser wrote about the request:
// they quote the document's names and values ("Cannot query field
// \"xxx…\"", "operation xxx… not found"), and a client must never get a
// large part of what it sent back.
const maxMessage = 300

func capMessage(msg string) string { return capAt(msg, maxMessage) }

// maxServiceMessage bounds a message Tollgate's services wrote (errors and
// userErrors): they quote a bounded part of a bad value, and this keeps any
// that forgot to from sending a large input back; it leaves room for the
// longest they mean to write (every meter's name, say).
const maxServiceMessage = 1024

func capAt(msg string, max int) string {
	if len(msg) <= max {
		return msg
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + "…"
}

// argumentPath names the argument value a scalar refused while the
// generated code read a field's arguments (input.events[0].quantity), which
// gqlgen records as the error's path beyond the field's own; "" for any
// other error.
func argumentPath(err error, field ast.Path) string {
	gqlErr, ok := errors.AsType[*gqlerror.Error](err)
	if !ok || len(gqlErr.Path) <= len(field) {
		return ""
	}
	for i, e := range field {
		if gqlErr.Path[i] != e {
			return ""
		}
	}
	var b strings.Builder
	for _, e := range gqlErr.Path[len(field):] {
		switch e := e.(type) {
		case ast.PathName:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(string(e))
		case ast.PathIndex:
			b.WriteString("[" + strconv.Itoa(int(e)) + "]")
		}
	}
	return b.String()
}

// RecoverFunc turns a panic in a resolver into an INTERNAL error carrying the
// request id, and logs the stack.
func RecoverFunc(log *slog.Logger) graphql.RecoverFunc {
	return func(ctx context.Context, p any) error {
		log.ErrorContext(ctx, "panic in resolver", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		return apperr.New(apperr.Internal, "internal error")
	}
}
