package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/pquerna/otp/totp"
)

// drillHTTP is how the drill reaches the target: HTTPS from one local
// address (the source the server records), trusting the given roots.
type drillHTTP struct {
	base   string // the target, "https://host:port"
	source netip.Addr
	http   *http.Client
}

// maxDrillBody bounds a response the drill reads.
const maxDrillBody = 64 << 20

func newDrillHTTP(base string, roots *x509.CertPool, source netip.Addr) *drillHTTP {
	d := &net.Dialer{Timeout: 10 * time.Second}
	if source.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: source.AsSlice()}
	}
	tr := &http.Transport{
		DialContext:         d.DialContext,
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 4,
	}
	return &drillHTTP{base: base, source: source, http: &http.Client{Transport: tr, Timeout: 2 * time.Minute}}
}

func (c *drillHTTP) close() { c.http.CloseIdleConnections() }

// call sends one request and returns the status and body. body, when not
// nil, is sent as FHIR JSON; bearer, when set, as the access token.
func (c *drillHTTP) call(ctx context.Context, method, path, bearer string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	u := path
	if !strings.HasPrefix(u, "https://") {
		u = c.base + path
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd) // #nosec G704 -- ward drill calls the Ward URL the operator names, by design
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Accept", "application/fhir+json")
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := c.http.Do(req) // #nosec G704 -- ward drill calls the Ward URL the operator names, by design
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxDrillBody))
	return resp.StatusCode, b, err
}

// fhir is call on the FHIR base, failing unless the status is want.
func (c *drillHTTP) fhir(ctx context.Context, method, path, bearer string, body any, want int) ([]byte, error) {
	status, b, err := c.call(ctx, method, "/fhir"+path, bearer, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, redactQuery(path), err)
	}
	if status != want {
		return nil, fmt.Errorf("%s %s: status %d, want %d%s", method, redactQuery(path), status, want, outcomeOf(b))
	}
	return b, nil
}

// redactQuery drops a path's query: it names the drill's synthetic
// patients, which an error message has no need of.
func redactQuery(path string) string {
	p, _, _ := strings.Cut(path, "?")
	return p
}

// outcomeOf summarises an OperationOutcome's diagnostics for an error
// (Ward's outcomes carry no resource content).
func outcomeOf(b []byte) string {
	var oo struct {
		ResourceType string `json:"resourceType"`
		Issue        []struct {
			Diagnostics string `json:"diagnostics"`
		} `json:"issue"`
	}
	if json.Unmarshal(b, &oo) != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 {
		return ""
	}
	return ": " + oo.Issue[0].Diagnostics
}

// serviceToken gets a client credentials token with client_secret_basic.
func (c *drillHTTP) serviceToken(ctx context.Context, id, secret string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/oauth2/token", strings.NewReader("grant_type=client_credentials")) // #nosec G704 -- ward drill calls the Ward URL the operator names, by design
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	return c.token(req)
}

func (c *drillHTTP) token(req *http.Request) (string, error) {
	resp, err := c.http.Do(req) // #nosec G704 -- ward drill calls the Ward URL the operator names, by design
	if err != nil {
		return "", fmt.Errorf("token request: %w", err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("token request: status %d", resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil || body.AccessToken == "" {
		return "", fmt.Errorf("token response without an access token (%v)", err)
	}
	return body.AccessToken, nil
}

// drillApp is the throw-away public app people sign in to. Its redirect
// URI is never contacted: the drill takes the code from the redirect.
type drillApp struct {
	id, redirect, scope string
}

// browser is a person's browser without JavaScript, as Ward's sign-in
// pages need none: it keeps cookies, follows redirects on the target and
// stops at the redirect to the app, and submits forms with their hidden
// fields.
type browser struct {
	c    *drillHTTP
	http *http.Client
	app  drillApp
	page string
	url  *url.URL
	code int
	date time.Time // the last answer's Date: the server's clock
	stop *url.URL  // the redirect to the app, once reached
}

func (c *drillHTTP) browser(app drillApp) *browser {
	jar, _ := cookiejar.New(nil)
	b := &browser{c: c, app: app}
	b.http = &http.Client{Transport: c.http.Transport, Jar: jar, Timeout: time.Minute,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if strings.HasPrefix(req.URL.String(), app.redirect) {
				b.stop = req.URL
				return http.ErrUseLastResponse
			}
			if len(via) > 10 {
				return errors.New("too many redirects")
			}
			return nil
		}}
	return b
}

func (b *browser) do(req *http.Request) error {
	resp, err := b.http.Do(req) // #nosec G704 -- ward drill calls the Ward URL the operator names, by design
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	b.page, b.url, b.code = string(data), resp.Request.URL, resp.StatusCode
	b.date, _ = http.ParseTime(resp.Header.Get("Date"))
	return err
}

func (b *browser) get(ctx context.Context, u string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil) // #nosec G704 -- ward drill calls the Ward URL the operator names, by design
	if err != nil {
		return err
	}
	return b.do(req)
}

var (
	hiddenRE = regexp.MustCompile(`<input type="hidden" name="([a-z]+)" value="([^"]*)">`)
	secretRE = regexp.MustCompile(`<code id="secret">([A-Z2-7=]+)</code>`)
)

// hidden returns the value of the page's hidden field name.
func (b *browser) hidden(name string) string {
	for _, m := range hiddenRE.FindAllStringSubmatch(b.page, -1) {
		if m[1] == name {
			return html.UnescapeString(m[2])
		}
	}
	return ""
}

// submit posts the page's form: its hidden fields plus fields.
func (b *browser) submit(ctx context.Context, action string, fields ...string) error {
	form := url.Values{}
	for _, m := range hiddenRE.FindAllStringSubmatch(b.page, -1) {
		form.Set(m[1], html.UnescapeString(m[2]))
	}
	for i := 0; i+1 < len(fields); i += 2 {
		form.Set(fields[i], fields[i+1])
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.c.base+action, strings.NewReader(form.Encode())) // #nosec G704 -- ward drill calls the Ward URL the operator names, by design
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.c.base)
	return b.do(req)
}

// pkce is an authorization request's code verifier and state.
type pkce struct{ verifier, state string }

func newPKCE() pkce {
	return pkce{verifier: rand.Text() + rand.Text(), state: rand.Text()}
}

// authorize opens the sign-in pages for the app, as the app would send
// the browser there.
func (b *browser) authorize(ctx context.Context, p pkce) error {
	sum := sha256.Sum256([]byte(p.verifier))
	q := url.Values{
		"response_type": {"code"}, "client_id": {b.app.id}, "redirect_uri": {b.app.redirect}, "scope": {b.app.scope},
		"state": {p.state}, "nonce": {"n-" + p.state},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
	}
	if err := b.get(ctx, b.c.base+"/oauth2/authorize?"+q.Encode()); err != nil {
		return err
	}
	if b.url.Path != "/signin" || b.code != http.StatusOK {
		return fmt.Errorf("authorization request: landed on %s with status %d, want the sign-in page", b.url.Path, b.code)
	}
	return nil
}

// signIn takes a person through the pages, from the app's authorization
// request to the code the app receives, and exchanges the code for an
// access token. A role that needs a second factor enrols an
// authenticator app on the way, as a person would at first sign-in.
func (c *drillHTTP) signIn(ctx context.Context, app drillApp, username, password string) (string, error) {
	tok, _, err := c.signInEnrol(ctx, app, username, password)
	return tok, err
}

// signInEnrol is signIn that also returns the authenticator secret it
// enrolled ("" when the person had a second factor or needs none).
func (c *drillHTTP) signInEnrol(ctx context.Context, app drillApp, username, password string) (token, secret string, err error) {
	b := c.browser(app)
	p := newPKCE()
	if err := b.authorize(ctx, p); err != nil {
		return "", "", err
	}
	if err := b.submit(ctx, "/signin", "username", username, "password", password); err != nil {
		return "", "", err
	}
	for range 5 {
		if b.stop != nil {
			break
		}
		switch {
		case b.url.Path == "/signin/enrol" && strings.Contains(b.page, `id="codes"`):
			// The recovery codes; the drill's account never needs them.
			if err := b.get(ctx, c.base+"/signin/authorize?id="+url.QueryEscape(b.hidden("id"))); err != nil {
				return "", "", err
			}
		case b.url.Path == "/signin/enrol":
			m := secretRE.FindStringSubmatch(b.page)
			if m == nil {
				return "", "", errors.New("sign-in: the second-factor enrolment page shows no key")
			}
			secret = m[1]
			code, err := totp.GenerateCode(m[1], time.Now())
			if err != nil {
				return "", "", fmt.Errorf("sign-in: %w", err)
			}
			if err := b.submit(ctx, "/signin/enrol", "code", code); err != nil {
				return "", "", err
			}
		case b.url.Path == "/signin/authorize" && b.code == http.StatusOK:
			if err := b.submit(ctx, "/signin/authorize", "decision", "allow"); err != nil {
				return "", "", err
			}
		default:
			return "", "", fmt.Errorf("sign-in: stopped on %s with status %d", b.url.Path, b.code)
		}
	}
	if b.stop == nil {
		return "", "", errors.New("sign-in: the pages never redirected to the app")
	}
	got := b.stop.Query()
	if got.Get("state") != p.state || got.Get("code") == "" {
		return "", "", fmt.Errorf("sign-in: the app received no code (error %q)", got.Get("error"))
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {got.Get("code")}, "redirect_uri": {app.redirect},
		"client_id": {app.id}, "code_verifier": {p.verifier}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/oauth2/token", strings.NewReader(form.Encode())) // #nosec G704 -- ward drill calls the Ward URL the operator names, by design
	if err != nil {
		return "", "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	token, err = c.token(req)
	return token, secret, err
}

// failSignIns submits a wrong password for each username on one sign-in
// page, as a credential-stuffing tool would, and returns the server's
// time (the Date, to the second) of the last refusal.
func (c *drillHTTP) failSignIns(ctx context.Context, app drillApp, usernames []string) (time.Time, error) {
	b := c.browser(app)
	if err := b.authorize(ctx, newPKCE()); err != nil {
		return time.Time{}, err
	}
	for _, u := range usernames {
		if err := b.submit(ctx, "/signin", "username", u, "password", "wrong-"+rand.Text()); err != nil {
			return time.Time{}, err
		}
		if b.code != http.StatusUnauthorized {
			return time.Time{}, fmt.Errorf("a wrong password answered %d, want 401", b.code)
		}
	}
	return b.date, nil
}
