package signin

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/wardhealth/ward/internal/auth"
	"github.com/wardhealth/ward/internal/auth/federation"
	"github.com/wardhealth/ward/internal/store"
)

// PathFederatedCallback is where external OpenID providers send people
// back: register Ward's issuer URL + this path as the redirect URI of
// Ward's client at each provider.
const PathFederatedCallback = PathSignIn + "/federated/callback"

// pathFederated is where the sign-in page's "Sign in with <Name>" buttons
// post.
const pathFederated = PathSignIn + "/federated"

// cookieFederated binds a sign-in through a provider to the browser that
// started it: the authorization request keeps only the cookie's hash, so
// a provider's redirect carried to another browser (login CSRF) finds no
// match. Lax, since the provider's redirect back is a cross-site
// navigation.
const cookieFederated = "__Host-ward-federated"

// actionFederated names the audit events of sign-ins through a provider.
const actionFederated = "signin-federated"

// maxCodeLen bounds the provider's authorization code Ward passes on.
const maxCodeLen = 4096

// freshSlack is how long after the provider's auth_time a sign-in still
// meets an app's max_age: the redirect back and the exchange take time.
const freshSlack = time.Minute

// msgFederatedMFA is what a person whose role needs a second factor sees
// when their provider reported none.
const msgFederatedMFA = "Your role in Ward needs a second factor, and your organisation's sign-in did not report one. " +
	"Sign in to your organisation with a second factor (ask its administrators how), then start again from the app."

// federatedSignIn is a sign-in through an external OpenID provider in
// flight, kept with the authorization request. The browser sees only the
// state and the nonce (through the provider); the PKCE verifier never
// leaves the server.
type federatedSignIn struct {
	Issuer   string `json:"issuer"`
	State    string `json:"state"`    // the random part of the state sent
	Nonce    string `json:"nonce"`    // the id_token must carry it
	Verifier string `json:"verifier"` // PKCE code_verifier (S256)
	Browser  string `json:"browser"`  // hash of cookieFederated's value
}

// signInView is the sign-in page for a flow, with the providers it offers.
func (pg *pages) signInView(f *flow, errMsg string) view {
	v := view{Title: "Sign in", ID: f.req.ID, App: f.app.Name, Error: errMsg}
	for _, is := range pg.signInIssuers() {
		v.Providers = append(v.Providers, provider{URL: is.URL, Name: is.Name})
	}
	return v
}

// signInIssuers are the issuers people may sign in through: those of the
// federation verifier the auth server was given that have a client id.
func (pg *pages) signInIssuers() []federation.SignInIssuer {
	if v := pg.p.auth.Federation(); v != nil {
		return v.SignInIssuers()
	}
	return nil
}

func (pg *pages) signInIssuer(url string) (federation.SignInIssuer, bool) {
	for _, is := range pg.signInIssuers() {
		if is.URL == url {
			return is, true
		}
	}
	return federation.SignInIssuer{}, false
}

// federatedStart sends the person to their provider: authorization code
// flow with PKCE (S256), a state naming this authorization request, and
// a nonce, all kept with the request.
func (pg *pages) federatedStart(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		pg.render(w, r, http.StatusMethodNotAllowed, "message", view{Title: "Not found", Message: "There is no such page."})
		return
	}
	f, ok := pg.load(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	is, ok := pg.signInIssuer(r.PostFormValue("issuer"))
	if !ok {
		pg.p.event(ctx, Event{Action: actionFederated, Client: f.app.ID, Detail: "unknown-issuer"})
		pg.render(w, r, http.StatusBadRequest, "signin", pg.signInView(f, "Choose one of the organisations below."))
		return
	}
	eps, err := pg.p.auth.Federation().SignInEndpoints(ctx, is.URL)
	if err != nil {
		pg.unavailable(w, r, f, is, err)
		return
	}
	var state, nonce, binding string
	for _, p := range []*string{&state, &nonce, &binding} {
		if *p, err = randomToken(32); err != nil {
			pg.fail(w, r, err)
			return
		}
	}
	verifier := oauth2.GenerateVerifier()
	f.req.Federated = &federatedSignIn{Issuer: is.URL, State: state, Nonce: nonce, Verifier: verifier, Browser: hashToken(binding)}
	if err := (storage{p: pg.p}).saveRequest(ctx, f.req, ""); err != nil {
		pg.fail(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieFederated, Value: binding, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, MaxAge: int(pg.p.cfg.SignInTimeout / time.Second)})
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", nonce)}
	if f.req.MaxAge != nil {
		opts = append(opts, oauth2.SetAuthURLParam("max_age", strconv.FormatUint(uint64(*f.req.MaxAge), 10)))
	}
	pg.p.event(ctx, Event{Action: actionFederated, Client: f.app.ID, Detail: "redirect"})
	http.Redirect(w, r, pg.oauthConfig(is, eps).AuthCodeURL(f.req.ID+"."+state, opts...), http.StatusSeeOther)
}

// oauthConfig is Ward as a client of the provider: client_secret_basic
// with a secret, else a public client (PKCE only).
func (pg *pages) oauthConfig(is federation.SignInIssuer, eps federation.Endpoints) *oauth2.Config {
	style := oauth2.AuthStyleInParams
	if !is.ClientSecret.IsZero() {
		style = oauth2.AuthStyleInHeader
	}
	return &oauth2.Config{
		ClientID: is.ClientID, ClientSecret: is.ClientSecret.Reveal(), Scopes: is.Scopes,
		Endpoint:    oauth2.Endpoint{AuthURL: eps.Authorization, TokenURL: eps.Token, AuthStyle: style},
		RedirectURL: pg.p.cfg.Issuer + PathFederatedCallback,
	}
}

// federatedCallback finishes a sign-in through a provider: the state
// names the authorization request and must match it and the browser; the
// code is exchanged once; the id_token must verify with the nonce sent
// and come from the provider the person chose. The person's shadow user
// is then provisioned or updated, a Ward session begins with the
// provider's authentication evidence, and the flow goes on as after a
// password.
func (pg *pages) federatedCallback(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		pg.render(w, r, http.StatusMethodNotAllowed, "message", view{Title: "Not found", Message: "There is no such page."})
		return
	}
	ctx := r.Context()
	id, state, _ := strings.Cut(r.FormValue("state"), ".")
	f, fl, ok := pg.matchState(w, r, id, state)
	if !ok {
		return
	}
	is, known := pg.signInIssuer(fl.Issuer)
	if !known {
		pg.unavailable(w, r, f, federation.SignInIssuer{Name: "your organisation"}, errors.New("issuer no longer configured"))
		return
	}
	refuse := func(status int, detail, msg string) {
		pg.p.event(ctx, Event{Action: actionFederated, Client: f.app.ID, Detail: detail})
		pg.render(w, r, status, "signin", pg.signInView(f, msg))
	}
	// RFC 9207: a provider that names itself in the response must name
	// the one the person chose (a mix-up attack otherwise).
	if iss := r.FormValue("iss"); iss != "" && iss != is.URL {
		pg.p.cfg.Logger.Warn("external sign-in refused: the response names another issuer", "issuer", is.Name)
		refuse(http.StatusUnauthorized, "wrong-issuer", msgFederatedRefused(is))
		return
	}
	code := r.FormValue("code")
	if r.FormValue("error") != "" || code == "" || len(code) > maxCodeLen {
		refuse(http.StatusUnauthorized, "idp-error", is.Name+" did not sign you in. Try again, or choose another way to sign in.")
		return
	}
	v := pg.p.auth.Federation()
	eps, err := v.SignInEndpoints(ctx, is.URL)
	if err != nil {
		pg.unavailable(w, r, f, is, err)
		return
	}
	tok, err := pg.oauthConfig(is, eps).Exchange(context.WithValue(ctx, oauth2.HTTPClient, eps.Client), code, oauth2.VerifierOption(fl.Verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode < 500 {
			pg.p.cfg.Logger.Warn("external sign-in: the provider refused the code", "issuer", is.Name, "status", re.Response.StatusCode)
			refuse(http.StatusUnauthorized, "exchange-refused", is.Name+" did not confirm your sign-in. Try again.")
			return
		}
		if re != nil && re.Response != nil {
			err = errors.New("token endpoint answered " + strconv.Itoa(re.Response.StatusCode)) // not its body
		}
		pg.unavailable(w, r, f, is, err)
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		refuse(http.StatusUnauthorized, "token-invalid", msgFederatedRefused(is))
		return
	}
	ident, err := v.VerifyIDToken(ctx, raw, fl.Nonce)
	if errors.Is(err, federation.ErrKeysUnavailable) {
		pg.unavailable(w, r, f, is, err)
		return
	}
	if err != nil || ident.Issuer != is.URL {
		if err == nil {
			err = errors.New("id_token of another issuer than the one chosen")
		}
		pg.p.cfg.Logger.Warn("external sign-in refused: its id_token does not verify", "issuer", is.Name, "error", err.Error())
		refuse(http.StatusUnauthorized, "token-invalid", msgFederatedRefused(is))
		return
	}
	pg.finishFederated(w, r, f, is, ident)
}

// matchState finds the authorization request a provider's redirect
// belongs to and checks the state and the browser binding. A match is
// used up: the request forgets the provider sign-in before the code is
// exchanged, so a replayed redirect finds nothing.
func (pg *pages) matchState(w http.ResponseWriter, r *http.Request, id, state string) (*flow, *federatedSignIn, bool) {
	ctx := r.Context()
	mismatch := func(client string) {
		pg.p.cfg.Logger.Warn("external sign-in refused: its state matches no sign-in of this browser")
		pg.p.event(ctx, Event{Action: actionFederated, Client: client, Detail: "state-mismatch"})
		pg.render(w, r, http.StatusBadRequest, "message", view{Title: "Sign-in not recognised",
			Message: "Ward cannot match this answer from your organisation to a sign-in started in this browser. Go back to the app and start again."})
	}
	if id == "" || len(id) > 64 || state == "" {
		mismatch("")
		return nil, nil, false
	}
	if _, err := pg.p.st.AuthRequest(ctx, id); errors.Is(err, store.ErrNotFound) {
		mismatch("")
		return nil, nil, false
	}
	f, ok := pg.loadID(w, r, id)
	if !ok {
		return nil, nil, false
	}
	fl := f.req.Federated
	c, err := r.Cookie(cookieFederated)
	if fl == nil || err != nil ||
		subtle.ConstantTimeCompare([]byte(state), []byte(fl.State)) != 1 ||
		subtle.ConstantTimeCompare([]byte(hashToken(c.Value)), []byte(fl.Browser)) != 1 {
		mismatch(f.app.ID)
		return nil, nil, false
	}
	f.req.Federated = nil
	if err := (storage{p: pg.p}).saveRequest(ctx, f.req, ""); err != nil {
		pg.fail(w, r, err)
		return nil, nil, false
	}
	http.SetCookie(w, &http.Cookie{Name: cookieFederated, Value: "", Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode, MaxAge: -1})
	return f, fl, true
}

// finishFederated signs in the person a verified id_token names.
func (pg *pages) finishFederated(w http.ResponseWriter, r *http.Request, f *flow, is federation.SignInIssuer, ident federation.Identity) {
	ctx := r.Context()
	refuse := func(status int, userID, detail, tmpl, msg string) {
		pg.p.event(ctx, Event{Action: actionFederated, UserID: userID, Client: f.app.ID, Detail: detail})
		v := view{Title: "Sign-in refused", Message: msg}
		if tmpl == "signin" {
			v = pg.signInView(f, msg)
		}
		pg.render(w, r, status, tmpl, v)
	}
	// A role that needs a second factor never gets a session without the
	// provider's evidence of one (package federation refuses such
	// id_tokens for the roles it knows; Ward may require more).
	if pg.p.users.MFARequired(store.User{Role: ident.Role}) && !ident.MFA {
		refuse(http.StatusForbidden, ident.UserID, "mfa-required", "message", msgFederatedMFA)
		return
	}
	now := pg.p.cfg.Now().UTC().Truncate(time.Second)
	authTime := ident.AuthTime
	if authTime.IsZero() {
		authTime = ident.IssuedAt
	}
	if authTime.After(now) {
		authTime = now
	}
	stale := "Your sign-in at " + is.Name + " is older than this app allows. Sign out there, then sign in again."
	if f.req.MaxAge != nil && (ident.AuthTime.IsZero() || now.Sub(authTime) > maxAge(*f.req.MaxAge)+freshSlack) {
		refuse(http.StatusUnauthorized, ident.UserID, "stale-auth", "signin", stale)
		return
	}
	usr, err := pg.p.users.Federated(ctx, ident)
	if errors.Is(err, auth.ErrBadUser) {
		pg.p.cfg.Logger.Warn("external sign-in refused: its identity does not map to a Ward user", "issuer", is.Name, "error", err.Error())
		refuse(http.StatusUnauthorized, "", "token-invalid", "signin", msgFederatedRefused(is))
		return
	}
	if err != nil {
		pg.fail(w, r, err)
		return
	}
	if usr.Disabled {
		refuse(http.StatusForbidden, usr.ID, "disabled", "message", "Your account cannot use Ward. Ask Ward's administrators.")
		return
	}
	if authTime.Before(usr.NotBefore) {
		refuse(http.StatusUnauthorized, usr.ID, "stale-auth", "signin", stale)
		return
	}
	tok, err := randomToken(32)
	if err != nil {
		pg.fail(w, r, err)
		return
	}
	s := store.Session{ID: hashToken(tok), UserID: usr.ID, Created: now, LastSeen: now, AuthTime: authTime, AMR: federatedAMR(ident)}
	if ident.MFA {
		s.MFATime = authTime
	}
	// The provider was asked for the app's max_age and its auth_time
	// checked against it above; a max_age=0 flow counts this sign-in as
	// made for it.
	if err := pg.startSession(w, r, f, s, tok); err != nil {
		pg.fail(w, r, err)
		return
	}
	pg.p.event(ctx, Event{Action: actionFederated, UserID: usr.ID, Client: f.app.ID, Detail: "ok"})
	f.sess, f.user = &s, usr
	pg.next(w, r, f)
}

// unavailable answers 503 when the provider cannot be reached or its
// answer cannot be checked now; the password form and other providers
// stay on offer.
func (pg *pages) unavailable(w http.ResponseWriter, r *http.Request, f *flow, is federation.SignInIssuer, err error) {
	pg.p.cfg.Logger.Warn("external sign-in: provider unavailable", "issuer", is.Name, "error", err.Error())
	pg.p.event(r.Context(), Event{Action: actionFederated, Client: f.app.ID, Detail: "unavailable"})
	pg.render(w, r, http.StatusServiceUnavailable, "signin", pg.signInView(f,
		"Ward cannot reach "+is.Name+" right now. Try again in a few minutes, or choose another way to sign in."))
}

func msgFederatedRefused(is federation.SignInIssuer) string {
	return "Ward could not accept the sign-in from " + is.Name + ". Try again, or ask your administrators."
}

// federatedAMR is a session's amr after a sign-in through a provider: the
// provider's values that are short tokens, without any that Ward counts
// as a second factor unless the provider's evidence counts by its
// issuer's rules, and then with "mfa" among them.
func federatedAMR(id federation.Identity) []string {
	var out []string
	for _, m := range id.AMR {
		if len(out) == 8 {
			break
		}
		if !amrToken(m) || (!id.MFA && acrOf([]string{m}) == ACRMFA) || slices.Contains(out, m) {
			continue
		}
		out = append(out, m)
	}
	if id.MFA && acrOf(out) != ACRMFA {
		out = append(out, "mfa")
	}
	return out
}

// amrToken accepts 1 to 32 of a-z A-Z 0-9 - _ . (RFC 8176 values are
// short lowercase names).
func amrToken(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
