package federation

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"
)

// Secret is Ward's client secret at an issuer. It does not print:
// String, GoString and every fmt verb redact it.
type Secret struct{ v string }

// NewSecret wraps a client secret read from its file.
func NewSecret(s string) Secret { return Secret{v: s} }

// Reveal returns the secret itself, to authenticate at the issuer.
func (s Secret) Reveal() string { return s.v }

// IsZero reports whether there is no secret.
func (s Secret) IsZero() bool { return s.v == "" }

// Equal reports whether s and o are the same secret, in constant time.
func (s Secret) Equal(o Secret) bool {
	return subtle.ConstantTimeCompare([]byte(s.v), []byte(o.v)) == 1
}

// String redacts the secret.
func (s Secret) String() string { return "federation.Secret(redacted)" }

// GoString redacts the secret.
func (s Secret) GoString() string { return s.String() }

// Format redacts the secret under every verb.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, s.String()) }

// maxSignInScopes bounds SignInScopes.
const maxSignInScopes = 16

// checkSignIn validates the sign-in settings of an issuer and fills in
// their defaults.
func (is *Issuer) checkSignIn() error {
	if is.ClientID == "" {
		if !is.ClientSecret.IsZero() || is.ClientSecretFile != "" || len(is.SignInScopes) != 0 {
			return errors.New("a client secret or sign-in scopes need a client id")
		}
		return nil
	}
	if is.ClientSecretFile != "" && is.ClientSecret.IsZero() {
		return errors.New("client secret file named but not read")
	}
	if !is.ClientSecret.IsZero() && !printable(is.ClientSecret.v, maxConfigStringBytes) {
		return errors.New("client secret is not 1 to 2048 printable ASCII characters")
	}
	if len(is.SignInScopes) == 0 {
		is.SignInScopes = []string{"openid"}
	}
	if len(is.SignInScopes) > maxSignInScopes || !slices.Contains(is.SignInScopes, "openid") {
		return fmt.Errorf("sign-in scopes must include openid, at most %d", maxSignInScopes)
	}
	for _, s := range is.SignInScopes {
		if !printable(s, 256) {
			return errors.New("a sign-in scope is empty or not printable ASCII")
		}
	}
	return nil
}

// SignInIssuer is an issuer people may sign in to Ward through: one
// configured with a ClientID.
type SignInIssuer struct {
	URL          string
	Name         string
	ClientID     string
	ClientSecret Secret   // zero: Ward is a public client at the issuer
	Scopes       []string // what Ward asks for; openid among them
}

// SignInIssuers returns the issuers configured for sign-ins, in
// configuration order.
func (v *Verifier) SignInIssuers() []SignInIssuer {
	var out []SignInIssuer
	for _, st := range v.order {
		is := &st.cfg
		if is.ClientID == "" {
			continue
		}
		out = append(out, SignInIssuer{URL: is.URL, Name: is.Name, ClientID: is.ClientID, ClientSecret: is.ClientSecret,
			Scopes: slices.Clone(is.SignInScopes)})
	}
	return out
}

// Endpoints are what a sign-in through an issuer needs of it: the OAuth
// 2.0 authorization and token endpoints, and the client to reach the
// token endpoint with.
type Endpoints struct {
	Authorization string // where the person's browser is sent
	Token         string // where Ward exchanges the code
	// Client follows the rules of key fetching: verified TLS 1.2+ against
	// Config.RootCAs, FetchTimeout end to end, no proxy, the issuer's
	// address allowances checked at dial time, same-origin redirects only.
	Client *http.Client
}

// SignInEndpoints returns the sign-in endpoints of a configured sign-in
// issuer, read from its discovery document (the one its keys are found
// through: a discovery for keys serves both) under the same limits. They
// are cached like keys: refreshed after RefreshInterval, fetched at most
// once per MinRefetchInterval, the last good ones kept up to MaxStaleness
// while the issuer is down, and never waited for longer than FetchTimeout
// or ctx. The authorization endpoint must be https; the token endpoint
// too, on the issuer's origin unless AllowCrossOriginJWKS. Any error
// means the sign-in cannot go ahead now.
func (v *Verifier) SignInEndpoints(ctx context.Context, issuer string) (Endpoints, error) {
	st := v.issuers[issuer]
	if st == nil || st.endpoints == nil {
		return Endpoints{}, fmt.Errorf("federation: %w: no sign-ins through this issuer", ErrUnknownIssuer)
	}
	authz, token, err := st.endpoints.get(ctx)
	if err != nil {
		return Endpoints{}, fmt.Errorf("federation: issuer %s: sign-in endpoints: %w", st.cfg.Name, err)
	}
	return Endpoints{Authorization: authz, Token: token, Client: st.keys.f.client}, nil
}

// endpointSource holds one issuer's sign-in endpoints: the last good
// pair, when it was learnt, and at most one fetch in flight.
type endpointSource struct {
	is      *Issuer
	f       *fetcher
	timeout time.Duration
	refresh time.Duration
	minGap  time.Duration
	stale   time.Duration
	now     func() time.Time

	mu            sync.Mutex
	authorization string
	token         string        // "" until learnt
	at            time.Time     // when they were learnt
	lastTry       time.Time     // when the last fetch of its own started
	lastErr       error         // why the last fetch failed; nil after a success
	inflight      chan struct{} // closed when the running fetch ends
}

// check validates the endpoints a discovery document names.
func (s *endpointSource) check(doc discoveryDoc) (authz, token string, err error) {
	au, err := checkURL(doc.authorization)
	if err != nil {
		return "", "", fmt.Errorf("authorization_endpoint: %w", err)
	}
	if err := checkHost(au, s.is.AllowLoopback, s.is.AllowPrivateNetworks); err != nil {
		return "", "", fmt.Errorf("authorization_endpoint: %w", err)
	}
	tu, err := checkURL(doc.token)
	if err != nil {
		return "", "", fmt.Errorf("token_endpoint: %w", err)
	}
	iu, _ := url.Parse(s.is.URL) // checked by New
	if !s.is.AllowCrossOriginJWKS && !sameOrigin(tu, iu) {
		return "", "", errors.New("token_endpoint is on another origin than the issuer")
	}
	if err := checkHost(tu, s.is.AllowLoopback, s.is.AllowPrivateNetworks); err != nil {
		return "", "", fmt.Errorf("token_endpoint: %w", err)
	}
	return doc.authorization, doc.token, nil
}

// learn records the endpoints of a discovery document fetched for keys.
// Endpoints that do not check out are ignored: the sign-in's own fetch
// reports why.
func (s *endpointSource) learn(doc discoveryDoc) {
	authz, token, err := s.check(doc)
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.authorization, s.token, s.at, s.lastErr = authz, token, s.now(), nil
}

// get returns the endpoints, fetching the discovery document when they
// are missing or due for a refresh, within the limits above.
func (s *endpointSource) get(ctx context.Context) (authz, token string, err error) {
	now := s.now()
	s.mu.Lock()
	authz, token = s.authorization, s.token
	usable := token != "" && now.Sub(s.at) <= s.stale
	if usable && now.Sub(s.at) < s.refresh {
		s.mu.Unlock()
		return authz, token, nil
	}
	wait := s.inflight
	if wait == nil && (s.lastTry.IsZero() || now.Sub(s.lastTry) >= s.minGap) {
		wait = s.start(ctx, now)
	}
	lastErr := s.lastErr
	s.mu.Unlock()
	if usable {
		return authz, token, nil // still good; the refresh runs in the background
	}
	if wait == nil {
		if lastErr == nil {
			lastErr = errors.New("not fetched yet")
		}
		return "", "", lastErr
	}
	select {
	case <-wait:
	case <-ctx.Done():
		return "", "", fmt.Errorf("waiting for discovery: %w", ctx.Err())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token != "" && s.now().Sub(s.at) <= s.stale {
		return s.authorization, s.token, nil
	}
	if s.lastErr != nil {
		return "", "", s.lastErr
	}
	return "", "", errors.New("not fetched yet")
}

// start begins a fetch in its own goroutine, bounded by the fetch timeout
// and detached from the caller's cancellation (others may wait for it).
// It is called with s.mu held.
func (s *endpointSource) start(ctx context.Context, now time.Time) chan struct{} {
	done := make(chan struct{})
	s.inflight, s.lastTry = done, now
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
	go func() {
		defer cancel()
		doc, err := s.f.discover(fctx, s.is)
		var authz, token string
		if err == nil {
			authz, token, err = s.check(doc)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if err != nil {
			s.lastErr = err
		} else {
			s.authorization, s.token, s.at, s.lastErr = authz, token, s.now(), nil
		}
		s.inflight = nil
		close(done)
	}()
	return done
}
