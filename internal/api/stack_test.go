package api_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/api"
	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/auth"
	"github.com/wardhealth/ward/internal/bulk"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/fhir/fhirtest"
	"github.com/wardhealth/ward/internal/fhir/search"
	"github.com/wardhealth/ward/internal/incident"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/notify"
	"github.com/wardhealth/ward/internal/ratelimit"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/secevent"
	"github.com/wardhealth/ward/internal/signin"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/sqlite"
	"github.com/wardhealth/ward/internal/tlsconfig"
)

// The search registry and validator are immutable after construction and
// costly to build; tests share one of each.
var (
	sharedRegistry  = sync.OnceValues(search.NewRegistry)
	sharedValidator = sync.OnceValues(fhir.NewValidator)
)

// switchableProvider is a key provider that can be taken down, as an HSM or
// KMS outage would.
type switchableProvider struct {
	keys.KEKProvider
	down atomic.Bool
}

func (p *switchableProvider) Wrap(ctx context.Context, dek, aad []byte) ([]byte, string, error) {
	if p.down.Load() {
		return nil, "", keys.ErrUnavailable
	}
	return p.KEKProvider.Wrap(ctx, dek, aad)
}

func (p *switchableProvider) Unwrap(ctx context.Context, w []byte, id string, aad []byte) ([]byte, error) {
	if p.down.Load() {
		return nil, keys.ErrUnavailable
	}
	return p.KEKProvider.Unwrap(ctx, w, id, aad)
}

// stack is a whole Ward over a real database and real TLS.
type stack struct {
	t        *testing.T
	dir      string
	db       store.Store
	auth     *auth.Server
	keyring  *keys.Keyring
	provider *switchableProvider
	srv      *httptest.Server
	http     *http.Client
	base     string // https://127.0.0.1:port
	token    string // system/*.cruds
	audit    string // system/AuditEvent.rs, made by auditor
	logs     *bytes.Buffer
	events   *eventLog // the security events raised, also written to logs
	keyFile  *keys.LocalFile
	users    *auth.Users
	clock    *testClock // sign-in sessions and users see this clock
	appender api.Appender
	api      *api.Server // the handler, for tests that drive it directly
	exports  *bulk.Manager
	rec      *records.Service
}

// testClock is the real clock plus an offset tests can advance.
// Freeze stops it: from then on only Advance moves it, so that a test of
// time-bounded state (throttles, lockouts) does not depend on how fast the
// machine runs it.
type testClock struct {
	offset atomic.Int64
	frozen atomic.Int64 // unix nanoseconds of the frozen time; 0 while it runs
}

func (c *testClock) Now() time.Time {
	if f := c.frozen.Load(); f != 0 {
		return time.Unix(0, f).Add(time.Duration(c.offset.Load()))
	}
	return time.Now().Add(time.Duration(c.offset.Load()))
}
func (c *testClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }
func (c *testClock) Freeze()                 { c.frozen.Store(time.Now().UnixNano()) }

type stackOptions struct {
	// metrics receives the HTTP layer's measurements (api.Config.Metrics).
	metrics   api.Observer
	openStore func(t *testing.T, dir string) store.Store
	cors      []string
	keyFile   string // share another stack's key file, as replicas do
	wrapStore func(store.Store) store.Store
	ledger    api.Appender // replaces the durable ledger (benchmarks only)
	// directLedger commits each group of entries to the store instead of
	// making them durable first in the spool (the default on SQLite) or
	// the pending table (the default with openStore), as ward serve does.
	directLedger bool
	wrapSpool    func(audit.SpoolFile) audit.SpoolFile
	// noAuthCache makes every token check read the store, so revocation
	// tests see it at once.
	noAuthCache bool
	// localhost names the server https://localhost:port, not by its
	// address: WebAuthn needs a domain name as the relying party id.
	localhost bool
	// mtls makes the listener ask for client certificates, checked
	// against clientCAs when set (tlsconfig.WithClientCerts).
	mtls      bool
	clientCAs *x509.CertPool
	// kek, when set, is the key provider behind the switchable one (an
	// HSM, say); the key file stays for the other keys.
	kek func(t *testing.T, kf *keys.LocalFile) keys.KEKProvider
	// clocked makes the records service and the HTTP layer see the
	// stack's clock too, not only sign-in (tokens still expire in real
	// time).
	clocked bool
	// readOnly serves as ward serve --read-only-investigation does.
	readOnly bool
	// authNow, when set, is the clock of token issue, verification and
	// client-secret throttling.
	authNow func() time.Time
	// limits are the HTTP layer's rate limits (zero: Ward's defaults).
	limits ratelimit.Config
	// observe, when set, sees every request before the server does.
	observe func(*http.Request)
	// failures bounds the entries of refused requests that prove no one.
	failures api.FailureConfig
	// apiNow, when set, is the HTTP layer's clock (after clocked).
	apiNow func() time.Time
	// wrapLedger, when set, wraps the durable ledger the HTTP layer
	// appends to (tests read the store's ledger as usual).
	wrapLedger func(api.Appender) api.Appender
	// endpoints admits Subscription endpoints; default a notify.Guard
	// without an allow-list, which refuses every local address.
	endpoints records.EndpointChecker
	// maxSubscriptions is records.Config.MaxSubscriptions.
	maxSubscriptions int
}

func sqliteStore(t *testing.T, dir string) store.Store {
	db, err := sqlite.Open(context.Background(), filepath.Join(dir, "ward.db"))
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// flushLedger waits until every acknowledged entry is in the store's
// ledger, where tests read it.
func (s *stack) flushLedger() {
	s.t.Helper()
	if f, ok := s.appender.(interface{ Flush(context.Context) error }); ok {
		if err := f.Flush(context.Background()); err != nil {
			s.t.Fatalf("flushing the ledger: %v", err)
		}
	}
}

func newStack(t *testing.T) *stack { return newStackWith(t, stackOptions{}) }

func newStackWith(t *testing.T, o stackOptions) *stack {
	t.Helper()
	// A stack on another store (PostgreSQL, as a rule) makes its read
	// entries durable in the pending table, as ward serve does there.
	pendingLedger := false
	if o.openStore == nil {
		o.openStore = sqliteStore
	} else if !o.directLedger {
		pendingLedger = true
	}
	dir := t.TempDir()
	keyPath := o.keyFile
	if keyPath == "" {
		keyPath = filepath.Join(dir, "keys.json")
		if err := keys.CreateLocalFile(keyPath, keys.LocalParams{}, rand.Reader); err != nil {
			t.Fatal(err)
		}
	}
	kf, err := keys.OpenLocalFile(keyPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	db := o.openStore(t, dir)
	t.Cleanup(func() { db.Close() })
	if o.wrapStore != nil {
		db = o.wrapStore(db)
	}
	var inner keys.KEKProvider = kf
	if o.kek != nil {
		inner = o.kek(t, kf)
	}
	prov := &switchableProvider{KEKProvider: inner}
	kr, err := keys.NewKeyring(prov, records.KeyStore(db), keys.Config{Register: kf})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := sharedRegistry()
	if err != nil {
		t.Fatal(err)
	}
	val, err := sharedValidator()
	if err != nil {
		t.Fatal(err)
	}
	files, _, err := tlsconfig.EnsureDev(filepath.Join(dir, "tls"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(files.Cert, files.Key)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(nil)
	base := "https://" + srv.Listener.Addr().String()
	if o.localhost {
		addr := srv.Listener.Addr().String()
		base = "https://localhost" + addr[strings.LastIndexByte(addr, ':'):]
	}
	acfg := auth.Config{Issuer: base, Audience: base + "/fhir"}
	if o.noAuthCache {
		acfg.ClientCacheTTL = -1
	}
	acfg.Now = o.authNow
	au, err := auth.NewServer(acfg, db, kf.TokenSigner())
	if err != nil {
		t.Fatal(err)
	}
	logs := &bytes.Buffer{}
	events := &eventLog{}
	emitter := secevent.Multi(secevent.Log(newTestLogger(logs)), events)
	clock := &testClock{}
	var rcfg records.Config
	acfg2 := api.Config{BaseURL: base, CORSOrigins: o.cors, Logger: newTestLogger(logs), ClientCerts: o.mtls, ReadOnly: o.readOnly, RateLimits: o.limits,
		Pseudonyms: keys.NewPseudonyms(kf.IndexKey()), Failures: o.failures, Events: emitter, Metrics: o.metrics}
	if o.clocked {
		rcfg.Now, acfg2.Now = clock.Now, clock.Now
	}
	if o.apiNow != nil {
		acfg2.Now = o.apiNow
	}
	var appender api.Appender = o.ledger
	if appender == nil {
		var ledgerLog *audit.Log
		if o.directLedger {
			ledgerLog = audit.New(db, audit.Config{})
		} else if pendingLedger {
			if ledgerLog, err = audit.OpenPending(context.Background(), db, kf.PageKey(), audit.Config{}); err != nil {
				t.Fatal(err)
			}
		} else if ledgerLog, err = audit.OpenSpooled(context.Background(), db, filepath.Join(dir, "ledger-spool"), audit.Config{WrapSpool: o.wrapSpool}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := ledgerLog.Close(); err != nil {
				t.Errorf("closing the ledger: %v", err)
			}
		})
		appender = ledgerLog
	}
	au.WithPeople(db)
	users, err := auth.NewUsers(auth.UsersConfig{Now: clock.Now, Origin: base}, db, kr)
	if err != nil {
		t.Fatal(err)
	}
	prov2, err := signin.New(signin.Config{Issuer: base, Audience: base + "/fhir", Logger: newTestLogger(logs), Now: clock.Now, Events: emitter}, db, au, users, kf.TokenSigner())
	if err != nil {
		t.Fatal(err)
	}
	served := appender
	if o.wrapLedger != nil {
		served = o.wrapLedger(appender)
	}
	rcfg.Ledger, rcfg.Pseudonyms = served, acfg2.Pseudonyms
	rcfg.Endpoints, rcfg.MaxSubscriptions = o.endpoints, o.maxSubscriptions
	if rcfg.Endpoints == nil {
		rcfg.Endpoints = notify.NewGuard(notify.GuardConfig{})
	}
	if rcfg.Certifier, err = ledger.NewCertifier("test/certificates", kf.CertificateSigner()); err != nil {
		t.Fatal(err)
	}
	// The key file answers the e-signature key in force at each signing
	// and every kept key at each verification (ward keys rotate --kind
	// esign takes effect at once).
	rcfg.ESignSource = kf
	rec := records.New(rcfg, db, kr, keys.NewBlindIndex(kf.IndexKey()), reg, val)
	signing, err := auth.NewSigning(auth.SigningConfig{Now: clock.Now}, users, db)
	if err != nil {
		t.Fatal(err)
	}
	bcfg := bulk.Config{Dir: filepath.Join(dir, "exports")}
	if o.clocked {
		bcfg.Now = clock.Now
	}
	exports, err := bulk.New(bcfg, db, rec, kr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(exports.Close)
	ledgerSigner, err := ledger.NewSigner("ward.test/ledger", kf.LedgerSigner())
	if err != nil {
		t.Fatal(err)
	}
	acfg2.LedgerKeys = func() ([]byte, error) {
		c, _, err := ledgerSigner.LedgerKeys()
		if err != nil {
			return nil, err
		}
		return c.Document()
	}
	icfg := incident.Config{Store: db, Ledger: db, Verifier: ledgerSigner.Verifier()}
	if o.clocked {
		icfg.Now = clock.Now
	}
	incidents, err := incident.New(icfg)
	if err != nil {
		t.Fatal(err)
	}
	handler := api.New(acfg2, rec, au, kf.PageKey(), served, audit.NewView(db)).WithSignIn(prov2).WithExports(exports).WithIncidents(incidents).WithSigning(signing)
	srv.Config.Handler = handler
	if o.observe != nil {
		srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			o.observe(r)
			handler.ServeHTTP(w, r)
		})
	}
	srv.TLS = tlsconfig.ServerFor(cert)
	if o.mtls {
		srv.TLS = tlsconfig.WithClientCerts(srv.TLS, o.clientCAs)
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	clientTLS, err := tlsconfig.Client(files.CACert)
	if err != nil {
		t.Fatal(err)
	}
	s := &stack{
		appender: appender, api: handler, exports: exports, rec: rec,
		users: users, clock: clock,
		t: t, dir: dir, db: db, auth: au, keyring: kr, provider: prov, srv: srv, base: base, logs: logs, events: events, keyFile: kf,
		http: &http.Client{Transport: &http.Transport{TLSClientConfig: clientTLS, MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second},
	}
	s.token = s.newToken("system/*.cruds")
	return s
}

// pseudonym is the keyed hash the ledger records in place of a value of
// kind that an unproven caller chose (api.Pseudonyms).
func (s *stack) pseudonym(kind, value string) string {
	return keys.NewPseudonyms(s.keyFile.IndexKey()).Sum(kind, value)
}

// auditor returns the headers of a request by a service whose token
// names audit data (system/AuditEvent.rs), which the wildcard of the
// stack's own token does not cover.
func (s *stack) auditor() []string {
	s.t.Helper()
	if s.audit == "" {
		s.audit = s.newToken("system/AuditEvent.rs")
	}
	return []string{"Authorization", "Bearer " + s.audit}
}

// newToken registers a client with scopes and returns an access token.
func (s *stack) newToken(scopes ...string) string {
	s.t.Helper()
	_, tok := s.serviceToken(scopes...)
	return tok
}

// serviceToken makes a service client with scopes and returns its id and
// a client credentials token.
func (s *stack) serviceToken(scopes ...string) (string, string) {
	s.t.Helper()
	c, secret, err := s.auth.CreateClient(context.Background(), "test", scopes)
	if err != nil {
		s.t.Fatal(err)
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	req, _ := http.NewRequest(http.MethodPost, s.base+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(c.ID), url.QueryEscape(secret.Reveal()))
	resp, err := s.http.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&tok) != nil || tok.AccessToken == "" {
		s.t.Fatalf("token endpoint: status %d", resp.StatusCode)
	}
	return c.ID, tok.AccessToken
}

// response is a completed HTTP exchange.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not JSON (status %d): %v", r.status, err)
	}
	return m
}

// do sends a request with the stack's full-scope token unless headers set
// another Authorization. A body that is not a string or []byte is encoded
// as JSON.
func (s *stack) do(method, path string, body any, headers ...string) response {
	s.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			s.t.Fatal(err)
		}
		rd = bytes.NewReader(enc)
	}
	target := path
	if !strings.HasPrefix(path, "https://") {
		target = s.base + path
	}
	req, err := http.NewRequest(method, target, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	resp, err := s.http.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: data}
}

// must checks the status of a response.
func must(t *testing.T, r response, want int) response {
	t.Helper()
	if r.status != want {
		t.Fatalf("status %d, want %d; body: %.600s", r.status, want, r.body)
	}
	return r
}

func syntheaFiles(t testing.TB) []string { return fhirtest.Files(t, "synthea", "*.json") }
