package graph

import (
	"log/slog"

	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/tollgate-billing/tollgate/graph/generated"
)

// Options shape the GraphQL server.
type Options struct {
	// Introspection is on in development only.
	Introspection bool
	Log           *slog.Logger
}

// NewHandler builds the GraphQL HTTP handler: POST and GET only (no
// multipart uploads, no websockets), a parsed-query cache, automatic
// persisted queries, and Tollgate's error presenter.
func NewHandler(r *Resolver, o Options) *handler.Server {
	cfg := generated.Config{Resolvers: r}
	cfg.Directives.HasScope = hasScope
	srv := handler.New(generated.NewExecutableSchema(cfg))
	srv.AddTransport(transport.Options{})
	srv.AddTransport(transport.GET{})
	srv.AddTransport(transport.POST{})
	srv.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	if o.Introspection {
		srv.Use(extension.Introspection{})
	}
	srv.Use(extension.AutomaticPersistedQuery{Cache: lru.New[string](1000)})
	srv.SetErrorPresenter(ErrorPresenter(o.Log))
	srv.SetRecoverFunc(RecoverFunc(o.Log))
	return srv
}
