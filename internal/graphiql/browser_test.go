package graphiql_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tollgate-billing/tollgate/internal/apptest"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// TestGraphiQLRunsAQueryOffline: in a real browser, with Tollgate's
// Content-Security-Policy in force and no other host reachable, GraphiQL
// loads, sends the query in its editor with the headers in its headers
// editor, and shows the answer; the browser reports no blocked resource,
// CSP violation or script error.
func TestGraphiQLRunsAQueryOffline(t *testing.T) {
	path := testenv.Chromium(t)
	h := apptest.New(t, apptest.Options{})

	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		// Nothing but Tollgate answers, as on a machine with no internet.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
		chromedp.UserDataDir(t.TempDir()),
	)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	defer cancelTimeout()

	var mu sync.Mutex
	var problems []string
	messages := chromedp.Console(ctx)
	// Storage is seeded from another page of the same origin: a GraphiQL
	// page open meanwhile saves its own default query over it (it did, in
	// CI, now and then).
	if err := chromedp.Do(ctx, chromedp.Navigate(h.Server.URL+"/healthz")); err != nil {
		t.Fatalf("open the origin: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() || m.Source == "security" {
				mu.Lock()
				problems = append(problems, m.String()+" at "+m.URL)
				mu.Unlock()
			}
		}
	}()

	// GraphiQL keeps its query editor's text in localStorage: put a query
	// there and open it. Headers are not kept (they hold a token), so the
	// token is pasted into the headers editor below.
	token := h.Token("acme")
	headers, _ := json.Marshal(map[string]string{"Authorization": "Bearer " + token})
	setup := `localStorage.setItem('graphiql:query', '{ plans { id } }'); true`
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](setup)); err != nil {
		t.Fatalf("seed GraphiQL's storage: %v", err)
	}
	err := chromedp.Do(ctx,
		chromedp.Navigate(h.Server.URL+"/"),
		chromedp.WaitVisible(".graphiql-execute-button"),
	)
	if err != nil {
		t.Fatalf("open GraphiQL: %v", err)
	}
	// On a loaded machine the button shows before the editor holds the
	// stored query; a click then runs nothing.
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](
		`(() => { const e = document.querySelector('.graphiql-query-editor'); return !!e && e.textContent.includes('plans'); })()`,
		chromedp.WithPollingTimeout(30*time.Second))); err != nil {
		t.Fatalf("the query editor never showed the stored query: %v", err)
	}
	// The second editor under the query is the headers editor (CodeMirror 5
	// keeps its instance on its element); then the query is edited too.
	paste := `(() => { const eds = document.querySelectorAll('.graphiql-editor-tool .CodeMirror');
		const q = document.querySelector('.graphiql-query-editor .CodeMirror');
		if (eds.length < 2 || !q) return false;
		eds[1].CodeMirror.setValue(` + "`" + string(headers) + "`" + `);
		q.CodeMirror.setValue('{ plans { id } }\n# pasted'); return true; })()`
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](paste, chromedp.WithPollingTimeout(30*time.Second))); err != nil {
		t.Fatalf("paste the headers: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.Click(".graphiql-execute-button")); err != nil {
		t.Fatalf("run the query: %v", err)
	}
	answer, err := chromedp.Run(ctx, chromedp.Poll[string](
		`(() => { const r = document.querySelector('.graphiql-response'); return r && r.textContent.includes('"plans"') && r.textContent; })()`,
		chromedp.WithPollingTimeout(30*time.Second)))
	if err != nil {
		t.Fatalf("no answer shown: %v", err)
	}
	for _, plan := range []string{"free", "starter", "growth", "enterprise"} {
		if !strings.Contains(answer, `"`+plan+`"`) {
			t.Errorf("the answer lacks plan %s: %s", plan, answer)
		}
	}
	// The token pasted into the headers editor is not saved in the
	// browser, where any script of the origin, or the next user of the
	// machine, could read it for 30 days.
	// GraphiQL saves each editor a moment after it changes: the query was
	// edited after the headers, so once the edit is saved, the headers
	// would have been.
	stored, err := chromedp.Run(ctx, chromedp.Poll[string](`(() => {
		return (localStorage.getItem('graphiql:query') || '').includes('# pasted') && JSON.stringify(Object.assign({}, localStorage)); })()`,
		chromedp.WithPollingTimeout(30*time.Second)))
	if err != nil {
		t.Fatalf("GraphiQL never saved the edited query: %v", err)
	}
	if strings.Contains(stored, token) {
		t.Errorf("GraphiQL saved the token in localStorage: %s", stored)
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	for _, p := range problems {
		t.Errorf("browser console: %s", p)
	}
}
