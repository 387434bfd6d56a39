// Package billingpage serves GET /billing: a billing page for an
// organisation's own users, built from assets embedded in the binary. The
// page is plain HTML, CSS and JavaScript that talk to the public GraphQL API
// only, so its script doubles as an example of how a dashboard queries
// Tollgate. Nothing is loaded from another host.
package billingpage

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed assets
var assets embed.FS

// Options say how the page may be embedded.
type Options struct {
	// FrameAncestors are origins (https://app.example.com) allowed to show
	// the page in an iframe; "*" entries are ignored. Empty: only Tollgate's
	// own origin may frame it.
	FrameAncestors []string
}

// Mount adds GET /billing and its assets to mux.
func Mount(mux *http.ServeMux, o Options) {
	files, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the directory is embedded above; unreachable
	}
	headers := securityHeaders(o)
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		headers(w)
		// The HTML is tiny and a stale copy could run against a newer API.
		w.Header().Set("Cache-Control", "no-store")
		http.ServeFileFS(w, r, files, "index.html")
	})
	static := http.StripPrefix("/billing/assets/", http.FileServerFS(files))
	mux.Handle("GET /billing", page)
	mux.Handle("GET /billing/assets/{file}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("file") == "index.html" {
			// http.FileServer would redirect it to the directory.
			http.NotFound(w, r)
			return
		}
		headers(w)
		// Assets change only with the binary; revalidate rather than guess
		// a lifetime (the embedded files carry no modification time).
		w.Header().Set("Cache-Control", "no-cache")
		static.ServeHTTP(w, r)
	}))
}

// securityHeaders returns a function that sets the page's headers. The CSP
// allows scripts, styles and requests to Tollgate's own origin and nothing
// else: no inline script, no eval, no outside fonts or images.
func securityHeaders(o Options) func(http.ResponseWriter) {
	ancestors := []string{"'self'"}
	for _, a := range o.FrameAncestors {
		if a = strings.TrimSpace(a); a != "" && a != "*" {
			ancestors = append(ancestors, a)
		}
	}
	csp := strings.Join([]string{
		"default-src 'none'",
		"script-src 'self'",
		"style-src 'self'",
		"img-src 'self' data:",
		"connect-src 'self'",
		"base-uri 'none'",
		"form-action 'none'",
		"frame-ancestors " + strings.Join(ancestors, " "),
	}, "; ")
	return func(w http.ResponseWriter) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		// The fragment never travels in a Referer, and neither does the path.
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
		if len(ancestors) == 1 {
			// Older browsers ignore frame-ancestors.
			h.Set("X-Frame-Options", "SAMEORIGIN")
		}
	}
}
