// Package graphiql serves the GraphiQL page and everything it loads from
// Tollgate itself, embedded in the binary: offline, or behind a proxy that
// blocks CDNs, the page still works. The third-party files under assets/
// are npm packages' built bundles at pinned versions, refreshed by
// scripts/vendor-graphiql.sh; page.css and start.js are Tollgate's own.
package graphiql

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"time"
)

// AssetPath is where the page's scripts and styles are served.
const AssetPath = "/graphiql/"

// CSP is the page's Content-Security-Policy: scripts, styles and requests
// only to Tollgate itself. GraphiQL and its editor set styles through the
// DOM, which style-src does not govern, so no inline style is allowed; its
// fonts and icons are data: URLs.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data:; font-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

//go:embed assets/*.js assets/*.css page.css start.js
var files embed.FS

//go:embed index.html
var indexHTML string

type asset struct {
	body        []byte
	contentType string
	integrity   string // Subresource Integrity value, also the ETag
}

// assets maps a file name (without directory) to its content.
var assets = func() map[string]asset {
	out := map[string]asset{}
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		out[path.Base(p)] = asset{
			body:        b,
			contentType: mime.TypeByExtension(path.Ext(p)),
			integrity:   "sha256-" + base64.StdEncoding.EncodeToString(sum[:]),
		}
		return nil
	})
	if err != nil {
		panic("graphiql: embedded assets: " + err.Error())
	}
	return out
}()

var page = template.Must(template.New("graphiql").Parse(indexHTML))

type pageData struct {
	Title, Endpoint string
}

// Asset is the URL of an embedded file; the template fails on a name that
// is not embedded, so a page can never point at a missing file.
func (pageData) Asset(name string) (string, error) {
	if _, ok := assets[name]; !ok {
		return "", fs.ErrNotExist
	}
	return AssetPath + name, nil
}

// Integrity is the file's Subresource Integrity value.
func (pageData) Integrity(name string) (string, error) {
	a, ok := assets[name]
	if !ok {
		return "", fs.ErrNotExist
	}
	return a.integrity, nil
}

// Mount serves the page at / and its files under AssetPath; endpoint is
// the GraphQL URL path the page queries.
func Mount(mux *http.ServeMux, title, endpoint string) {
	var html bytes.Buffer
	if err := page.Execute(&html, pageData{Title: title, Endpoint: endpoint}); err != nil {
		panic("graphiql: page template: " + err.Error())
	}
	body := html.Bytes()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", CSP)
		// The page's URL never leaves the browser in a Referer header.
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-cache")
		_, _ = w.Write(body)
	})
	mux.HandleFunc("GET "+AssetPath+"{name}", func(w http.ResponseWriter, r *http.Request) {
		a, ok := assets[r.PathValue("name")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", a.contentType)
		h.Set("X-Content-Type-Options", "nosniff")
		// The names carry no version: revalidate, which costs a 304.
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", `"`+a.integrity+`"`)
		http.ServeContent(w, r, r.PathValue("name"), time.Time{}, bytes.NewReader(a.body))
	})
}
