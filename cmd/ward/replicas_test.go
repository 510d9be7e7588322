package main

import (
	"bytes"
	"database/sql"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	"github.com/wardhealth/ward/internal/fhir/fhirtest"
	"github.com/wardhealth/ward/internal/loadgen"
	"github.com/wardhealth/ward/internal/store/storetest"
	"github.com/wardhealth/ward/internal/tlsconfig"
)

// The shape of catalogue case J3's run.
const (
	j3Replicas   = 3
	j3Writers    = 4
	j3Readers    = 2
	j3BeforeKill = 90  // writes acknowledged before the kill
	j3AfterKill  = 90  // and after it, before the load stops
	j3Attempts   = 100 // sends of one request before the test gives up on it
	j3Redial     = 8   // a client drops its connection every this many requests
	j3Seed       = 0x5eed_73
	j3Origin     = "replicas-test.ward.invalid/ledger"
	// j3Stall bounds the load after the kill, which a loaded machine
	// finishes in well under a minute: past it the test fails and shows
	// the replicas' logs instead of hanging.
	j3Stall = 8 * time.Minute
	// j3Timeout bounds one request. It is long: on a machine loaded far
	// past its cores a request can take seconds, and one abandoned early
	// is sent again while the server still works on it, adding load.
	j3Timeout = time.Minute
)

// TestReplicasUnderLoad is catalogue case J3: three `ward serve` processes
// share one PostgreSQL database (a fresh schema) and one key file behind a
// TCP load balancer (round robin; a backend that refuses the connection is
// skipped). Writers put Patients under ids they choose, creating and
// updating them, and readers read what was acknowledged, all through the
// balancer; a client that gets no answer or a 5xx sends the same request
// again (a PUT to a chosen id is idempotent). One replica is killed with
// SIGKILL once a number of writes have been acknowledged, and the load
// goes on through the two others.
//
// It checks that every replica served connections before the kill; that
// every read of an acknowledged write returns that version or a later one,
// whichever replica answers (no replica serves stale data); that every
// acknowledged write is readable afterwards with the content of the last
// write acknowledged for it; that every stored version has exactly one
// ledger entry and every acknowledged write and answered read its entry
// (ledgerAgrees); and that `ward audit verify` passes on the shared ledger.
//
// The kill comes after a count of acknowledged writes, not after a time.
func TestReplicasUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs three replicas under load; skipped with -short")
	}
	if runtime.GOOS == "windows" {
		t.Skip("SIGKILL is POSIX")
	}
	sc := storetest.FreshSchema(t, "ward_j3_test_")
	bin := buildWard(t)
	lb := startBalancer(t)
	reps, creds := startReplicas(t, bin, lb, sc.URL, j3Replicas)

	h := &crashHistory{}
	var acked atomic.Int64
	killAt := make(chan struct{}) // closed when j3BeforeKill writes are acknowledged
	stopAt := make(chan struct{}) // closed when the load may stop
	var killedAt atomic.Int64     // acknowledged writes when the kill was done; 0 before
	var stopped atomic.Bool       // the workers stop
	var closeKill, closeStop sync.Once
	retried := &atomic.Int64{} // requests sent again after no answer or a 5xx
	onAck := func() {
		n := acked.Add(1)
		if n >= j3BeforeKill {
			closeKill.Do(func() { close(killAt) })
		}
		if k := killedAt.Load(); k > 0 && n >= k+j3AfterKill {
			closeStop.Do(func() { close(stopAt) })
		}
	}

	var wg sync.WaitGroup
	writers := make([]*j3Writer, j3Writers)
	for i := range writers {
		w := &j3Writer{n: i, c: newJ3Client(t, creds, retried), latest: map[string]int{}}
		writers[i] = w
		wg.Go(func() {
			for k := 0; !stopped.Load(); k++ {
				if !w.step(t, k, h) {
					stopped.Store(true)
					return
				}
				onAck()
			}
		})
	}
	var stale atomic.Int64
	for i := range j3Readers {
		c := newJ3Client(t, creds, retried)
		rng := rand.New(rand.NewPCG(j3Seed, uint64(100+i)))
		wg.Go(func() {
			for !stopped.Load() {
				pt, ok := h.randomPatient(rng)
				if !ok {
					runtime.Gosched()
					continue
				}
				r, ok := c.send(t, http.MethodGet, "/Patient/"+pt.id, nil)
				if !ok {
					stopped.Store(true)
					return
				}
				if r.status != http.StatusOK {
					t.Errorf("read of acknowledged Patient/%s: %d", pt.id, r.status)
					stopped.Store(true)
					return
				}
				if v := bodyVersion(r.body); v < pt.version {
					stale.Add(1)
					t.Errorf("read of Patient/%s answered version %d after version %d was acknowledged (a stale replica)", pt.id, v, pt.version)
				}
				h.answeredRead(r.header.Get("X-Request-Id"))
			}
		})
	}

	// The kill, once enough writes are acknowledged; the load goes on
	// until as many more are.
	failed := make(chan struct{})
	go func() { wg.Wait(); close(failed) }()
	select {
	case <-killAt:
	case <-failed:
		t.Fatalf("the load ended before the kill, with %d writes acknowledged", acked.Load())
	}
	spread := lb.served()
	for i, n := range spread {
		if n == 0 {
			t.Errorf("replica %d served no connection before the kill: the balancer did not spread the load (%v)", i, spread)
		}
	}
	victim := reps[1]
	victim.crash(t)
	killedAt.Store(acked.Load())
	before := lb.served()
	t.Logf("killed replica 1 (SIGKILL) after %d acknowledged writes; connections per replica so far %v", killedAt.Load(), before)
	select {
	case <-stopAt:
	case <-failed:
	case <-time.After(j3Stall):
		t.Errorf("the load stalled after the kill: %d writes acknowledged, %d of them since the kill", acked.Load(), acked.Load()-killedAt.Load())
	}
	stopped.Store(true)
	wg.Wait()
	if t.Failed() {
		for i, r := range reps {
			t.Logf("replica %d log, error lines:\n%s", i, errorLines(r.logs.String(), 20))
		}
		t.FailNow()
	}
	after := lb.served()
	if after[1] != before[1] {
		t.Errorf("the balancer connected to the killed replica after the kill: %v then %v", before, after)
	}

	// Every acknowledged write, read through the survivors.
	c := newJ3Client(t, creds, retried)
	checked := 0
	for _, w := range writers {
		for id, seq := range w.latest {
			r, ok := c.send(t, http.MethodGet, "/Patient/"+id, nil)
			if !ok {
				continue
			}
			if r.status != http.StatusOK {
				t.Errorf("acknowledged Patient/%s reads %d", id, r.status)
				continue
			}
			if got := j3Seq(r.body); got != seq {
				t.Errorf("Patient/%s holds write %d, want %d, the last acknowledged", id, got, seq)
			}
			checked++
		}
	}
	for i, r := range reps {
		if i != 1 {
			r.stop(t)
		}
	}

	direct, err := sql.Open("pgx", sc.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	entries := ledgerAgrees(t, direct, h)
	for _, args := range [][]string{{"audit", "checkpoint"}, {"audit", "verify"}} {
		cmd := exec.CommandContext(t.Context(), bin, append(args, "--data", reps[0].dir, "--db", sc.URL)...)
		cmd.Env = wardFreeEnv()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("ward %s after the kill: %v\n%s", strings.Join(args, " "), err, out)
		} else if args[1] == "verify" && !bytes.Contains(out, []byte("ledger intact")) {
			t.Errorf("ward audit verify exited 0 without saying the ledger is intact:\n%s", out)
		}
	}
	s := h.summary()
	t.Logf("J3: %d replicas, 1 killed after %d acknowledged writes; %d writes acknowledged (%s), %d of them checked as the last of their Patient; "+
		"%d reads answered, none stale; %d requests sent again after no answer or a 5xx; connections per replica %v; %d ledger entries",
		j3Replicas, killedAt.Load(), h.ackCount(), s.writes, checked, len(h.reads), retried.Load(), after, entries)
}

// j3Client sends FHIR requests through the balancer and sends a request
// again when no answer arrives or the answer is a 5xx.
type j3Client struct {
	c       *crashClient
	tr      *http.Transport
	sent    int
	retried *atomic.Int64
}

func newJ3Client(t *testing.T, creds devCredentials, retried *atomic.Int64) *j3Client {
	t.Helper()
	hc := httpsClient(t, creds.CAFile)
	hc.Timeout = j3Timeout
	status, tok := requestToken(t, hc, creds.TokenURL, creds.ClientID, creds.ClientSecret)
	if status != http.StatusOK {
		t.Fatalf("token request through the balancer: %d", status)
	}
	return &j3Client{c: &crashClient{hc: hc, base: creds.BaseURL, token: tok, timeout: j3Timeout}, tr: hc.Transport.(*http.Transport), retried: retried}
}

// send returns the first answer that is not a 5xx; false (the test has
// failed) when j3Attempts sends got none.
func (c *j3Client) send(t *testing.T, method, path string, body any) (crashResp, bool) {
	t.Helper()
	var last string
	for attempt := range j3Attempts {
		if attempt > 0 {
			c.retried.Add(1)
		}
		c.sent++
		if c.sent%j3Redial == 0 {
			// A new connection goes to the balancer's next replica.
			c.tr.CloseIdleConnections()
		}
		r, err := c.c.do(t.Context(), method, path, body, "")
		switch {
		case err != nil:
			last = err.Error()
		case r.status >= 500:
			last = strconv.Itoa(r.status)
		case r.bodyErr != nil:
			last = "body: " + r.bodyErr.Error()
		default:
			return r, true
		}
		c.tr.CloseIdleConnections()
	}
	t.Errorf("%s %s: no answer but failures after %d sends, the last: %s", method, path, j3Attempts, last)
	return crashResp{}, false
}

// j3Writer creates Patients under ids of its own and updates them; it
// remembers the last write acknowledged for each.
type j3Writer struct {
	n      int
	c      *j3Client
	ids    []string
	latest map[string]int // id -> sequence number of the last acknowledged write
	seq    int
}

// step makes write k: every third an update of one of its Patients, the
// others a new Patient. It returns false when the write failed.
func (w *j3Writer) step(t *testing.T, k int, h *crashHistory) bool {
	t.Helper()
	id := fmt.Sprintf("j3-%d-%d", w.n, len(w.ids))
	if k%3 == 2 && len(w.ids) > 0 {
		id = w.ids[(k/3)%len(w.ids)]
	}
	w.seq++
	body := map[string]any{
		"resourceType": "Patient", "id": id,
		"name":      []any{map[string]any{"family": "Replicatest", "given": []any{"W" + strconv.Itoa(w.seq)}}},
		"birthDate": "1970-01-01",
	}
	r, ok := w.c.send(t, http.MethodPut, "/Patient/"+id, body)
	if !ok {
		return false
	}
	action := map[int]string{http.StatusCreated: "create", http.StatusOK: "update"}[r.status]
	v := etagVersion(r.header.Get("ETag"))
	if action == "" || v == 0 {
		t.Errorf("PUT Patient/%s: %d, ETag %q", id, r.status, r.header.Get("ETag"))
		return false
	}
	if _, known := w.latest[id]; !known {
		w.ids = append(w.ids, id)
	}
	w.latest[id] = w.seq
	h.ack(ackedWrite{action: action, typ: "Patient", id: id, version: v})
	return true
}

// j3Seq is the sequence number a writer put in a Patient; 0 when absent.
func j3Seq(body map[string]any) int {
	names, _ := body["name"].([]any)
	if len(names) != 1 {
		return 0
	}
	name, _ := names[0].(map[string]any)
	given, _ := name["given"].([]any)
	if len(given) != 1 {
		return 0
	}
	s, _ := given[0].(string)
	n, _ := strconv.Atoi(strings.TrimPrefix(s, "W"))
	return n
}

// replica is one `ward serve` of several.
type replica struct {
	*wardProcess
	dir string
}

// startReplicas starts n `ward serve --dev` processes on the PostgreSQL
// database at dbURL, with the balancer's URL as their public URL, and
// makes them the balancer's backends. The first creates the key file, the
// development CA and certificate, and the bootstrap client; the others get
// copies of them in data directories of their own, as replicas on several
// machines would share one key file. It returns the replicas and the
// credentials, which name the balancer.
func startReplicas(t *testing.T, bin string, lb *balancer, dbURL string, n int) ([]*replica, devCredentials) {
	t.Helper()
	base := "https://" + lb.addr
	limits := filepath.Join(t.TempDir(), "rate-limits.json")
	if err := os.WriteFile(limits, []byte(`{"principal": {"rate": 1000000, "burst": 10000000}, "address": {"rate": 1000000, "burst": 10000000}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"serve", "--dev", "--db", dbURL, "--public-url", base, "--ledger-origin", j3Origin, "--rate-limits", limits, "--token-ttl", "1h"}
	var reps []*replica
	for i := range n {
		dir := t.TempDir()
		if i > 0 {
			for _, f := range []string{"keys.json", "dev-credentials.json", "tls/ca.pem", "tls/ca-key.pem", "tls/server.pem", "tls/server-key.pem"} {
				copyFile(t, filepath.Join(reps[0].dir, f), filepath.Join(dir, f))
			}
		}
		reps = append(reps, &replica{wardProcess: startReplica(t, bin, dir, args), dir: dir})
	}
	creds, err := readDevCredentials(filepath.Join(reps[0].dir, "dev-credentials.json"))
	if err != nil {
		t.Fatal(err)
	}
	if creds.BaseURL != base+"/fhir" {
		t.Fatalf("the credentials name %s, not the balancer", creds.BaseURL)
	}
	for i, r := range reps[1:] {
		if c, err := readDevCredentials(filepath.Join(r.dir, "dev-credentials.json")); err != nil || c.ClientID != creds.ClientID || c.BaseURL != creds.BaseURL {
			t.Fatalf("replica %d made a bootstrap client of its own (%v): replicas must share one", i+1, err)
		}
	}
	addrs := make([]string, len(reps))
	for i, r := range reps {
		addrs[i] = r.addr
	}
	lb.setBackends(addrs)
	return reps, creds
}

// startReplica starts `ward serve --dev` with args, --data dir and a
// fresh loopback address, and waits until its credentials file is there
// and its /healthz answers.
func startReplica(t *testing.T, bin, dir string, args []string) *wardProcess {
	t.Helper()
	p := &wardProcess{addr: freeAddr(t), logs: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, append(args, "--data", dir, "--addr", p.addr)...)
	p.cmd.Env = wardFreeEnv()
	p.cmd.Stdout = io.Discard // the greeting holds the client secret
	p.cmd.Stderr = p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
			<-p.done
		}
	})
	// The server certificate is written last: once it is there, the CA
	// file is complete (tlsconfig.Dev).
	dev := tlsconfig.DevPaths(filepath.Join(dir, "tls"))
	ca := dev.CACert
	deadline := time.Now().Add(60 * time.Second)
	var hc *http.Client
	for {
		select {
		case <-p.done:
			t.Fatalf("ward serve exited (%v) before it was ready; log:\n%s", p.cmd.ProcessState, p.logs.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("ward serve not ready after 60s; log:\n%s", p.logs.String())
		}
		if hc == nil {
			if _, err := os.Stat(dev.Cert); err != nil {
				continue
			}
			hc = httpsClient(t, ca)
		}
		if _, err := readDevCredentials(filepath.Join(dir, "dev-credentials.json")); err != nil {
			continue // not written yet
		}
		if healthy(t.Context(), hc, "https://"+p.addr+"/healthz") {
			return p
		}
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// balancer is a TCP load balancer: each connection goes to the next
// backend in turn; a backend that refuses the connection is skipped.
// TLS passes through it to the replicas.
type balancer struct {
	addr     string
	ln       net.Listener
	mu       sync.Mutex
	backends []string
	next     int
	counts   []int // connections proxied to each backend
	open     map[net.Conn]bool
	wg       sync.WaitGroup
}

func startBalancer(t *testing.T) *balancer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &balancer{addr: ln.Addr().String(), ln: ln, open: map[net.Conn]bool{}}
	b.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.wg.Go(func() { b.proxy(c) })
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		b.mu.Lock()
		for c := range b.open {
			_ = c.Close()
		}
		b.mu.Unlock()
		b.wg.Wait()
	})
	return b
}

func (b *balancer) setBackends(addrs []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.backends, b.counts = addrs, make([]int, len(addrs))
}

// served returns the connections proxied to each backend so far.
func (b *balancer) served() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]int(nil), b.counts...)
}

// track adds c to the open connections, or closes it when the balancer
// is closed.
func (b *balancer) track(c net.Conn, add bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if add {
		b.open[c] = true
	} else {
		delete(b.open, c)
	}
}

func (b *balancer) proxy(c net.Conn) {
	b.track(c, true)
	defer func() { b.track(c, false); _ = c.Close() }()
	b.mu.Lock()
	n := len(b.backends)
	b.mu.Unlock()
	for range n {
		b.mu.Lock()
		i := b.next % n
		b.next++
		addr := b.backends[i]
		b.mu.Unlock()
		d, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			continue // a dead backend: the next one
		}
		b.mu.Lock()
		b.counts[i]++
		b.mu.Unlock()
		b.track(d, true)
		defer func() { b.track(d, false); _ = d.Close() }()
		done := make(chan struct{}, 2)
		pipe := func(to, from net.Conn) {
			_, _ = io.Copy(to, from)
			// Half-close so that the other direction can finish.
			if tc, ok := to.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			done <- struct{}{}
		}
		go pipe(d, c)
		go pipe(c, d)
		<-done
		<-done
		return
	}
}

// TestReplicaThroughput measures Ward's throughput with 1, 2 and 3
// replicas on one PostgreSQL database behind the TCP balancer of J3: the
// `ward load` run (loadgen) on the Synthea Bundles, then reads by id and
// searches. It runs only with WARD_TEST_REPLICA_BENCH=1 (docs/PERFORMANCE.md).
func TestReplicaThroughput(t *testing.T) {
	if os.Getenv("WARD_TEST_REPLICA_BENCH") != "1" {
		t.Skip("a measurement: set WARD_TEST_REPLICA_BENCH=1")
	}
	dir := fhirtest.Dir(t, "synthea")
	bin := buildWard(t)
	type row struct {
		n                          int
		ingest, reads, searches    float64
		ingestErr, readErr, srcErr int
	}
	var rows []row
	for n := 1; n <= 3; n++ {
		sc := storetest.FreshSchema(t, fmt.Sprintf("ward_j3_bench%d_", n))
		lb := startBalancer(t)
		reps, creds := startReplicas(t, bin, lb, sc.URL, n)
		cfg := loadgen.Config{BaseURL: creds.BaseURL, TokenURL: creds.TokenURL, ClientID: creds.ClientID,
			ClientSecret: loadgen.Secret(creds.ClientSecret), CAFile: creds.CAFile, Dir: dir,
			Concurrency: 4, ReadConcurrency: 16, Reads: 6000, Searches: 600, Seed: 1, Out: io.Discard}
		rep, err := loadgen.Run(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, row{n, rep.Ingest.ResourcesPerSec(), rep.ReadByID.RequestsPerSec(), rep.Search.RequestsPerSec(),
			rep.Ingest.Errors, rep.ReadByID.Errors, rep.Search.Errors})
		for _, r := range reps {
			r.stop(t)
		}
	}
	var out strings.Builder
	fmt.Fprintf(&out, "| replicas | ingest resources/s | reads/s | searches/s | errors |\n|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&out, "| %d | %.0f (%.2fx) | %.0f (%.2fx) | %.0f (%.2fx) | %d |\n", r.n,
			r.ingest, r.ingest/rows[0].ingest, r.reads, r.reads/rows[0].reads, r.searches, r.searches/rows[0].searches,
			r.ingestErr+r.readErr+r.srcErr)
	}
	t.Logf("throughput by replicas (%d CPUs):\n%s", runtime.NumCPU(), out.String())
}
