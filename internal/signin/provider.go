// Package signin is how people sign in to Ward: the OpenID Connect
// provider (authorization code with PKCE, refresh tokens with rotation and
// reuse detection, revocation, introspection, userinfo, logout), built on
// the OpenID-certified github.com/zitadel/oidc/v3 op package, and the
// server-rendered pages a person sees: sign-in, second factor, enrolment
// of a security key or passkey (WebAuthn) or an authenticator app (TOTP),
// patient picker and the app authorisation page with the scopes in plain
// words.
//
// What it guarantees:
//   - Every app uses PKCE with S256, and its redirect URI matches a
//     registered one exactly. A code works once and for one minute.
//   - A role that needs MFA (admin, auditor, any role configured so) cannot
//     get a token without a second factor in the sign-in: the pages demand
//     it, enrolment first if needed, and token creation checks it again.
//   - Refresh tokens rotate; presenting a used one revokes the whole grant
//     (every access and refresh token issued for it). Revoking any token,
//     logging out, changing a password or disabling a user revokes grants;
//     access tokens are checked against their grant on every use (package
//     auth caches the status for at most its client cache TTL).
//   - Sessions end after an idle timeout and an absolute lifetime. Cookies
//     are __Host- prefixed, Secure, HttpOnly and SameSite; every form
//     carries a CSRF token bound to a cookie; pages are sent with a strict
//     Content-Security-Policy. The only script is /signin/webauthn.js,
//     embedded in the binary, and only the pages that offer a security key
//     allow it, by its exact URL (no inline script, no eval). Every page
//     works without JavaScript for passwords, TOTP and recovery codes.
//   - A WebAuthn ceremony's challenge is kept with the authorization
//     request in the database, never in the browser, and is good for one
//     answer; package auth checks origin, relying party id (the issuer's
//     host), signature and signature counter.
//   - Codes, refresh tokens and session cookies are stored only as hashes.
//   - Sign-ins through an external OpenID provider (an issuer with a
//     client id in the federation.Verifier given to the auth.Server with
//     WithFederation) use the authorization code flow with PKCE (S256); the
//     state names the authorization request and is kept with it, with the
//     nonce and the PKCE verifier, so any replica finishes the flow; a Lax
//     cookie binds the flow to the browser that started it; a state, code
//     or nonce works once. The id_token must verify (package federation)
//     with that nonce and come from the provider the person chose. The
//     person gets a shadow user (auth.Users.Federated) whose role and
//     fhirUser follow the provider's mapping, a session whose amr and MFA
//     time are the provider's evidence, and never a password or a second
//     factor in Ward: a role that needs MFA is refused without the
//     provider's evidence. Ward is registered at the provider with the
//     redirect URI Issuer + PathFederatedCallback.
//
// What it does not do: it renders no FHIR data and decides no access to
// it (package policy does, from the token's scopes and context).
package signin

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/wardhealth/ward/internal/auth"
	"github.com/wardhealth/ward/internal/secevent"
)

// Paths the provider serves, below the issuer URL.
const (
	PathSignIn    = "/signin"
	PathAuthorize = "/oauth2/authorize"
	PathToken     = "/oauth2/token" // #nosec G101 -- an endpoint path, not a credential
	PathUserinfo  = "/oauth2/userinfo"
	PathRevoke    = "/oauth2/revoke"
	PathIntrospec = "/oauth2/introspect"
	PathLogout    = "/oauth2/logout"
	PathKeys      = "/oauth2/jwks"
	PathDiscovery = "/.well-known/openid-configuration"
)

// Event is what one sign-in step did, for its audit entry. An Event
// without an Action only says that the app the request names is
// registered: Client is its id.
type Event struct {
	// Action is "signin", "signin-federated" (through an external
	// provider), "mfa", "mfa-enrol", "authorize" or "logout".
	Action string
	UserID string // set once the person is known
	Client string // the app, when known: a registered client's id, never one as given
	// Account is the id of the account a failed password sign-in tried,
	// when an account has the user name given. Username is that user name,
	// normalised, when none has: it is what an unproven caller typed, so
	// whoever records the request must store only a keyed hash of it, never the name.
	Account, Username string
	// Detail is a short code: "ok", "ok-hwk", "wrong-password", "locked",
	// "replayed", "key-refused", "cloned", ...; for signin-federated
	// "redirect", "ok", "state-mismatch", "wrong-issuer", "idp-error",
	// "exchange-refused", "token-invalid", "unavailable", "mfa-required",
	// "disabled", "stale-auth", "unknown-issuer". Never a token, code or
	// state.
	Detail string
	// Patient is the launch patient, when one is chosen.
	Patient string
}

// Events collects the sign-in events of one request, in order. The
// provider only adds to it; whoever records the request (the HTTP layer,
// which writes the request's ledger entry) gives the provider one through
// WithEvents and reads it back with List. It is safe for concurrent use.
type Events struct {
	mu   sync.Mutex
	list []Event
}

// List returns the events so far, oldest first.
func (ev *Events) List() []Event {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	return slices.Clone(ev.list)
}

func (ev *Events) add(e Event) {
	ev.mu.Lock()
	ev.list = append(ev.list, e)
	ev.mu.Unlock()
}

type eventsKey struct{}

// WithEvents returns a context under which the provider's handling of a
// request adds its sign-in events to ev.
func WithEvents(ctx context.Context, ev *Events) context.Context {
	return context.WithValue(ctx, eventsKey{}, ev)
}

// Config configures the provider. Zero values mean the defaults.
type Config struct {
	Issuer          string        // https URL of this server, e.g. https://ward.example
	Audience        string        // the FHIR base URL: access tokens' aud
	AccessTTL       time.Duration // access and id token lifetime; default 5 minutes
	RefreshTTL      time.Duration // refresh token lifetime; default 8 hours
	SignInTimeout   time.Duration // how long a person has to finish signing in; default 10 minutes
	IdleTimeout     time.Duration // session idle timeout; default 15 minutes
	SessionLifetime time.Duration // absolute session lifetime; default 12 hours
	Logger          *slog.Logger
	Now             func() time.Time
	// Events receives the security events the provider raises itself: a
	// client id throttled at the provider's token endpoint, a security
	// key that may be cloned. (Failed sign-ins reach the ledger's
	// recorder as Event values, which raises theirs.) Default
	// secevent.Log(Logger).
	Events secevent.Emitter
}

// Provider is the OpenID provider and its pages. It is an http.Handler
// for the paths above.
type Provider struct {
	cfg   Config
	st    Store
	auth  *auth.Server
	users *auth.Users
	key   crypto.Signer
	pub   ed25519.PublicKey
	kid   string
	op    *op.Provider
	pages *pages
}

// New returns the provider. signer is Ward's token signing key (the one
// auth.Server signs with), an Ed25519 crypto.Signer that may live in an
// HSM; its key id is auth.Server's.
func New(cfg Config, st Store, au *auth.Server, users *auth.Users, signer crypto.Signer) (*Provider, error) {
	if !strings.HasPrefix(cfg.Issuer, "https://") || !strings.HasPrefix(cfg.Audience, "https://") {
		return nil, errors.New("signin: issuer and audience must be https URLs")
	}
	cfg.Issuer = strings.TrimSuffix(cfg.Issuer, "/")
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.AccessTTL, 5*time.Minute)
	def(&cfg.RefreshTTL, 8*time.Hour)
	def(&cfg.SignInTimeout, 10*time.Minute)
	def(&cfg.IdleTimeout, 15*time.Minute)
	def(&cfg.SessionLifetime, 12*time.Hour)
	if cfg.AccessTTL > time.Hour {
		return nil, errors.New("signin: access token lifetime above one hour")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Events == nil {
		cfg.Events = secevent.Log(cfg.Logger)
	}
	if st == nil || au == nil || users == nil || signer == nil {
		return nil, errors.New("signin: missing store, auth server, users or key")
	}
	pub, err := auth.Ed25519Public(signer)
	if err != nil {
		return nil, fmt.Errorf("signin: %w", err)
	}
	p := &Provider{cfg: cfg, st: st, auth: au, users: users, key: signer, pub: pub, kid: au.KeyID()}
	var cryptoKey [32]byte // only for opaque tokens, which Ward never issues
	if _, err := rand.Read(cryptoKey[:]); err != nil {
		return nil, fmt.Errorf("signin: random: %w", err)
	}
	opCfg := &op.Config{
		CryptoKey:             cryptoKey,
		CodeMethodS256:        true,
		AuthMethodPost:        true,
		GrantTypeRefreshToken: true,
		SupportedScopes:       auth.PersonScopes,
		SupportedClaims:       []string{"sub", "aud", "exp", "iat", "iss", "auth_time", "nonce", "acr", "amr", "azp", "fhirUser", "preferred_username"},
	}
	ep := func(path string) *op.Endpoint { return op.NewEndpoint(strings.TrimPrefix(path, "/")) }
	p.op, err = op.NewProvider(opCfg, storage{p: p}, op.StaticIssuer(cfg.Issuer),
		op.WithCustomEndpoints(ep(PathAuthorize), ep(PathToken), ep(PathUserinfo), ep(PathRevoke), ep(PathLogout), ep(PathKeys)),
		op.WithCustomIntrospectionEndpoint(ep(PathIntrospec)),
		op.WithLogger(cfg.Logger),
		op.WithAccessTokenVerifierOpts(op.WithSupportedAccessTokenSigningAlgorithms(string(jose.EdDSA))),
		op.WithIDTokenHintVerifierOpts(op.WithSupportedIDTokenHintSigningAlgorithms(string(jose.EdDSA))),
		op.WithCORSOptions(nil),
	)
	if err != nil {
		return nil, fmt.Errorf("signin: provider: %w", err)
	}
	if p.pages, err = newPages(p); err != nil {
		return nil, err
	}
	return p, nil
}

// Users returns the user manager the provider signs people in with.
func (p *Provider) Users() *auth.Users { return p.users }

// Handles reports whether path is one of the provider's.
func Handles(path string) bool {
	switch path {
	case PathAuthorize, PathAuthorize + "/callback", PathToken, PathUserinfo, PathRevoke, PathIntrospec, PathLogout, PathDiscovery:
		return true
	}
	return path == PathSignIn || strings.HasPrefix(path, PathSignIn+"/")
}

// ServeHTTP serves the provider's endpoints and pages.
func (p *Provider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == PathSignIn || strings.HasPrefix(r.URL.Path, PathSignIn+"/") {
		p.pages.ServeHTTP(w, r)
		return
	}
	if r.URL.Path == PathLogout {
		p.pages.logout(w, r)
		return
	}
	if r.URL.Path == PathAuthorize+"/callback" {
		// The callback hands the app its code: name the person and the app.
		if ar, err := p.st.AuthRequest(r.Context(), r.FormValue("id")); err == nil {
			if a, err := (storage{p: p}).loadRequest(r.Context(), ar); err == nil {
				p.event(r.Context(), Event{Action: "authorize/callback", UserID: a.UserID, Client: a.ClientID})
			}
		}
	}
	if r.URL.Path == PathUserinfo {
		w = &bearerChallenge{ResponseWriter: w, token: r.Header.Get("Authorization") != ""}
	}
	p.op.ServeHTTP(w, r)
}

// bearerChallenge gives a 401 of the userinfo endpoint, a resource
// protected by a bearer token, the WWW-Authenticate challenge of RFC 6750
// section 3 (OpenID Connect Core 5.3.3), which the OpenID library leaves
// out: "invalid_token" when the request carried a token, no error code
// when it carried none.
type bearerChallenge struct {
	http.ResponseWriter
	token bool
}

func (w *bearerChallenge) WriteHeader(code int) {
	if code == http.StatusUnauthorized && w.Header().Get("WWW-Authenticate") == "" {
		v := `Bearer realm="ward"`
		if w.token {
			v += `, error="invalid_token"`
		}
		w.Header().Set("WWW-Authenticate", v)
	}
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the writer underneath.
func (w *bearerChallenge) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// event adds e to the request's Events, when whoever records the request
// gave it one (WithEvents).
func (p *Provider) event(ctx context.Context, e Event) {
	if ev, ok := ctx.Value(eventsKey{}).(*Events); ok {
		ev.add(e)
	}
}
