package billingpage_test

import (
	"io"
	"io/fs"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/tollgate-billing/tollgate/internal/apptest"
	"github.com/tollgate-billing/tollgate/internal/money"
)

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// TestPageIsServedWithAStrictPolicy: the page and its assets come from
// Tollgate with a CSP that allows only Tollgate's own origin, and nothing
// else is referenced.
func TestPageIsServedWithAStrictPolicy(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	resp, html := get(t, h.Server.URL+"/billing")
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /billing = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'self'", "base-uri 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe") || strings.Contains(csp, "*") {
		t.Errorf("CSP %q allows inline code, eval or any host", csp)
	}
	for header, want := range map[string]string{
		"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "SAMEORIGIN", "Cache-Control": "no-store",
	} {
		if got := resp.Header.Get(header); got != want {
			t.Errorf("%s = %q, want %q", header, got, want)
		}
	}
	assets := regexp.MustCompile(`(?:src|href)="(billing/assets/[^"]+)"`).FindAllStringSubmatch(html, -1)
	if len(assets) != 2 {
		t.Errorf("the page links %d assets, want its script and stylesheet", len(assets))
	}
	for _, asset := range assets {
		r, _ := get(t, h.Server.URL+"/"+asset[1])
		if r.StatusCode != http.StatusOK || r.Header.Get("Content-Security-Policy") != csp || r.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("asset %s = %d, CSP %q", asset[1], r.StatusCode, r.Header.Get("Content-Security-Policy"))
		}
	}
	if r, _ := get(t, h.Server.URL+"/billing/assets/nothing.js"); r.StatusCode != http.StatusNotFound {
		t.Errorf("a missing asset answered %d", r.StatusCode)
	}
}

// TestAssetsReferenceNoOtherHost: no CDN, web font or image from elsewhere
// hides in the embedded files (the SVG namespace is a name, not a request).
func TestAssetsReferenceNoOtherHost(t *testing.T) {
	urls := regexp.MustCompile(`(?i)(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	err := fs.WalkDir(os.DirFS("assets"), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile("assets/" + path)
		if err != nil {
			return err
		}
		for _, u := range urls.FindAllString(string(b), -1) {
			if u != "http://www.w3.org" {
				t.Errorf("%s references %s", path, u)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestBillingPageSettings: BILLING_PAGE=false turns the page off, and the
// CORS_ORIGINS dashboards may frame it.
func TestBillingPageSettings(t *testing.T) {
	off := apptest.New(t, apptest.Options{Env: map[string]string{"BILLING_PAGE": "false"}})
	if r, _ := get(t, off.Server.URL+"/billing"); r.StatusCode != http.StatusNotFound {
		t.Errorf("BILLING_PAGE=false: GET /billing = %d, want 404", r.StatusCode)
	}
	framed := apptest.New(t, apptest.Options{Env: map[string]string{"CORS_ORIGINS": "https://app.example.com,*"}})
	r, _ := get(t, framed.Server.URL+"/billing")
	if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'self' https://app.example.com;") && !strings.HasSuffix(csp, "frame-ancestors 'self' https://app.example.com") {
		t.Errorf("CORS_ORIGINS do not reach frame-ancestors: %q", csp)
	}
	if xfo := r.Header.Get("X-Frame-Options"); xfo != "" {
		t.Errorf("X-Frame-Options %q would forbid the listed dashboard from framing the page", xfo)
	}
}

// TestBillingJSKnowsStripesExponents: the page divides amounts by the same
// powers of ten as the server's money.Format, so a yen or dinar amount
// reads the same on the page as in an invoice item's text.
func TestBillingJSKnowsStripesExponents(t *testing.T) {
	js, err := os.ReadFile("assets/billing.js")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for name, exp := range map[string]int{"ZERO_DECIMAL": 0, "THREE_DECIMAL": 3} {
		m := regexp.MustCompile(`const ` + name + ` = \[([^\]]*)\];`).FindSubmatch(js)
		if m == nil {
			t.Fatalf("billing.js has no %s list", name)
		}
		for _, code := range regexp.MustCompile(`'([a-z]{3})'`).FindAllSubmatch(m[1], -1) {
			got[string(code[1])] = exp
		}
	}
	// Every code of three letters, "aaa" to "zzz", so a currency missing
	// from either side shows too.
	for i := range 26 * 26 * 26 {
		code := string([]byte{'a' + byte(i/676), 'a' + byte(i/26%26), 'a' + byte(i%26)})
		js, listed := got[code]
		if !listed {
			js = 2
		}
		if want := money.Exponent(code); js != want {
			t.Errorf("%s: billing.js divides by 10^%d, internal/money by 10^%d", code, js, want)
		}
	}
}
