package graphiql_test

import (
	"crypto/sha256"
	"encoding/base64"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/tollgate-billing/tollgate/internal/graphiql"
)

func serve(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	graphiql.Mount(mux, "Tollgate", "/graphql")
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func fetch(t *testing.T, url string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

var (
	anyURL   = regexp.MustCompile(`(?i)\b(https?|wss?):`)
	resource = regexp.MustCompile(`(?:src|href)="([^"]*)"(?: integrity="([^"]*)")?`)
)

// TestPageLoadsNothingFromAnotherHost: the GraphiQL page names no other
// host (it used to load React and GraphiQL from a CDN and stayed on
// "Loading…" offline), every script and style it names is served by
// Tollgate with the integrity the page states, and its
// Content-Security-Policy allows scripts from Tollgate alone.
func TestPageLoadsNothingFromAnotherHost(t *testing.T) {
	srv := serve(t)
	resp, page := fetch(t, srv.URL+"/", nil)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if m := anyURL.FindString(string(page)); m != "" {
		t.Fatalf("the page names a host (%q):\n%s", m, page)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self';", "connect-src 'self';"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	if strings.Contains(string(page), "<script>") || strings.Contains(string(page), "<style>") {
		t.Error("the page has an inline script or style, which its CSP would block")
	}

	refs := resource.FindAllStringSubmatch(string(page), -1)
	var names []string
	for _, ref := range refs {
		url, integrity := html.UnescapeString(ref[1]), html.UnescapeString(ref[2])
		if strings.HasPrefix(url, "data:") {
			continue // the empty favicon: no request at all
		}
		names = append(names, url)
		// A root-relative path: also no protocol-relative //host/...
		if !strings.HasPrefix(url, graphiql.AssetPath) {
			t.Errorf("%s is not served from %s", url, graphiql.AssetPath)
			continue
		}
		resp, body := fetch(t, srv.URL+url, nil)
		if resp.StatusCode != http.StatusOK || len(body) == 0 {
			t.Errorf("GET %s = %d, %d bytes", url, resp.StatusCode, len(body))
			continue
		}
		sum := sha256.Sum256(body)
		if got := "sha256-" + base64.StdEncoding.EncodeToString(sum[:]); got != integrity {
			t.Errorf("%s: integrity %q on the page, %q served", url, integrity, got)
		}
		wantType := map[bool]string{true: "text/css", false: "text/javascript"}[strings.HasSuffix(url, ".css")]
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, wantType) {
			t.Errorf("%s served as %q, want %s", url, ct, wantType)
		}
		// Revalidation costs a 304, not the megabyte again.
		if again, _ := fetch(t, srv.URL+url, map[string]string{"If-None-Match": resp.Header.Get("ETag")}); again.StatusCode != http.StatusNotModified {
			t.Errorf("%s with its ETag: %d, want 304", url, again.StatusCode)
		}
	}
	for _, want := range []string{"react.production.min.js", "react-dom.production.min.js", "graphiql.min.js", "graphiql.min.css", "start.js"} {
		if !strings.Contains(strings.Join(names, " "), graphiql.AssetPath+want) {
			t.Errorf("the page does not load %s (it loads %v)", want, names)
		}
	}
	if resp, _ := fetch(t, srv.URL+graphiql.AssetPath+"nothing.js", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown asset: %d, want 404", resp.StatusCode)
	}
}

// TestPageAllowsOnlyTollgateAndSendsNoReferrer: the page's CSP allows no
// inline script or style (the README says it allows only Tollgate), and
// the page's URL is not sent to any other site as a Referer.
func TestPageAllowsOnlyTollgateAndSendsNoReferrer(t *testing.T) {
	resp, _ := fetch(t, serve(t).URL+"/", nil)
	if csp := resp.Header.Get("Content-Security-Policy"); csp == "" || strings.Contains(csp, "unsafe") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	if rp := resp.Header.Get("Referrer-Policy"); rp != "no-referrer" {
		t.Errorf("Referrer-Policy %q, want no-referrer", rp)
	}
}
