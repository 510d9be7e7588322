package api

import (
	"net/http"
	"net/netip"
	"time"

	"github.com/wardhealth/ward/internal/ratelimit"
	"github.com/wardhealth/ward/internal/signin"
)

// Rate limiting (DESIGN: authenticate -> rate limit -> ...), with buckets
// kept in this process (package ratelimit):
//
//   - every authenticated request takes a token from its principal's
//     bucket (client and person) right after the token is verified,
//     before any other work; its limit is the client's override, else the
//     person's role's, else the default;
//   - every request to an endpoint that authenticates the caller itself
//     (the token endpoint, the other OAuth2 endpoints, the sign-in pages)
//     takes one from its source address's bucket before anything else;
//   - a request whose bearer token fails takes one from its address's
//     failure bucket, and an address that emptied it is refused before
//     its tokens are checked;
//   - a password or second-factor submission takes one from its address's
//     sign-in bucket before the credential is checked, given back when it
//     succeeds, so only failures count (guessing spread over many
//     accounts).
//
// A refused request gets 429 with Retry-After; every response of a
// request charged to a bucket carries RateLimit-Policy and RateLimit
// (draft-ietf-httpapi-ratelimit-headers-11). /healthz, /readyz, metadata,
// discovery and key sets are never limited.

// Policy names in the RateLimit fields.
const (
	policyPrincipal    = "principal"
	policyAddress      = "address"
	policyAuthFailures = "auth-failures"
	policySignIn       = "signin-attempts"
)

// principalKey is whom a principal's bucket belongs to: a service, or a
// person acting through an app.
type principalKey struct{ client, user string }

// quota is a limit with its RateLimit-Policy field, written once.
type quota struct {
	limit  ratelimit.Limit
	policy string
}

func newQuota(name string, l ratelimit.Limit) quota {
	return quota{limit: l, policy: ratelimit.PolicyField(name, l)}
}

// limits holds the buckets and the quotas they are checked against.
type limits struct {
	cfg        ratelimit.Config
	principal  quota
	roles      map[string]quota
	clients    map[string]quota
	address    quota
	failures   quota
	attempts   quota
	principals *ratelimit.Limiter[principalKey]
	addresses  *ratelimit.Limiter[netip.Prefix]
	failed     *ratelimit.Limiter[netip.Prefix]
	signins    *ratelimit.Limiter[netip.Prefix]
}

func newLimits(cfg ratelimit.Config, now func() time.Time) *limits {
	cfg = cfg.WithDefaults()
	l := &limits{
		cfg:        cfg,
		principal:  newQuota(policyPrincipal, cfg.Principal),
		roles:      map[string]quota{},
		clients:    map[string]quota{},
		address:    newQuota(policyAddress, cfg.Address),
		failures:   newQuota(policyAuthFailures, cfg.AuthFailures),
		attempts:   newQuota(policySignIn, cfg.SignInAttempts),
		principals: ratelimit.New[principalKey](cfg.MaxKeys, now),
		addresses:  ratelimit.New[netip.Prefix](cfg.MaxKeys, now),
		failed:     ratelimit.New[netip.Prefix](cfg.MaxKeys, now),
		signins:    ratelimit.New[netip.Prefix](cfg.MaxKeys, now),
	}
	for r, lim := range cfg.Roles {
		l.roles[r] = newQuota(policyPrincipal, lim)
	}
	for c, lim := range cfg.Clients {
		l.clients[c] = newQuota(policyPrincipal, lim)
	}
	return l
}

// forPrincipal is a caller's quota: its client's override, else its
// role's (role is "" for a service), else the default.
func (l *limits) forPrincipal(clientID, role string) quota {
	if q, ok := l.clients[clientID]; ok {
		return q
	}
	if q, ok := l.roles[role]; ok && role != "" {
		return q
	}
	return l.principal
}

// source is the key of a request's source address: the TCP peer, never a
// header a client could set.
func (l *limits) source(r *http.Request) netip.Prefix {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return ratelimit.AddrKey(netip.Addr{}, l.cfg.IPv6Bits)
	}
	return ratelimit.AddrKey(ap.Addr(), l.cfg.IPv6Bits)
}

// The header fields' canonical keys, set without canonicalising them on
// every request.
const (
	headerRateLimit       = "Ratelimit"        // textproto.CanonicalMIMEHeaderKey("RateLimit")
	headerRateLimitPolicy = "Ratelimit-Policy" // textproto.CanonicalMIMEHeaderKey("RateLimit-Policy")
)

// apply checks a request against q in b under key k, adds the RateLimit
// fields of the outcome to h (a request charged to several buckets lists
// each) and, when it was refused, returns the error that answers it.
func apply[K comparable](h http.Header, b *ratelimit.Limiter[K], k K, name string, q quota, take bool) error {
	var d ratelimit.Decision
	if take {
		d = b.Take(k, q.limit)
	} else {
		d = b.Peek(k, q.limit)
	}
	var buf [96]byte
	h[headerRateLimitPolicy] = append(h[headerRateLimitPolicy], q.policy)
	h[headerRateLimit] = append(h[headerRateLimit], string(d.AppendField(buf[:0], name)))
	if d.Allowed {
		return nil
	}
	return &throttledError{retryAfter: d.RetryAfter, policy: name}
}

// selfAuthenticating reports whether a path's endpoint authenticates its
// callers itself, so that its traffic is limited per address.
func selfAuthenticating(path string) bool {
	return path == signin.PathToken || signInPath(path)
}

// signInAttempt reports whether a request submits a password or a second
// factor to the sign-in pages.
func signInAttempt(r *http.Request) bool {
	if r.Method != http.MethodPost {
		return false
	}
	switch r.URL.Path {
	case signin.PathSignIn, signin.PathSignIn + "/mfa", signin.PathSignIn + "/enrol":
		return true
	}
	return false
}

// limitAddress charges a request to an endpoint that authenticates its
// callers itself to its address, and a sign-in submission to the
// address's sign-in bucket. It returns the writer to answer through (one
// that gives the sign-in token back when the submission succeeds) and
// whether the request may go on; when not, it has answered.
func (s *Server) limitAddress(w http.ResponseWriter, r *http.Request) (http.ResponseWriter, bool) {
	if !selfAuthenticating(r.URL.Path) {
		return w, true
	}
	l := s.limits
	src := l.source(r)
	if err := apply(w.Header(), l.addresses, src, policyAddress, l.address, true); err != nil {
		exchangeOf(r).detail = "rate-limited-address"
		s.writeError(w, r, err)
		return w, false
	}
	if !signInAttempt(r) {
		return w, true
	}
	if err := apply(w.Header(), l.signins, src, policySignIn, l.attempts, true); err != nil {
		exchangeOf(r).detail = "rate-limited-address"
		s.writeError(w, r, err)
		return w, false
	}
	return &refundWriter{ResponseWriter: w, refund: func() { l.signins.Refund(src, l.attempts.limit) }}, true
}

// refundWriter gives a sign-in token back when the submission did not
// fail by the caller's fault: a success, or an error of the server's.
type refundWriter struct {
	http.ResponseWriter
	refund func()
	done   bool
}

func (w *refundWriter) WriteHeader(code int) {
	if !w.done {
		w.done = true
		if code < 400 || code >= 500 {
			w.refund()
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *refundWriter) Write(b []byte) (int, error) {
	if !w.done {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *refundWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// blockedAddress reports, without charging, whether the request's address
// used up its failed-authentication bucket: then it is refused before its
// token is checked.
func (s *Server) blockedAddress(w http.ResponseWriter, r *http.Request) error {
	l := s.limits
	src := l.source(r)
	if l.failed.Peek(src, l.failures.limit).Allowed {
		return nil
	}
	err := apply(w.Header(), l.failed, src, policyAuthFailures, l.failures, false)
	if err != nil {
		exchangeOf(r).detail = "rate-limited-address"
	}
	return err
}

// authFailed charges a failed authentication to the request's address.
func (s *Server) authFailed(r *http.Request) {
	l := s.limits
	l.failed.Take(l.source(r), l.failures.limit)
}

// limitPrincipal charges an authenticated request to its principal.
func (s *Server) limitPrincipal(w http.ResponseWriter, r *http.Request, clientID, userID, role string) error {
	l := s.limits
	err := apply(w.Header(), l.principals, principalKey{clientID, userID}, policyPrincipal, l.forPrincipal(clientID, role), true)
	if err != nil {
		exchangeOf(r).detail = "rate-limited"
	}
	return err
}
