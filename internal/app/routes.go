package app

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/99designs/gqlgen/graphql/playground"

	"github.com/tollgate-billing/tollgate/graph"
	"github.com/tollgate-billing/tollgate/internal/config"
	"github.com/tollgate-billing/tollgate/internal/observe"
)

// Handler returns Tollgate's HTTP routes:
//
//	GET  /            GraphiQL (development, or PLAYGROUND=true)
//	POST /graphql     the GraphQL API (GET for queries)
//	GET  /healthz     liveness: answers while the process runs
//	GET  /readyz      readiness: 200 only when the database and Redis answer
func (a *App) Handler() http.Handler {
	gql := graph.NewHandler(&graph.Resolver{
		Catalog: a.Catalog,
		Orgs:    a.Orgs,
		Keys:    a.Keys,
		Billing: a.Billing,
	}, graph.Options{
		Introspection: a.Config.Env == config.Dev,
		Log:           a.Log,
	})
	api := a.Auth.Middleware(gql)

	mux := http.NewServeMux()
	mux.Handle("POST /graphql", api)
	mux.Handle("GET /graphql", api)
	if a.Config.Playground {
		mux.Handle("GET /{$}", playground.Handler("Tollgate", "/graphql"))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", a.ready)
	return observe.RequestIDMiddleware(mux)
}

func (a *App) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]string{"database": "ok", "redis": "ok"}
	code := http.StatusOK
	if err := a.DB.Ping(ctx); err != nil {
		checks["database"], code = "unavailable", http.StatusServiceUnavailable
		a.Log.WarnContext(ctx, "readiness: database", "err", err)
	}
	if err := a.Redis.Ping(ctx).Err(); err != nil {
		checks["redis"], code = "unavailable", http.StatusServiceUnavailable
		a.Log.WarnContext(ctx, "readiness: redis", "err", err)
	}
	if a.Config.StripeEnabled() {
		checks["stripe"] = "configured"
	} else {
		checks["stripe"] = "not configured"
	}
	status := "ready"
	if code != http.StatusOK {
		status = "not ready"
	}
	writeJSON(w, code, map[string]any{"status": status, "checks": checks})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
