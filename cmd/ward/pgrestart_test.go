package main

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/store/storetest"
)

// The shape of catalogue case F4's run.
const (
	pgRestarts      = 3
	pgWriters       = 4
	pgReaders       = 2
	pgWarmup        = 1500 * time.Millisecond // load before the first restart
	pgMinOutage     = time.Second             // the database is unreachable for at least this
	pgOutageSpan    = 2 * time.Second         // and at most this much longer
	pgBetween       = 1500 * time.Millisecond // load after a recovery, before the next restart
	pgSteady        = 2 * time.Second         // last phase: every request must succeed
	pgRequestBound  = 8 * time.Second         // an answer later than this is a hang
	pgRecoveryBound = 10 * time.Second        // from the database's return to the first success of a write and of a read
	pgSettle        = time.Second             // from that first success until failures have stopped
	pgBackoff       = 20 * time.Millisecond   // a client's pause after a failure, as real clients back off
	pgSeed          = 0x5eed_f4
)

// TestPostgresRestartUnderLoad is catalogue case F4: PostgreSQL restarts
// while clients create, update and transact and others read and search.
//
// The test does not restart the shared database server. A TCP proxy
// between Ward and PostgreSQL does to Ward what a restart does: it cuts
// every connection (or the server ends Ward's backends itself, with
// pg_terminate_backend scoped to this Ward's application_name, as a
// shutdown does), refuses or resets new connections, or answers them with
// PostgreSQL's "the database system is starting up" (57P03), for one to
// three seconds, then lets connections through again. Ward is not
// restarted.
//
// It checks that during an outage every failure is a 503 OperationOutcome
// that names only the request id (no SQL, driver or network text) and
// comes within pgRequestBound; that no request is answered with success
// while the database is unreachable; that after each outage a write and a
// read succeed within pgRecoveryBound and failures stop within pgSettle
// of that, and every request of a final steady phase succeeds; that every
// acknowledged write is readable afterwards at its acknowledged version,
// no transaction is half-applied, every acknowledged write has exactly
// one ledger entry and every success response its entry, and `ward audit
// verify` passes on the database.
func TestPostgresRestartUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs about 20s of load; skipped with -short")
	}
	if runtime.GOOS == "windows" {
		t.Skip("the binary is stopped with SIGTERM")
	}
	sc := storetest.FreshSchema(t, "ward_f4_test_")
	seed := uint64(pgSeed)
	if v := os.Getenv("WARD_TEST_F4_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 0, 64)
		if err != nil {
			t.Fatalf("WARD_TEST_F4_SEED: %v", err)
		}
		seed = s
	}
	t.Logf("seed %#x (WARD_TEST_F4_SEED repeats a run's outage lengths and operation choices)", seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	cfg, err := pgx.ParseConfig(sc.URL)
	if err != nil {
		t.Fatal(err)
	}
	network, target := "tcp", net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
	if strings.HasPrefix(cfg.Host, "/") {
		network, target = "unix", filepath.Join(cfg.Host, ".s.PGSQL."+strconv.Itoa(int(cfg.Port)))
	}
	proxy := startPGProxy(t, network, target)
	var app [6]byte
	_, _ = crand.Read(app[:])
	appName := "ward_f4_" + hex.EncodeToString(app[:])
	wardURL, err := throughProxy(sc.URL, proxy.addr, appName)
	if err != nil {
		t.Fatal(err)
	}

	bin := buildWard(t)
	dir := t.TempDir()
	p := startWard(t, bin, dir, "--db", wardURL)
	c := p.client(t)
	if n := wardBackends(t, sc.Admin, appName); n == 0 {
		t.Fatalf("no backend with application_name %s: Ward does not reach PostgreSQL through the proxy", appName)
	}

	h := &crashHistory{}
	writers := make([]*crashWriter, pgWriters)
	for i := range writers {
		writers[i] = &crashWriter{n: i, h: h, rng: rand.New(rand.NewPCG(seed, uint64(i+1)))}
	}
	l := &pgLog{}
	start := time.Now()
	var stopped atomic.Bool
	var wg sync.WaitGroup
	for _, w := range writers {
		wg.Go(func() {
			for !stopped.Load() {
				w.restartStep(t, c, l)
			}
		})
	}
	for i := range pgReaders {
		rrng := rand.New(rand.NewPCG(seed, uint64(100+i)))
		wg.Go(func() {
			for !stopped.Load() {
				pgRead(t, c, h, l, rrng)
			}
		})
	}

	time.Sleep(pgWarmup)
	var restarts []*pgRestart
	for i := range pgRestarts {
		r := &pgRestart{n: i, outage: pgMinOutage + time.Duration(rng.Int64N(int64(pgOutageSpan)))}
		restarts = append(restarts, r)
		r.run(t, proxy, sc.Admin, appName)
		if !l.waitRecovered(r.up, pgRecoveryBound) {
			t.Errorf("restart %d (%s): no write and read succeeded within %v of the database's return", i, r.mode, pgRecoveryBound)
		}
		time.Sleep(pgBetween)
	}
	steady := time.Now()
	time.Sleep(pgSteady)
	stopped.Store(true)
	wg.Wait()
	loadTime := time.Since(start)

	a := l.analyse(t, restarts, steady)

	lost, committed, uncertain := checkAcknowledged(t, c, h, writers)
	whole, absent := checkTransactions(t, c, h)
	p.stop(t)

	direct, err := sql.Open("pgx", sc.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	entries := ledgerAgrees(t, direct, h)
	unaudited, late := l.checkAudited(t, direct, restarts)
	for _, args := range [][]string{{"audit", "checkpoint"}, {"audit", "verify"}} {
		cmd := exec.CommandContext(t.Context(), bin, append(args, "--data", dir, "--db", sc.URL)...)
		cmd.Env = wardFreeEnv()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("ward %s after %d restarts: %v\n%s", strings.Join(args, " "), pgRestarts, err, out)
		} else if args[1] == "verify" && !bytes.Contains(out, []byte("ledger intact")) {
			t.Errorf("ward audit verify exited 0 without saying the ledger is intact:\n%s", out)
		}
	}
	if lost > 0 {
		t.Errorf("%d acknowledged writes lost or changed across the restarts", lost)
	}
	if t.Failed() {
		t.Logf("Ward's log, error lines:\n%s", errorLines(p.logs.String(), 40))
	}

	for _, r := range restarts {
		t.Logf("restart %d: %s; unreachable %v after it began, for %v; %d connections cut by the proxy, %d backends ended by the server; "+
			"%d new connections turned away; first write and read succeeded %v after its return; failures %s",
			r.n, r.mode, r.down.Sub(r.begin).Round(time.Millisecond), r.up.Sub(r.down).Round(time.Millisecond), r.cut, r.terminated, r.turnedAway,
			a.recovery[r.n].Round(time.Millisecond), statusCounts(a.failures[r.n]))
	}
	s := h.summary()
	t.Logf("F4: %d restarts / %d acknowledged writes lost (%d acknowledged writes checked: %s; %d transactions acknowledged; "+
		"of the writes answered 503 to known resources %d of %d had committed, of the transactions answered 503 %d whole and %d absent, none partial); "+
		"%d requests: %s; slowest answer %v (%s); %d success responses checked against the ledger, %d unaudited; "+
		"%d requests answered 503 have a success entry all the same (%s); %d ledger entries; "+
		"steady phase %d requests, all succeeded: %v; load %v",
		pgRestarts, lost, h.ackCount(), s.writes, s.txnAcked, committed, uncertain, whole, absent,
		a.total, statusCounts(a.all), a.slowest.Round(time.Millisecond), a.slowestOf, a.successes, unaudited, len(late), strings.Join(late, "; "), entries,
		a.steady, a.steadyOK, loadTime.Round(100*time.Millisecond))
}

// throughProxy rewrites a postgres:// URL to connect through addr with the
// given application_name.
func throughProxy(raw, addr, appName string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", errors.New("WARD_TEST_POSTGRES is not a URL")
	}
	q := u.Query()
	q.Del("host") // a unix socket directory given as a parameter
	q.Del("port")
	q.Set("application_name", appName)
	u.Host = addr
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// wardBackends counts the server's backends serving this Ward.
func wardBackends(t *testing.T, admin *sql.DB, appName string) int {
	t.Helper()
	var n int
	err := admin.QueryRowContext(t.Context(),
		`SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()`, appName).Scan(&n)
	if err != nil {
		t.Fatalf("pg_stat_activity: %v", err)
	}
	return n
}

// terminateWard ends this Ward's backends from the server side, as a
// shutdown does: each sends its client FATAL 57P01 and closes. Only
// backends with the test's application_name are touched. It waits (up to
// 5s each; PostgreSQL 14 or later) until they have exited: a signalled
// backend may still finish the statement in hand.
func terminateWard(t *testing.T, admin *sql.DB, appName string) int {
	t.Helper()
	var n int
	err := admin.QueryRowContext(t.Context(),
		`SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) FROM pg_stat_activity
		 WHERE application_name = $1 AND datname = current_database() AND pid <> pg_backend_pid()`, appName).Scan(&n)
	if err != nil {
		t.Fatalf("pg_terminate_backend of Ward's backends: %v", err)
	}
	return n
}

// pgRestart is one simulated restart.
type pgRestart struct {
	n          int
	mode       string
	outage     time.Duration
	begin      time.Time // the restart began: failures may start here
	down       time.Time // from here no connection works: no success may be answered
	up         time.Time // connections are let through again
	cut        int       // proxied connections the proxy aborted
	terminated int       // backends the server ended
	turnedAway int       // connections refused by reset or 57P03 (not counting refused SYNs)
}

// run performs restart r.n: round-robin over three ways a restart looks
// from the client's side.
func (r *pgRestart) run(t *testing.T, proxy *pgProxy, admin *sql.DB, appName string) {
	t.Helper()
	before := proxy.turnedAway.Load()
	switch r.n % 3 {
	case 0:
		r.mode = "connections cut, port closed"
		r.begin = time.Now()
		r.cut = proxy.cut(proxyClosed)
		r.down = time.Now()
		time.Sleep(r.outage)
	case 1:
		r.mode = "backends terminated by the server, new connections reset"
		r.begin = time.Now()
		_ = proxy.setMode(proxyReset)
		r.terminated = terminateWard(t, admin, appName)
		r.down = time.Now()
		if r.terminated == 0 {
			t.Errorf("restart %d: pg_terminate_backend found no backend of Ward's", r.n)
		}
		time.Sleep(100 * time.Millisecond) // the backends' FATAL and close reach Ward through the proxy
		r.cut = proxy.cut(proxyReset)
		time.Sleep(r.outage - 100*time.Millisecond)
	default:
		r.mode = "connections cut, port closed, then 57P03 starting up"
		r.begin = time.Now()
		r.cut = proxy.cut(proxyClosed)
		r.down = time.Now()
		time.Sleep(r.outage / 2)
		_ = proxy.setMode(proxyStarting)
		time.Sleep(r.outage - r.outage/2)
	}
	if err := proxy.setMode(proxyUp); err != nil {
		t.Fatalf("restart %d: the proxy cannot listen again: %v", r.n, err)
	}
	r.up = time.Now()
	r.turnedAway = int(proxy.turnedAway.Load() - before)
	if r.cut+r.terminated == 0 {
		t.Errorf("restart %d (%s): no connection of Ward's was open to cut", r.n, r.mode)
	}
}

// pgResult is one request's outcome.
type pgResult struct {
	write      bool
	what       string
	start, end time.Time
	status     int    // 0: no answer
	rid        string // X-Request-Id
	problem    string // why a failure is not a clean 503; "" when it is, or for a success
}

func (r pgResult) ok() bool { return r.status >= 200 && r.status < 300 }

// pgLog records every request.
type pgLog struct {
	mu        sync.Mutex
	results   []pgResult
	lastWrite time.Time // start of the latest successful write
	lastRead  time.Time
}

// do sends one request within pgRequestBound and records it. A failure
// makes the client back off for pgBackoff.
func (l *pgLog) do(t *testing.T, c *crashClient, write bool, what, method, path string, body any, ifMatch string) (crashResp, error) {
	ctx, cancel := context.WithTimeout(t.Context(), pgRequestBound)
	defer cancel()
	res := pgResult{write: write, what: what, start: time.Now()}
	r, err := c.do(ctx, method, path, body, ifMatch)
	res.end = time.Now()
	if err != nil {
		res.problem = fmt.Sprintf("no answer within %v: %v", pgRequestBound, err)
	} else {
		res.status, res.rid = r.status, r.header.Get("X-Request-Id")
		if !res.ok() {
			res.problem = uncleanFailure(r, res.rid)
		}
	}
	l.mu.Lock()
	l.results = append(l.results, res)
	if res.ok() {
		if write && res.start.After(l.lastWrite) {
			l.lastWrite = res.start
		} else if !write && res.start.After(l.lastRead) {
			l.lastRead = res.start
		}
	}
	l.mu.Unlock()
	if !res.ok() {
		time.Sleep(pgBackoff)
	}
	return r, err
}

// leakWords may not appear in a failure's body: they would be the
// database's, the driver's or the network's text.
var leakWords = []string{"sql", "pgx", "pgconn", "postgres", "pq:", "fatal", "57p", "08006", "08p01", "eof", "dial", "tcp",
	"connect", "refused", "reset by peer", "broken pipe", "terminat", "backend", "ledger_", "resources", "search_index",
	"select ", "insert ", "update ", "commit", "rollback", "127.0.0.1", "::1", "sqldb", "audit:", "store:"}

// uncleanFailure says what is wrong with a failure response, or "" when
// it is a 503 OperationOutcome whose text is about the request id only.
func uncleanFailure(r crashResp, rid string) string {
	switch {
	case r.status != http.StatusServiceUnavailable:
		return fmt.Sprintf("status %d: %s", r.status, issues(r.body))
	case r.bodyErr != nil:
		return fmt.Sprintf("503 without a JSON body: %v", r.bodyErr)
	case !strings.HasPrefix(r.header.Get("Content-Type"), "application/fhir+json"):
		return fmt.Sprintf("503 with Content-Type %q", r.header.Get("Content-Type"))
	case r.body["resourceType"] != "OperationOutcome":
		return fmt.Sprintf("503 with a %v body", r.body["resourceType"])
	}
	raw, _ := json.Marshal(r.body)
	if rid == "" || !strings.Contains(string(raw), rid) {
		return fmt.Sprintf("503 whose OperationOutcome does not name the request id %q: %s", rid, raw)
	}
	// The request id is random hex: it may spell a digit-only word.
	text := strings.ToLower(strings.ReplaceAll(string(raw), rid, "<rid>"))
	for _, w := range leakWords {
		if strings.Contains(text, w) {
			return fmt.Sprintf("503 whose OperationOutcome carries %q: %s", w, raw)
		}
	}
	return ""
}

// waitRecovered waits until a write and a read that started after up have
// succeeded, for at most bound.
func (l *pgLog) waitRecovered(up time.Time, bound time.Duration) bool {
	deadline := up.Add(bound)
	for time.Now().Before(deadline) {
		l.mu.Lock()
		done := !l.lastWrite.Before(up) && !l.lastRead.Before(up)
		l.mu.Unlock()
		if done {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// pgAnalysis is what the request log shows.
type pgAnalysis struct {
	total     int
	all       map[int]int   // status -> count; 0 is no answer
	failures  []map[int]int // by restart: failure status -> count
	recovery  []time.Duration
	slowest   time.Duration
	slowestOf string // what the slowest request was and when
	successes int
	steady    int
	steadyOK  bool
}

// analyse checks the request log against the restarts: every failure is a
// clean 503 within pgRequestBound during an outage or its recovery, no
// success is answered while the database is away, every restart recovers,
// and every request of the steady phase succeeds.
func (l *pgLog) analyse(t *testing.T, restarts []*pgRestart, steady time.Time) pgAnalysis {
	t.Helper()
	l.mu.Lock()
	results := slices.Clone(l.results)
	l.mu.Unlock()
	a := pgAnalysis{total: len(results), all: map[int]int{}, steadyOK: true}
	// Recovery: the first success of a write and of a read that started
	// after the database came back.
	windowEnd := make([]time.Time, len(restarts))
	for i, r := range restarts {
		var firstWrite, firstRead time.Time
		for _, res := range results {
			if !res.ok() || res.start.Before(r.up) {
				continue
			}
			if res.write && (firstWrite.IsZero() || res.end.Before(firstWrite)) {
				firstWrite = res.end
			}
			if !res.write && (firstRead.IsZero() || res.end.Before(firstRead)) {
				firstRead = res.end
			}
		}
		rec := pgRecoveryBound
		if !firstWrite.IsZero() && !firstRead.IsZero() {
			rec = max(firstWrite.Sub(r.up), firstRead.Sub(r.up))
		}
		a.recovery = append(a.recovery, rec)
		a.failures = append(a.failures, map[int]int{})
		windowEnd[i] = r.up.Add(rec + pgSettle)
	}
	var unclean, outside, servedDown []pgResult
	for _, res := range results {
		a.all[res.status]++
		if d := res.end.Sub(res.start); d > a.slowest {
			a.slowest = d
			a.slowestOf = fmt.Sprintf("%s answered %d, %s", res.what, res.status, when(res, restarts))
		}
		if !res.start.Before(steady) {
			a.steady++
		}
		if res.ok() {
			a.successes++
			for _, r := range restarts {
				// Started after the cut and answered before the return:
				// nothing could have been stored or audited.
				if res.start.After(r.down) && res.end.Before(r.up) {
					servedDown = append(servedDown, res)
				}
			}
			continue
		}
		if !res.start.Before(steady) {
			a.steadyOK = false
		}
		if res.problem != "" {
			unclean = append(unclean, res)
		}
		in := -1
		for i, r := range restarts {
			if res.end.After(r.begin) && res.start.Before(windowEnd[i]) {
				in = i
				break
			}
		}
		if in < 0 {
			outside = append(outside, res)
			continue
		}
		a.failures[in][res.status]++
	}
	report := func(what string, rs []pgResult) {
		if len(rs) == 0 {
			return
		}
		var b strings.Builder
		for _, res := range rs[:min(len(rs), 5)] {
			fmt.Fprintf(&b, "\n  %s (request %s), %s: %s", res.what, res.rid, when(res, restarts), res.problem)
		}
		t.Errorf("%d %s; the first:%s", len(rs), what, b.String())
	}
	report("failures that are not a clean 503 OperationOutcome answered in time", unclean)
	report(fmt.Sprintf("failures outside every outage and its recovery (the database's return + first success + %v)", pgSettle), outside)
	report("successes answered while the database was unreachable", servedDown)
	for i, r := range restarts {
		if a.recovery[i] >= pgRecoveryBound {
			t.Errorf("restart %d (%s): Ward did not recover within %v", i, r.mode, pgRecoveryBound)
		}
		if len(a.failures[i]) == 0 {
			t.Errorf("restart %d (%s): no request failed; the outage did not reach Ward", i, r.mode)
		}
	}
	if a.steady == 0 {
		t.Errorf("no request in the steady phase")
	}
	return a
}

// checkAudited checks that every success response has a ledger entry with
// its request id and outcome success. It returns how many do not, and
// describes the 503 answers whose success entry (with its write, if any)
// committed all the same: the connection was lost after the commit was
// sent, so Ward could not know, and withheld the answer.
func (l *pgLog) checkAudited(t *testing.T, db *sql.DB, restarts []*pgRestart) (missing int, late []string) {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), `SELECT entry FROM ledger_entries`)
	if err != nil {
		t.Fatal(err)
	}
	success := map[string]bool{}
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			t.Fatal(err)
		}
		e, err := ledger.DecodeEntry(raw)
		if err != nil {
			t.Fatalf("ledger entry does not decode: %v", err)
		}
		if e.Outcome == "success" {
			success[e.RequestID] = true
		}
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, res := range l.results {
		if !res.ok() && res.rid != "" && success[res.rid] {
			late = append(late, res.what+", "+when(res, restarts))
		}
		if res.ok() && !success[res.rid] {
			if missing < 5 {
				t.Errorf("%s answered %d (request %s) has no success entry in the ledger", res.what, res.status, res.rid)
			}
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d success responses without a ledger entry", missing)
	}
	return missing, late
}

// when places a request relative to the restart it is closest to.
func when(res pgResult, restarts []*pgRestart) string {
	var best *pgRestart
	for _, r := range restarts {
		if !res.start.Before(r.begin.Add(-time.Second)) {
			best = r
		}
	}
	if best == nil {
		return "before the first restart"
	}
	ms := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	return fmt.Sprintf("restart %d: sent %v and answered %v after the database went away (it returned at %v)",
		best.n, ms(res.start.Sub(best.down)), ms(res.end.Sub(best.down)), ms(best.up.Sub(best.down)))
}

// statusCounts formats status -> count, in status order.
func statusCounts(m map[int]int) string {
	if len(m) == 0 {
		return "none"
	}
	var codes []int
	for c := range m {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	var parts []string
	for _, c := range codes {
		name := strconv.Itoa(c)
		if c == 0 {
			name = "no answer"
		}
		parts = append(parts, fmt.Sprintf("%s x%d", name, m[c]))
	}
	return strings.Join(parts, ", ")
}

// errorLines returns up to n distinct error lines of Ward's log, with
// request ids and times cut so that repeats collapse.
func errorLines(log string, n int) string {
	seen := map[string]bool{}
	var out []string
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, `"level":"ERROR"`) {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		key := fmt.Sprintf("%v: %v", m["msg"], m["error"])
		if !seen[key] && len(out) < n {
			seen[key] = true
			out = append(out, key)
		}
	}
	return strings.Join(out, "\n")
}

// restartStep is one write: a new Patient, a new Observation, an If-Match
// update of a resource this writer owns, or a transaction. A 503 leaves the
// outcome open: the resource is left alone from then on, and the
// transaction is checked as all or nothing.
func (w *crashWriter) restartStep(t *testing.T, c *crashClient, l *pgLog) {
	var patients, writable []*ownedResource
	for _, o := range w.owned {
		if !o.writable() {
			continue
		}
		writable = append(writable, o)
		if o.typ == "Patient" {
			patients = append(patients, o)
		}
	}
	w.seq++
	switch x := w.rng.IntN(100); {
	case x < 20 || len(patients) == 0:
		w.restartCreate(t, c, l, crashPatientBody("", "", w.seq), nil)
	case x < 45:
		pt := patients[w.rng.IntN(len(patients))]
		w.restartCreate(t, c, l, crashObservationBody("", "Patient/"+pt.id, "", w.seq), pt)
	case x < 85:
		w.restartUpdate(t, c, l, writable[w.rng.IntN(len(writable))])
	default:
		w.restartTransaction(t, c, l)
	}
}

func (w *crashWriter) restartCreate(t *testing.T, c *crashClient, l *pgLog, body map[string]any, subject *ownedResource) {
	typ := body["resourceType"].(string)
	r, err := l.do(t, c, true, "create "+typ, http.MethodPost, "/"+typ, body, "")
	if err != nil || r.status != http.StatusCreated {
		return // recorded and judged by the log
	}
	gotType, id, v, err := parseLocation(r.header.Get("Location"))
	if err != nil || gotType != typ || v != 1 || etagVersion(r.header.Get("ETag")) != 1 {
		t.Errorf("create %s: Location %q, ETag %q: want version 1", typ, r.header.Get("Location"), r.header.Get("ETag"))
		return
	}
	o := &ownedResource{typ: typ, id: id, version: 1}
	if subject != nil {
		o.patient = subject.id
	}
	w.owned = append(w.owned, o)
	w.h.ack(ackedWrite{action: "create", typ: typ, id: id, version: 1})
}

func (w *crashWriter) restartUpdate(t *testing.T, c *crashClient, l *pgLog, o *ownedResource) {
	body := crashPatientBody(o.id, o.marker, w.seq)
	if o.typ == "Observation" {
		body = crashObservationBody(o.id, "Patient/"+o.patient, o.marker, w.seq)
	}
	r, err := l.do(t, c, true, "update "+o.typ, http.MethodPut, "/"+o.typ+"/"+o.id, body, etag(o.version))
	if err != nil || r.status != http.StatusOK {
		// Only this writer changes o: a 412 would mean a version appeared
		// that no one was told of, and the log reports it as unclean.
		o.uncertain = true
		return
	}
	if v := etagVersion(r.header.Get("ETag")); v != o.version+1 {
		o.uncertain = true
		t.Errorf("update %s/%s from version %d answered ETag %q", o.typ, o.id, o.version, r.header.Get("ETag"))
		return
	}
	o.version++
	w.h.ack(ackedWrite{action: "update", typ: o.typ, id: o.id, version: o.version})
}

func (w *crashWriter) restartTransaction(t *testing.T, c *crashClient, l *pgLog) {
	var b [6]byte
	for i := range b {
		b[i] = byte(w.rng.Uint32())
	}
	x := &crashTxn{marker: fmt.Sprintf("f4-w%d-%d-%s", w.n, w.seq, hex.EncodeToString(b[:]))}
	pu := "urn:uuid:" + uuidFrom(w.rng)
	bundle := map[string]any{
		"resourceType": "Bundle",
		"type":         "transaction",
		"entry": []any{
			map[string]any{"fullUrl": pu, "resource": crashPatientBody("", x.marker, w.seq), "request": map[string]any{"method": "POST", "url": "Patient"}},
			map[string]any{"resource": crashObservationBody("", pu, x.marker, w.seq), "request": map[string]any{"method": "POST", "url": "Observation"}},
			map[string]any{"resource": crashObservationBody("", pu, x.marker, w.seq+1), "request": map[string]any{"method": "POST", "url": "Observation"}},
		},
	}
	w.h.addTxn(x)
	r, err := l.do(t, c, true, "transaction", http.MethodPost, "", bundle, "")
	if err != nil || r.status != http.StatusOK {
		// The outcome is open (a commit whose answer the connection lost
		// may have happened): checkTransactions takes status 0 as all or
		// nothing.
		x.early = true
		return
	}
	x.status = r.status
	entries, _ := r.body["entry"].([]any)
	if r.bodyErr != nil || r.body["type"] != "transaction-response" || len(entries) != 3 {
		t.Errorf("transaction answered %v with %d entries (%v)", r.body["type"], len(entries), r.bodyErr)
		return
	}
	owned, ids, err := transactionCreated(entries, x.marker)
	if err != nil {
		t.Error(err)
		return
	}
	x.ids = append(x.ids, ids...)
	for _, o := range owned {
		w.owned = append(w.owned, o)
		w.h.ack(ackedWrite{action: "create", typ: o.typ, id: o.id, version: 1})
	}
}

// pgRead reads an acknowledged Patient (its version may only have grown)
// or searches its Observations.
func pgRead(t *testing.T, c *crashClient, h *crashHistory, l *pgLog, rng *rand.Rand) {
	p, ok := h.randomPatient(rng)
	if !ok {
		time.Sleep(5 * time.Millisecond)
		return
	}
	path, what := "/Patient/"+p.id, "read Patient"
	if rng.IntN(2) == 0 {
		path, what = "/Observation?subject=Patient/"+p.id, "search Observation"
	}
	r, err := l.do(t, c, false, what, http.MethodGet, path, nil, "")
	if err != nil || r.status != http.StatusOK {
		return
	}
	switch {
	case r.bodyErr != nil:
		t.Errorf("%s answered 200 with a bad body: %v", what, r.bodyErr)
	case what == "read Patient" && (r.body["id"] != p.id || bodyVersion(r.body) < p.version):
		t.Errorf("read Patient/%s: got id %v version %d, want version >= %d", p.id, r.body["id"], bodyVersion(r.body), p.version)
	case what == "search Observation" && r.body["type"] != "searchset":
		t.Errorf("search %s: got a %v Bundle", path, r.body["type"])
	}
}

// The proxy's modes. In proxyClosed the port is closed, so connections are
// refused; in proxyReset a connection is accepted and reset at once; in
// proxyStarting it is answered as PostgreSQL answers while it recovers at
// start (FATAL 57P03) and closed.
const (
	proxyUp = iota
	proxyClosed
	proxyReset
	proxyStarting
)

// pgProxy relays TCP connections to PostgreSQL and can make it look
// restarted.
type pgProxy struct {
	network, target string
	addr            string
	turnedAway      atomic.Int64

	mu    sync.Mutex
	ln    net.Listener // nil while closed
	mode  int
	pipes map[*pgPipe]struct{}
}

// pgPipe is one relayed connection: Ward's side and the server's.
type pgPipe struct{ client, server net.Conn }

func startPGProxy(t *testing.T, network, target string) *pgProxy {
	t.Helper()
	p := &pgProxy{network: network, target: target, pipes: map[*pgPipe]struct{}{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr, p.ln = ln.Addr().String(), ln
	go p.accept(ln)
	t.Cleanup(func() {
		p.cut(proxyClosed)
	})
	return p
}

func (p *pgProxy) accept(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go p.handle(c)
	}
}

func (p *pgProxy) handle(c net.Conn) {
	p.mu.Lock()
	mode := p.mode
	p.mu.Unlock()
	switch mode {
	case proxyReset, proxyClosed:
		p.turnedAway.Add(1)
		abort(c)
		return
	case proxyStarting:
		p.turnedAway.Add(1)
		startingUp(c)
		return
	}
	s, err := net.DialTimeout(p.network, p.target, 2*time.Second)
	if err != nil {
		abort(c)
		return
	}
	p.mu.Lock()
	if p.mode != proxyUp {
		p.mu.Unlock()
		abort(c)
		abort(s)
		return
	}
	pipe := &pgPipe{client: c, server: s}
	p.pipes[pipe] = struct{}{}
	p.mu.Unlock()
	// When one side ends (a terminated backend sends its FATAL and
	// closes), the other is closed after what was sent is relayed.
	done := func() {
		p.mu.Lock()
		delete(p.pipes, pipe)
		p.mu.Unlock()
		c.Close()
		s.Close()
	}
	go func() { _, _ = io.Copy(s, c); done() }()
	go func() { _, _ = io.Copy(c, s); done() }()
}

// cut switches to mode and aborts every relayed connection, both sides, as
// a server that goes away does. It returns how many connections were
// cut.
func (p *pgProxy) cut(mode int) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = mode
	if mode == proxyClosed && p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	n := len(p.pipes)
	for pipe := range p.pipes {
		abort(pipe.client)
		abort(pipe.server)
		delete(p.pipes, pipe)
	}
	return n
}

// setMode switches mode without touching open connections; proxyUp opens
// the port again if it is closed.
func (p *pgProxy) setMode(mode int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if mode != proxyClosed && p.ln == nil {
		var ln net.Listener
		var err error
		for range 50 { // the port was ours a moment ago
			if ln, err = net.Listen("tcp", p.addr); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			return err
		}
		p.ln = ln
		go p.accept(ln)
	}
	p.mode = mode
	return nil
}

// abort closes c with a reset (SO_LINGER 0) where it is TCP.
func abort(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// startingUp answers a connection as PostgreSQL does while it recovers at
// start: it reads the startup message (declining TLS and GSS encryption
// requests), sends ErrorResponse FATAL 57P03 and closes.
func startingUp(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	for {
		var hdr [8]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(hdr[:4])
		code := binary.BigEndian.Uint32(hdr[4:])
		if n < 8 || n > 10000 {
			return
		}
		if _, err := io.CopyN(io.Discard, c, int64(n-8)); err != nil {
			return
		}
		if code == 80877103 || code == 80877104 { // SSLRequest, GSSENCRequest
			if _, err := c.Write([]byte{'N'}); err != nil {
				return
			}
			continue
		}
		break
	}
	var fields []byte
	for _, f := range [][2]string{{"S", "FATAL"}, {"V", "FATAL"}, {"C", "57P03"}, {"M", "the database system is starting up"}} {
		fields = append(fields, f[0][0])
		fields = append(append(fields, f[1]...), 0)
	}
	fields = append(fields, 0)
	msg := []byte{'E', 0, 0, 0, 0}
	binary.BigEndian.PutUint32(msg[1:], uint32(4+len(fields)))
	_, _ = c.Write(append(msg, fields...))
}
