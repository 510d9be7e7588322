// Package browsertest drives a real headless Chromium from Go tests, so that
// Ward's HTML pages (sign-in, consent) are tested end to end as a person's
// browser would use them: forms, cookies, redirects, security headers.
//
// It speaks the W3C WebDriver protocol (https://www.w3.org/TR/webdriver2/)
// over HTTP to a chromedriver process that Start launches itself on a free
// loopback port, with the standard library only.
//
// Guarantees:
//   - Start finds chromedriver and Chromium on PATH (chromedriver; chromium,
//     chromium-browser, google-chrome) or through WARD_CHROMEDRIVER and
//     WARD_CHROMIUM. When they are absent the test is skipped with a message
//     naming the Debian packages to install (chromium chromium-driver),
//     unless WARD_REQUIRE_BROWSER=1, which makes the absence a failure.
//   - Each Browser is a fresh headless Chromium with its own temporary
//     profile: no cookies or storage are shared between tests. It accepts
//     self-signed and private-CA certificates (acceptInsecureCerts), since
//     test servers and Ward's dev mode use their own CA. It uses no proxy.
//   - Every HTTP call to chromedriver has a timeout; every wait (Find,
//     WaitURL) is bounded.
//   - AddVirtualAuthenticator gives the browser a virtual WebAuthn
//     authenticator (chromedriver's WebDriver extension), so pages that
//     use security keys or passkeys run without a person or a device.
//     WebAuthn needs a domain name: point the browser at localhost, not
//     127.0.0.1.
//   - When the test ends the session is deleted, chromedriver is stopped and
//     the profile directory removed. chromedriver's output is captured and
//     shown only when the test failed.
//
// Every method fails the test (t.Fatalf) on a WebDriver error, with the
// command and the driver's message, so tests read as plain steps. A Browser
// reports to the test that started it and, like testing.T's Fatal, must be
// used from that test's goroutine; use For to drive it from a subtest.
//
// It does not guarantee anything about other browsers, and it does not
// isolate the browser from the network: tests should point it only at
// servers on the loopback interface.
package browsertest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Environment variables that Start reads.
const (
	EnvChromedriver   = "WARD_CHROMEDRIVER"    // path to chromedriver
	EnvChromium       = "WARD_CHROMIUM"        // path to the Chromium binary
	EnvRequireBrowser = "WARD_REQUIRE_BROWSER" // "1": a missing browser fails the test
)

// chromiumNames are the Chromium binaries looked up on PATH, in order.
var chromiumNames = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}

// chromiumArgs are the command-line switches every Browser runs with.
var chromiumArgs = []string{
	"--headless=new",
	"--no-sandbox", // CI runs as root, where Chromium's sandbox cannot start
	"--disable-gpu",
	"--disable-dev-shm-usage",
	"--no-proxy-server",
	"--disable-component-update",
	"--disable-domain-reliability",
	"--window-size=1280,900",
}

const (
	// DefaultTimeout is how long Find waits for an element.
	DefaultTimeout = 10 * time.Second
	startTimeout   = 60 * time.Second         // chromedriver start and session creation
	pageLoad       = 30 * time.Second         // navigation and script timeouts in the session
	commandTimeout = pageLoad + 5*time.Second // one command; lets the browser's own timeouts answer first
	pollInterval   = 50 * time.Millisecond
	logLimit       = 64 << 10 // bytes of chromedriver output kept
)

// Browser is one headless Chromium session. Timeout bounds how long Find
// waits for an element; it may be changed between calls. Each command to
// the browser is bounded separately (35s, past the browser's own 30s page
// load and script timeouts).
type Browser struct {
	Timeout time.Duration

	t       testing.TB
	base    string // http://127.0.0.1:port/session/id
	client  *http.Client
	log     *tailBuffer
	session string
}

// Start launches chromedriver and a headless Chromium session for the test,
// and stops both when the test ends. It skips the test when the binaries
// are not installed (see the package doc).
func Start(t testing.TB) *Browser {
	t.Helper()
	driver, chromium := findBinaries(t)

	profile, err := os.MkdirTemp("", "ward-browsertest-")
	if err != nil {
		t.Fatalf("browsertest: profile directory: %v", err)
	}
	t.Cleanup(func() { removeAll(profile) })

	b := &Browser{
		Timeout: DefaultTimeout,
		t:       t,
		client:  &http.Client{Transport: &http.Transport{Proxy: nil, DisableCompression: true}},
		log:     &tailBuffer{limit: logLimit},
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("browsertest: chromedriver output:\n%s", b.log.String())
		}
	})
	root := b.startDriver(driver)

	caps := map[string]any{
		"capabilities": map[string]any{
			"alwaysMatch": map[string]any{
				"browserName":         "chrome",
				"acceptInsecureCerts": true,
				"pageLoadStrategy":    "normal",
				"timeouts": map[string]int64{
					"implicit": 0, // Find polls itself, with a bound
					"pageLoad": pageLoad.Milliseconds(),
					"script":   pageLoad.Milliseconds(),
				},
				"goog:chromeOptions": map[string]any{
					"binary": chromium,
					"args":   append(append([]string{}, chromiumArgs...), "--user-data-dir="+profile),
				},
			},
		},
	}
	var created struct {
		SessionID string `json:"sessionId"`
	}
	if err := b.call(root, http.MethodPost, "/session", caps, &created, startTimeout); err != nil {
		t.Fatalf("browsertest: new session with %s: %v\nchromedriver output:\n%s", chromium, err, b.log.String())
	}
	if created.SessionID == "" {
		t.Fatalf("browsertest: chromedriver returned no session id")
	}
	b.session = created.SessionID
	b.base = root + "/session/" + created.SessionID
	t.Cleanup(func() {
		// Quitting the session closes Chromium; a failure here leaves a
		// process behind, which the test should hear about.
		if err := b.call(b.base, http.MethodDelete, "", nil, nil, commandTimeout); err != nil {
			t.Errorf("browsertest: delete session: %v", err)
		}
	})
	return b
}

// For returns a view of b that reports failures to t, for use inside a
// subtest (t.Run) of the test that started b. Both share one browser.
func (b *Browser) For(t testing.TB) *Browser {
	c := *b
	c.t = t
	return &c
}

// findBinaries returns the paths of chromedriver and Chromium, or skips
// (or fails, under WARD_REQUIRE_BROWSER=1) the test.
func findBinaries(t testing.TB) (driver, chromium string) {
	t.Helper()
	var missing []string
	driver, err := lookup(EnvChromedriver, "chromedriver")
	if err != nil {
		missing = append(missing, err.Error())
	}
	chromium, err = lookup(EnvChromium, chromiumNames...)
	if err != nil {
		missing = append(missing, err.Error())
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("browsertest: no headless browser: %s; install the Debian packages chromium chromium-driver (apt-get install -y chromium chromium-driver), or set %s and %s", strings.Join(missing, ", "), EnvChromium, EnvChromedriver)
		if os.Getenv(EnvRequireBrowser) == "1" {
			t.Fatalf("%s (%s=1)", msg, EnvRequireBrowser)
		}
		t.Skip(msg)
	}
	return driver, chromium
}

// lookup returns the binary named by the environment variable env, or else
// the first of names found on PATH.
func lookup(env string, names ...string) (string, error) {
	if p := os.Getenv(env); p != "" {
		path, err := exec.LookPath(p)
		if err != nil {
			return "", fmt.Errorf("%s=%s: %w", env, p, err)
		}
		return path, nil
	}
	for _, n := range names {
		if path, err := exec.LookPath(n); err == nil {
			return path, nil
		}
	}
	return "", fmt.Errorf("none of %s on PATH", strings.Join(names, ", "))
}

// startDriver runs chromedriver on a free loopback port and returns its base
// URL once it reports ready. It registers the process's shutdown.
func (b *Browser) startDriver(path string) string {
	t := b.t
	t.Helper()
	var lastErr error
	// A port found free may be taken before chromedriver binds it; try again
	// with another.
	for range 3 {
		port, err := freePort()
		if err != nil {
			t.Fatalf("browsertest: free port: %v", err)
		}
		cmd := exec.Command(path, "--port="+strconv.Itoa(port), "--allowed-ips=127.0.0.1", "--log-level=WARNING") // #nosec G204 -- test kit: runs the chromedriver found on PATH with fixed flags
		cmd.Stdout, cmd.Stderr = b.log, b.log
		if err := cmd.Start(); err != nil {
			t.Fatalf("browsertest: start %s: %v", path, err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		root := "http://127.0.0.1:" + strconv.Itoa(port)
		if lastErr = b.waitReady(root, exited); lastErr == nil {
			t.Cleanup(func() { b.stopDriver(root, cmd, exited) })
			return root
		}
		_ = cmd.Process.Kill()
		<-exited
	}
	t.Fatalf("browsertest: chromedriver did not start: %v\nchromedriver output:\n%s", lastErr, b.log.String())
	return ""
}

// waitReady polls chromedriver's /status until it reports ready, it exits,
// or startTimeout passes.
func (b *Browser) waitReady(root string, exited <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	for {
		var status struct {
			Ready bool `json:"ready"`
		}
		err := b.call(root, http.MethodGet, "/status", nil, &status, time.Second)
		if err == nil && status.Ready {
			return nil
		}
		if err == nil {
			err = errors.New("status: not ready")
		}
		select {
		case <-exited:
			return fmt.Errorf("chromedriver exited: %w", err)
		case <-time.After(pollInterval):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %w", startTimeout, err)
		}
	}
}

// stopDriver asks chromedriver to shut down and kills it if it does not.
func (b *Browser) stopDriver(root string, cmd *exec.Cmd, exited <-chan struct{}) {
	_ = b.call(root, http.MethodGet, "/shutdown", nil, nil, 2*time.Second)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// removeAll removes the profile directory; Chromium's helpers may still be
// writing to it for a moment after the session ends.
func removeAll(dir string) {
	for range 10 {
		if os.RemoveAll(dir) == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tailBuffer keeps the last limit bytes written to it; it is safe for
// concurrent use (chromedriver's stdout and stderr).
type tailBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	limit int
}

func (w *tailBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if extra := w.buf.Len() - w.limit; extra > 0 {
		w.buf.Next(extra)
	}
	return len(p), nil
}

func (w *tailBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.buf.Len() == 0 {
		return "(none)"
	}
	return w.buf.String()
}

// call sends one WebDriver command to base+path and decodes the response's
// "value" into out (when out is not nil). A WebDriver error becomes an
// *Error.
func (b *Browser) call(base, method, path string, in, out any, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var body *bytes.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(data)
	} else if method == http.MethodPost {
		body = bytes.NewReader([]byte("{}"))
	} else {
		body = bytes.NewReader(nil)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	resp, err := b.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var env struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		return fmt.Errorf("%s %s: HTTP %d, undecodable response: %w", method, path, resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e Error
		if err := json.Unmarshal(env.Value, &e); err != nil || e.Code == "" {
			return fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, env.Value)
		}
		return &e
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(env.Value, out); err != nil {
		return fmt.Errorf("%s %s: decode value: %w", method, path, err)
	}
	return nil
}

// Error is a WebDriver error response: Code is the W3C error code ("no such
// element", "timeout", "unknown error", ...).
type Error struct {
	Code    string `json:"error"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return "webdriver: " + e.Code + ": " + e.Message }

// cmd runs a command on the session, failing the test on error. what names
// the step in the failure message.
func (b *Browser) cmd(what, method, path string, in, out any) {
	b.t.Helper()
	if err := b.try(method, path, in, out); err != nil {
		b.t.Fatalf("browsertest: %s: %v", what, err)
	}
}

// try runs a command on the session and returns its error.
func (b *Browser) try(method, path string, in, out any) error {
	return b.call(b.base, method, path, in, out, commandTimeout)
}
