package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/wardhealth/ward/internal/api"
	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/auth"
	"github.com/wardhealth/ward/internal/auth/federation"
	"github.com/wardhealth/ward/internal/bulk"
	"github.com/wardhealth/ward/internal/esign"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/fhir/search"
	"github.com/wardhealth/ward/internal/health"
	"github.com/wardhealth/ward/internal/incident"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/metrics"
	"github.com/wardhealth/ward/internal/notify"
	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/ratelimit"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/secevent"
	"github.com/wardhealth/ward/internal/signin"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/tlsconfig"
)

const serveSummary = `Runs Ward's HTTPS FHIR R4 server. With --dev, everything a first run needs
is created once in the data directory: a local CA and server certificate
(tls/ca.pem), a key file, and a bootstrap client whose credentials are written
to dev-credentials.json. Without --dev, Ward refuses to start unless a TLS
certificate and key and a key file exist.`

type serveFlags struct {
	storage
	addr, tlsCert, tlsKey, publicURL, cors, logLevel string
	clientCA                                         string
	mtls                                             bool
	ledgerOrigin                                     string
	mfaRoleList                                      string
	federation                                       string
	rolesFile                                        string
	rateLimitsFile                                   string
	idleTimeout, sessionLifetime                     time.Duration
	dev                                              bool
	tokenTTL                                         time.Duration
	readOnly                                         bool
	verifyPace                                       int
	verifyPause                                      time.Duration
	exportDir                                        string
	exportTTL                                        time.Duration
	exportJobs                                       int
	runbooksFile                                     string
	subscriptionAllow                                string
	subscriptionCA                                   string
	subscriptionMax                                  int
	detect                                           detectFlags
	siem                                             siemFlags
	ops                                              opsFlags
	keyMaxAge                                        maxAgeFlag
	cpuProfile                                       string
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f serveFlags
	flags := newFlagSet("serve", serveSummary)
	f.register(flags)
	flags.StringVar(&f.addr, "addr", "127.0.0.1:8443", "address to listen on (HTTPS only)")
	flags.StringVar(&f.tlsCert, "tls-cert", "", "PEM certificate chain (required without --dev)")
	flags.StringVar(&f.tlsKey, "tls-key", "", "PEM private key, mode 0600 (required without --dev)")
	flags.BoolVar(&f.mtls, "mtls", false, "ask clients for a TLS certificate (never required): services may authenticate with a registered certificate, and tokens requested with one are bound to it")
	flags.StringVar(&f.clientCA, "client-ca", "", "PEM CA certificates that a client certificate must chain to; implies --mtls (without it, any certificate is accepted in the handshake and matched by thumbprint)")
	flags.StringVar(&f.publicURL, "public-url", "", "external base URL, e.g. https://ward.example.org (default https://<addr>)")
	flags.StringVar(&f.cors, "cors-origins", "", "comma-separated browser origins allowed to call the API")
	flags.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	flags.DurationVar(&f.tokenTTL, "token-ttl", 5*time.Minute, "lifetime of access tokens (at most 1h)")
	flags.StringVar(&f.mfaRoleList, "mfa-roles", "", "comma-separated roles that must sign in with a second factor, besides admin and auditor")
	flags.StringVar(&f.rolesFile, "roles", "", "JSON file of custom roles added to the built-in ones (see README, Who sees what)")
	flags.StringVar(&f.rateLimitsFile, "rate-limits", "", "JSON file of request-rate limits: the default per principal and per address, and overrides per role and per client (see README, Configuration)")
	flags.StringVar(&f.federation, "federation", "", "JSON file of external OpenID providers whose access tokens Ward accepts and, with a client_id, people may sign in through (see README, Federation)")
	flags.DurationVar(&f.idleTimeout, "session-idle-timeout", 15*time.Minute, "sign-in sessions end after this long without use")
	flags.DurationVar(&f.sessionLifetime, "session-lifetime", 12*time.Hour, "sign-in sessions end this long after sign-in, used or not")
	flags.StringVar(&f.ledgerOrigin, "ledger-origin", "", "name of the audit ledger in its signed checkpoints (default <public host>/ledger)")
	// Publishing ledger checkpoints (witness.go).
	var publish publishFlags
	publish.register(flags)
	flags.BoolVar(&f.readOnly, "read-only-investigation", false, "serve read-only, also when the audit ledger fails its start check: nothing is written but audit entries, no checkpoint is signed (see README, Operations)")
	flags.IntVar(&f.verifyPace, "ledger-verify-pace", 1000, "entries per second the background check of the audit ledger re-hashes; 0 disables it")
	flags.DurationVar(&f.verifyPause, "ledger-verify-pause", time.Minute, "pause between two passes of the background check of the audit ledger")
	flags.StringVar(&f.exportDir, "export-dir", "", "directory where bulk export files wait, sealed (default <data>/exports); replicas share it or route a job's requests to the replica that runs it")
	flags.DurationVar(&f.exportTTL, "export-ttl", time.Hour, "how long a finished bulk export's files wait before they are deleted")
	flags.IntVar(&f.exportJobs, "export-jobs", 2, "bulk export jobs that run at once in this process")
	flags.StringVar(&f.subscriptionAllow, "subscription-allow", "", "comma-separated CIDR prefixes or addresses that Subscription endpoints may reach although they are not public (loopback, private, link-local: refused otherwise; see README, Subscriptions)")
	flags.IntVar(&f.subscriptionMax, "subscription-max-per-client", 20, "Subscriptions that are not off one client may hold; each written resource adds one delivery per matching subscription, so this bounds what one client can make every write cost")
	flags.StringVar(&f.subscriptionCA, "subscription-ca", "", "PEM CA certificates that Subscription endpoints' certificates must chain to (default: the system's)")
	flags.StringVar(&f.runbooksFile, "runbooks", "", "JSON file of incident runbooks: rule (or \"default\") to a list of {\"id\", \"title\"} steps (see README, Detection and response)")
	f.siem.register(flags)
	f.detect.register(flags)
	f.ops.register(flags)
	flags.Var(&f.keyMaxAge, "key-max-age", maxAgeUsage)
	flags.BoolVar(&f.dev, "dev", false, "development mode: create a local CA, certificate, key file and bootstrap client")
	flags.StringVar(&f.cpuProfile, "cpu-profile", "", "write a Go CPU profile of the whole run to this file, for performance work (see docs/PERFORMANCE.md)")
	if err := parseFlags(flags, args, stderr); err != nil {
		return err
	}
	tuneGC()
	if f.cpuProfile != "" {
		stop, err := startCPUProfile(f.cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	if f.verifyPace < 0 {
		return usagef("--ledger-verify-pace must be 0 (off) or more")
	}
	if f.verifyPause <= 0 {
		return usagef("--ledger-verify-pause must be positive")
	}
	if f.exportTTL <= 0 || f.exportJobs <= 0 {
		return usagef("--export-ttl and --export-jobs must be positive")
	}
	if f.exportDir == "" {
		f.exportDir = filepath.Join(f.data, "exports")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return usagef("--log-level: %v", err)
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	rateLimits, err := f.rateLimits()
	if err != nil {
		return err
	}
	// Security events (README, Security events and SIEM): always to the
	// log; with a sink, also to a durable stream to the SIEM. events goes
	// to the packages; siemEvents (the stream alone) to the places in
	// this file that log their own, more detailed line.
	events, siemEvents := secevent.Log(logger), secevent.Discard
	stream, err := f.siem.open(f.data, logger)
	if err != nil {
		return err
	}
	if stream != nil {
		// Closed last (deferred first): the stop's own events are in it.
		defer func() {
			if _, err := stream.Ingest(); err != nil {
				logger.Warn("taking in security events of ward user failed; they wait for the next start", "error", err.Error())
			}
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := stream.Flush(fctx); err != nil {
				logger.Warn("security events not yet delivered stay buffered for the next start", "error", err.Error())
			}
			if err := stream.Close(); err != nil {
				logger.Error("closing the security event stream", "error", err.Error())
			}
		}()
		events, siemEvents = secevent.Multi(events, stream), stream
	}

	// Mutual TLS: a CA file that cannot be read stops the start before
	// anything is created.
	var clientCAs *x509.CertPool
	if f.clientCA != "" {
		f.mtls = true
		var err error
		if clientCAs, err = tlsconfig.CertPool(f.clientCA); err != nil {
			return usagef("--client-ca: %v", err)
		}
	}
	certs, err := f.tls()
	if err != nil {
		return err
	}
	tlsConf := certs.Config()
	// A renewed certificate is loaded on SIGHUP, without a restart.
	stopReload := reloadOnHangup(certs, logger)
	defer stopReload()
	// The metrics listener, when not on loopback, serves the server's
	// certificate and asks for no client certificate.
	metricsTLS := tlsConf
	if f.mtls {
		tlsConf = tlsconfig.WithClientCerts(tlsConf, clientCAs)
	}
	if f.ops.metricsAddr != "" {
		if _, err := isLoopback(f.ops.metricsAddr); err != nil {
			return usagef("--metrics-addr: %v", err)
		}
	}
	if f.dev {
		if _, err := os.Stat(f.keyFile()); errors.Is(err, fs.ErrNotExist) {
			if err := f.createKeys(); err != nil {
				return err
			}
		}
	}
	kf, err := f.openKeys()
	if err != nil {
		return err
	}
	db, err := f.openStore(ctx)
	if err != nil {
		return err
	}
	defer db.Close()

	base := strings.TrimSuffix(f.publicURL, "/")
	if base == "" {
		base = "https://" + f.addr
	}
	// Metrics (README, Operations): the key provider is timed through
	// them, the audit log reports its groups to them, and the stats of
	// the log, the SIEM stream and the detector are read at each scrape.
	var (
		obs     *metrics.Metrics
		sources = &metricSources{db: db, stream: stream}
		via     func(keys.KEKProvider) keys.KEKProvider
		ledgerC audit.Config
	)
	if f.ops.metricsAddr != "" {
		obs = metrics.New(sources.sources())
		via = func(p keys.KEKProvider) keys.KEKProvider { return obs.KEK(p) }
		ledgerC.Observer = obs
	}
	keyring, hsm, releaseHSM, err := f.hsm.keyringVia(ctx, kf, db, via)
	if err != nil {
		return err
	}
	defer releaseHSM()
	tokenSigner, err := f.hsm.tokenSigner(ctx, kf, hsm)
	if err != nil {
		return err
	}
	params, err := search.NewRegistry()
	if err != nil {
		return err
	}
	validator, err := fhir.NewValidator()
	if err != nil {
		return err
	}
	authSrv, err := auth.NewServer(auth.Config{Issuer: base, Audience: base + "/fhir", TokenTTL: f.tokenTTL}, db, tokenSigner)
	if err != nil {
		return err
	}
	// Token keys follow rotations (ward keys rotate --kind token), made
	// by any process sharing the key file: the earlier keys keep
	// verifying their tokens until those expire. A key named by
	// --pkcs11-token-signing-key is used as it is.
	keySigners := &signers{kf: kf, hsm: hsm}
	followTokenKeys := f.hsm.tokenKey == ""
	if followTokenKeys {
		key, prev, err := keySigners.tokenKeys()
		if err != nil {
			return err
		}
		if err := authSrv.SetKeys(key, prev...); err != nil {
			return err
		}
		authSrv.WithKeySource(keySigners.tokenKeys)
	}
	keyAges := func() []keys.KeyAge { return kf.Ages(time.Now(), f.keyMaxAge.ages, f.hsm.currentKEKOf()) }
	sources.keys = keyAges
	pol, err := f.policy()
	if err != nil {
		return err
	}
	var origins []string
	for _, o := range strings.Split(f.cors, ",") {
		if o = strings.TrimSpace(o); o != "" {
			origins = append(origins, o)
		}
	}
	ledgerLog, err := f.openLedger(ctx, db, kf.PageKey(), ledgerC, logger)
	if err != nil {
		return err
	}
	// The ledger closes once: at the end of a clean stop (below), before
	// the last checkpoint, or here when the start fails.
	var closeLedger sync.Once
	closeLog := func() {
		closeLedger.Do(func() {
			if err := ledgerLog.Close(); err != nil {
				logger.Error("closing the audit ledger", "error", err.Error())
			}
		})
	}
	defer closeLog()
	sources.ledger = ledgerLog
	origin, err := f.origin(ctx, db, base)
	if err != nil {
		return err
	}
	// The checkpoint keys follow rotations made by other processes
	// (ward keys rotate --kind ledger): every signer and verifier below
	// asks lkeys, which re-reads the key file when it changed.
	lkeys := ledgerKeys{origin: origin, kf: kf}
	signer, err := lkeys.signer()
	if err != nil {
		return err
	}
	certifier, err := ledger.NewCertifier(origin+"/certificates", kf.CertificateSigner())
	if err != nil {
		return err
	}
	pseudonyms := keys.NewPseudonyms(kf.IndexKey())
	// Subscriptions (README, Subscriptions): endpoints are checked when
	// written and at every dial; the dispatcher is woken by each write
	// that queued a notification.
	subAllow, err := notify.ParseAllow(f.subscriptionAllow)
	if err != nil {
		return usagef("--subscription-allow: %v", err)
	}
	subTLS := &tls.Config{}
	if f.subscriptionCA != "" {
		if subTLS, err = tlsconfig.Client(f.subscriptionCA); err != nil {
			return err
		}
	}
	guard := notify.NewGuard(notify.GuardConfig{Allow: subAllow, TLS: subTLS})
	var wake func()
	// Electronic signatures: a key file made before them gets its
	// e-signature key now, without a re-install (README, Electronic
	// signatures); a read-only server writes nothing, so signs nothing.
	if !f.readOnly {
		if added, err := kf.AddESignKey(ctx); err != nil {
			return fmt.Errorf("adding the e-signature key to the key file: %w", err)
		} else if added {
			logger.Info("added an e-signature key to the key file")
		}
	}
	rcfg := records.Config{Policy: pol, Ledger: ledgerLog, Pseudonyms: pseudonyms, Certifier: certifier, ESignKeys: esign.Keys{},
		Endpoints: guard, MaxSubscriptions: f.subscriptionMax, Enqueued: func() {
			if wake != nil {
				wake()
			}
		}}
	if esigner, pubs, err := f.hsm.esignSigner(ctx, kf, hsm); err == nil {
		rcfg.ESigner = esigner
		for _, p := range pubs {
			rcfg.ESignKeys.Add(p)
		}
	} else if !errors.Is(err, keys.ErrNoESignKey) {
		return err
	}
	if f.hsm.esignKey == "" {
		// The key file's e-signature key: asked at each signing, so that
		// ward keys rotate --kind esign takes effect at once, and every
		// key it keeps verifies.
		rcfg.ESigner, rcfg.ESignKeys, rcfg.ESignSource = nil, nil, kf
	}
	rec := records.New(rcfg, db, keyring, kf.BlindIndex(), params, validator)
	dispatcher, err := notify.New(notify.Config{Queue: db, Records: rec, Client: guard.Client()})
	if err != nil {
		return err
	}
	wake = dispatcher.Wake
	// The ledger is checked after the spool is folded (openLedger, above)
	// and before anything is served or signed (ledgercheck.go). Once
	// halt is stopped, this process signs no more checkpoints.
	halt := new(audit.Halt)
	found, err := f.checkLedger(ctx, db, lkeys, publish.dir, logger, siemEvents)
	if err != nil {
		return err
	}
	if found != nil {
		halt.Stop(found)
	}
	if !f.readOnly && found == nil {
		// Erasures the key file records are finished in the database
		// before anything is served: a database copy restored from before
		// an erasure still holds the patient's sealed versions and index
		// rows (unreadable already: the key file refuses their key).
		n, err := rec.ReapplyErasures(ctx)
		if err != nil {
			return fmt.Errorf("re-applying the erasures the key file records: %w", err)
		}
		if n > 0 {
			logger.Warn("re-applied erasures the key file records to data the database still held (a database restored from before them?)", "patients", n)
		}
	}
	if f.readOnly {
		halt.Stop(errReadOnlyInvestigation)
		logger.Error("READ-ONLY INVESTIGATION: nothing is written but audit entries and no ledger checkpoint is signed; restart without --read-only-investigation to serve normally",
			"ledger_verified", found == nil)
	}
	cpCtx, stopCheckpoints := context.WithCancel(context.Background())
	defer stopCheckpoints()
	if followTokenKeys {
		go watchKeys(cpCtx, time.Second, keySigners, authSrv, logger)
	}
	if stream != nil {
		go ingest(cpCtx, stream, logger)
	}
	stopPublishing := func() {}
	if !f.readOnly {
		watch := &checkpointWatch{CheckpointStore: db, now: time.Now}
		sources.watch = watch
		go audit.RunCheckpoints(cpCtx, watch, lkeys, time.Second, halt, func(err error) {
			if errors.Is(err, audit.ErrTampered) {
				ledgerFinding(cpCtx, db, logger, siemEvents, "checkpoint", err)
				return
			}
			logger.Error("ledger checkpoint failed", "error", err.Error())
		})
		// Publishing ledger checkpoints to a directory and witnesses (witness.go).
		if stopPublishing, err = publish.start(db, lkeys, halt, logger, siemEvents); err != nil {
			return err
		}
		go f.verifyLedger(cpCtx, db, lkeys, publish.dir, halt, logger, siemEvents)
	}
	defer func() { stopPublishing() }()
	authSrv.WithPeople(db)
	if f.federation != "" {
		v, err := f.federationVerifier(base)
		if err != nil {
			return err
		}
		authSrv.WithFederation(v)
		if n := len(v.SignInIssuers()); n > 0 {
			logger.Info("sign-ins through external OpenID providers", "providers", n, "redirect_uri", base+signin.PathFederatedCallback)
		}
		go func() { // #nosec G118 -- a start-up prefetch that outlives no request: it has its own 30 s timeout
			pctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := v.Prefetch(pctx); err != nil {
				logger.Warn("external OpenID provider keys not fetched yet; their tokens fail until they are", "error", err.Error())
			}
		}()
	}
	users, err := auth.NewUsers(auth.UsersConfig{MFARoles: f.mfaRoles(), Origin: base}, db, keyring)
	if err != nil {
		return err
	}
	provider, err := signin.New(signin.Config{Issuer: base, Audience: base + "/fhir", AccessTTL: f.tokenTTL, IdleTimeout: f.idleTimeout, SessionLifetime: f.sessionLifetime, Logger: logger, Events: events}, db, authSrv, users, tokenSigner)
	if err != nil {
		return err
	}
	// The configuration this process runs with is the first thing it
	// records: an auditor sees every change of it across restarts. A
	// read-only start is recorded under its own action, with what the
	// ledger check found, even though the ledger itself is in question.
	start := ledger.Entry{Time: time.Now().UTC(), Actor: "ward", Client: "ward-serve", Source: f.addr,
		Action: "server-start", Outcome: "success", Detail: f.summary(base, version, publish)}
	if f.readOnly {
		start.Action, start.Detail = "server-start-read-only", "ledger-check="+checkSummary(found)+" "+start.Detail
	}
	if err := appendEntry(ctx, db, start); err != nil {
		return fmt.Errorf("record the server's start in the audit ledger: %w", err)
	}
	// The controls in force, for the compliance report (compliance.go).
	if err := appendEntry(ctx, db, ledger.Entry{Time: time.Now().UTC(), Actor: "ward", Client: "ward-serve", Source: f.addr,
		Action: actionServerConfig, Outcome: "success", Detail: f.controls(rateLimits, publish)}); err != nil {
		return fmt.Errorf("record the server's configuration in the audit ledger: %w", err)
	}
	siemEvents.Emit(f.configEvent(base, publish))
	// /readyz (README, Operations): the database, the key provider, the
	// ledger and its spool, the SIEM backlog.
	ready := readiness{db: db, kek: kf, ledger: ledgerLog, halt: halt, bound: f.ops.siemReadyBacklog, ages: keyAges}
	if stream != nil {
		ready.siem = stream.Stats
	}
	acfg := api.Config{BaseURL: base, CORSOrigins: origins, Version: version, Logger: logger, ClientCerts: f.mtls, ReadOnly: f.readOnly, RateLimits: rateLimits,
		Pseudonyms: pseudonyms, Events: events, Readiness: health.New(health.DefaultTimeout, ready.checks(f.readOnly)...)}
	if obs != nil {
		acfg.Metrics = obs
	}
	acfg.LedgerKeys = func() ([]byte, error) {
		c, err := lkeys.chain()
		if err != nil {
			return nil, err
		}
		return c.Document()
	}
	handler := api.New(acfg, rec, authSrv, kf.PageKey(), ledgerLog, audit.NewView(db))
	signing, err := auth.NewSigning(auth.SigningConfig{}, users, db)
	if err != nil {
		return err
	}
	handler = handler.WithSigning(signing)
	if !f.readOnly {
		// People's sign-in writes sessions and throttling state: a
		// read-only server has none (README, Operations).
		handler = handler.WithSignIn(provider)
	}
	// Bulk export: jobs run in this process; a sweeper deletes expired
	// jobs and their files (README, Bulk export).
	exports, err := bulk.New(bulk.Config{Dir: f.exportDir, TTL: f.exportTTL, MaxJobs: f.exportJobs}, db, rec, keyring)
	if err != nil {
		return err
	}
	defer exports.Close()
	handler = handler.WithExports(exports)
	// Detection and response: alerts, incidents and containment.
	var runbooks incident.Runbooks
	if f.runbooksFile != "" {
		if runbooks, err = incident.LoadRunbooks(f.runbooksFile); err != nil {
			return err
		}
	}
	incidents, err := incident.New(incident.Config{Store: db, Runbooks: runbooks, Ledger: db, Verifier: currentLedgerKey{lkeys}})
	if err != nil {
		return err
	}
	handler = handler.WithIncidents(incidents)
	// The anomaly detector tails the ledger and stores its alerts; a
	// read-only server writes none.
	if !f.readOnly {
		runner, err := f.detect.start(cpCtx, db, ledgerLog, rec, users, authSrv, events, logger)
		if err != nil {
			return err
		}
		if runner != nil {
			sources.detector.Store(runner)
		}
	}
	// The subscription dispatcher: every replica runs one; leases keep
	// them from sending a notification twice. A read-only server sends
	// none.
	if !f.readOnly {
		go dispatcher.Run(cpCtx, func(err error) {
			logger.Error("delivering subscription notifications failed; retried at the next poll", "error", err.Error())
		})
	}
	go func() {
		tick := time.NewTicker(time.Minute)
		defer tick.Stop()
		for {
			if n, err := exports.Sweep(cpCtx); err != nil && cpCtx.Err() == nil {
				logger.Error("deleting expired bulk exports failed; retried in a minute", "error", err.Error())
			} else if n > 0 {
				logger.Info("deleted expired bulk exports", "jobs", n)
			}
			select {
			case <-cpCtx.Done():
				return
			case <-tick.C:
			}
		}
	}()

	srv, errc, err := serveTLS(f.addr, handler, tlsConf, logger, limits{read: 2 * time.Minute, write: 10 * time.Minute, header: 64 << 10})
	if err != nil {
		return err
	}
	var metricsErrc <-chan error
	if obs != nil {
		msrv, merrc, err := serveMetrics(f.ops.metricsAddr, obs.Handler(), metricsTLS, logger)
		if err != nil {
			_ = srv.Close()
			return err
		}
		metricsErrc = merrc
		defer msrv.Close()
	}
	// Refusals of requests that prove no one are counted per source and
	// window (api.FailureConfig); their counts reach the ledger when the
	// window closes, even when no request comes to close it.
	go func() {
		tick := time.NewTicker(30 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-cpCtx.Done():
				return
			case <-tick.C:
				if err := handler.CloseFailureWindow(cpCtx); err != nil && cpCtx.Err() == nil {
					logger.Error("recording the counts of refused requests failed; retried at the next window", "error", err.Error())
				}
			}
		}
	}()
	logger.Info("ward listening", "url", base+"/fhir", "db", dbKind(f.db), "dev", f.dev, "mtls", f.mtls, "client_ca", f.clientCA != "", "version", version,
		"ledger_origin", signer.Name(), "ledger_key", signer.VerifierKey(), "ledger_first_key", firstKeyOf(lkeys), "rate_limits", rateLimits.Describe(),
		"routes", handler.Routes())
	// Versions stored before Ward kept their sensitivity class get it now,
	// once, while requests are served (records.Service.ClassifyStored).
	// The index of resources stored by a release that kept some values in
	// the clear, or that did not index the identifiers inside references,
	// is rebuilt under the current rule, also once
	// (records.Service.RebuildIndex). A read-only server does neither.
	go func() {
		if f.readOnly {
			return
		}
		rebuilt, unreadable, err := rec.RebuildIndex(cpCtx)
		switch {
		case err != nil && cpCtx.Err() == nil:
			logger.Error("rebuilding the search index under the current indexing rule failed; it is retried at the next start",
				"error", err.Error())
		case rebuilt > 0:
			logger.Info("rebuilt the search index of stored resources under the current indexing rule", "rebuilt", rebuilt, "unreadable", unreadable)
		}
		classified, unreadable, err := rec.ClassifyStored(cpCtx)
		switch {
		case err != nil && cpCtx.Err() == nil:
			logger.Error("classifying stored resources by their security labels failed; it is retried at the next start",
				"error", err.Error())
		case classified > 0 || unreadable > 0:
			logger.Info("classified stored resources by their security labels", "classified", classified, "unreadable", unreadable)
		}
		// A blind-index rotation (ward keys rotate --kind index) is
		// re-indexed in the background, by every server sharing the key
		// file, from the cursor it records.
		rec.RunReindex(cpCtx, kf, 5*time.Second, logger.Info)
	}()
	if f.dev {
		if err := f.devClient(ctx, stdout, authSrv, db, base); err != nil {
			_ = srv.Close()
			return err
		}
	}
	select {
	case err := <-errc:
		return err
	case err := <-metricsErrc:
		_ = srv.Close()
		return fmt.Errorf("metrics listener: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	// The stop order: no more requests (above); no more background
	// checkpoints, classification or window closes; the counts of refused
	// requests of the open window are written; the ledger closes, which
	// folds every spooled entry into the store; then the last checkpoint
	// is signed over all of them, so that a clean stop leaves no unsigned
	// entries.
	stopCheckpoints()
	if ferr := handler.FlushFailures(shutdownCtx); ferr != nil {
		logger.Error("recording the counts of refused requests at stop failed", "error", ferr.Error())
	}
	closeLog()
	ran := false
	cerr := halt.Do(func() error {
		ran = true
		_, _, err := audit.Checkpoint(shutdownCtx, db, lkeys)
		return err
	})
	switch {
	case !ran:
		logger.Warn("no final ledger checkpoint: signing is halted", "reason", cerr.Error())
	case errors.Is(cerr, audit.ErrTampered):
		halt.Stop(cerr)
		ledgerFinding(shutdownCtx, db, logger, siemEvents, "final-checkpoint", cerr)
	case cerr != nil:
		logger.Error("final ledger checkpoint failed", "error", cerr.Error())
	}
	return err
}

// tls returns the server's TLS configuration: the dev CA's certificate in
// dev mode (created on first start), otherwise the operator's files.
// summary is the configuration an auditor needs to see, without secrets
// or file contents: settings that change who may do what.
func (f *serveFlags) summary(base, version string, p publishFlags) string {
	return fmt.Sprintf("version=%s url=%s db=%s dev=%v token-ttl=%s mfa-roles=%s session-idle=%s session-lifetime=%s cors=%s ledger-publish-dir=%v ledger-witnesses=%d federation=%v roles-file=%v rate-limits-file=%v",
		version, base, dbKind(f.db), f.dev, f.tokenTTL, f.mfaRoleList, f.idleTimeout, f.sessionLifetime, f.cors, p.dir != "", len(p.witnesses), f.federation != "", f.rolesFile != "", f.rateLimitsFile != "")
}

// actionServerConfig is the ledger action of the entry in which a
// starting server records the controls it runs with (controls).
const actionServerConfig = "server-config"

// controls is the configuration of the security controls this process
// runs with, as the compliance report reads it from the ledger: space
// separated key=value pairs, within the ledger's field bound (256).
func (f *serveFlags) controls(rl ratelimit.Config, p publishFlags) string {
	mfa := append(policy.PrivilegedRoles(), f.mfaRoles()...)
	siem := "off"
	switch {
	case f.siem.syslog != "" && f.siem.file != "":
		siem = "syslog+file"
	case f.siem.syslog != "":
		siem = "syslog"
	case f.siem.file != "":
		siem = "file"
	}
	detector := "on"
	if f.detect.off || f.readOnly {
		detector = "off"
	}
	limit := rl.WithDefaults().Principal
	return fmt.Sprintf("tls=1.2+aead keys=%s detector=%s siem=%s idle=%s life=%s ttl=%s rate=%g/s:%d publish=%v witnesses=%d verify=%d mfa=%s",
		f.hsm.provider, detector, siem, f.idleTimeout, f.sessionLifetime, f.tokenTTL, limit.Rate, limit.Burst,
		p.dir != "", len(p.witnesses), f.verifyPace, strings.Join(mfa, ","))
}

// rateLimits reads the --rate-limits file; without one, the defaults.
func (f *serveFlags) rateLimits() (ratelimit.Config, error) {
	if f.rateLimitsFile == "" {
		return ratelimit.DefaultConfig, nil
	}
	data, err := os.ReadFile(f.rateLimitsFile)
	if err != nil {
		return ratelimit.Config{}, usagef("--rate-limits: %v", err)
	}
	c, err := ratelimit.ParseConfig(data)
	if err != nil {
		return ratelimit.Config{}, usagef("--rate-limits %s: %v", f.rateLimitsFile, err)
	}
	return c.WithDefaults(), nil
}

// policy builds the policy with the --roles file's custom roles.
func (f *serveFlags) policy() (policy.Policy, error) {
	if f.rolesFile == "" {
		return policy.Policy{}, nil
	}
	data, err := os.ReadFile(f.rolesFile)
	if err != nil {
		return policy.Policy{}, fmt.Errorf("--roles: %w", err)
	}
	roles, err := policy.ParseRoles(data)
	if err != nil {
		return policy.Policy{}, fmt.Errorf("--roles %s: %w", f.rolesFile, err)
	}
	return policy.New(roles)
}

// federationVerifier reads the --federation file.
func (f *serveFlags) federationVerifier(base string) (*federation.Verifier, error) {
	data, err := os.ReadFile(f.federation)
	if err != nil {
		return nil, fmt.Errorf("--federation: %w", err)
	}
	cfg, err := federation.ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("--federation %s: %w", f.federation, err)
	}
	cfg.PrivilegedRoles = append(cfg.PrivilegedRoles, f.mfaRoles()...)
	cfg.FHIRBase = base + "/fhir"
	for i, is := range cfg.Issuers {
		if strings.TrimSuffix(is.URL, "/") == base {
			return nil, fmt.Errorf("--federation %s: Ward's own issuer %s cannot be an external one", f.federation, base)
		}
		if is.ClientSecretFile != "" {
			secret, err := readClientSecret(f.federation, is.ClientSecretFile)
			if err != nil {
				return nil, fmt.Errorf("--federation %s: issuer %s: %w", f.federation, is.URL, err)
			}
			cfg.Issuers[i].ClientSecret = secret
		}
	}
	return federation.New(cfg)
}

// readClientSecret reads Ward's client secret at an external provider from
// its own file (relative paths are relative to the federation file), so
// that the secret is in no configuration file. Only its first line counts.
func readClientSecret(configFile, name string) (federation.Secret, error) {
	if !filepath.IsAbs(name) {
		name = filepath.Join(filepath.Dir(configFile), name)
	}
	data, err := os.ReadFile(name) // #nosec G304 -- a path the operator gives on the command line or in the configuration; the CLI runs with the operator's rights
	if err != nil {
		return federation.Secret{}, fmt.Errorf("client_secret_file: %w", err)
	}
	if len(data) > 4096 {
		return federation.Secret{}, errors.New("client_secret_file: larger than 4 KiB")
	}
	line, _, _ := strings.Cut(string(data), "\n")
	line = strings.TrimSuffix(line, "\r")
	if line == "" {
		return federation.Secret{}, errors.New("client_secret_file: empty")
	}
	return federation.NewSecret(line), nil
}

func (f *serveFlags) mfaRoles() []string {
	var out []string
	for _, r := range strings.Split(f.mfaRoleList, ",") {
		if r = strings.TrimSpace(r); r != "" {
			out = append(out, r)
		}
	}
	return out
}

func (f *serveFlags) tls() (*tlsconfig.Reloader, error) {
	if f.tlsCert == "" && f.tlsKey == "" && f.dev {
		files, _, err := tlsconfig.EnsureDev(filepath.Join(f.data, "tls"), time.Now())
		if err != nil {
			return nil, err
		}
		f.tlsCert, f.tlsKey = files.Cert, files.Key
	}
	if f.tlsCert == "" || f.tlsKey == "" {
		return nil, usagef("a TLS certificate and key are required: pass --tls-cert and --tls-key (Ward has no plaintext listener), or --dev for a local development CA")
	}
	return tlsconfig.NewReloader(f.tlsCert, f.tlsKey)
}

// origin names the ledger in its checkpoints.
// The ledger keeps one name for life: the name its stored checkpoints are
// signed under, else --ledger-origin, else <public host:port>/ledger. A
// --ledger-origin that differs from the stored name is refused, since
// checkpoints under two names would not verify as one log.
func (f *serveFlags) origin(ctx context.Context, db store.Store, base string) (string, error) {
	stored, err := ledgerOrigin(ctx, db)
	switch {
	case err == nil && f.ledgerOrigin != "" && f.ledgerOrigin != stored:
		return "", usagef("--ledger-origin %q differs from %q, the name this ledger's checkpoints are signed under", f.ledgerOrigin, stored)
	case err == nil:
		return stored, nil
	case !errors.Is(err, errNoCheckpoint):
		return "", err
	case f.ledgerOrigin != "":
		return f.ledgerOrigin, nil
	}
	return strings.TrimPrefix(base, "https://") + "/ledger", nil
}

func dbKind(db string) string {
	if db == "" || !strings.Contains(db, "://") {
		return "sqlite"
	}
	return "postgres"
}

// limits are a server's per-request bounds.
type limits struct {
	read, write time.Duration
	header      int
}

// serveTLS listens on addr and serves h over TLS only (there is no
// plaintext listener); the channel receives Serve's error.
func serveTLS(addr string, h http.Handler, conf *tls.Config, logger *slog.Logger, l limits) (*http.Server, <-chan error, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	srv := &http.Server{
		Handler:           h,
		TLSConfig:         conf,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       l.read,
		WriteTimeout:      l.write,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    l.header,
		ErrorLog:          log.New(slogWriter{logger}, "", 0),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(tls.NewListener(ln, conf)) }()
	return srv, errc, nil
}

// slogWriter routes net/http's own error log (TLS handshake failures and
// the like) into the structured log.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.l.Warn("http server", "detail", strings.TrimSpace(string(p)))
	return len(p), nil
}

// devCredentials is the file dev mode writes for the bootstrap client.
type devCredentials struct {
	BaseURL      string `json:"base_url"`
	TokenURL     string `json:"token_url"`
	CAFile       string `json:"ca_file"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
}

// devClient makes sure the bootstrap client exists and its credentials are
// in dev-credentials.json, then prints how to call the server.
func (f *serveFlags) devClient(ctx context.Context, out io.Writer, au *auth.Server, db store.Store, base string) error {
	path := filepath.Join(f.data, "dev-credentials.json")
	creds, err := readDevCredentials(path)
	valid := err == nil
	if valid {
		c, err := db.Client(ctx, creds.ClientID)
		valid = err == nil && c.Active()
	}
	ca, _ := filepath.Abs(tlsconfig.DevPaths(filepath.Join(f.data, "tls")).CACert)
	want := devCredentials{BaseURL: base + "/fhir", TokenURL: base + "/oauth2/token", CAFile: ca}
	if !valid && f.readOnly {
		return fmt.Errorf("%s holds no valid client, and a read-only server creates none", path)
	}
	if !valid {
		// The wildcard does not cover audit data: the dev client names it,
		// so that the ledger endpoints can be tried too.
		client, secret, err := au.CreateClient(ctx, "dev bootstrap client", []string{"system/*.cruds", "system/AuditEvent.rs"})
		if err != nil {
			return err
		}
		want.ClientID, want.ClientSecret = client.ID, secret.Reveal()
	} else {
		want.ClientID, want.ClientSecret = creds.ClientID, creds.ClientSecret
	}
	// A restart on another address or data path keeps the client but must
	// not leave the file pointing at the old URLs.
	if want != creds {
		creds = want
		if err := writeDevCredentials(path, creds); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, `
Ward is running in dev mode at %s
Credentials for the bootstrap client are in %s (mode 0600).
Try it:

  TOKEN=$(curl -s --cacert %s -u '%s:%s' \
    -d grant_type=client_credentials %s | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
  curl -s --cacert %s -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/fhir+json' \
    -d '{"resourceType":"Patient","name":[{"family":"Example","given":["Dev"]}]}' \
    %s/Patient

`, creds.BaseURL, path, creds.CAFile, creds.ClientID, creds.ClientSecret, creds.TokenURL, creds.CAFile, creds.BaseURL)
	return nil
}

// openLedger starts the audit ledger's group committer. On SQLite its
// read entries go through a spool next to the database: first the spools
// a crashed process left are folded into the ledger. On a shared database
// (PostgreSQL) they go through the pending table, tagged with tag: first
// what any process left pending is folded.
func (f *serveFlags) openLedger(ctx context.Context, db store.Store, tag audit.Tagger, cfg audit.Config, logger *slog.Logger) (*audit.Log, error) {
	dir := f.spoolDir()
	if dir == "" {
		l, err := audit.OpenPending(ctx, db, tag, cfg)
		if err != nil {
			return nil, err
		}
		if n := l.Replayed(); n > 0 {
			logger.Info("folded pending ledger entries that earlier processes left into the ledger", "entries", n)
		}
		return l, nil
	}
	l, err := audit.OpenSpooled(ctx, db, dir, cfg)
	if errors.Is(err, audit.ErrSpoolUnsupported) {
		logger.Warn("the ledger spool is not available on this platform; each group of entries commits to the database", "error", err.Error())
		return audit.New(db, cfg), nil
	}
	if err != nil {
		return nil, err
	}
	if n := l.Replayed(); n > 0 {
		logger.Info("folded a previous process's spooled ledger entries into the ledger", "entries", n)
	}
	return l, nil
}

// startCPUProfile profiles the process's CPU until the returned function
// is called. The profile holds function names and sample counts, no request
// data.
func startCPUProfile(path string) (func(), error) {
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600) // #nosec G304 -- a file the person running ward names
	if err != nil {
		return nil, usagef("--cpu-profile: %v", err)
	}
	if err := pprof.StartCPUProfile(out); err != nil {
		_ = out.Close() // nothing was written
		return nil, usagef("--cpu-profile: %v", err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = out.Close() // diagnostics only: a profile that fails to close fails to load, and says so then
	}, nil
}
