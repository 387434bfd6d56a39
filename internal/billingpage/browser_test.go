package billingpage_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"iter"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/tollgate-billing/tollgate/internal/testenv"
)

var writeScreenshots = flag.Bool("screenshots", false, "write the README's screenshots of the billing page to docs/screenshots")

// TestMain stops the stripe-mock the tests start.
func TestMain(m *testing.M) { testenv.Main(m) }

// needBrowser returns Chromium's path, or skips the test (fails it where
// services are required) before anything else is started for it.
func needBrowser(t *testing.T) string {
	t.Helper()
	return testenv.Chromium(t)
}

// exchange is one /graphql request the page made, with the answer.
type exchange struct {
	Request  string
	Response string
}

// browser is a headless Chromium tab whose every request is paused and
// checked: requests to Tollgate continue, anything for another host is
// refused and recorded, so a test can fail on it.
type browser struct {
	t    *testing.T
	ctx  context.Context
	home string // scheme://host:port of Tollgate

	mu       sync.Mutex
	outside  []string   // URLs for another host, refused
	graphql  []exchange // completed /graphql calls, in order
	requests map[fetch.RequestID]string
	problems []string    // interception errors, reported by the test goroutine
	left     chan string // each URL for another host, as it is refused
	cutNext  string      // the next /graphql call containing this fails as if offline
}

// newBrowser starts Chromium for one test. Without a browser the test is
// skipped, unless services are required (CI), where it fails.
func newBrowser(t *testing.T, home string, width, height int) *browser {
	t.Helper()
	path := needBrowser(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("lang", "en-US"),
		chromedp.Env("LANG=en_US.UTF-8", "TZ=UTC"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	b := &browser{t: t, ctx: ctx, home: home, requests: map[fetch.RequestID]string{}, left: make(chan string, 64)}
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// Registered after the cancel above, so it runs first: the tab is
	// still open to photograph.
	t.Cleanup(func() {
		if t.Failed() {
			b.saveScreenshot("failure-" + strings.ReplaceAll(t.Name(), "/", "_"))
		}
	})

	paused := chromedp.Events(ctx, fetch.RequestPaused)
	go b.intercept(paused)
	err := chromedp.Do(ctx,
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{{URLPattern: "*"}}})
			return err
		}),
		viewport(width, height),
	)
	if err != nil {
		t.Fatalf("start Chromium (%s): %v", path, err)
	}
	return b
}

func viewport(width, height int) chromedp.Action[chromedp.Void] {
	mobile := width < 600
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{
			Width: int64(width), Height: int64(height), DeviceScaleFactor: 1, Mobile: mobile,
		})
		return err
	})
}

// intercept decides every paused request. It runs on its own goroutine, so
// it records problems instead of failing the test.
func (b *browser) intercept(paused iter.Seq2[fetch.EventRequestPaused, error]) {
	target := chromedp.FromContext(b.ctx).Target
	for ev, err := range paused {
		if err != nil {
			return // the tab is closing
		}
		if err := b.decide(target, &ev); err != nil && b.ctx.Err() == nil {
			b.mu.Lock()
			b.problems = append(b.problems, err.Error())
			b.mu.Unlock()
		}
	}
}

func (b *browser) decide(target *chromedp.Target, ev *fetch.EventRequestPaused) error {
	u := ev.Request.URL
	if ev.ResponseStatusCode != 0 || ev.ResponseErrorReason != "" {
		// The answer to a /graphql call: keep it with its request.
		body, err := cdp.Call(b.ctx, target, fetch.GetResponseBody, fetch.GetResponseBodyParams{RequestID: ev.RequestID})
		b.mu.Lock()
		b.graphql = append(b.graphql, exchange{Request: b.requests[ev.RequestID], Response: string(body.Body)})
		b.mu.Unlock()
		_, cerr := cdp.Call(b.ctx, target, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
		if err != nil {
			return err
		}
		return cerr
	}
	if !b.isHome(u) {
		u += ev.Request.URLFragment
		b.mu.Lock()
		b.outside = append(b.outside, u)
		b.mu.Unlock()
		select {
		case b.left <- u:
		default:
		}
		_, err := cdp.Call(b.ctx, target, fetch.FailRequest, fetch.FailRequestParams{RequestID: ev.RequestID, ErrorReason: network.ErrorReasonBlockedByClient})
		return err
	}
	p := fetch.ContinueRequestParams{RequestID: ev.RequestID}
	if strings.HasSuffix(strings.SplitN(u, "?", 2)[0], "/graphql") {
		var body strings.Builder
		for _, e := range ev.Request.PostDataEntries {
			body.Write(e.Bytes)
		}
		b.mu.Lock()
		b.requests[ev.RequestID] = body.String()
		cut := b.cutNext != "" && strings.Contains(body.String(), b.cutNext)
		if cut {
			b.cutNext = ""
		}
		b.mu.Unlock()
		if cut {
			_, err := cdp.Call(b.ctx, target, fetch.FailRequest, fetch.FailRequestParams{RequestID: ev.RequestID, ErrorReason: network.ErrorReasonConnectionRefused})
			return err
		}
		yes := true
		p.InterceptResponse = &yes
	}
	_, err := cdp.Call(b.ctx, target, fetch.ContinueRequest, p)
	return err
}

func (b *browser) isHome(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	if u.Scheme == "data" || u.Scheme == "blob" {
		return true
	}
	return u.Scheme+"://"+u.Host == b.home
}

// stayedHome fails the test if the page asked any other host for anything
// (allowed lists URLs a test expects, such as a checkout redirect).
func (b *browser) stayedHome(allowed ...string) {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, u := range b.outside {
		ok := false
		for _, a := range allowed {
			ok = ok || u == a
		}
		if !ok {
			b.t.Errorf("the page requested %s, which is not Tollgate (%s)", u, b.home)
		}
	}
	for _, p := range b.problems {
		b.t.Errorf("request interception: %s", p)
	}
}

// outsideRequests is what the page tried to load from another host so far.
func (b *browser) outsideRequests() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.outside...)
}

// exchange is the page's last /graphql call whose request contains marker.
func (b *browser) exchange(marker string) exchange {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := len(b.graphql) - 1; i >= 0; i-- {
		if strings.Contains(b.graphql[i].Request, marker) {
			return b.graphql[i]
		}
	}
	return exchange{}
}

// do runs steps, each wait bounded, and fails the test on error.
func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("browser: %v", err)
	}
}

// eval evaluates a JavaScript expression in the page and decodes its value.
func eval[T any](b *browser, expr string, opts ...chromedp.EvaluateOption) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, opts...))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor waits until the expression is truthy. The page itself checks it
// every 50 ms: chromedp.Poll could aim at the execution context of the
// document before a navigation that just finished.
func (b *browser) waitFor(expr string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	wait := `new Promise((resolve) => {
		const check = () => { try { if (` + expr + `) return resolve(true); } catch {} setTimeout(check, 50); };
		check();
	})`
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](wait, chromedp.EvalAwaitPromise)); err != nil {
		b.t.Fatalf("waiting for %s: %v", expr, err)
	}
}

// open loads a page of Tollgate and waits until the billing page has
// either finished loading or shown its expired state.
func (b *browser) open(path string) {
	b.t.Helper()
	// From a blank page, so that a URL differing only in its fragment is a
	// fresh load rather than a same-document navigation.
	b.do(chromedp.Navigate("about:blank"), chromedp.Navigate(b.home+path))
	b.waitFor(`document.body.dataset.ready === 'true' || !document.getElementById('state-expired').hidden`)
}

// text is the trimmed text of the first element matching a CSS selector.
func (b *browser) text(selector string) string {
	b.t.Helper()
	sel, _ := json.Marshal(selector)
	return eval[string](b, `(document.querySelector(`+string(sel)+`)?.textContent ?? '').trim()`)
}

func (b *browser) visible(selector string) bool {
	b.t.Helper()
	sel, _ := json.Marshal(selector)
	return eval[bool](b, `(() => { const e = document.querySelector(`+string(sel)+`); return !!e && e.offsetParent !== null; })()`)
}

// saveScreenshot writes the whole page as a PNG for a person to look at:
// under TOLLGATE_SCREENSHOT_DIR, else the system's temporary directory.
func (b *browser) saveScreenshot(name string) {
	dir := os.Getenv("TOLLGATE_SCREENSHOT_DIR")
	if dir == "" {
		dir = os.TempDir()
	}
	b.writeScreenshot(filepath.Join(dir, name+".png"))
}

func (b *browser) writeScreenshot(path string) {
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot: %v", err)
		return
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		b.t.Logf("screenshot: %v", err)
		return
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Logf("screenshot: %v", err)
		return
	}
	b.t.Logf("screenshot saved: %s", path)
}

// selectOption picks an option of a <select> as a user would, so that the
// page's change handler runs.
func (b *browser) selectOption(selector, value string) {
	b.t.Helper()
	sel, _ := json.Marshal(selector)
	val, _ := json.Marshal(value)
	eval[bool](b, `(() => { const s = document.querySelector(`+string(sel)+`); s.value = `+string(val)+`; s.dispatchEvent(new Event('change')); return s.value === `+string(val)+`; })()`)
}

// cutNextCall makes the page's next /graphql call that contains marker fail
// as if the network were down.
func (b *browser) cutNextCall(marker string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cutNext = marker
}

// grant gives Tollgate's origin browser permissions, as a user's "Allow".
func (b *browser) grant(permissions ...string) {
	b.t.Helper()
	b.do(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		for _, name := range permissions {
			_, err := cdp.Call(ctx, chromedp.FromContext(ctx).Browser, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
				Permission: &cdpbrowser.PermissionDescriptor{Name: name}, Setting: cdpbrowser.PermissionSettingGranted, Origin: b.home,
			})
			if err != nil {
				return fmt.Errorf("grant %s: %w", name, err)
			}
		}
		return nil
	}))
}

// leftFor waits for the page to ask another host for something, such as a
// redirect to Stripe, and returns the URL.
func (b *browser) leftFor(t *testing.T) string {
	t.Helper()
	select {
	case u := <-b.left:
		return u
	case <-time.After(30 * time.Second):
		t.Fatal("the page did not leave for another host within 30 s")
		return ""
	}
}

// asRequested writes a URL the way a browser requests it: stripe-mock's
// portal URL has a literal {SESSION_SECRET}, which goes out as %7B…%7D.
func asRequested(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("Stripe returned %q, not a URL: %v", raw, err)
	}
	return u.String()
}
