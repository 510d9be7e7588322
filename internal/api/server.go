// Package api is Ward's HTTP layer: routing, the security middleware every
// request passes, the FHIR R4 REST mapping and the OAuth2 endpoints.
//
// Every route except /healthz, /readyz, /fhir/metadata, the OAuth2 token and key
// endpoints and the .well-known discovery document requires a bearer token
// (DESIGN invariant 1); access decisions are made by the records service
// through package policy, never here. Every error becomes an
// OperationOutcome through one function (status); a 5xx carries only the
// request id, and its cause goes to the log.
//
// Requests are rate limited (ratelimit.go): per principal right after the
// token verifies, per source address at the endpoints that authenticate
// callers themselves and for failed authentication; a refusal is a 429
// OperationOutcome with Retry-After. /healthz and /readyz never are.
//
// /healthz says the process lives and checks nothing; /readyz runs
// Config.Readiness. Neither is audited (audit.go, unaudited): they say
// nothing about anyone, and a probe every few seconds would otherwise add
// tens of thousands of entries a day to the ledger. With Config.Metrics,
// every request is counted by route pattern (never its path), method and
// status (metrics.go).
//
// Every response carries HSTS, nosniff and a restrictive CSP; FHIR responses
// are Cache-Control: no-store. CORS is answered only for configured origins.
// Request bodies are bounded before they are read, and a compressed body is
// refused rather than inflated.
package api

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/auth"
	"github.com/wardhealth/ward/internal/bulk"
	"github.com/wardhealth/ward/internal/incident"
	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/ratelimit"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/secevent"
	"github.com/wardhealth/ward/internal/signin"
	"github.com/wardhealth/ward/internal/store"
)

const fhirJSON = "application/fhir+json; charset=utf-8"

// MAC authenticates paging links so that they cannot be altered.
type MAC interface {
	Sum(msg []byte) []byte
	Verify(msg, mac []byte) bool
}

// Appender records audit entries durably: Append returns nil only once the
// entry is durable. *audit.Log is the implementation; benchmarks use an
// in-memory double to measure what durability costs. An Appender that
// also has Flush(context.Context) error (a spooled audit.Log) may hold
// durable entries outside the store's ledger for a moment: the ledger
// endpoints and the AuditEvent view flush it before they read.
type Appender interface {
	Append(ctx context.Context, recs ...audit.Record) error
}

// Config is the HTTP layer's configuration. Zero values mean the defaults.
type Config struct {
	// BaseURL is the public URL of the server without a trailing slash,
	// e.g. https://127.0.0.1:8443. FHIR lives under BaseURL + "/fhir".
	BaseURL     string
	MaxBody     int64         // bytes; default 16 MiB
	CORSOrigins []string      // exact origins allowed to call from browsers
	PageTTL     time.Duration // lifetime of paging links; default 1h
	Version     string        // Ward's version, for the CapabilityStatement
	Logger      *slog.Logger
	Now         func() time.Time
	// ClientCerts says that the TLS listener asks clients for
	// certificates (mutual TLS), so that discovery advertises certificate
	// authentication and certificate-bound tokens.
	ClientCerts bool
	// ReadOnly serves a ledger investigation: every request that could
	// change data is refused with 403 and an OperationOutcome saying why,
	// before it reaches a route. What passes: GET, HEAD and OPTIONS, POST
	// .../_search, and the token endpoint. Each request is still audited,
	// so the ledger grows by one entry per request.
	ReadOnly bool
	// RateLimits are the request-rate limits (ratelimit.go); zero members
	// mean ratelimit.DefaultConfig's. Check them with Validate first.
	RateLimits ratelimit.Config
	// Pseudonyms makes the keyed hashes the ledger records in place of
	// values an unproven caller chose (keys.NewPseudonyms of the key
	// file). Default: a key drawn at start, so pseudonyms link attempts
	// within one process only.
	Pseudonyms Pseudonyms
	// Failures bounds the ledger entries of refused requests that prove
	// no one (catalogue E6), and the security events of refused requests
	// (secevents.go) share its window.
	Failures FailureConfig
	// Events receives the security events the HTTP layer raises
	// (secevents.go); default secevent.Log(Logger).
	Events secevent.Emitter
	// Readiness answers GET /readyz (health.Checker); default: 200 "ok",
	// as /healthz.
	Readiness http.Handler
	// Metrics receives each request's route, status and duration, and the
	// refusals it counts (metrics.go); nil: none are taken.
	Metrics Observer
	// LedgerKeys returns the ledger's key chain document (the first
	// checkpoint key and the signed key transitions since, see
	// ledger.KeyChain.Document), served to auditors at GET /ledger/keys
	// so that outside verifiers follow key rotations. Nil: 404.
	LedgerKeys func() ([]byte, error)
}

// Server is the HTTP handler.
type Server struct {
	cfg     Config
	records *records.Service
	ledger  Appender
	view    *audit.View
	auth    *auth.Server
	signin  *signin.Provider
	pages   MAC
	log     *slog.Logger
	// failures counts refused requests that prove no one (failures.go).
	failures *failures
	// events counts the frequent security events (secevents.go).
	events  *eventCounts
	mux     *http.ServeMux
	routes  []string // the patterns registered on mux (Routes)
	meta    []byte   // the CapabilityStatement, built once
	limits  *limits
	exports *bulk.Manager // bulk export jobs; nil: $export is not served
	// incidents works alerts and incidents (security.go); nil: the
	// detection and response API is not served.
	incidents *incident.Service
	// signing runs e-signature ceremonies (esign.go); nil: $sign is
	// not served.
	signing *auth.Signing
}

// New returns the handler for Ward's HTTP API.
func New(cfg Config, rec *records.Service, au *auth.Server, pages MAC, log Appender, view *audit.View) *Server {
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 16 << 20
	}
	if cfg.PageTTL <= 0 {
		cfg.PageTTL = time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Pseudonyms == nil {
		cfg.Pseudonyms = records.RandomPseudonyms()
	}
	if cfg.Events == nil {
		cfg.Events = secevent.Log(cfg.Logger)
	}
	cfg.BaseURL = strings.TrimSuffix(cfg.BaseURL, "/")
	s := &Server{cfg: cfg, records: rec, ledger: log, view: view, auth: au, pages: pages, log: cfg.Logger, mux: http.NewServeMux(),
		limits: newLimits(cfg.RateLimits, cfg.Now), failures: newFailures(cfg.Failures, cfg.Now)}
	s.events = newEventCounts(s.failures.cfg.Window, s.failures.cfg.Sources, cfg.Now)
	s.meta = s.capabilityStatement()
	alive := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	s.handle("GET /healthz", alive)
	if cfg.Readiness != nil {
		s.handle("GET /readyz", cfg.Readiness)
	} else {
		s.handle("GET /readyz", alive)
	}
	s.handle("POST /oauth2/token", http.HandlerFunc(s.token))
	s.handle("GET /oauth2/jwks", http.HandlerFunc(s.jwks))
	s.handle("GET /.well-known/smart-configuration", http.HandlerFunc(s.smartConfiguration))
	s.handle("GET /fhir/.well-known/smart-configuration", http.HandlerFunc(s.smartConfiguration))
	s.handle("/ledger/", http.HandlerFunc(s.ledgerRoute))
	s.handle("/emergency", http.HandlerFunc(s.breakGlass))
	s.handle("/admin/emergency", http.HandlerFunc(s.adminEmergency))
	s.handle("/admin/emergency/", http.HandlerFunc(s.adminEmergency))
	s.handle("/fhir", http.HandlerFunc(s.fhir))
	s.handle("/fhir/", http.HandlerFunc(s.fhir))
	s.handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.writeError(w, r, errNotFound) }))
	return s
}

// handle registers h for pattern on the router and in the route table.
func (s *Server) handle(pattern string, h http.Handler) {
	s.mux.Handle(pattern, h)
	s.routes = append(s.routes, pattern)
}

// Routes returns the router's patterns (net/http ServeMux syntax) in the
// order they were registered: what tests walk to check that every route
// is audited.
func (s *Server) Routes() []string { return slices.Clone(s.routes) }

// ServeHTTP runs the middleware chain, then the route.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rid := newRequestID()
	r = r.WithContext(context.WithValue(r.Context(), ridKey{}, rid))
	if s.cfg.Metrics != nil {
		// Innermost wrapper: it sees the status that leaves, also when
		// the audit writer replaces the handler's with a 503.
		// The deferred closure reads r when the request ends: the router
		// has then set the Pattern of the request it routed.
		sw, began := &statusWriter{ResponseWriter: w}, time.Now()
		w = sw
		defer func() { s.observe(sw, r, began) }()
	}
	h := w.Header()
	h.Set("X-Request-Id", rid)
	h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	if Audited(r.URL.Path) {
		x := newExchange(r, rid)
		r = r.WithContext(signin.WithEvents(context.WithValue(r.Context(), exchangeKey{}, x), &x.signIn))
		w = &auditWriter{ResponseWriter: w, s: s, r: r, x: x}
	}
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.LogAttrs(r.Context(), slog.LevelError, "panic", slog.String("request_id", rid), slog.Any("panic", v))
			s.writeError(w, r, errPanic)
		}
	}()
	if !s.cors(w, r) {
		return
	}
	for _, name := range []string{"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"} {
		if r.Header.Get(name) != "" {
			s.writeError(w, r, errForbidden)
			return
		}
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		s.writeError(w, r, errMediaType)
		return
	}
	if r.ContentLength > s.cfg.MaxBody {
		s.writeError(w, r, errTooLarge)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBody)
	w, ok := s.limitAddress(w, r)
	if !ok {
		return
	}
	if s.cfg.ReadOnly && !readOnlyAllows(r) {
		s.writeError(w, r, errReadOnly)
		return
	}
	if hasDotSegment(r.URL.Path) {
		// ServeMux would redirect to the cleaned path, but a request for
		// Patient/.. is not one for the path it resolves to. The FHIR
		// routes answer it (an update's id is malformed: 400; anything
		// else names nothing: 404); other routes have no such path.
		if strings.HasPrefix(r.URL.Path, "/fhir/") {
			s.fhir(w, r)
		} else {
			s.writeError(w, r, errNotFound)
		}
		return
	}
	s.mux.ServeHTTP(w, r)
}

// readOnlyAllows reports whether a read-only server (Config.ReadOnly)
// serves r: by method, so that a route added later is refused unless it
// answers GET; the two POSTs that change no data are named.
func readOnlyAllows(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	case http.MethodPost:
		p := r.URL.Path
		return p == "/oauth2/token" || (strings.HasPrefix(p, "/fhir/") && strings.HasSuffix(p, "/_search"))
	}
	return false
}

// hasDotSegment reports whether a URL path has a "." or ".." segment.
func hasDotSegment(path string) bool {
	for _, seg := range strings.Split(path, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

type panicError struct{}

func (panicError) Error() string { return "api: handler panicked" }

var errPanic error = panicError{}

// cors answers cross-origin requests from configured origins and refuses
// the rest. It reports whether the request should go on.
func (s *Server) cors(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	allowed := origin != "null" && slices.Contains(s.cfg.CORSOrigins, origin)
	w.Header().Add("Vary", "Origin")
	if !allowed {
		if r.Method == http.MethodOptions {
			s.writeError(w, r, errForbidden)
			return false
		}
		return true // no CORS headers: the browser withholds the answer
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Expose-Headers", "Location, ETag, Last-Modified, X-Request-Id")
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, If-Match, If-None-Exist, Prefer")
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return false
	}
	return true
}

type ridKey struct{}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func requestID(ctx context.Context) string {
	id, _ := ctx.Value(ridKey{}).(string)
	return id
}

// authenticate verifies the bearer token and returns the caller, whom the
// request's audit entry then names, and charges the request to the
// caller's rate limit before anything else is done for it (ratelimit.go).
// A token bound to a client certificate is accepted only over a
// connection that presented that certificate. An address whose requests
// failed authentication too often is refused before its token is checked.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (records.Caller, error) {
	x := exchangeOf(r)
	if err := s.blockedAddress(w, r); err != nil {
		return x.caller, err
	}
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		s.authFailed(r)
		return x.caller, errUnauthenticated
	}
	p, err := s.auth.VerifyFor(r.Context(), strings.TrimSpace(token), peerCert(r))
	if err != nil {
		if errors.Is(err, auth.ErrInvalidToken) && !errors.Is(err, store.ErrUnavailable) {
			s.authFailed(r)
		}
		return x.caller, err
	}
	x.caller.Subject = policy.Subject{ClientID: p.ClientID, Scopes: p.Scopes, UserID: p.UserID, Role: p.Role, Patient: p.Patient, FHIRUser: p.FHIRUser}
	if p.TokenID != "" {
		x.caller.Token = s.cfg.Pseudonyms.Sum(pseudoToken, p.TokenID)
	}
	x.user, x.verified = p.UserID, true
	x.mfa, x.mfaTime = p.ACR == signin.ACRMFA, p.MFATime
	if err := s.limitPrincipal(w, r, p.ClientID, p.UserID, p.Role); err != nil {
		return x.caller, err
	}
	// The patients a practitioner's care relationships and break-the-glass
	// grants reach are looked up once per request, before any decision.
	if err := s.records.Relate(r.Context(), &x.caller); err != nil {
		return x.caller, err
	}
	return x.caller, nil
}

// peerCert returns the client certificate of the request's TLS connection,
// whose key the client proved to hold in the handshake, or nil.
func peerCert(r *http.Request) *x509.Certificate {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil
	}
	return r.TLS.PeerCertificates[0]
}
