package app

import (
	"context"
	"crypto/subtle"
	"net/http"
	"time"

	"github.com/tollgate-billing/tollgate/graph"
	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/billingpage"
	"github.com/tollgate-billing/tollgate/internal/config"
	"github.com/tollgate-billing/tollgate/internal/graphiql"
	"github.com/tollgate-billing/tollgate/internal/observe"
	"github.com/tollgate-billing/tollgate/internal/ratelimit"
	"github.com/tollgate-billing/tollgate/internal/stripehook"
)

// MaxGraphQLBody caps a GraphQL request body: a 1,000-event recordUsage is
// about 250 KiB.
const MaxGraphQLBody = 2 << 20

// Handler returns Tollgate's HTTP routes:
//
//	GET  /                 GraphiQL (development, or PLAYGROUND=true)
//	GET  /graphiql/{file}  its scripts and styles, embedded
//	GET  /billing          the customer billing page (unless BILLING_PAGE=false)
//	POST /graphql          the GraphQL API (GET for queries)
//	POST /webhooks/stripe  Stripe webhooks
//	GET  /healthz          liveness: answers while the process runs
//	GET  /readyz           readiness: 200 only when the database (at the latest migration) and Redis answer
//	GET  /metrics          Prometheus metrics
func (a *App) Handler() http.Handler {
	gql := graph.NewHandler(a.resolver(), graph.Options{
		Production: a.Config.Env == config.Production,
		Log:        a.Log,
		Work:       ratelimit.WorkCharge{},
		// Every organisation shares one Stripe account and its rate limit.
		StripeBudget: ratelimit.NewStripeCharge(a.Limiter, a.Config.StripeCallsPerOrganization, graph.StripeFields),
	})
	// Order matters: authenticate, then charge the credential (or address),
	// then run the operation.
	api := limitBody(a.Auth.Middleware(a.rateLimit(gql)), MaxGraphQLBody)
	api = cors(a.Config.CORSOrigins, api)

	mux := http.NewServeMux()
	mux.Handle("POST /graphql", api)
	mux.Handle("GET /graphql", api)
	mux.Handle("OPTIONS /graphql", api)
	// Any other method is answered by the GraphQL handler too (405 with a
	// code, as a GraphQL error), not by the mux's plain-text 405.
	mux.Handle("/graphql", api)
	a.mountWebhooks(mux)
	if a.Config.Playground {
		graphiql.Mount(mux, "Tollgate", "/graphql")
	}
	if a.Config.BillingPage {
		// The origins allowed to call the API may also frame the page.
		billingpage.Mount(mux, billingpage.Options{FrameAncestors: a.Config.CORSOrigins})
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		apperr.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", a.ready)
	// A browser asks every origin it shows a page of (healthz, metrics, a
	// JSON error) for its icon. Tollgate has none: "no content" is the
	// answer, where a 404 would be an error in that browser's console.
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=86400")
		w.WriteHeader(http.StatusNoContent)
	})
	mux.Handle("GET /metrics", metricsAuth(a.Config.MetricsToken, observe.MetricsHandler()))
	return observe.RequestIDMiddleware(a.deadline(observe.CountRequests(noStore(mux))))
}

// noStore marks every answer uncacheable before its handler runs: GraphQL
// answers (a createApiKey secret, a GET authenticated by the session
// cookie, which RFC 9111's shared-cache rule for Authorization does not
// cover), their refusals (400, 401, 403, 405, 413, 415, 429, 5xx), CORS
// preflights, webhook answers, readiness and metrics. The few answers
// that are the same for everyone (GraphiQL and billing page assets, the
// icon) set their own Cache-Control over it.
func noStore(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h[headerCacheControl] = noStoreValue
		h[headerVary] = varyCredentials
		next.ServeHTTP(w, r)
	})
}

// Set in canonical form directly, sharing one slice: every request passes
// here. A handler replaces, never appends to, these values (Header.Set,
// or Add onto Vary after the slice has grown), so sharing them is safe.
var (
	headerCacheControl = http.CanonicalHeaderKey("Cache-Control")
	headerVary         = http.CanonicalHeaderKey("Vary")
	noStoreValue       = []string{"no-store"}
	varyCredentials    = []string{"Authorization, Cookie, X-API-Key"}
)

// metricsAuth asks for METRICS_TOKEN as a bearer token when it is set:
// /metrics is served on the API's port, to whoever reaches it.
func metricsAuth(token string, next http.Handler) http.Handler {
	if token == "" {
		return next
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="metrics"`)
			http.Error(w, "metrics need METRICS_TOKEN as a bearer token", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// deadline gives every request REQUEST_TIMEOUT; the context carries it down
// to GORM, Redis and Stripe.
func (a *App) deadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), a.Config.RequestTimeout)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func (a *App) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]string{"database": "ok", "schema": "ok", "redis": "ok"}
	code := http.StatusOK
	if err := a.DB.Ping(ctx); err != nil {
		checks["database"], checks["schema"], code = "unavailable", "unknown", http.StatusServiceUnavailable
		a.Log.WarnContext(ctx, "readiness: database", "err", err)
	} else if pending, err := a.DB.MigrationsPending(ctx); err != nil {
		checks["schema"], code = "unknown", http.StatusServiceUnavailable
		a.Log.WarnContext(ctx, "readiness: schema", "err", err)
	} else if pending {
		// Every request would fail on a missing table or column.
		checks["schema"], code = "migrations pending", http.StatusServiceUnavailable
		a.Log.WarnContext(ctx, "readiness: the database schema is behind this binary; run `tollgate migrate up` or start with TOLLGATE_MIGRATE=true")
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
	apperr.WriteJSON(w, code, map[string]any{"status": status, "checks": checks,
		// Which Stripe API versions (payload shapes) webhooks arrive in.
		"stripeApiVersions": stripehook.SeenAPIVersions()})
}

// limitBody refuses a declared oversize body with 413 before reading it, and
// caps what is read of an undeclared (chunked) one.
func limitBody(next http.Handler, n int64) http.Handler {
	capped := http.MaxBytesHandler(next, n)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > n {
			apperr.WriteRefusal(w, http.StatusRequestEntityTooLarge, apperr.RequestTooLarge,
				"request body is larger than the limit", map[string]any{"limitBytes": n})
			return
		}
		capped.ServeHTTP(w, r)
	})
}
