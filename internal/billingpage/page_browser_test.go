package billingpage_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/tollgate-billing/tollgate/internal/auth"
)

const (
	desktopWidth, desktopHeight = 1280, 900
	phoneWidth, phoneHeight     = 390, 844
)

// TestPageShowsWhatTheOrganisationUsed: a customer opened from a link with a
// fragment token sees their plan, this month's usage per meter, the daily
// chart and top endpoints, exactly as recorded, and the token is gone from
// the address bar. With -screenshots it also writes the README's pictures.
func TestPageShowsWhatTheOrganisationUsed(t *testing.T) {
	h := newTollgate(t)
	org := orgID(t, h, "acme", "Acme Robotics")
	subscribe(t, h, org, "price_tollgate_starter_monthly")
	rec := recordUsage(t, h, "acme")
	seedInvoices(t, h, org, 14)
	createKey(t, h, org, "Production backend", auth.UsageWrite, auth.BillingRead)
	createKey(t, h, org, "Analytics export", auth.BillingRead)

	b := newBrowser(t, h.Server.URL, desktopWidth, desktopHeight)
	b.open("/billing#token=" + h.Token("acme"))

	if loc := eval[string](b, `location.href`); strings.Contains(loc, "#") || strings.Contains(loc, "token") {
		t.Errorf("address bar still holds the token: %s", loc)
	}
	if got := b.text("#plan-name"); got != "Starter" {
		t.Errorf("plan = %q, want Starter", got)
	}
	if got := b.text("#plan-price"); got != "$49.00" {
		t.Errorf("price = %q, want $49.00", got)
	}
	if got := b.text("#plan-status"); got != "Active" {
		t.Errorf("status badge = %q, want Active", got)
	}
	starter, _ := h.App.Catalog.ByID("starter")
	if want := thousands(starter.RateLimitPerSecond) + " usage checks a second"; !strings.Contains(b.text("#plan-ratelimit"), want) {
		t.Errorf("rate limit = %q, want %q", b.text("#plan-ratelimit"), want)
	}
	if got := b.text("#org-name"); got != "Acme Robotics" {
		t.Errorf("organisation = %q", got)
	}

	// Meters: used against the Starter limits, overage past the soft one.
	type meter struct {
		Used, Limit string
		Over        bool
	}
	meters := eval[map[string]meter](b, `Object.fromEntries([...document.querySelectorAll('#meters .meter')].map((m) => [m.dataset.meter, {
		Used: m.querySelector('.used').dataset.value, Limit: m.querySelector('.limit').dataset.value,
		Over: !!m.querySelector('.bar.over .overage') && !!m.querySelector('.over-text')}]))`)
	wantLimits := map[string]int64{"api_calls": 100000, "llm_tokens": 1000000, "storage_bytes": 10 << 30}
	for name, limit := range wantLimits {
		m, ok := meters[name]
		if !ok {
			t.Errorf("no bar for meter %s (got %v)", name, meters)
			continue
		}
		if m.Used != fmt.Sprint(rec.total[name]) || m.Limit != fmt.Sprint(limit) {
			t.Errorf("%s shows %s of %s, want %d of %d", name, m.Used, m.Limit, rec.total[name], limit)
		}
		if over := rec.total[name] > limit; m.Over != over {
			t.Errorf("%s overage shown = %v, want %v (used %d, soft limit %d)", name, m.Over, over, rec.total[name], limit)
		}
	}
	if rec.total["api_calls"] <= wantLimits["api_calls"] {
		t.Fatal("the test should push api_calls past its soft limit")
	}
	if got := b.text(`#meters [data-meter="api_calls"] .used`); got != fmt.Sprintf("%d,%03d", rec.total["api_calls"]/1000, rec.total["api_calls"]%1000) {
		t.Errorf("api_calls used reads %q", got)
	}
	if got := b.text(`#meters [data-meter="api_calls"] .meter-note`); !strings.Contains(got, "Resets on Apr 1, 2026") {
		t.Errorf("api_calls note = %q, want the reset date", got)
	}

	// The chart: one point per day of March so far, each the day's recorded sum.
	b.checkChart(t, "api_calls", rec)
	b.selectOption("#chart-meter", "llm_tokens")
	b.waitFor(`document.querySelector('#chart svg')?.dataset.meter === 'llm_tokens'`)
	b.checkChart(t, "llm_tokens", rec)

	// Keyboard: Tab from the meter selector reaches the chart's first day,
	// whose tooltip appears; the arrow keys move to the next days.
	b.do(chromedp.Focus(chromedp.CSS("#chart-meter")), chromedp.KeyEvent("\t"))
	if tip := b.text("#chart-tooltip"); tip != "Mar 1: "+commas(rec.daily["llm_tokens"]["2026-03-01"]) || !b.visible("#chart-tooltip") {
		t.Errorf("tooltip on focus = %q", tip)
	}
	b.do(chromedp.KeyEvent(kb.ArrowRight), chromedp.KeyEvent(kb.ArrowRight))
	if tip := b.text("#chart-tooltip"); tip != "Mar 3: "+commas(rec.daily["llm_tokens"]["2026-03-03"]) {
		t.Errorf("tooltip after two right arrows = %q", tip)
	}
	b.do(chromedp.KeyEvent("\t"))
	if focused := eval[string](b, `document.activeElement.id || document.activeElement.tagName`); focused == "g" {
		t.Error("Tab stays inside the chart: each day is a tab stop")
	}

	// Top endpoints of the chart's meter, largest first, as recorded.
	type endpointRow struct{ Endpoint, Used string }
	for _, meter := range []string{"llm_tokens", "api_calls"} {
		if meter == "api_calls" {
			b.selectOption("#chart-meter", meter)
		}
		// The table loads beside the chart, not with it.
		b.waitFor(`document.getElementById('endpoints-meter').textContent === '` + strings.ReplaceAll(meter, "_", " ") + `'`)
		rows := eval[[]endpointRow](b, `[...document.querySelectorAll('#endpoints tbody tr')].map((r) => ({Endpoint: r.cells[0].textContent, Used: r.cells[1].textContent}))`)
		want := rec.topEndpoints(meter)
		if len(rows) != len(want) {
			t.Errorf("%s endpoints = %v, want %v", meter, rows, want)
			continue
		}
		for i, w := range want {
			if rows[i].Endpoint != w.endpoint || rows[i].Used != commas(w.used) {
				t.Errorf("%s endpoint %d = %+v, want %s %d", meter, i, rows[i], w.endpoint, w.used)
			}
		}
	}

	// A past month has nothing recorded.
	b.selectOption("#period", "2026-02")
	b.waitFor(`document.getElementById('usage-range').textContent.startsWith('Feb 1, 2026')`)
	if got := b.text(`#meters [data-meter="api_calls"] .used`); got != "0" {
		t.Errorf("February's api_calls = %q, want 0", got)
	}

	b.stayedHome()

	if *writeScreenshots {
		b.selectOption("#period", "2026-03")
		b.waitFor(`document.getElementById('usage-range').textContent.startsWith('Mar 1, 2026') &&
			document.querySelectorAll('#endpoints tbody tr').length > 0 && document.querySelectorAll('#chart g.day').length > 0`)
		eval[bool](b, `document.activeElement.blur(), true`)
		dir := filepath.Join("..", "..", "docs", "screenshots")
		b.writeScreenshot(filepath.Join(dir, "billing-desktop.png"))
		b.do(viewport(phoneWidth, phoneHeight))
		b.waitFor(`document.documentElement.clientWidth === ` + fmt.Sprint(phoneWidth) +
			` && document.querySelector('#chart svg').viewBox.baseVal.width <= ` + fmt.Sprint(phoneWidth))
		b.writeScreenshot(filepath.Join(dir, "billing-phone.png"))
	}
}

// checkChart compares the chart's points with the recorded days of meter.
func (b *browser) checkChart(t *testing.T, meter string, rec recorded) {
	t.Helper()
	type point struct{ Date, Used string }
	points := eval[[]point](b, `[...document.querySelectorAll('#chart g.day')].map((g) => ({Date: g.dataset.date, Used: g.dataset.used}))`)
	// usageSeries ends at today: no point for a day that has not happened.
	if len(points) != now.Day() {
		t.Fatalf("%s chart has %d points, want %d (March 1 to today)", meter, len(points), now.Day())
	}
	for i, p := range points {
		day := time.Date(2026, 3, i+1, 0, 0, 0, 0, time.UTC).Format(time.DateOnly)
		if p.Date != day || p.Used != fmt.Sprint(rec.daily[meter][day]) {
			t.Errorf("%s point %d = %+v, want %s used %d", meter, i, p, day, rec.daily[meter][day])
		}
	}
	if axis := eval[int](b, `document.querySelectorAll('#chart text.axis').length`); axis < 8 {
		t.Errorf("the chart has %d axis labels", axis)
	}
}

func commas(n int64) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// TestInvoicesPageThroughThirty: the invoice list pages through all 30
// invoices newest first with the connection's cursors, and back.
func TestInvoicesPageThroughThirty(t *testing.T) {
	h := newTollgate(t)
	org := orgID(t, h, "acme", "Acme")
	want := seedInvoices(t, h, org, 30)

	b := newBrowser(t, h.Server.URL, desktopWidth, desktopHeight)
	b.open("/billing#token=" + h.Token("acme", auth.BillingRead))

	type row struct{ Number, Amount, Status string }
	readPage := func() []row {
		return eval[[]row](b, `[...document.querySelectorAll('#invoices tbody tr')].map((r) => ({
			Number: r.cells[0].textContent, Amount: r.cells[2].textContent, Status: r.cells[3].textContent}))`)
	}
	var seen []row
	for page := 1; ; page++ {
		b.waitFor(fmt.Sprintf(`document.getElementById('invoices-page').textContent === 'Page %d'`, page))
		seen = append(seen, readPage()...)
		if eval[bool](b, `document.getElementById('invoices-next').disabled`) {
			break
		}
		if page > 5 {
			t.Fatal("more pages than 30 invoices fill")
		}
		b.do(chromedp.Click(chromedp.CSS("#invoices-next")))
	}
	if len(seen) != len(want) {
		t.Fatalf("paged through %d invoices, want %d", len(seen), len(want))
	}
	for i, w := range want {
		amount := fmt.Sprintf("$%d.%02d", w.Total/100, w.Total%100)
		if seen[i].Number != w.Number || seen[i].Amount != amount {
			t.Errorf("invoice %d = %+v, want %s for %s", i, seen[i], w.Number, amount)
		}
	}
	if seen[0].Status != "Open" || seen[1].Status != "Paid" {
		t.Errorf("status badges = %q, %q; want Open, Paid", seen[0].Status, seen[1].Status)
	}
	// Back to the newest.
	b.do(chromedp.Click(chromedp.CSS("#invoices-prev")))
	b.waitFor(`document.getElementById('invoices-page').textContent === 'Page 2'`)
	b.do(chromedp.Click(chromedp.CSS("#invoices-prev")))
	b.waitFor(`document.getElementById('invoices-page').textContent === 'Page 1'`)
	if first := readPage(); first[0].Number != want[0].Number {
		t.Errorf("back on page 1 the first invoice is %s, want %s", first[0].Number, want[0].Number)
	}
	// Links go to Stripe's hosted invoice and PDF; the page loads neither.
	links := eval[[]string](b, `[...document.querySelectorAll('#invoices tbody tr:first-child a')].map((a) => a.href)`)
	if len(links) != 2 || !strings.HasPrefix(links[0], "https://invoice.stripe.com/") || !strings.HasSuffix(links[1], "/pdf") {
		t.Errorf("invoice links = %v", links)
	}
	b.stayedHome()
}

// TestInvoiceAmountsUseStripesMinorUnits: an amount is divided by the
// power of ten Stripe's minor unit has in its currency (yen are whole,
// dinars have three decimals, krónur two in Stripe's API though Intl shows
// none), and one invoice in a currency code no browser knows shows its
// number and code without costing the other invoices their row.
func TestInvoiceAmountsUseStripesMinorUnits(t *testing.T) {
	h := newTollgate(t)
	org := orgID(t, h, "acme", "Acme")
	want := seedInvoicesIn(t, h, org, "jpy", "kwd", "ééé", "isk", "usd")

	b := newBrowser(t, h.Server.URL, desktopWidth, desktopHeight)
	b.open("/billing#token=" + h.Token("acme", auth.BillingRead))
	b.waitFor(fmt.Sprintf(`document.querySelectorAll('#invoices tbody tr').length === %d`, len(want)))
	amounts := eval[[]string](b, `[...document.querySelectorAll('#invoices tbody tr')].map((r) => r.cells[2].textContent)`)
	divisor := map[string]float64{"jpy": 1, "kwd": 1000, "isk": 100, "usd": 100}
	for i, w := range want {
		var expect string
		if w.Currency == "ééé" {
			expect = fmt.Sprintf("%d.%02d ÉÉÉ", w.Total/100, w.Total%100)
		} else {
			expect = eval[string](b, fmt.Sprintf(`new Intl.NumberFormat(undefined, { style: 'currency', currency: %q }).format(%v)`,
				strings.ToUpper(w.Currency), float64(w.Total)/divisor[w.Currency]))
		}
		if amounts[i] != expect {
			t.Errorf("invoice %s of %d %s shows %q, want %q", w.Number, w.Total, w.Currency, amounts[i], expect)
		}
	}
	if yen := strconv.FormatInt(want[0].Total, 10); !strings.Contains(strings.ReplaceAll(amounts[0], ",", ""), yen) {
		t.Errorf("%d yen shows as %q", want[0].Total, amounts[0])
	}
	if b.visible("#banner") {
		t.Errorf("a banner is shown: %q", b.text("#banner-text"))
	}
	b.stayedHome()
}

// TestAPIKeyIsShownOnceAndRevoked: with billing:write a user creates a key
// by keyboard, sees its secret once, and revokes it after confirming; the
// secret works until then and never after.
func TestAPIKeyIsShownOnceAndRevoked(t *testing.T) {
	h := newTollgate(t)
	orgID(t, h, "acme", "Acme")
	b := newBrowser(t, h.Server.URL, desktopWidth, desktopHeight)
	// A key may hold only scopes its creator holds; the key made below
	// asks for usage:write.
	b.open("/billing#token=" + h.Token("acme", auth.BillingRead, auth.BillingWrite, auth.UsageWrite))
	if !b.visible("#keys-section") {
		t.Fatal("API keys are hidden from a session with billing:write")
	}

	// No name and no scope: the server's userErrors appear by the fields.
	b.do(chromedp.Click(chromedp.CSS("#key-create")))
	b.waitFor(`!document.getElementById('key-name-error').hidden`)
	if msg := b.text("#key-name-error"); msg == "" || !b.visible("#key-scopes-error") {
		t.Errorf("userErrors not shown next to name (%q) and scopes", msg)
	}

	// By keyboard: type the name, tick a scope with Space, submit with Enter.
	b.do(
		chromedp.SendKeys(chromedp.CSS("#key-name"), "Nightly sync"),
		chromedp.Focus(chromedp.CSS(`input[name=scope][value=USAGE_WRITE]`)),
		chromedp.KeyEvent(" "),
		chromedp.Focus(chromedp.CSS("#key-name")),
		chromedp.KeyEvent("\r"),
	)
	b.waitFor(`!document.getElementById('secret-box').hidden`)
	secret := b.text("#secret-value")
	if !strings.HasPrefix(secret, auth.KeyPrefix) {
		t.Fatalf("secret shown = %q, want a %s… key", secret, auth.KeyPrefix)
	}
	if b.visible("#key-name-error") {
		t.Error("the name error stayed after a successful create")
	}
	b.waitFor(`document.querySelectorAll('#keys tbody tr').length === 1`)
	row := eval[[]string](b, `[...document.querySelector('#keys tbody tr').cells].map((c) => c.textContent)`)
	if row[0] != "Nightly sync" || !strings.HasPrefix(secret, strings.TrimSuffix(row[1], "…")) || row[2] != "usage:write" {
		t.Errorf("key row = %q for secret %s…", row, secret[:12])
	}
	if code := h.Do(map[string]string{"X-API-Key": secret}, `{ usageGate(meter: "api_calls") { allowed } }`, nil).Code(); code != "" {
		t.Fatalf("the secret shown does not authenticate: %s", code)
	}

	// Copy puts the secret on the clipboard.
	b.grant("clipboard-read", "clipboard-write")
	b.do(chromedp.Click(chromedp.CSS("#secret-copy")))
	b.waitFor(`document.getElementById('secret-copied').textContent !== ''`)
	if got := eval[string](b, `navigator.clipboard.readText()`, chromedp.EvalAwaitPromise); got != secret {
		t.Errorf("clipboard after Copy = %q (%s), want the secret", got, b.text("#secret-copied"))
	}

	// Done removes it from the page; a reload never shows it again.
	b.do(chromedp.Click(chromedp.CSS("#secret-done")))
	if eval[bool](b, fmt.Sprintf(`document.documentElement.outerHTML.includes(%q)`, secret)) {
		t.Error("the secret is still in the page after Done")
	}
	b.open("/billing#token=" + h.Token("acme", auth.BillingRead, auth.BillingWrite))
	if eval[bool](b, fmt.Sprintf(`document.documentElement.outerHTML.includes(%q)`, secret)) {
		t.Error("the secret is shown again after a reload")
	}

	// Revoke asks first; "Keep" leaves the key alone.
	b.do(chromedp.Click(chromedp.CSS("#keys tbody tr button.revoke")))
	b.waitFor(`document.getElementById('confirm').open`)
	b.do(chromedp.Click(chromedp.CSS("#confirm-no")))
	b.waitFor(`!document.getElementById('confirm').open`)
	if eval[bool](b, `document.querySelector('#keys tbody tr').classList.contains('revoked')`) {
		t.Fatal("Keep revoked the key")
	}
	b.do(chromedp.Click(chromedp.CSS("#keys tbody tr button.revoke")))
	b.waitFor(`document.getElementById('confirm').open`)
	b.do(chromedp.Click(chromedp.CSS("#confirm-yes")))
	b.waitFor(`document.querySelector('#keys tbody tr').classList.contains('revoked')`)
	if code := h.Do(map[string]string{"X-API-Key": secret}, `{ usageGate(meter: "api_calls") { allowed } }`, nil).Code(); code != "UNAUTHENTICATED" {
		t.Errorf("a revoked key still answers: code %q", code)
	}
	b.stayedHome()
}

// TestUpgradeGoesToStripeCheckout: "Upgrade" opens a Checkout session and
// sends the browser to the URL Stripe returned, and nowhere else.
func TestUpgradeGoesToStripeCheckout(t *testing.T) {
	h := newTollgate(t)
	orgID(t, h, "acme", "Acme")
	b := newBrowser(t, h.Server.URL, desktopWidth, desktopHeight)
	b.open("/billing#token=" + h.Token("acme"))
	if got := b.text("#plan-status"); got != "Free" {
		t.Errorf("status of an organisation without a subscription = %q, want Free", got)
	}
	if !b.visible("#manage-billing-note") || b.visible("#manage-billing") {
		t.Error("without billing history, Manage billing should be replaced by its explanation")
	}
	growth := eval[[]string](b, `[...document.querySelectorAll('button.upgrade[data-plan="growth"]')].map((b) => b.dataset.interval + ' ' + b.textContent)`)
	if want := []string{"MONTH Upgrade: $199.00 a month", "YEAR Yearly: $1,990.00 a year"}; strings.Join(growth, "|") != strings.Join(want, "|") {
		t.Errorf("Growth's upgrade buttons = %q, want %q (the plans file's prices)", growth, want)
	}
	b.do(chromedp.Click(chromedp.CSS(`button.upgrade[data-plan="growth"][data-interval="YEAR"]`)))
	left := b.leftFor(t)
	var answer struct {
		Data struct {
			CreateCheckoutSession struct {
				URL        string
				UserErrors []struct{ Message string }
			}
		}
	}
	if err := json.Unmarshal([]byte(b.exchange("createCheckoutSession").Response), &answer); err != nil {
		t.Fatalf("the page's createCheckoutSession answer: %v", err)
	}
	checkout := answer.Data.CreateCheckoutSession
	if checkout.URL == "" || len(checkout.UserErrors) > 0 {
		t.Fatalf("createCheckoutSession = %+v", checkout)
	}
	if req := b.exchange("createCheckoutSession").Request; !strings.Contains(req, `"interval":"YEAR"`) || !strings.Contains(req, `"plan":"growth"`) {
		t.Errorf("the yearly button asked for %s", req)
	}
	want := asRequested(t, checkout.URL)
	if left != want {
		t.Errorf("Upgrade went to %s, want the Checkout URL Stripe returned, %s", left, want)
	}
	b.stayedHome(want)
}

// TestMissingOrExpiredSessionSaysSo: a stale link or no sign-in at all shows
// "Session expired" rather than a blank or half-empty page.
func TestMissingOrExpiredSessionSaysSo(t *testing.T) {
	h := newTollgate(t)
	expired, err := h.App.Token("acme", auth.AllScopes, -time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, h.Server.URL, phoneWidth, phoneHeight)
	for name, path := range map[string]string{
		"expired token": "/billing#token=" + expired,
		"no token":      "/billing",
		"garbage token": "/billing#token=not-a-jwt",
	} {
		b.open(path)
		if !b.visible("#state-expired") || b.text("#expired-h") != "Session expired" {
			t.Errorf("%s: the expired state is not shown", name)
		}
		if b.visible("#content") || b.visible("#state-loading") {
			t.Errorf("%s: the page shows content or keeps loading beside the expired state", name)
		}
		if strings.Contains(eval[string](b, `location.href`), "token") {
			t.Errorf("%s: the token stayed in the address bar", name)
		}
	}
	if got := b.text("#expired-text"); got == "" {
		t.Error("the expired state does not say what to do")
	}
	b.stayedHome()
}

// TestCookieSessionWithoutWriteScope: the tollgate_session cookie signs the
// page in too, and a read-only session sees no controls it could not use.
func TestCookieSessionWithoutWriteScope(t *testing.T) {
	h := newTollgate(t)
	org := orgID(t, h, "acme", "Acme")
	seedInvoices(t, h, org, 2)
	b := newBrowser(t, h.Server.URL, desktopWidth, desktopHeight)
	b.do(chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, network.SetCookie, network.SetCookieParams{
			Name: auth.SessionCookie, Value: h.Token("acme", auth.BillingRead), URL: h.Server.URL,
		})
		return err
	}))
	b.open("/billing")
	if !b.visible("#content") {
		t.Fatal("a cookie session did not load the page")
	}
	if n := eval[int](b, `document.querySelectorAll('#invoices tbody tr').length`); n != 2 {
		t.Errorf("invoices listed = %d, want 2", n)
	}
	for _, sel := range []string{"#keys-section", "#plan-actions", "#upgrades"} {
		if b.visible(sel) {
			t.Errorf("%s is shown to a session without billing:write", sel)
		}
	}
	b.stayedHome()
}

// TestNetworkErrorOffersRetry: a request that gets no answer leaves the rest
// of the page working and shows a banner whose Retry loads what was missing.
func TestNetworkErrorOffersRetry(t *testing.T) {
	h := newTollgate(t)
	org := orgID(t, h, "acme", "Acme")
	want := seedInvoices(t, h, org, 3)
	b := newBrowser(t, h.Server.URL, phoneWidth, phoneHeight)
	b.cutNextCall("query Invoices")
	b.open("/billing#token=" + h.Token("acme"))

	if !b.visible("#banner") || !strings.Contains(b.text("#banner-text"), "Could not reach Tollgate") {
		t.Fatalf("no retryable banner after a lost request: %q", b.text("#banner"))
	}
	if b.text("#plan-name") != "Free" || eval[int](b, `document.querySelectorAll('#meters .meter').length`) != 3 {
		t.Error("the sections whose requests succeeded are not shown beside the banner")
	}
	if n := eval[int](b, `document.querySelectorAll('#invoices tbody tr').length`); n != 0 {
		t.Fatalf("%d invoices listed although their request failed", n)
	}
	b.do(chromedp.Focus(chromedp.CSS("#banner-retry")), chromedp.KeyEvent("\r"))
	b.waitFor(`document.querySelectorAll('#invoices tbody tr').length === 3`)
	if b.visible("#banner") {
		t.Error("the banner stayed after a successful retry")
	}
	if got := b.text("#invoices tbody tr:first-child td"); got != want[0].Number {
		t.Errorf("first invoice after retry = %q, want %s", got, want[0].Number)
	}
	b.stayedHome()
}

// TestCancelAtPeriodEndAndResume: both ask for confirmation, and the status
// badge then says when the plan ends, or that it is active again.
func TestCancelAtPeriodEndAndResume(t *testing.T) {
	h := newTollgate(t)
	org := orgID(t, h, "acme", "Acme")
	subscribe(t, h, org, "price_tollgate_growth_monthly")
	b := newBrowser(t, h.Server.URL, desktopWidth, desktopHeight)
	b.open("/billing#token=" + h.Token("acme"))
	if b.text("#plan-name") != "Growth" || b.text("#plan-status") != "Active" || b.visible("#resume-sub") {
		t.Fatalf("before: %s %s", b.text("#plan-name"), b.text("#plan-status"))
	}

	b.do(chromedp.Click(chromedp.CSS("#cancel-sub")))
	b.waitFor(`document.getElementById('confirm').open`)
	if title := b.text("#confirm-title"); title != "Cancel at period end?" {
		t.Errorf("confirmation = %q", title)
	}
	b.do(chromedp.Click(chromedp.CSS("#confirm-yes")))
	b.waitFor(`!document.getElementById('resume-sub').hidden`)
	var sub struct {
		Subscription struct {
			CancelAtPeriodEnd bool
			CurrentPeriodEnd  time.Time
		}
	}
	h.Query("acme", `{ subscription { cancelAtPeriodEnd currentPeriodEnd } }`, nil).Decode(t, &sub)
	if !sub.Subscription.CancelAtPeriodEnd {
		t.Fatal("Tollgate does not hold the cancellation the page shows")
	}
	if want := "Cancels on " + sub.Subscription.CurrentPeriodEnd.Format("Jan 2, 2006"); b.text("#plan-status") != want {
		t.Errorf("badge = %q, want %q", b.text("#plan-status"), want)
	}

	b.do(chromedp.Click(chromedp.CSS("#resume-sub")))
	b.waitFor(`document.getElementById('confirm').open`)
	b.do(chromedp.Click(chromedp.CSS("#confirm-yes")))
	b.waitFor(`!document.getElementById('cancel-sub').hidden`)
	if got := b.text("#plan-status"); got != "Active" {
		t.Errorf("badge after resume = %q, want Active", got)
	}

	// Manage billing goes to the Customer Portal URL Stripe returned.
	b.do(chromedp.Click(chromedp.CSS("#manage-billing")))
	left := b.leftFor(t)
	var answer struct {
		Data struct{ CreatePortalSession struct{ URL string } }
	}
	if err := json.Unmarshal([]byte(b.exchange("createPortalSession").Response), &answer); err != nil || answer.Data.CreatePortalSession.URL == "" {
		t.Fatalf("the page's createPortalSession answer: %v %+v", err, answer)
	}
	portal := asRequested(t, answer.Data.CreatePortalSession.URL)
	if left != portal {
		t.Errorf("Manage billing went to %s, want the portal URL Stripe returned, %s", left, portal)
	}
	b.stayedHome(portal)
}

// thousands writes n as the page's en-US Intl.NumberFormat does: 6,000.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// TestSmallCountsAndAnUnlistedPrice: a customer with a few calls a day sees
// the chart's axis in whole calls (a top of 5 split in fourths used to read
// 0, 1.3, 2.5, 3.8, 5), and one whose Stripe subscription is at a price the
// plans file lacks is told so instead of seeing Free as what they pay for.
func TestSmallCountsAndAnUnlistedPrice(t *testing.T) {
	h := newTollgate(t)
	org := orgID(t, h, "tiny", "Tiny Co")
	subscribe(t, h, org, "price_not_in_the_plans_file")
	daily := map[int]int64{1: 1, 2: 3, 3: 2}
	var events []map[string]any
	var most int64
	for day, q := range daily {
		events = append(events, map[string]any{"meter": "api_calls", "quantity": q, "idempotencyKey": fmt.Sprint("small-", day),
			"timestamp": time.Date(2026, 3, day, 10, 0, 0, 0, time.UTC).Format(time.RFC3339)})
		most = max(most, q)
	}
	var out struct{ RecordUsage struct{ Accepted int } }
	h.Query("tiny", `mutation($in: RecordUsageInput!) { recordUsage(input: $in) { accepted } }`, map[string]any{"in": map[string]any{"events": events}}).Decode(t, &out)
	if out.RecordUsage.Accepted != len(events) {
		t.Fatalf("recorded %d of %d events", out.RecordUsage.Accepted, len(events))
	}

	b := newBrowser(t, h.Server.URL, desktopWidth, desktopHeight)
	b.open("/billing#token=" + h.Token("tiny"))
	if !b.visible("#plan-mismatch") {
		t.Errorf("a subscription at an unlisted price shows no word of it; plan reads %q", b.text("#plan-name"))
	}
	b.waitFor(`document.querySelector('#chart svg')?.dataset.meter === 'api_calls'`)
	ticks := eval[[]string](b, `[...document.querySelectorAll('#chart text.axis.y')].map((t) => t.dataset.value)`)
	labels := eval[[]string](b, `[...document.querySelectorAll('#chart text.axis.y')].map((t) => t.textContent)`)
	if len(ticks) < 2 || ticks[0] != "0" {
		t.Fatalf("y axis ticks %v, want 0 and more", ticks)
	}
	for i, v := range ticks {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || labels[i] != v {
			t.Errorf("y axis tick %q labelled %q: want a whole number of calls, shown as itself", v, labels[i])
		}
		if i == len(ticks)-1 && n < most {
			t.Errorf("the axis tops out at %d, below the busiest day's %d", n, most)
		}
	}
}
