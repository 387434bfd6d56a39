package testenv

import (
	"errors"
	"os"
	"os/exec"
	"testing"
)

// Chromium returns the path of a Chromium for browser tests: CHROME_PATH,
// then the usual names on PATH. Without one the test skips, or fails when
// services are required or CI is set, since CI must run the browser tests.
func Chromium(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("CHROME_PATH"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	err := errors.New("no Chromium found (install the Debian package chromium, or set CHROME_PATH)")
	if os.Getenv("CI") != "" {
		t.Fatalf("Chromium is required in CI: %v", err)
	}
	unavailable(t, "Chromium", err)
	return ""
}
