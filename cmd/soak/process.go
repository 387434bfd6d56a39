package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// child is a long-running process the harness started and must stop.
type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // how it exited, once done is closed
}

// startChild runs argv in the background with its output in logPath. It gets
// its own process group, so a Ctrl-C at the terminal reaches only the
// harness, which then stops children in order; and it is killed if the
// harness dies without doing so.
func startChild(name, logPath string, env []string, argv ...string) (*child, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		logf.Close()
		close(c.done)
	}()
	return c, nil
}

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop asks the process to end with SIGTERM and kills it after grace.
func (c *child) stop(grace time.Duration) {
	if c.exited() {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(grace):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// freePort asks the kernel for a loopback port nobody listens on.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitFor polls check every 100 ms until it succeeds, the child (if any)
// exits, or timeout passes.
func waitFor(what string, timeout time.Duration, c *child, check func() error) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if last = check(); last == nil {
			return nil
		}
		if c != nil && c.exited() {
			return fmt.Errorf("%s: process exited (%v) before it was ready: %w", what, c.err, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s: not ready after %s: %w", what, timeout, last)
}

// kill ends the process with SIGKILL and waits for it.
func (c *child) kill() {
	if c.exited() {
		return
	}
	_ = c.cmd.Process.Kill()
	<-c.done
}
