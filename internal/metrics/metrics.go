// Package metrics is Ward's Prometheus instrumentation: the collectors,
// their own registry (no global state: nothing registers in the client
// library's default registry), and the handler that serves them on the
// metrics listener, never on the FHIR one.
//
// What it guarantees: no label carries PHI, an id or anything a caller
// chose. The labels are closed sets: a route is the router's pattern
// (never the request's path), a method one of the HTTP methods Ward
// answers (else "other"), a status its three-digit code, a rate-limit
// policy, a key-provider operation, a SIEM sink's configured name.
// Recording a request costs two atomic adds and a histogram observation
// (BenchmarkObserveRequest).
//
// What it does not do: it imports none of Ward's packages. The audit log,
// the key provider, the SIEM stream and the detector report through the
// small interfaces and snapshot structs defined here, which cmd/ward
// adapts, so that instrumentation adds no edge to the import graph.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Sources are read at each scrape, for what is a state rather than an
// event. A nil member is not exported.
type Sources struct {
	// Ledger reads the ledger's size and checkpoint; it may query the
	// database and is given a context bounded by ScrapeTimeout.
	Ledger func(ctx context.Context) (LedgerStats, error)
	Audit  func() AuditStats
	SIEM   func() SIEMStats
	// Detector is nil when this process runs no detector.
	Detector func() DetectorStats
	// Keys reads the age of each kind's key in force.
	Keys func() []KeyAge
}

// KeyAge is the age of one kind's key in force. Only the kind labels it:
// key ids are not exported.
type KeyAge struct {
	Kind   string
	Age    time.Duration
	MaxAge time.Duration // 0: no maximum
	Over   bool
}

// LedgerStats is the audit ledger's state.
type LedgerStats struct {
	Entries        int64
	CheckpointSize int64         // size of the latest signed checkpoint
	CheckpointAge  time.Duration // since this process last confirmed a checkpoint covering the ledger; < 0: never
}

// AuditStats is the group committer's queue and spool.
type AuditStats struct {
	Queued, Unfolded, MaxUnfolded int
	Broken                        bool
}

// SIEMStats is the security event stream's state.
type SIEMStats struct {
	Emitted, Dropped uint64
	BufferBytes      int64
	Sinks            []SIEMSink
}

// SIEMSink is one sink's counters; Name is its configured name.
type SIEMSink struct {
	Name                         string
	Delivered, Failures, Backlog uint64
	Oldest                       time.Duration
}

// DetectorStats is the anomaly detector's progress.
type DetectorStats struct {
	Behind                              int64
	Lag                                 time.Duration
	Alerts                              int64
	ReadErrors, SaveErrors, Undecodable int64
}

// ScrapeTimeout bounds the database queries of one scrape.
const ScrapeTimeout = 2 * time.Second

// Metrics holds Ward's collectors. Its methods are safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	requests    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	rateLimited *prometheus.CounterVec
	invalid     prometheus.Counter

	groupEntries prometheus.Histogram
	groupWait    prometheus.Histogram
	groupFailed  prometheus.Counter
	foldEntries  prometheus.Histogram
	foldTime     prometheus.Histogram
	foldFailed   prometheus.Counter

	kek       *prometheus.HistogramVec
	kekErrors *prometheus.CounterVec

	// routes caches the per-route children, so that a request costs no
	// label hashing.
	mu     sync.RWMutex
	routes map[routeKey]routeObs
}

type routeKey struct {
	route, method string
	code          int
}

type routeObs struct {
	count   prometheus.Counter
	latency prometheus.Observer
}

// New returns Ward's collectors in a new registry, with the Go runtime's
// and the process's collectors, and the state read from src at each
// scrape.
func New(src Sources) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), routes: map[routeKey]routeObs{}}
	latencyBuckets := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ward_http_requests_total",
		Help: "HTTP requests answered, by route pattern, method and status code."}, []string{"route", "method", "code"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ward_http_request_duration_seconds",
		Help: "Time from a request's arrival to the end of its answer, by route pattern.", Buckets: latencyBuckets}, []string{"route"})
	m.rateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ward_rate_limited_total",
		Help: "Requests refused with 429 by a rate limit, by limit policy."}, []string{"policy"})
	m.invalid = prometheus.NewCounter(prometheus.CounterOpts{Name: "ward_validation_failures_total",
		Help: "Requests refused with 400 because a resource or query was invalid."})
	m.groupEntries = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ward_audit_group_entries",
		Help: "Entries per group commit of the audit ledger.", Buckets: prometheus.ExponentialBuckets(1, 2, 13)})
	m.groupWait = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ward_audit_group_wait_seconds",
		Help: "How long a group's oldest entry waited from Append until the group was durable.", Buckets: latencyBuckets})
	m.groupFailed = prometheus.NewCounter(prometheus.CounterOpts{Name: "ward_audit_group_failures_total",
		Help: "Group commits that failed (their requests were refused)."})
	m.foldEntries = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ward_audit_fold_entries",
		Help: "Spooled entries per fold into the ledger.", Buckets: prometheus.ExponentialBuckets(1, 2, 13)})
	m.foldTime = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ward_audit_fold_seconds",
		Help: "Duration of one fold of spooled entries into the ledger.", Buckets: latencyBuckets})
	m.foldFailed = prometheus.NewCounter(prometheus.CounterOpts{Name: "ward_audit_fold_failures_total",
		Help: "Folds of spooled entries that failed (retried)."})
	m.kek = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ward_key_provider_seconds",
		Help: "Key-provider operations (wrap, unwrap of data keys), by operation.", Buckets: latencyBuckets}, []string{"op"})
	m.kekErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ward_key_provider_errors_total",
		Help: "Failed key-provider operations, by operation."}, []string{"op"})
	for _, op := range []string{opWrap, opUnwrap} {
		m.kek.WithLabelValues(op)
		m.kekErrors.WithLabelValues(op)
	}
	m.reg.MustRegister(m.requests, m.latency, m.rateLimited, m.invalid,
		m.groupEntries, m.groupWait, m.groupFailed, m.foldEntries, m.foldTime, m.foldFailed,
		m.kek, m.kekErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&stateCollector{src: src})
	return m
}

// Handler serves the metrics in Prometheus' text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// knownMethods are the methods that get their own label value.
var knownMethods = map[string]string{
	http.MethodGet: http.MethodGet, http.MethodHead: http.MethodHead, http.MethodPost: http.MethodPost,
	http.MethodPut: http.MethodPut, http.MethodPatch: http.MethodPatch, http.MethodDelete: http.MethodDelete,
	http.MethodOptions: http.MethodOptions,
}

// Request records one answered request. route must be a router pattern
// (a closed set); "" is recorded as "none" (no route matched, or the
// request was refused before routing).
func (m *Metrics) Request(route, method string, code int, took time.Duration) {
	if route == "" {
		route = "none"
	}
	if mm, ok := knownMethods[method]; ok {
		method = mm
	} else {
		method = "other"
	}
	if code < 100 || code > 599 {
		code = 0
	}
	k := routeKey{route, method, code}
	m.mu.RLock()
	o, ok := m.routes[k]
	m.mu.RUnlock()
	if !ok {
		o = routeObs{count: m.requests.WithLabelValues(route, method, strconv.Itoa(code)), latency: m.latency.WithLabelValues(route)}
		m.mu.Lock()
		m.routes[k] = o
		m.mu.Unlock()
	}
	o.count.Inc()
	o.latency.Observe(took.Seconds())
}

// RateLimited records a request refused by the named rate-limit policy.
func (m *Metrics) RateLimited(policy string) { m.rateLimited.WithLabelValues(policy).Inc() }

// ValidationFailed records a request refused because what it sent was
// invalid.
func (m *Metrics) ValidationFailed() { m.invalid.Inc() }

// Group is the audit log's Observer method (audit.Observer).
func (m *Metrics) Group(entries int, wait time.Duration, failed bool) {
	m.groupEntries.Observe(float64(entries))
	m.groupWait.Observe(wait.Seconds())
	if failed {
		m.groupFailed.Inc()
	}
}

// Fold is the audit log's Observer method (audit.Observer).
func (m *Metrics) Fold(entries int, took time.Duration, failed bool) {
	m.foldEntries.Observe(float64(entries))
	m.foldTime.Observe(took.Seconds())
	if failed {
		m.foldFailed.Inc()
	}
}
