package browsertest

import (
	"bytes"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// wardCSP is the Content-Security-Policy that Ward's API sends on every
// response (internal/api): the test pages run under it, so a form that
// works here works under Ward's headers.
const wardCSP = "default-src 'none'; frame-ancestors 'none'"

// signIn is a sign-in page shaped like Ward's: a form that posts
// credentials and a hidden field, and an inline script that the CSP must
// block (it would rename the page).
const signIn = `<!doctype html>
<html><head><meta charset="utf-8"><title>Sign in</title>
<script>document.title = "inline script ran";</script></head>
<body><form method="post" action="/login">
<input type="hidden" name="state" value="%s">
<label>User <input id="user" name="user" autocomplete="username" required></label>
<label>Password <input id="password" name="password" type="password" required></label>
<button id="go" type="submit">Sign in</button>
</form></body></html>`

// server is a TLS test server with a sign-in form. After a successful
// POST /login it sets a session cookie and redirects with 303 to the
// "next" location: its own /done page, or an app's redirect_uri.
type server struct {
	*httptest.Server
	mu    sync.Mutex
	forms []url.Values // every POST /login body, in order
	next  string       // where POST /login redirects; "" means /done
}

func newServer(t *testing.T) *server {
	s := &server{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, signIn, html.EscapeString(r.URL.Query().Get("state")))
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.forms = append(s.forms, r.PostForm)
		next := s.next
		s.mu.Unlock()
		if next == "" {
			next = "/done"
		}
		http.SetCookie(w, &http.Cookie{Name: "ward_session", Value: "opaque", Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
		http.Redirect(w, r, next, http.StatusSeeOther)
	})
	mux.HandleFunc("GET /done", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><title>Done</title><p id="welcome">Signed in</p>`)
	})
	mux.HandleFunc("GET /redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
	})
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", wardCSP)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) posted() []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]url.Values(nil), s.forms...)
}

// closedPort returns a loopback port that nothing listens on.
func closedPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

func TestSignInForm(t *testing.T) {
	s := newServer(t)
	b := Start(t)

	b.Go(s.URL + "/login?state=s-123")
	// The page is served with a self-signed certificate and loads; the
	// CSP is in force, so the inline script did not rename it.
	if got := b.Title(); got != "Sign in" {
		t.Fatalf("title = %q, want %q (a changed title means the CSP did not block the inline script)", got, "Sign in")
	}
	if got := b.Find("input[name=state]").Attr("value"); got != "s-123" {
		t.Errorf("hidden state = %q, want s-123", got)
	}

	user := b.Find("#user")
	user.Type("alice")
	if got := user.Attr("value"); got != "" {
		t.Errorf("user field's value attribute = %q after typing, want it unchanged (empty)", got)
	}
	if got := user.Value(); got != "alice" {
		t.Errorf("user field = %q after typing, want alice", got)
	}
	b.Find("#password").Type("correct horse")
	b.Find("#go").Click()

	if got := b.Find("#welcome").Text(); got != "Signed in" {
		t.Errorf("after sign-in the page says %q", got)
	}
	if got, want := b.URL(), s.URL+"/done"; got != want {
		t.Errorf("URL = %q, want %q", got, want)
	}
	forms := s.posted()
	if len(forms) != 1 {
		t.Fatalf("server received %d form posts, want 1", len(forms))
	}
	f := forms[0]
	if f.Get("user") != "alice" || f.Get("password") != "correct horse" || f.Get("state") != "s-123" {
		t.Errorf("server received user=%q state=%q and a password of %d bytes; want alice, s-123 and the typed password",
			f.Get("user"), f.Get("state"), len(f.Get("password")))
	}

	var session *Cookie
	for _, c := range b.Cookies() {
		if c.Name == "ward_session" {
			session = &c
		}
	}
	if session == nil {
		t.Fatal("the browser holds no ward_session cookie after sign-in")
	}
	if !session.HTTPOnly || !session.Secure || session.SameSite != "Lax" {
		t.Errorf("ward_session cookie: HttpOnly=%v Secure=%v SameSite=%q; want true, true, Lax", session.HTTPOnly, session.Secure, session.SameSite)
	}
}

// A required field left empty stops the submission in the browser: the
// server receives nothing.
func TestRequiredFieldBlocksSubmit(t *testing.T) {
	s := newServer(t)
	b := Start(t)
	b.Go(s.URL + "/login")
	b.Find("#user").Type("alice")
	b.Find("#go").Click()
	b.Find("#password").Submit()
	if got := b.Script(`return document.querySelector("#password").validity.valueMissing;`); got != true {
		t.Errorf("password validity.valueMissing = %v, want true", got)
	}
	if n := len(s.posted()); n != 0 {
		t.Errorf("server received %d posts of an incomplete form, want 0", n)
	}
	if got := b.URL(); !strings.HasPrefix(got, s.URL+"/login") {
		t.Errorf("URL = %q, want still the sign-in page", got)
	}
	if n := len(b.FindAll("#welcome")); n != 0 {
		t.Errorf("found %d #welcome elements on the sign-in page", n)
	}
}

// A redirect to an app's redirect_uri where nothing listens (the usual
// case in tests) must still be observable, with its query intact.
func TestRedirectToClosedPort(t *testing.T) {
	s := newServer(t)
	b := Start(t)
	callback := "http://127.0.0.1:" + strconv.Itoa(closedPort(t)) + "/cb"

	t.Run("navigation", func(t *testing.T) {
		b := b.For(t)
		b.Go(s.URL + "/redirect?to=" + url.QueryEscape(callback+"?code=x&state=n1"))
		if got, want := b.WaitURL(callback, 10*time.Second), callback+"?code=x&state=n1"; got != want {
			t.Errorf("URL = %q, want %q", got, want)
		}
	})

	// Going straight to a page that does not load is a failure, though.
	t.Run("direct", func(t *testing.T) {
		f := &fakeTB{TB: t}
		f.run(func() { b.For(f).Go(callback + "?code=z") })
		if !strings.Contains(f.fatal, "ERR_CONNECTION_REFUSED") {
			t.Errorf("Go to a closed port: failure %q, want one naming ERR_CONNECTION_REFUSED", f.fatal)
		}
	})

	t.Run("form post under Ward's CSP", func(t *testing.T) {
		b := b.For(t)
		s.mu.Lock()
		s.next = callback + "?code=y&state=n2"
		s.mu.Unlock()
		b.Go(s.URL + "/login?state=n2")
		b.Find("#user").Type("bob")
		b.Find("#password").Type("pw")
		b.Find("#go").Click()
		got := b.WaitURL(callback, 10*time.Second)
		u, err := url.Parse(got)
		if err != nil {
			t.Fatal(err)
		}
		if u.Query().Get("code") != "y" || u.Query().Get("state") != "n2" {
			t.Errorf("redirected to %q, want code=y and state=n2", got)
		}
		if forms := s.posted(); len(forms) == 0 || forms[len(forms)-1].Get("user") != "bob" {
			t.Errorf("server did not receive the form before redirecting")
		}
	})
}

func TestScriptSourceScreenshot(t *testing.T) {
	s := newServer(t)
	b := Start(t)
	b.Go(s.URL + "/done")
	if got := b.Script(`return arguments[0] + arguments[1];`, 40, 2); got != float64(42) {
		t.Errorf("script returned %v (%T), want 42", got, got)
	}
	el := b.Find("#welcome")
	if got := b.Script(`return arguments[0].id;`, el); got != "welcome" {
		t.Errorf("element argument: script returned %v, want welcome", got)
	}
	if src := b.Source(); !strings.Contains(src, `id="welcome"`) {
		t.Errorf("page source lacks the welcome paragraph: %q", src)
	}
	if got := b.Title(); got != "Done" {
		t.Errorf("title = %q, want Done", got)
	}
	shot := filepath.Join(t.TempDir(), "done.png")
	b.Screenshot(shot)
	png, err := os.ReadFile(shot)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) || len(png) < 1000 {
		t.Errorf("screenshot is %d bytes and not a PNG", len(png))
	}
}

// fakeTB records Fatalf and Skip instead of ending the test; like the real
// ones, they end the goroutine that calls them.
type fakeTB struct {
	testing.TB
	mu          sync.Mutex
	fatal, skip string
}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.fatal = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fakeTB) Skip(args ...any) {
	f.mu.Lock()
	f.skip = fmt.Sprint(args...)
	f.mu.Unlock()
	runtime.Goexit()
}

// run calls fn in its own goroutine, as a test body, and waits for it.
func (f *fakeTB) run(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
}

func TestMissingBrowser(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv(EnvChromedriver, "")
	t.Setenv(EnvChromium, "")
	for _, tc := range []struct {
		require  string
		skipped  bool
		contains string
	}{
		{require: "", skipped: true, contains: "chromium chromium-driver"},
		{require: "1", skipped: false, contains: EnvRequireBrowser + "=1"},
	} {
		t.Setenv(EnvRequireBrowser, tc.require)
		f := &fakeTB{TB: t}
		f.run(func() { findBinaries(f) })
		got := f.fatal
		if tc.skipped {
			got = f.skip
		}
		if got == "" || (tc.skipped && f.fatal != "") || (!tc.skipped && f.skip != "") {
			t.Errorf("%s=%q: skip=%q fatal=%q; want only a %s", EnvRequireBrowser, tc.require, f.skip, f.fatal, map[bool]string{true: "skip", false: "failure"}[tc.skipped])
			continue
		}
		if !strings.Contains(got, tc.contains) || !strings.Contains(got, "chromium-driver") {
			t.Errorf("%s=%q: message %q lacks %q or the package names", EnvRequireBrowser, tc.require, got, tc.contains)
		}
	}

	t.Setenv(EnvRequireBrowser, "")
	t.Setenv(EnvChromedriver, "/nonexistent/chromedriver")
	f := &fakeTB{TB: t}
	f.run(func() { findBinaries(f) })
	if !strings.Contains(f.skip, EnvChromedriver+"=/nonexistent/chromedriver") {
		t.Errorf("a %s that names no binary: skip message %q does not say so", EnvChromedriver, f.skip)
	}
}

// A missing element fails the test after Timeout with the selector and the
// page in the message.
func TestFindTimesOut(t *testing.T) {
	s := newServer(t)
	b := Start(t)
	b.Go(s.URL + "/done")
	f := &fakeTB{TB: t}
	fb := b.For(f)
	fb.Timeout = 300 * time.Millisecond
	start := time.Now()
	f.run(func() { fb.Find("#absent") })
	if elapsed := time.Since(start); elapsed < 300*time.Millisecond || elapsed > 10*time.Second {
		t.Errorf("Find gave up after %v, want about 300ms", elapsed)
	}
	if !strings.Contains(f.fatal, `"#absent"`) || !strings.Contains(f.fatal, s.URL+"/done") {
		t.Errorf("failure message %q lacks the selector or the URL", f.fatal)
	}
}

// The virtual authenticator makes a passkey for the page's origin and
// signs with it, counting its uses.
func TestVirtualAuthenticator(t *testing.T) {
	s := newServer(t)
	b := Start(t)
	a := b.AddVirtualAuthenticator()
	if n := len(a.Credentials()); n != 0 {
		t.Fatalf("a new authenticator holds %d credentials", n)
	}
	// WebAuthn needs a domain name: the test server as localhost.
	b.Go(strings.Replace(s.URL, "127.0.0.1", "localhost", 1) + "/done")
	id := b.Script(`return navigator.credentials.create({publicKey: {
		rp: {id: "localhost", name: "test"}, user: {id: new Uint8Array([7, 7, 7]), name: "u", displayName: "u"},
		challenge: new Uint8Array(32), pubKeyCredParams: [{type: "public-key", alg: -7}],
		authenticatorSelection: {residentKey: "required", userVerification: "required"}}}).then(c => c.id);`)
	cs := a.Credentials()
	if len(cs) != 1 || cs[0].ID != id || cs[0].RPID != "localhost" || !cs[0].Discoverable || cs[0].UserHandle != "BwcH" {
		t.Fatalf("after create (id %v): credentials %+v", id, cs)
	}
	before := cs[0].SignCount
	got := b.Script(`return navigator.credentials.get({publicKey: {rpId: "localhost", challenge: new Uint8Array(32), userVerification: "required"}}).then(c => c.id);`)
	if got != id {
		t.Fatalf("get returned credential %v, want %v", got, id)
	}
	if cs := a.Credentials(); len(cs) != 1 || cs[0].SignCount <= before {
		t.Errorf("after get: credentials %+v, want the sign count above %d", cs, before)
	}
}
