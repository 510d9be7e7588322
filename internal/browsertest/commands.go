package browsertest

import (
	"encoding/base64"
	"errors"
	"net/http"
	"os"
	"strings"
	"time"
)

// elementKey is the W3C web element identifier's JSON key.
const elementKey = "element-6066-11e4-a52e-4f735466cecf"

// Go navigates to url and waits for the page to load. When url cannot be
// loaded at all the test fails. When url redirects to a page that cannot be
// loaded (an app's redirect_uri where nothing listens, the usual case in
// tests) it does not: the browser shows the redirect's target, which URL
// and WaitURL report.
func (b *Browser) Go(url string) {
	b.t.Helper()
	err := b.try(http.MethodPost, "/url", map[string]string{"url": url}, nil)
	var wd *Error
	if errors.As(err, &wd) && wd.Code == "unknown error" && strings.Contains(wd.Message, "net::ERR_") && b.URL() != url {
		return
	}
	if err != nil {
		b.t.Fatalf("browsertest: go to %s: %v", url, err)
	}
}

// URL returns the current page's URL. After a navigation that failed at the
// network level it is the URL that failed to load.
func (b *Browser) URL() string {
	b.t.Helper()
	var u string
	b.cmd("current URL", http.MethodGet, "/url", nil, &u)
	return u
}

// WaitURL polls the current URL until it starts with prefix and returns it;
// it fails the test after timeout. It observes redirects that leave the
// test server, such as one to an app's redirect_uri.
func (b *Browser) WaitURL(prefix string, timeout time.Duration) string {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		u := b.URL()
		if strings.HasPrefix(u, prefix) {
			return u
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("browsertest: URL is %q after %v, want prefix %q", u, timeout, prefix)
		}
		time.Sleep(pollInterval)
	}
}

// Title returns the current page's title.
func (b *Browser) Title() string {
	b.t.Helper()
	var s string
	b.cmd("title", http.MethodGet, "/title", nil, &s)
	return s
}

// Source returns the current page's DOM serialised as HTML.
func (b *Browser) Source() string {
	b.t.Helper()
	var s string
	b.cmd("page source", http.MethodGet, "/source", nil, &s)
	return s
}

// Script runs js as the body of a function in the page (WebDriver "execute
// script", synchronous) with args as its arguments, and returns its result
// decoded from JSON (string, float64, bool, nil, []any, map[string]any).
// An Element may be passed as an argument.
func (b *Browser) Script(js string, args ...any) any {
	b.t.Helper()
	wire := make([]any, len(args))
	for i, a := range args {
		if e, ok := a.(Element); ok {
			a = map[string]string{elementKey: e.id}
		}
		wire[i] = a
	}
	var out any
	b.cmd("script", http.MethodPost, "/execute/sync", map[string]any{"script": js, "args": wire}, &out)
	return out
}

// Cookie is a cookie as the browser holds it.
type Cookie struct {
	Name     string `json:"name"`
	Value    string `json:"value"`
	Path     string `json:"path"`
	Domain   string `json:"domain"`
	Secure   bool   `json:"secure"`
	HTTPOnly bool   `json:"httpOnly"`
	Expiry   int64  `json:"expiry,omitempty"` // Unix seconds; 0 for a session cookie
	SameSite string `json:"sameSite"`
}

// Cookies returns the cookies visible to the current page, HttpOnly ones
// included.
func (b *Browser) Cookies() []Cookie {
	b.t.Helper()
	var cs []Cookie
	b.cmd("cookies", http.MethodGet, "/cookie", nil, &cs)
	return cs
}

// Screenshot writes a PNG of the current viewport to path.
func (b *Browser) Screenshot(path string) {
	b.t.Helper()
	var enc string
	b.cmd("screenshot", http.MethodGet, "/screenshot", nil, &enc)
	png, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		b.t.Fatalf("browsertest: screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil { // #nosec G306 -- test kit: a screenshot of a test page, no secret
		b.t.Fatalf("browsertest: screenshot: %v", err)
	}
}

// Element is an element of the current page, found by a CSS selector.
type Element struct {
	b   *Browser
	id  string
	css string // for failure messages
}

// Find waits up to b.Timeout for an element matching the CSS selector and
// returns the first one.
func (b *Browser) Find(css string) Element {
	b.t.Helper()
	deadline := time.Now().Add(b.timeout())
	for {
		var ref map[string]string
		err := b.try(http.MethodPost, "/element", map[string]string{"using": "css selector", "value": css}, &ref)
		if err == nil {
			return Element{b: b, id: ref[elementKey], css: css}
		}
		var wd *Error
		if !errors.As(err, &wd) || wd.Code != "no such element" {
			b.t.Fatalf("browsertest: find %q: %v", css, err)
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("browsertest: no element matches %q after %v on %s", css, b.timeout(), b.URL())
		}
		time.Sleep(pollInterval)
	}
}

// FindAll returns every element now matching the CSS selector, possibly
// none; it does not wait.
func (b *Browser) FindAll(css string) []Element {
	b.t.Helper()
	var refs []map[string]string
	b.cmd("find all "+css, http.MethodPost, "/elements", map[string]string{"using": "css selector", "value": css}, &refs)
	out := make([]Element, len(refs))
	for i, r := range refs {
		out[i] = Element{b: b, id: r[elementKey], css: css}
	}
	return out
}

func (b *Browser) timeout() time.Duration {
	if b.Timeout <= 0 {
		return DefaultTimeout
	}
	return b.Timeout
}

func (e Element) path(suffix string) string { return "/element/" + e.id + suffix }

// Type sends text to the element as key presses, appending to its value.
func (e Element) Type(text string) {
	e.b.t.Helper()
	e.b.cmd("type into "+e.css, http.MethodPost, e.path("/value"), map[string]string{"text": text}, nil)
}

// Clear empties an input or textarea.
func (e Element) Clear() {
	e.b.t.Helper()
	e.b.cmd("clear "+e.css, http.MethodPost, e.path("/clear"), nil, nil)
}

// Click scrolls the element into view and clicks it. A click that submits a
// form waits for the resulting page load, as a navigation does.
func (e Element) Click() {
	e.b.t.Helper()
	e.b.cmd("click "+e.css, http.MethodPost, e.path("/click"), nil, nil)
}

// Submit submits the element's form (or the element itself, when it is a
// form) as a person pressing its submit button would: constraint
// validation and submit handlers run. It does not wait for the next page;
// use Find or WaitURL.
func (e Element) Submit() {
	e.b.t.Helper()
	e.b.Script(`const el = arguments[0]; (el.form || el).requestSubmit();`, e)
}

// Text returns the element's rendered text.
func (e Element) Text() string {
	e.b.t.Helper()
	var s string
	e.b.cmd("text of "+e.css, http.MethodGet, e.path("/text"), nil, &s)
	return s
}

// Attr returns the element's HTML attribute name, or "" when it has none.
// It is the markup's value: what a person typed into an input is its
// "value" property (Value), not its attribute.
func (e Element) Attr(name string) string {
	e.b.t.Helper()
	var s *string
	e.b.cmd("attribute "+name+" of "+e.css, http.MethodGet, e.path("/attribute/"+name), nil, &s)
	if s == nil {
		return ""
	}
	return *s
}

// Value returns the current value of an input, select or textarea.
func (e Element) Value() string {
	e.b.t.Helper()
	s, _ := e.Property("value").(string)
	return s
}

// Property returns the element's DOM property name (for example "checked"
// or "validity"), decoded from JSON.
func (e Element) Property(name string) any {
	e.b.t.Helper()
	var v any
	e.b.cmd("property "+name+" of "+e.css, http.MethodGet, e.path("/property/"+name), nil, &v)
	return v
}

// VirtualAuthenticator is what AddVirtualAuthenticator sets up.
type VirtualAuthenticator struct {
	b  *Browser
	ID string // the authenticator id chromedriver assigned
}

// AddVirtualAuthenticator gives the browser a virtual WebAuthn
// authenticator (WebDriver "Add Virtual Authenticator", Web Authentication
// Level 2 §11): a CTAP2 platform authenticator ("internal" transport) that
// keeps discoverable credentials (passkeys), verifies its user and
// consents to every request without a prompt. navigator.credentials.create
// and get in the page then use it.
func (b *Browser) AddVirtualAuthenticator() VirtualAuthenticator {
	b.t.Helper()
	var id string
	b.cmd("add virtual authenticator", http.MethodPost, "/webauthn/authenticator", map[string]any{
		"protocol": "ctap2", "transport": "internal",
		"hasResidentKey": true, "hasUserVerification": true, "isUserConsenting": true, "isUserVerified": true,
	}, &id)
	if id == "" {
		b.t.Fatalf("browsertest: add virtual authenticator: no authenticator id")
	}
	return VirtualAuthenticator{b: b, ID: id}
}

// VirtualCredential is a credential a virtual authenticator holds.
type VirtualCredential struct {
	ID           string `json:"credentialId"` // base64url
	RPID         string `json:"rpId"`
	UserHandle   string `json:"userHandle"` // base64url
	SignCount    int64  `json:"signCount"`
	Discoverable bool   `json:"isResidentCredential"`
}

// Credentials returns the credentials the authenticator holds.
func (a VirtualAuthenticator) Credentials() []VirtualCredential {
	a.b.t.Helper()
	var cs []VirtualCredential
	a.b.cmd("virtual authenticator credentials", http.MethodGet, "/webauthn/authenticator/"+a.ID+"/credentials", nil, &cs)
	return cs
}
