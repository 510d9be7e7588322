package signin

import (
	"context"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/wardhealth/ward/internal/auth"
	"github.com/wardhealth/ward/internal/auth/credential"
	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/secevent"
	"github.com/wardhealth/ward/internal/store"
)

//go:embed templates/*.html templates/style.css templates/webauthn.js
var assets embed.FS

// Cookie names. The __Host- prefix makes browsers insist on Secure, Path=/
// and no Domain, so no other host can set or read them.
const (
	cookieSession = "__Host-ward-session"
	cookieCSRF    = "__Host-ward-csrf"
)

// pageCSP allows the page's own stylesheet and inline QR images, and
// nothing else: no scripts, no frames, no plugins.
const pageCSP = "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'"

// pathWebAuthnJS is the one script Ward's pages use: the WebAuthn ceremony
// of the enrolment and second-factor pages.
const pathWebAuthnJS = PathSignIn + "/webauthn.js"

type pages struct {
	p    *Provider
	tmpl *template.Template
	css  []byte
	js   []byte
	// scriptCSP is pageCSP plus exactly the WebAuthn script, by its full
	// URL (no inline script, no eval, no other file of this origin); it is
	// sent only with the pages that load the script.
	scriptCSP string
	// esign does the signing pages' work (esign.go); nil: they answer 404.
	esign ESign
}

func newPages(p *Provider) (*pages, error) {
	t, err := template.ParseFS(assets, "templates/*.html")
	if err != nil {
		return nil, err
	}
	css, err := assets.ReadFile("templates/style.css")
	if err != nil {
		return nil, err
	}
	js, err := assets.ReadFile("templates/webauthn.js")
	if err != nil {
		return nil, err
	}
	scriptCSP := strings.Replace(pageCSP, "default-src 'none';", "default-src 'none'; script-src "+p.cfg.Issuer+pathWebAuthnJS+";", 1)
	return &pages{p: p, tmpl: t, css: css, js: js, scriptCSP: scriptCSP}, nil
}

// view is what every template gets.
type view struct {
	Title   string
	CSRF    string
	ID      string // the authorization request
	Error   string
	App     string
	User    string
	Scopes  []string
	QR      template.URL
	Secret  string
	Codes   []string
	Message string
	// WebAuthn is the JSON of a WebAuthn ceremony's options when the page
	// offers a security key or passkey; the page then loads the script.
	WebAuthn string
	TOTP     bool // the user has an authenticator app
	// Providers are the external OpenID providers the sign-in page
	// offers ("Sign in with <Name>").
	Providers []provider
	// Sign is what the signing pages show (esign.go).
	Sign *signView
}

// provider is an external OpenID provider as the sign-in page shows it.
type provider struct {
	URL  string // the issuer, which the form posts back
	Name string
}

func (pg *pages) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("Cache-Control", "no-store")
	// same-origin, not no-referrer: under no-referrer browsers send
	// "Origin: null" with form posts, and the Origin check needs the real one.
	h.Set("Referrer-Policy", "same-origin")
	if r.Method == http.MethodPost && !pg.checkCSRF(r) {
		pg.render(w, r, http.StatusForbidden, "message", view{Title: "Request refused", Message: "This form has expired. Go back to the app and start signing in again."})
		return
	}
	switch r.URL.Path {
	case PathSignIn + "/style.css":
		h.Set("Content-Type", "text/css; charset=utf-8")
		_, _ = w.Write(pg.css)
	case pathWebAuthnJS:
		h.Set("Content-Type", "text/javascript; charset=utf-8")
		_, _ = w.Write(pg.js)
	case PathSignIn:
		pg.signIn(w, r)
	case PathSignIn + "/mfa":
		pg.mfa(w, r)
	case PathSignIn + "/enrol":
		pg.enrol(w, r)
	case PathSignIn + "/patient":
		pg.patient(w, r)
	case PathSignIn + "/authorize":
		pg.authorize(w, r)
	case PathSign:
		pg.sign(w, r)
	case PathSignatures:
		pg.signatures(w, r)
	case pathFederated:
		pg.federatedStart(w, r)
	case PathFederatedCallback:
		pg.federatedCallback(w, r)
	default:
		pg.render(w, r, http.StatusNotFound, "message", view{Title: "Not found", Message: "There is no such page."})
	}
}

func (pg *pages) render(w http.ResponseWriter, r *http.Request, status int, name string, v view) {
	v.CSRF = pg.csrfToken(w, r)
	if v.WebAuthn != "" {
		w.Header().Set("Content-Security-Policy", pg.scriptCSP)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = pg.tmpl.ExecuteTemplate(w, name+".html", v)
}

// csrfToken returns the request's CSRF token, setting the cookie when the
// browser has none. Forms echo it in a hidden field (double submit).
func (pg *pages) csrfToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(cookieCSRF); err == nil && len(c.Value) >= 32 {
		return c.Value
	}
	tok, err := randomToken(32)
	if err != nil {
		return ""
	}
	http.SetCookie(w, &http.Cookie{Name: cookieCSRF, Value: tok, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	r.AddCookie(&http.Cookie{Name: cookieCSRF, Value: tok}) // #nosec G124 -- a cookie added to the request being handled, not one sent; the one sent (line above) is Secure, HttpOnly, SameSite=Strict
	return tok
}

// checkCSRF accepts a POST whose form token equals its cookie and whose
// Origin, when the browser sends one, is this server.
func (pg *pages) checkCSRF(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" && o != originOf(pg.p.cfg.Issuer) {
		return false
	}
	c, err := r.Cookie(cookieCSRF)
	if err != nil || len(c.Value) < 32 {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostFormValue("csrf"))) == 1
}

func originOf(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return p.Scheme + "://" + p.Host
}

// flow is one authorization request being signed in, with the session.
type flow struct {
	req  *authRequest
	sess *store.Session
	user store.User
	app  store.Client
}

// load finds the authorization request named by the id parameter, and
// the browser's session if it has a live one.
func (pg *pages) load(w http.ResponseWriter, r *http.Request) (*flow, bool) {
	return pg.loadID(w, r, r.FormValue("id"))
}

// loadID is load for the authorization request id.
func (pg *pages) loadID(w http.ResponseWriter, r *http.Request, id string) (*flow, bool) {
	ar, err := pg.p.st.AuthRequest(r.Context(), id)
	if err != nil {
		pg.render(w, r, http.StatusBadRequest, "message", view{Title: "Sign-in expired", Message: "This sign-in link is unknown or has expired. Go back to the app and start again."})
		return nil, false
	}
	a, err := storage{p: pg.p}.loadRequest(r.Context(), ar)
	if err != nil || a.Approved || ar.Code != "" {
		pg.render(w, r, http.StatusBadRequest, "message", view{Title: "Sign-in expired", Message: "This sign-in link is unknown or has expired. Go back to the app and start again."})
		return nil, false
	}
	// Every step names the app and, once known, the person; the steps that
	// decide something raise their own event after this one.
	pg.p.event(r.Context(), Event{Action: "signin", Client: a.ClientID})
	app, err := pg.p.st.Client(r.Context(), a.ClientID)
	if err != nil {
		pg.fail(w, r, err)
		return nil, false
	}
	f := &flow{req: a, app: app}
	if s, u, ok := pg.session(r); ok {
		f.sess, f.user = s, u
		pg.p.event(r.Context(), Event{Action: "signin", UserID: u.ID, Client: a.ClientID})
	}
	return f, true
}

// session returns the browser's live session and its user. A session past
// its idle timeout or absolute lifetime is ended here.
func (pg *pages) session(r *http.Request) (*store.Session, store.User, bool) {
	c, err := r.Cookie(cookieSession)
	if err != nil || c.Value == "" || len(c.Value) > 128 {
		return nil, store.User{}, false
	}
	ctx := r.Context()
	s, err := pg.p.st.Session(ctx, hashToken(c.Value))
	if err != nil || s.Ended {
		return nil, store.User{}, false
	}
	now := pg.p.cfg.Now()
	if now.Sub(s.LastSeen) > pg.p.cfg.IdleTimeout || now.Sub(s.Created) > pg.p.cfg.SessionLifetime {
		_ = pg.p.st.EndSession(ctx, s.ID)
		return nil, store.User{}, false
	}
	u, err := pg.p.users.User(ctx, s.UserID)
	if err != nil || u.Disabled || s.AuthTime.Before(u.NotBefore) {
		_ = pg.p.st.EndSession(ctx, s.ID)
		return nil, store.User{}, false
	}
	_ = pg.p.st.TouchSession(ctx, s.ID, now.UTC(), nil)
	return &s, u, true
}

func (pg *pages) fail(w http.ResponseWriter, r *http.Request, err error) {
	pg.p.cfg.Logger.Error("sign-in page failed", "error", err.Error())
	pg.render(w, r, http.StatusServiceUnavailable, "message", view{Title: "Try again later", Message: "Ward could not complete this step. Try again in a moment."})
}

// signIn shows the password form and checks it.
func (pg *pages) signIn(w http.ResponseWriter, r *http.Request) {
	f, ok := pg.load(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	if r.Method != http.MethodPost {
		if f.sess != nil && !pg.needsFreshSignIn(f) {
			pg.next(w, r, f)
			return
		}
		pg.render(w, r, http.StatusOK, "signin", pg.signInView(f, ""))
		return
	}
	username := r.PostFormValue("username")
	res, err := pg.p.users.SignIn(ctx, username, r.PostFormValue("password"))
	detail := res.Detail
	if res.Locked {
		detail = "locked" // the recorder raises auth.account.locked for it
	}
	if err != nil {
		if !errors.Is(err, auth.ErrSignInFailed) {
			pg.fail(w, r, err)
			return
		}
		// The entry names the account tried, so that its owner and
		// auditors see the attempt; a user name no account has only as
		// the recorder's keyed hash.
		e := Event{Action: "signin", Client: f.app.ID, Detail: detail, Account: res.Tried}
		if res.Tried == "" {
			e.Username = auth.NormaliseUsername(username)
		}
		pg.p.event(ctx, e)
		pg.render(w, r, http.StatusUnauthorized, "signin", pg.signInView(f,
			"Sign-in failed. Check your username and password, or wait a few minutes if you tried many times."))
		return
	}
	tok, err := randomToken(32)
	if err != nil {
		pg.fail(w, r, err)
		return
	}
	now := pg.p.cfg.Now().UTC().Truncate(time.Second)
	s := store.Session{ID: hashToken(tok), UserID: res.User.ID, Created: now, LastSeen: now, AuthTime: now, AMR: []string{"pwd"}}
	if err := pg.startSession(w, r, f, s, tok); err != nil {
		pg.fail(w, r, err)
		return
	}
	pg.p.event(ctx, Event{Action: "signin", UserID: res.User.ID, Client: f.app.ID, Detail: "ok"})
	f.sess, f.user = &s, res.User
	pg.next(w, r, f)
}

// needsFreshSignIn: the session's sign-in does not satisfy the
// request's max_age (or prompt=login). A session this flow signed in
// does: its password was checked for this request, or its provider's
// auth_time was checked against the max_age then.
func (pg *pages) needsFreshSignIn(f *flow) bool {
	return !f.signedInHere() && !pg.freshEnough(f, f.sess.AuthTime)
}

// signedInHere reports whether the flow's session is the one the flow
// itself signed in (startSession).
func (f *flow) signedInHere() bool { return f.req.SessionID != "" && f.sess.ID == f.req.SessionID }

// freshEnough reports whether an authentication of the flow's session at
// t satisfies the request's max_age (OpenID Connect Core 3.1.2.1):
// max_age=n wants one in the last n seconds; max_age=0, which the
// provider also makes of prompt=login, wants one during this very
// request, whatever the clock says: a session the flow signed in itself,
// and a second factor checked since.
func (pg *pages) freshEnough(f *flow, t time.Time) bool {
	switch {
	case f.req.MaxAge == nil:
		return true
	case *f.req.MaxAge == 0:
		return f.signedInHere()
	}
	return pg.p.cfg.Now().Sub(t) <= maxAge(*f.req.MaxAge)
}

// startSession makes s the browser's session and the one this flow
// signed in (freshEnough), replacing the browser's earlier session.
func (pg *pages) startSession(w http.ResponseWriter, r *http.Request, f *flow, s store.Session, tok string) error {
	ctx := r.Context()
	if f.sess != nil {
		_ = pg.p.st.EndSession(ctx, f.sess.ID)
	}
	if err := pg.p.st.CreateSession(ctx, s); err != nil {
		return err
	}
	f.req.SessionID = s.ID
	if err := (storage{p: pg.p}).saveRequest(ctx, f.req, ""); err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: cookieSession, Value: tok, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	return nil
}

// next sends the person to the step the flow needs now. A person of an
// external provider has no second factor in Ward: a role that needs one
// goes ahead only on the provider's evidence, and is refused without it
// (never offered enrolment).
func (pg *pages) next(w http.ResponseWriter, r *http.Request, f *flow) {
	q := "?id=" + url.QueryEscape(f.req.ID)
	federated := f.sess != nil && auth.IsFederated(f.user)
	switch {
	case f.sess == nil || pg.needsFreshSignIn(f):
		http.Redirect(w, r, PathSignIn+q, http.StatusSeeOther)
	case federated && pg.p.users.MFARequired(f.user) && !pg.freshMFA(f):
		pg.p.event(r.Context(), Event{Action: actionFederated, UserID: f.user.ID, Client: f.app.ID, Detail: "mfa-required"})
		pg.render(w, r, http.StatusForbidden, "message", view{Title: "Second factor needed", Message: msgFederatedMFA})
	case !federated && !auth.HasMFA(f.user) && pg.p.users.MFARequired(f.user):
		http.Redirect(w, r, PathSignIn+"/enrol"+q, http.StatusSeeOther)
	case auth.HasMFA(f.user) && !pg.freshMFA(f):
		http.Redirect(w, r, PathSignIn+"/mfa"+q, http.StatusSeeOther)
	case slices.Contains(f.req.Scopes, "launch/patient") && pg.launchPatient(f) == "":
		http.Redirect(w, r, PathSignIn+"/patient"+q, http.StatusSeeOther)
	default:
		http.Redirect(w, r, PathSignIn+"/authorize"+q, http.StatusSeeOther)
	}
}

// freshMFA: the session has a second factor, recent enough for max_age
// when the app asked for one (step-up; freshEnough).
func (pg *pages) freshMFA(f *flow) bool {
	return !f.sess.MFATime.IsZero() && pg.freshEnough(f, f.sess.MFATime)
}

// launchPatient is the patient in context: a patient user's own record,
// or the one a practitioner picked for this request.
func (pg *pages) launchPatient(f *flow) string {
	if typ, id, ok := strings.Cut(f.user.FHIRUser, "/"); ok && typ == "Patient" {
		return id
	}
	return f.req.Patient
}

func (pg *pages) requireSession(w http.ResponseWriter, r *http.Request) (*flow, bool) {
	f, ok := pg.load(w, r)
	if !ok {
		return nil, false
	}
	if f.sess == nil || pg.needsFreshSignIn(f) {
		// No step after the password page serves a session older than
		// the request allows: going straight to it is no way round.
		http.Redirect(w, r, PathSignIn+"?id="+url.QueryEscape(f.req.ID), http.StatusSeeOther)
		return nil, false
	}
	return f, true
}

// mfa asks for the second factor: a security key or passkey (when the
// user has one and the browser runs the page's script), a TOTP code or a
// recovery code.
func (pg *pages) mfa(w http.ResponseWriter, r *http.Request) {
	f, ok := pg.requireSession(w, r)
	if !ok {
		return
	}
	if auth.IsFederated(f.user) {
		pg.next(w, r, f) // the provider checks the second factor
		return
	}
	ctx := r.Context()
	v := view{Title: "Second factor", ID: f.req.ID, User: f.user.Username, TOTP: auth.HasTOTP(f.user)}
	if r.Method == http.MethodPost {
		var method string
		var err error
		key := r.PostFormValue("webauthn") != ""
		if key {
			method, err = pg.p.users.FinishWebAuthnLogin(ctx, f.user.ID, f.req.WebAuthn, []byte(r.PostFormValue("webauthn")))
			if serr := pg.endCeremony(ctx, f); serr != nil && err == nil {
				err = serr
			}
		} else {
			method, err = pg.p.users.CheckSecondFactor(ctx, f.user.ID, r.PostFormValue("code"))
		}
		if err == nil {
			pg.markMFA(ctx, f, method)
			pg.p.event(ctx, Event{Action: "mfa", UserID: f.user.ID, Client: f.app.ID, Detail: "ok-" + method})
			pg.next(w, r, f)
			return
		}
		if !errors.Is(err, auth.ErrMFAFailed) && !errors.Is(err, auth.ErrMFANotSetUp) {
			pg.fail(w, r, err)
			return
		}
		pg.p.event(ctx, Event{Action: "mfa", UserID: f.user.ID, Client: f.app.ID, Detail: pg.keyDetail(f, key, err)})
		v.Error = "That code did not work. Codes can be used once; wait for the next one."
		if key {
			v.Error = "Your security key or passkey was not accepted. Try again, or use a code."
		}
	}
	if !pg.offerWebAuthn(w, r, f, &v, false) {
		return
	}
	status := http.StatusOK
	if v.Error != "" {
		status = http.StatusUnauthorized
	}
	pg.render(w, r, status, "mfa", v)
}

// offerWebAuthn begins a WebAuthn ceremony for the page when the user can
// use one (registration when enrolling, else sign-in with a registered
// key), keeping its state with the authorization request so that any
// replica can finish it. It reports false when it answered the request
// itself (an error).
func (pg *pages) offerWebAuthn(w http.ResponseWriter, r *http.Request, f *flow, v *view, enrol bool) bool {
	users := pg.p.users
	if !users.WebAuthnEnabled() || (!enrol && !auth.HasWebAuthn(f.user)) {
		return true
	}
	var options, state []byte
	var err error
	if enrol {
		options, state, err = users.BeginWebAuthnRegistration(r.Context(), f.user.ID)
	} else {
		options, state, err = users.BeginWebAuthnLogin(r.Context(), f.user.ID)
		if errors.Is(err, auth.ErrMFANotSetUp) {
			return true // every key is refused (flagged); codes remain
		}
	}
	if err == nil {
		f.req.WebAuthn = state
		err = (storage{p: pg.p}).saveRequest(r.Context(), f.req, "")
	}
	if err != nil {
		pg.fail(w, r, err)
		return false
	}
	v.WebAuthn = string(options)
	return true
}

// endCeremony forgets the WebAuthn ceremony of the request: its challenge
// is good for one answer, right or wrong.
func (pg *pages) endCeremony(ctx context.Context, f *flow) error {
	if f.req.WebAuthn == nil {
		return nil
	}
	f.req.WebAuthn = nil
	return (storage{p: pg.p}).saveRequest(ctx, f.req, "")
}

// keyDetail names a refused second factor for the audit entry, and logs a
// security event when a key may have been cloned.
func (pg *pages) keyDetail(f *flow, key bool, err error) string {
	if errors.Is(err, auth.ErrAuthenticatorCloned) {
		e := secevent.New(secevent.CredentialSuspect, pg.p.cfg.Now())
		e.Actor, e.Client, e.Outcome = f.user.ID, f.app.ID, secevent.Failure
		pg.p.cfg.Events.Emit(e.With(secevent.AttrReason, "counter-went-back"))
		return "cloned"
	}
	d := mfaDetail(err)
	if key && d == "wrong-code" {
		return "key-refused"
	}
	return d
}

func mfaDetail(err error) string {
	switch {
	case errors.Is(err, credential.ErrTOTPReplayed):
		return "replayed"
	case errors.Is(err, credential.ErrTOTPMalformed):
		return "malformed"
	case errors.Is(err, auth.ErrMFANotSetUp):
		return "not-enrolled"
	case strings.Contains(err.Error(), "throttled"):
		return "throttled"
	}
	return "wrong-code"
}

func (pg *pages) markMFA(ctx context.Context, f *flow, method string) {
	now := pg.p.cfg.Now().UTC().Truncate(time.Second)
	amr := slices.DeleteFunc(slices.Clone(f.sess.AMR), func(s string) bool { return s != "pwd" })
	amr = append(amr, method)
	f.sess.MFATime, f.sess.AMR = now, amr
	_ = pg.p.st.TouchSession(ctx, f.sess.ID, now, f.sess)
}

// enrol sets up a second factor for a person whose role needs MFA and has
// none: a security key or passkey, or TOTP.
func (pg *pages) enrol(w http.ResponseWriter, r *http.Request) {
	f, ok := pg.requireSession(w, r)
	if !ok {
		return
	}
	if auth.HasMFA(f.user) || auth.IsFederated(f.user) {
		pg.next(w, r, f) // nothing to enrol; never for a provider's person
		return
	}
	ctx := r.Context()
	v := view{Title: "Set up a second factor", ID: f.req.ID, User: f.user.Username}
	if r.Method == http.MethodPost {
		var method string
		var codes []string
		var err error
		key := r.PostFormValue("webauthn") != ""
		if key {
			method, codes, err = pg.p.users.FinishWebAuthnRegistration(ctx, f.user.ID, f.req.WebAuthn, []byte(r.PostFormValue("webauthn")))
			if serr := pg.endCeremony(ctx, f); serr != nil && err == nil {
				err = serr
			}
		} else {
			method = "otp"
			codes, err = pg.p.users.ConfirmTOTP(ctx, f.user.ID, r.PostFormValue("code"))
		}
		if err == nil {
			pg.markMFA(ctx, f, method)
			detail := "ok" // an authenticator app, as before keys came
			if key {
				detail = "ok-" + method
			}
			pg.p.event(ctx, Event{Action: "mfa-enrol", UserID: f.user.ID, Client: f.app.ID, Detail: detail})
			v.Title, v.Codes = "Recovery codes", codes
			pg.render(w, r, http.StatusOK, "recovery", v)
			return
		}
		if !errors.Is(err, auth.ErrMFAFailed) && !errors.Is(err, auth.ErrMFANotSetUp) {
			pg.fail(w, r, err)
			return
		}
		pg.p.event(ctx, Event{Action: "mfa-enrol", UserID: f.user.ID, Client: f.app.ID, Detail: pg.keyDetail(f, key, err)})
		v.Error = "That code did not match. Scan the new code below and try again."
		if key {
			v.Error = "Your security key or passkey could not be registered. Try again, or use an authenticator app."
		}
	}
	uri, png, err := pg.p.users.BeginTOTP(ctx, f.user.ID)
	if err != nil {
		pg.fail(w, r, err)
		return
	}
	v.QR = template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(png)) // #nosec G203 -- a data: URL of PNG bytes Ward rendered itself, base64 only
	if u, err := url.Parse(uri); err == nil {
		v.Secret = u.Query().Get("secret")
	}
	if !pg.offerWebAuthn(w, r, f, &v, true) {
		return
	}
	status := http.StatusOK
	if v.Error != "" {
		status = http.StatusUnauthorized
	}
	pg.render(w, r, status, "enrol", v)
}

// patient lets a practitioner choose the patient an app launches with.
func (pg *pages) patient(w http.ResponseWriter, r *http.Request) {
	f, ok := pg.requireSession(w, r)
	if !ok {
		return
	}
	v := view{Title: "Choose a patient", ID: f.req.ID, App: f.app.Name}
	if r.Method == http.MethodPost {
		id := strings.TrimSpace(r.PostFormValue("patient"))
		if policy.ValidID(id) {
			f.req.Patient = id
			if err := (storage{p: pg.p}).saveRequest(r.Context(), f.req, ""); err != nil {
				pg.fail(w, r, err)
				return
			}
			pg.p.event(r.Context(), Event{Action: "signin", UserID: f.user.ID, Client: f.app.ID, Patient: id})
			pg.next(w, r, f)
			return
		}
		v.Error = "Enter a patient id: letters, digits, '-' and '.', at most 64."
	}
	pg.render(w, r, http.StatusOK, "patient", v)
}

// authorize shows what the app asks for and records the person's answer.
func (pg *pages) authorize(w http.ResponseWriter, r *http.Request) {
	f, ok := pg.requireSession(w, r)
	if !ok {
		return
	}
	if (pg.p.users.MFARequired(f.user) || auth.HasMFA(f.user)) && !pg.freshMFA(f) {
		pg.next(w, r, f)
		return
	}
	if slices.Contains(f.req.Scopes, "launch/patient") && pg.launchPatient(f) == "" {
		pg.next(w, r, f)
		return
	}
	ctx := r.Context()
	if r.Method != http.MethodPost {
		pg.render(w, r, http.StatusOK, "authorize", view{Title: "Allow access?", ID: f.req.ID, App: f.app.Name, User: f.user.Username, Scopes: describeScopes(f.req.Scopes)})
		return
	}
	if r.PostFormValue("decision") != "allow" {
		pg.p.event(ctx, Event{Action: "authorize", UserID: f.user.ID, Client: f.app.ID, Detail: "declined"})
		_ = pg.p.st.DeleteAuthRequest(ctx, f.req.ID)
		op.AuthRequestError(w, r, f.req, oidc.ErrAccessDenied().WithDescription("the person declined"), pg.p.op)
		return
	}
	a := f.req
	a.UserID, a.SessionID, a.AuthTime, a.MFATime = f.user.ID, f.sess.ID, f.sess.AuthTime, f.sess.MFATime
	a.AMR, a.FHIRUser, a.Patient, a.Approved = f.sess.AMR, f.user.FHIRUser, pg.launchPatient(f), true
	if !slices.Contains(a.Scopes, "launch/patient") {
		a.Patient = ""
	}
	if err := (storage{p: pg.p}).saveRequest(ctx, a, ""); err != nil {
		pg.fail(w, r, err)
		return
	}
	pg.p.event(ctx, Event{Action: "authorize", UserID: f.user.ID, Client: f.app.ID, Detail: "ok"})
	http.Redirect(w, r, op.AuthCallbackURL(pg.p.op)(op.ContextWithIssuer(ctx, pg.p.cfg.Issuer), a.ID), http.StatusSeeOther)
}

// logout ends the browser's session and revokes its grants, then returns
// to a registered redirect URI of the app when one is named.
func (pg *pages) logout(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Security-Policy", pageCSP)
	ctx := r.Context()
	detail := "no-session"
	if c, err := r.Cookie(cookieSession); err == nil && c.Value != "" {
		if s, err := pg.p.st.Session(ctx, hashToken(c.Value)); err == nil {
			_ = pg.p.st.EndSession(ctx, s.ID)
			pg.p.event(ctx, Event{Action: "logout", UserID: s.UserID, Detail: "ok"})
			detail = ""
		}
	}
	if detail != "" {
		pg.p.event(ctx, Event{Action: "logout", Detail: detail})
	}
	http.SetCookie(w, &http.Cookie{Name: cookieSession, Value: "", Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode, MaxAge: -1})
	if target := r.FormValue("post_logout_redirect_uri"); target != "" {
		if c, err := pg.p.st.Client(ctx, r.FormValue("client_id")); err == nil && slices.Contains(c.RedirectURIs, target) {
			http.Redirect(w, r, target, http.StatusSeeOther)
			return
		}
	}
	pg.render(w, r, http.StatusOK, "message", view{Title: "Signed out", Message: "You are signed out of Ward."})
}

// describeScopes turns scopes into plain sentences.
func describeScopes(scopes []string) []string {
	var out []string
	for _, s := range scopes {
		switch s {
		case "openid":
			out = append(out, "Know who you are (your Ward account id)")
		case "profile":
			out = append(out, "See your username")
		case "fhirUser":
			out = append(out, "Know which person record is yours")
		case "offline_access":
			out = append(out, "Keep access after you close the app, until you sign out or revoke it")
		case "online_access":
			out = append(out, "Keep access while you are signed in")
		case "launch/patient":
			out = append(out, "Work with one patient's record, the one chosen at sign-in")
		default:
			if sc, err := policy.ParseScope(s); err == nil {
				out = append(out, describeSMART(sc))
			}
		}
	}
	return out
}

func describeSMART(sc policy.Scope) string {
	var what string
	switch {
	case sc.Context == "patient" && sc.Type == "*":
		what = "all of the patient's records"
	case sc.Context == "patient":
		what = "the patient's " + sc.Type + " records"
	case sc.Type == "*":
		what = "all records you may see"
	default:
		what = sc.Type + " records you may see"
	}
	var verbs []string
	s := sc.String()
	letters := s[strings.LastIndexByte(s, '.')+1:]
	for _, c := range letters {
		switch c {
		case 'c':
			verbs = append(verbs, "create")
		case 'r':
			verbs = append(verbs, "read")
		case 'u':
			verbs = append(verbs, "change")
		case 'd':
			verbs = append(verbs, "delete")
		case 's':
			verbs = append(verbs, "search")
		}
	}
	v := strings.Join(verbs, " and ")
	return strings.ToUpper(v[:1]) + v[1:] + " " + what
}

// maxAge is an app's max_age (OpenID Connect Core 3.1.2.1) as a duration.
// A value past a year is taken as a year, so that it cannot overflow into
// a negative or small duration; a sign-in session ends long before.
func maxAge(seconds uint) time.Duration {
	const year = 366 * 24 * 60 * 60
	if seconds > year {
		return year * time.Second
	}
	return time.Duration(seconds) * time.Second
}
