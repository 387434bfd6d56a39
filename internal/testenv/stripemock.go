package testenv

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	mockOnce sync.Once
	mockURL  string
	mockErr  error
	mockCmd  *exec.Cmd
)

var listenLine = regexp.MustCompile(`Listening for HTTP at address: (\S+)`)

// StripeMock returns the base URL of a stripe-mock (the version pinned in
// go.mod, run with `go tool stripe-mock`) started once per test binary.
// STRIPE_MOCK_URL points tests at one already running instead. Without Go's
// toolchain the tests skip, or fail when services are required.
func StripeMock(t testing.TB) string {
	t.Helper()
	if v := os.Getenv("STRIPE_MOCK_URL"); v != "" {
		return strings.TrimRight(v, "/")
	}
	mockOnce.Do(startStripeMock)
	if mockErr != nil {
		unavailable(t, "stripe-mock", mockErr)
	}
	return mockURL
}

// StopStripeMock stops the shared stripe-mock; call it from TestMain.
func StopStripeMock() {
	if mockCmd != nil && mockCmd.Process != nil {
		_ = syscall.Kill(-mockCmd.Process.Pid, syscall.SIGKILL)
		_ = mockCmd.Wait()
	}
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the Tollgate module")
	}
	return filepath.Dir(mod), nil
}

func startStripeMock() {
	root, err := moduleRoot()
	if err != nil {
		mockErr = err
		return
	}
	cmd := exec.Command("go", "tool", "stripe-mock", "-http-addr", "127.0.0.1:0", "-https-addr", "127.0.0.1:0")
	cmd.Dir = root
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		mockErr = fmt.Errorf("start stripe-mock: %w", err)
		return
	}
	mockCmd = cmd
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := listenLine.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
	}()
	// Building stripe-mock the first time takes a while on a cold cache.
	select {
	case addr := <-found:
		mockURL = "http://" + addr
	case <-time.After(3 * time.Minute):
		StopStripeMock()
		mockErr = fmt.Errorf("stripe-mock did not start within 3 minutes")
		return
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(mockURL + "/v1/customers"); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	mockErr = fmt.Errorf("stripe-mock at %s does not answer", mockURL)
}
