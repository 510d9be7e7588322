package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/wardhealth/ward/internal/ledger"
)

// The shape of catalogue case F1's run: how many crashes, how much load.
const (
	crashRounds     = 6                      // kill -9 points per run
	crashWriters    = 4                      // concurrent writing clients
	crashReaders    = 2                      // concurrent reading clients
	crashMinDelay   = 200 * time.Millisecond // load before the kill, at least
	crashDelaySpan  = 1300 * time.Millisecond
	crashMaxOps     = 5000 // per client per round; the kill ends a round long before
	crashSeed       = 0x5eed_f1
	crashMarkerSys  = "urn:ward-test:crash-transaction"
	crashLedgerName = "crash-test.ward.invalid/ledger"
)

// TestKillNineUnderLoad is catalogue case F1: `ward serve` is killed with
// SIGKILL at random points while clients create, update, delete and
// transact and others read and search; after every restart each write the
// server acknowledged is there, no transaction is half-applied, every
// acknowledged write has exactly one ledger entry, every answered read its
// entry (made durable in the ledger spool, folded in after the restart), every ledger entry of a
// write has its stored version and every stored version its entry, and
// `ward audit verify` passes.
//
// The server is started with --ledger-origin: in dev mode the default
// origin follows the listen address, and each round listens on a fresh
// port.
func TestKillNineUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and kills it repeatedly; skipped with -short")
	}
	if runtime.GOOS == "windows" {
		t.Skip("SIGKILL is POSIX")
	}
	seed := uint64(crashSeed)
	if v := os.Getenv("WARD_TEST_CRASH_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 0, 64)
		if err != nil {
			t.Fatalf("WARD_TEST_CRASH_SEED: %v", err)
		}
		seed = s
	}
	t.Logf("seed %#x (WARD_TEST_CRASH_SEED repeats a run's kill delays and operation choices)", seed)
	bin := buildWard(t)
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(seed, 0))
	h := &crashHistory{}
	writers := make([]*crashWriter, crashWriters)
	for i := range writers {
		writers[i] = &crashWriter{n: i, h: h, rng: rand.New(rand.NewPCG(seed, uint64(i+1)))}
	}
	start := time.Now()
	for round := range crashRounds {
		delay := crashMinDelay + time.Duration(rng.Int64N(int64(crashDelaySpan)))
		p := startWard(t, bin, dir)
		c := p.client(t)
		before := h.ackCount()
		inflight := crashLoad(t, p, c, h, writers, round, delay, rand.New(rand.NewPCG(seed, uint64(1000+round))))
		t.Logf("round %d: killed after %v of load with %d writes in flight; %d writes acknowledged",
			round, delay.Round(time.Millisecond), inflight, h.ackCount()-before)
	}

	p := startWard(t, bin, dir)
	c := p.client(t)
	lost, committed, unanswered := checkAcknowledged(t, c, h, writers)
	whole, absent := checkTransactions(t, c, h)
	p.stop(t)
	entries := checkLedgerAgrees(t, filepath.Join(dir, "ward.db"), h)
	for _, args := range [][]string{{"audit", "checkpoint"}, {"audit", "verify"}} {
		cmd := exec.CommandContext(t.Context(), bin, append(args, "--data", dir)...)
		cmd.Env = wardFreeEnv()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("ward %s after %d crashes: %v\n%s", strings.Join(args, " "), crashRounds, err, out)
		} else if args[1] == "verify" && !bytes.Contains(out, []byte("ledger intact")) {
			t.Errorf("ward audit verify exited 0 without saying the ledger is intact:\n%s", out)
		}
	}
	if lost > 0 {
		t.Errorf("%d acknowledged writes lost or changed after kill -9", lost)
	}
	s := h.summary()
	t.Logf("F1: %d answered reads, each with its ledger entry", len(h.reads))
	t.Logf("F1: %d crash points x 1 run / %d acknowledged writes lost (%d acknowledged writes checked: %s; "+
		"%d transactions acknowledged; of the unanswered writes to known resources %d of %d committed, "+
		"of the unanswered transactions %d whole and %d absent, none partial; %d ledger entries; %v)",
		crashRounds, lost, h.ackCount(), s.writes, s.txnAcked, committed, unanswered, whole, absent, entries,
		time.Since(start).Round(100*time.Millisecond))
}

// buildWard builds the ward binary into a temporary directory.
func buildWard(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH to build the binary with")
	}
	bin := filepath.Join(t.TempDir(), "ward")
	build := exec.CommandContext(t.Context(), goTool, "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// wardProcess is a `ward serve --dev` child process.
type wardProcess struct {
	cmd   *exec.Cmd
	addr  string
	logs  *syncBuffer
	creds devCredentials
	done  chan struct{} // closed once the process is reaped
}

// startWard starts `ward serve --dev` on dir and a fresh loopback port,
// with extra flags after the others, and waits until the credentials file
// names that port and /healthz answers. The process is killed when the
// test ends if it still runs.
func startWard(t *testing.T, bin, dir string, extra ...string) *wardProcess {
	t.Helper()
	p := &wardProcess{addr: freeAddr(t), logs: &syncBuffer{}, done: make(chan struct{})}
	// The load these tests drive comes from one client at one address,
	// as fast as the server answers: far above the default limits, which
	// are not what they test.
	limits := filepath.Join(t.TempDir(), "rate-limits.json")
	if err := os.WriteFile(limits, []byte(`{"principal": {"rate": 1000000, "burst": 10000000}, "address": {"rate": 1000000, "burst": 10000000}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"serve", "--dev", "--data", dir, "--addr", p.addr, "--ledger-origin", crashLedgerName, "--rate-limits", limits}, extra...)
	p.cmd = exec.Command(bin, args...)
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

	want := "https://" + p.addr + "/fhir"
	deadline := time.Now().Add(20 * time.Second)
	var hc *http.Client
	for i := 0; ; i++ {
		select {
		case <-p.done:
			t.Fatalf("ward serve exited (%v) before it was ready; log:\n%s", p.cmd.ProcessState, p.logs.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) || i > 1000 {
			t.Fatalf("ward serve not ready after 20s; log:\n%s", p.logs.String())
		}
		creds, err := readDevCredentials(filepath.Join(dir, "dev-credentials.json"))
		if err != nil || creds.BaseURL != want {
			continue // not yet rewritten for this address
		}
		if hc == nil {
			hc = httpsClient(t, creds.CAFile)
		}
		if healthy(t.Context(), hc, "https://"+p.addr+"/healthz") {
			p.creds = creds
			return p
		}
	}
}

func healthy(ctx context.Context, hc *http.Client, u string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// client gets a token for the bootstrap client.
func (p *wardProcess) client(t *testing.T) *crashClient {
	t.Helper()
	hc := httpsClient(t, p.creds.CAFile)
	status, tok := requestToken(t, hc, p.creds.TokenURL, p.creds.ClientID, p.creds.ClientSecret)
	if status != http.StatusOK {
		t.Fatalf("token request: status %d", status)
	}
	return &crashClient{hc: hc, base: p.creds.BaseURL, token: tok}
}

// crash sends SIGKILL to the process (through os.Process, which does not
// signal a reaped pid) and waits until it is gone; it fails unless the
// process died of that signal.
func (p *wardProcess) crash(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
		t.Fatalf("ward serve exited (%v) before the kill; log:\n%s", p.cmd.ProcessState, p.logs.String())
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9: %v", err)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("ward serve still running 10s after SIGKILL")
	}
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("ward serve ended with %v, not by SIGKILL", p.cmd.ProcessState)
	}
}

// stop ends the process with SIGTERM and requires a clean exit.
func (p *wardProcess) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatal("ward serve did not exit within 20s of SIGTERM")
	}
	if !p.cmd.ProcessState.Success() {
		t.Fatalf("ward serve exited with %v after SIGTERM; log:\n%s", p.cmd.ProcessState, p.logs.String())
	}
}

// crashClient is a FHIR client that reports transport failures as errors
// instead of failing the test: after a kill they are expected.
type crashClient struct {
	hc    *http.Client
	base  string
	token string
	// timeout bounds one request; 0: 15 seconds.
	timeout time.Duration
}

type crashResp struct {
	status  int
	header  http.Header
	body    map[string]any
	bodyErr error // the headers arrived but the body did not, or is not JSON
}

// do sends a request. An error means no response headers arrived.
func (c *crashClient) do(ctx context.Context, method, path string, body any, ifMatch string) (crashResp, error) {
	timeout := c.timeout
	if timeout == 0 {
		timeout = 15 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return crashResp{}, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return crashResp{}, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/fhir+json")
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	if ifMatch != "" {
		req.Header.Set("If-Match", ifMatch)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return crashResp{}, err
	}
	defer resp.Body.Close()
	r := crashResp{status: resp.StatusCode, header: resp.Header}
	data, err := io.ReadAll(resp.Body)
	switch {
	case err != nil:
		r.bodyErr = err
	case len(data) > 0:
		r.bodyErr = json.Unmarshal(data, &r.body)
	}
	return r, nil
}

// ackedWrite is a write the server answered with success.
type ackedWrite struct {
	action  string // create, update or delete
	typ, id string
	version int64 // 0 for a deletion: its 204 names no version
	round   int
}

// crashTxn is a transaction Bundle sent to the server. Every resource in it
// carries the identifier crashMarkerSys|marker.
type crashTxn struct {
	marker string
	round  int
	status int      // 0: no answer arrived
	early  bool     // sent before the kill began, so possibly cut off by it
	ids    []string // Type/id of its resources, when the answer was read
}

// crashHistory is everything the clients saw acknowledged.
type crashHistory struct {
	mu        sync.Mutex
	acks      []ackedWrite
	txns      []*crashTxn
	patients  []crashPatient // acknowledged Patients, for the readers
	patientAt map[string]int // id -> index in patients
	inflight  atomic.Int64   // writes sent and not yet answered
	reads     []string       // request ids of the reads answered 200
}

// answeredRead notes a read the server answered: its ledger entry was
// durable before the answer left, so it must survive the crash.
func (h *crashHistory) answeredRead(requestID string) {
	h.mu.Lock()
	h.reads = append(h.reads, requestID)
	h.mu.Unlock()
}

type crashPatient struct {
	id      string
	version int64 // the version acknowledged when it was listed
}

func (h *crashHistory) ack(a ackedWrite) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.acks = append(h.acks, a)
	if a.typ != "Patient" {
		return
	}
	if i, ok := h.patientAt[a.id]; ok {
		h.patients[i].version = a.version
		return
	}
	if h.patientAt == nil {
		h.patientAt = map[string]int{}
	}
	h.patientAt[a.id] = len(h.patients)
	h.patients = append(h.patients, crashPatient{a.id, a.version})
}

func (h *crashHistory) ackCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.acks)
}

func (h *crashHistory) addTxn(x *crashTxn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.txns = append(h.txns, x)
}

func (h *crashHistory) randomPatient(rng *rand.Rand) (crashPatient, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.patients) == 0 {
		return crashPatient{}, false
	}
	return h.patients[rng.IntN(len(h.patients))], true
}

type crashSummary struct {
	writes   string
	txnAcked int
}

func (h *crashHistory) summary() crashSummary {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := map[string]int{}
	for _, a := range h.acks {
		n[a.action]++
	}
	var s crashSummary
	s.writes = fmt.Sprintf("%d creates, %d updates, %d deletes", n["create"], n["update"], n["delete"])
	for _, x := range h.txns {
		if x.status == http.StatusOK {
			s.txnAcked++
		}
	}
	return s
}

// ownedResource is a resource one writer created and alone changes.
type ownedResource struct {
	typ, id   string
	patient   string // an Observation's subject
	marker    string // the transaction marker it carries, if any
	version   int64  // the last acknowledged version
	uncertain bool   // a write to it got no answer: it is left alone since
	deleting  bool   // that unanswered write was a deletion
	deleted   bool   // a deletion was acknowledged
}

func (o *ownedResource) writable() bool { return !o.uncertain && !o.deleted }

// crashWriter is one writing client. Its resources survive rounds.
type crashWriter struct {
	n     int
	h     *crashHistory
	rng   *rand.Rand
	owned []*ownedResource
	seq   int
}

// crashLoad runs the writers and readers against p, kills p after delay
// and returns how many writes were in flight at the kill.
func crashLoad(t *testing.T, p *wardProcess, c *crashClient, h *crashHistory, writers []*crashWriter, round int, delay time.Duration, rng *rand.Rand) int64 {
	t.Helper()
	var killed atomic.Bool
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, w := range writers {
		wg.Go(func() {
			for range crashMaxOps {
				select {
				case <-stop:
					return
				default:
				}
				w.step(t, c, round, &killed)
			}
		})
	}
	for i := range crashReaders {
		rrng := rand.New(rand.NewPCG(rng.Uint64(), uint64(i)))
		wg.Go(func() {
			for range crashMaxOps {
				select {
				case <-stop:
					return
				default:
				}
				crashRead(t, c, h, rrng, &killed)
			}
		})
	}
	time.Sleep(delay)
	inflight := h.inflight.Load()
	killed.Store(true) // before the signal: an error seen while false is a real failure
	p.crash(t)
	close(stop)
	wg.Wait()
	return inflight
}

// unanswered reports a request that got no response: expected once the
// kill is under way, a failure before.
func unanswered(t *testing.T, killed *atomic.Bool, what string, err error) {
	if !killed.Load() {
		t.Errorf("%s failed before the kill: %v", what, err)
	}
}

func (w *crashWriter) step(t *testing.T, c *crashClient, round int, killed *atomic.Bool) {
	var patients, obs []*ownedResource
	for _, o := range w.owned {
		if !o.writable() {
			continue
		}
		if o.typ == "Patient" {
			patients = append(patients, o)
		} else if o.marker == "" {
			obs = append(obs, o)
		}
	}
	w.seq++
	switch x := w.rng.IntN(100); {
	case x < 20 || len(patients) == 0:
		w.create(t, c, round, killed, crashPatientBody("", "", w.seq), nil)
	case x < 45:
		pt := patients[w.rng.IntN(len(patients))]
		w.create(t, c, round, killed, crashObservationBody("", "Patient/"+pt.id, "", w.seq), pt)
	case x < 75:
		var all []*ownedResource
		for _, o := range w.owned {
			if o.writable() {
				all = append(all, o)
			}
		}
		w.update(t, c, round, killed, all[w.rng.IntN(len(all))])
	case x < 90:
		w.transaction(t, c, round, killed)
	default:
		if len(obs) == 0 {
			w.create(t, c, round, killed, crashPatientBody("", "", w.seq), nil)
			return
		}
		w.delete(t, c, round, killed, obs[w.rng.IntN(len(obs))])
	}
}

// send is one write: it counts the write as in flight while it is.
func (w *crashWriter) send(t *testing.T, c *crashClient, method, path string, body any, ifMatch string) (crashResp, error) {
	w.h.inflight.Add(1)
	defer w.h.inflight.Add(-1)
	return c.do(t.Context(), method, path, body, ifMatch)
}

func (w *crashWriter) create(t *testing.T, c *crashClient, round int, killed *atomic.Bool, body map[string]any, subject *ownedResource) {
	typ := body["resourceType"].(string)
	r, err := w.send(t, c, http.MethodPost, "/"+typ, body, "")
	if err != nil {
		unanswered(t, killed, "create "+typ, err)
		return
	}
	if r.status != http.StatusCreated {
		t.Errorf("round %d: create %s: status %d: %s", round, typ, r.status, issues(r.body))
		return
	}
	// The status line and headers are the acknowledgement: the body may be
	// cut off by the kill.
	gotType, id, v, err := parseLocation(r.header.Get("Location"))
	if err != nil || gotType != typ || v != 1 || etagVersion(r.header.Get("ETag")) != 1 {
		t.Errorf("round %d: create %s: Location %q, ETag %q: want version 1", round, typ, r.header.Get("Location"), r.header.Get("ETag"))
		return
	}
	o := &ownedResource{typ: typ, id: id, version: 1}
	if subject != nil {
		o.patient = subject.id
	}
	w.owned = append(w.owned, o)
	w.h.ack(ackedWrite{action: "create", typ: typ, id: id, version: 1, round: round})
}

func (w *crashWriter) update(t *testing.T, c *crashClient, round int, killed *atomic.Bool, o *ownedResource) {
	body := crashPatientBody(o.id, o.marker, w.seq)
	if o.typ == "Observation" {
		body = crashObservationBody(o.id, "Patient/"+o.patient, o.marker, w.seq)
	}
	r, err := w.send(t, c, http.MethodPut, "/"+o.typ+"/"+o.id, body, etag(o.version))
	if err != nil {
		o.uncertain = true
		unanswered(t, killed, "update "+o.typ, err)
		return
	}
	// Only this writer changes o, and never after an unanswered write: a
	// 412 would mean a version appeared that no one was told of.
	if r.status != http.StatusOK {
		o.uncertain = true
		t.Errorf("round %d: update %s/%s at version %d: status %d: %s", round, o.typ, o.id, o.version, r.status, issues(r.body))
		return
	}
	if v := etagVersion(r.header.Get("ETag")); v != o.version+1 {
		o.uncertain = true
		t.Errorf("round %d: update %s/%s from version %d answered ETag %q", round, o.typ, o.id, o.version, r.header.Get("ETag"))
		return
	}
	o.version++
	w.h.ack(ackedWrite{action: "update", typ: o.typ, id: o.id, version: o.version, round: round})
}

func (w *crashWriter) delete(t *testing.T, c *crashClient, round int, killed *atomic.Bool, o *ownedResource) {
	r, err := w.send(t, c, http.MethodDelete, "/"+o.typ+"/"+o.id, nil, "")
	if err != nil {
		o.uncertain, o.deleting = true, true
		unanswered(t, killed, "delete "+o.typ, err)
		return
	}
	if r.status != http.StatusNoContent && r.status != http.StatusOK {
		o.uncertain, o.deleting = true, true
		t.Errorf("round %d: delete %s/%s: status %d: %s", round, o.typ, o.id, r.status, issues(r.body))
		return
	}
	o.deleted = true
	w.h.ack(ackedWrite{action: "delete", typ: o.typ, id: o.id, round: round})
}

// transaction posts a Patient and two Observations about it in one
// transaction Bundle, all marked with one identifier.
func (w *crashWriter) transaction(t *testing.T, c *crashClient, round int, killed *atomic.Bool) {
	var b [6]byte
	for i := range b {
		b[i] = byte(w.rng.Uint32())
	}
	x := &crashTxn{marker: fmt.Sprintf("r%d-w%d-%d-%s", round, w.n, w.seq, hex.EncodeToString(b[:])), round: round}
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
	x.early = !killed.Load()
	w.h.addTxn(x)
	r, err := w.send(t, c, http.MethodPost, "", bundle, "")
	if err != nil {
		unanswered(t, killed, "transaction", err)
		return
	}
	x.status = r.status
	if r.status != http.StatusOK {
		t.Errorf("round %d: transaction: status %d: %s", round, r.status, issues(r.body))
		return
	}
	if r.bodyErr != nil {
		return // acknowledged, ids unknown: all three must be found by marker
	}
	entries, _ := r.body["entry"].([]any)
	if r.body["type"] != "transaction-response" || len(entries) != 3 {
		t.Errorf("round %d: transaction answered a %v with %d entries", round, r.body["type"], len(entries))
		return
	}
	owned, ids, err := transactionCreated(entries, x.marker)
	if err != nil {
		t.Errorf("round %d: %v", round, err)
		return
	}
	x.ids = append(x.ids, ids...)
	for _, o := range owned {
		w.owned = append(w.owned, o)
		w.h.ack(ackedWrite{action: "create", typ: o.typ, id: o.id, version: 1, round: round})
	}
}

// transactionCreated reads the response entries of a transaction that
// created a Patient and two of its Observations: the resources it made,
// the Observations owned by that Patient, and their "Type/id" names.
func transactionCreated(entries []any, marker string) ([]*ownedResource, []string, error) {
	var patient string
	var owned []*ownedResource
	var ids []string
	for i, e := range entries {
		resp, _ := e.(map[string]any)["response"].(map[string]any)
		loc, _ := resp["location"].(string)
		typ, id, v, err := parseLocation(loc)
		want := "Observation"
		if i == 0 {
			want, patient = "Patient", id
		}
		if err != nil || typ != want || v != 1 {
			return nil, nil, fmt.Errorf("transaction entry %d: location %q", i, loc)
		}
		ids = append(ids, typ+"/"+id)
		owned = append(owned, &ownedResource{typ: typ, id: id, marker: marker, version: 1})
	}
	for _, o := range owned {
		if o.typ == "Observation" {
			o.patient = patient
		}
	}
	return owned, ids, nil
}

// crashRead reads an acknowledged Patient (its version may only have
// grown) and searches its Observations.
func crashRead(t *testing.T, c *crashClient, h *crashHistory, rng *rand.Rand, killed *atomic.Bool) {
	p, ok := h.randomPatient(rng)
	if !ok {
		time.Sleep(5 * time.Millisecond)
		return
	}
	path := "/Patient/" + p.id
	if rng.IntN(2) == 0 {
		path = "/Observation?subject=Patient/" + p.id
	}
	r, err := c.do(t.Context(), http.MethodGet, path, nil, "")
	if err != nil {
		unanswered(t, killed, "read", err)
		return
	}
	if r.status != http.StatusOK {
		t.Errorf("GET %s of an acknowledged Patient: status %d: %s", path, r.status, issues(r.body))
		return
	}
	h.answeredRead(r.header.Get("X-Request-Id"))
	if r.bodyErr != nil {
		if !killed.Load() {
			t.Errorf("GET %s: body: %v", path, r.bodyErr)
		}
		return
	}
	if strings.HasPrefix(path, "/Patient/") {
		if r.body["id"] != p.id || bodyVersion(r.body) < p.version {
			t.Errorf("read Patient/%s: got id %v version %d, want version >= %d", p.id, r.body["id"], bodyVersion(r.body), p.version)
		}
	} else if r.body["type"] != "searchset" {
		t.Errorf("search %s: got a %v Bundle", path, r.body["type"])
	}
}

// checkAcknowledged reads every acknowledged version back and checks each
// writer's resources are at the version it was last told, or one more
// when its last write got no answer. It returns the number of
// acknowledged writes not found as acknowledged, and how many of the
// writes cut off by a kill turned out committed, of how many.
func checkAcknowledged(t *testing.T, c *crashClient, h *crashHistory, writers []*crashWriter) (lost, committed, unanswered int) {
	t.Helper()
	type job struct {
		ack   *ackedWrite
		owned *ownedResource
	}
	jobs := make(chan job)
	var nLost, nCommitted, nUnanswered atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for j := range jobs {
				if j.ack != nil && !checkVersion(t, c, *j.ack) {
					nLost.Add(1)
				}
				if j.owned == nil {
					continue
				}
				// A lost create or update also fails its vread above; an
				// acknowledged deletion is lost when the resource is back.
				ok, done := checkCurrent(t, c, j.owned)
				if !ok && j.owned.deleted {
					nLost.Add(1)
				}
				if j.owned.uncertain {
					nUnanswered.Add(1)
					if done {
						nCommitted.Add(1)
					}
				}
			}
		})
	}
	h.mu.Lock()
	acks := append([]ackedWrite(nil), h.acks...)
	h.mu.Unlock()
	for i := range acks {
		if acks[i].action != "delete" {
			jobs <- job{ack: &acks[i]}
		}
	}
	for _, w := range writers {
		for _, o := range w.owned {
			jobs <- job{owned: o}
		}
	}
	close(jobs)
	wg.Wait()
	return int(nLost.Load()), int(nCommitted.Load()), int(nUnanswered.Load())
}

// checkVersion vreads an acknowledged version.
func checkVersion(t *testing.T, c *crashClient, a ackedWrite) bool {
	path := fmt.Sprintf("/%s/%s/_history/%d", a.typ, a.id, a.version)
	r, err := c.do(t.Context(), http.MethodGet, path, nil, "")
	if err != nil {
		t.Errorf("vread %s: %v", path, err)
		return false
	}
	if r.status != http.StatusOK || r.bodyErr != nil || r.body["resourceType"] != a.typ || r.body["id"] != a.id || bodyVersion(r.body) != a.version {
		t.Errorf("acknowledged %s of %s/%s version %d (round %d) lost: vread status %d, id %v, version %d",
			a.action, a.typ, a.id, a.version, a.round, r.status, r.body["id"], bodyVersion(r.body))
		return false
	}
	return true
}

// checkCurrent reads the current version of a writer's resource. ok says
// it is as acknowledged; committed, that its unanswered write took effect.
func checkCurrent(t *testing.T, c *crashClient, o *ownedResource) (ok, committed bool) {
	r, err := c.do(t.Context(), http.MethodGet, "/"+o.typ+"/"+o.id, nil, "")
	if err != nil {
		t.Errorf("read %s/%s: %v", o.typ, o.id, err)
		return false, false
	}
	gone := r.status == http.StatusNotFound || r.status == http.StatusGone
	v := bodyVersion(r.body)
	switch {
	case o.deleted:
		ok = gone
	case o.deleting:
		ok, committed = gone || (r.status == http.StatusOK && v == o.version), gone
	case o.uncertain:
		ok, committed = r.status == http.StatusOK && (v == o.version || v == o.version+1), v == o.version+1
	default:
		ok = r.status == http.StatusOK && v == o.version
	}
	if !ok {
		t.Errorf("%s/%s: last acknowledged at version %d (deleted %v, unanswered write %v, deletion %v); now status %d version %d",
			o.typ, o.id, o.version, o.deleted, o.uncertain, o.deleting, r.status, v)
	}
	return ok, committed
}

// checkTransactions finds each transaction's resources by its marker: all
// three when it was acknowledged (the ids it answered with), all or none
// when it got no answer. It returns how many unanswered transactions sent
// before a kill were found whole, and how many absent.
func checkTransactions(t *testing.T, c *crashClient, h *crashHistory) (whole, absent int) {
	t.Helper()
	h.mu.Lock()
	txns := append([]*crashTxn(nil), h.txns...)
	h.mu.Unlock()
	for _, x := range txns {
		var found []string
		for _, typ := range []string{"Patient", "Observation"} {
			path := "/" + typ + "?identifier=" + crashMarkerSys + "|" + x.marker
			r, err := c.do(t.Context(), http.MethodGet, path, nil, "")
			if err != nil || r.status != http.StatusOK || r.bodyErr != nil {
				t.Fatalf("search %s: %v %d %v", path, err, r.status, r.bodyErr)
			}
			entries, _ := r.body["entry"].([]any)
			for _, e := range entries {
				res, _ := e.(map[string]any)["resource"].(map[string]any)
				found = append(found, fmt.Sprintf("%v/%v", res["resourceType"], res["id"]))
			}
		}
		switch {
		case x.status == http.StatusOK && len(found) != 3:
			t.Errorf("acknowledged transaction %s (round %d): %d of its 3 resources found", x.marker, x.round, len(found))
		case x.status == http.StatusOK && x.ids != nil && strings.Join(sortedCopy(found), " ") != strings.Join(sortedCopy(x.ids), " "):
			t.Errorf("acknowledged transaction %s: found %v, answered %v", x.marker, found, x.ids)
		case x.status == 0 && len(found) != 0 && len(found) != 3:
			t.Errorf("transaction %s in flight at the kill (round %d) is half-applied: %d of 3 resources exist", x.marker, x.round, len(found))
		case x.status != 0 && x.status != http.StatusOK && len(found) != 0:
			t.Errorf("refused transaction %s left %d resources", x.marker, len(found))
		case x.status == 0 && x.early && len(found) == 3:
			whole++
		case x.status == 0 && x.early:
			absent++
		}
	}
	return whole, absent
}

// checkLedgerAgrees opens the SQLite database read-only and checks it
// with ledgerAgrees.
func checkLedgerAgrees(t *testing.T, dbPath string, h *crashHistory) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+dbPath+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	return ledgerAgrees(t, db, h)
}

// ledgerAgrees checks that every acknowledged write has exactly one ledger
// entry, and that ledger entries of writes and stored versions match one
// to one. It returns the number of ledger entries. db reads Ward's tables
// unqualified.
func ledgerAgrees(t *testing.T, db *sql.DB, h *crashHistory) int {
	t.Helper()
	ctx := t.Context()

	type key struct {
		typ, id string
		version int64
	}
	stored := map[key]bool{} // version -> it records a deletion
	rows, err := db.QueryContext(ctx, `SELECT rtype, rid, version, deleted FROM resources`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k key
		var deleted bool
		if err := rows.Scan(&k.typ, &k.id, &k.version, &deleted); err != nil {
			t.Fatal(err)
		}
		stored[k] = deleted
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}

	written := map[key][]string{}  // version -> actions of its success entries
	deletes := map[[2]string]int{} // type/id -> deletion entries
	requests := map[string]int{}   // request id -> entries
	var n int
	rows, err = db.QueryContext(ctx, `SELECT idx, entry FROM ledger_entries ORDER BY idx`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var idx int64
		var raw []byte
		if err := rows.Scan(&idx, &raw); err != nil {
			t.Fatal(err)
		}
		if idx != int64(n) {
			t.Fatalf("ledger entry %d follows entry %d", idx, n-1)
		}
		n++
		e, err := ledger.DecodeEntry(raw)
		if err != nil {
			t.Fatalf("ledger entry %d does not decode: %v", idx, err)
		}
		requests[e.RequestID]++
		if e.Outcome != "success" || (e.Action != "create" && e.Action != "update" && e.Action != "delete") {
			continue
		}
		v, err := strconv.ParseInt(e.Version, 10, 64)
		if err != nil || v < 1 {
			t.Errorf("ledger entry %d: %s of %s/%s names version %q", idx, e.Action, e.ResourceType, e.ResourceID, e.Version)
			continue
		}
		k := key{e.ResourceType, e.ResourceID, v}
		written[k] = append(written[k], e.Action)
		if e.Action == "delete" {
			deletes[[2]string{k.typ, k.id}]++
		}
		deleted, ok := stored[k]
		switch {
		case !ok:
			t.Errorf("ledger entry %d: %s of %s/%s version %d, which is not stored (an entry without its write)", idx, e.Action, k.typ, k.id, v)
		case deleted != (e.Action == "delete"):
			t.Errorf("ledger entry %d: %s of %s/%s version %d, but the stored version has deleted=%v", idx, e.Action, k.typ, k.id, v, deleted)
		}
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	for k := range stored {
		if len(written[k]) != 1 {
			t.Errorf("stored %s/%s version %d has %d ledger entries, want 1 (a write without its entry)", k.typ, k.id, k.version, len(written[k]))
		}
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	for _, rid := range h.reads {
		if requests[rid] != 1 {
			t.Errorf("answered read %s has %d ledger entries, want 1 (an access served without its entry)", rid, requests[rid])
		}
	}
	for _, a := range h.acks {
		if a.action == "delete" {
			if n := deletes[[2]string{a.typ, a.id}]; n != 1 {
				t.Errorf("acknowledged deletion of %s/%s has %d ledger entries, want 1", a.typ, a.id, n)
			}
			continue
		}
		got := written[key{a.typ, a.id, a.version}]
		if len(got) != 1 || got[0] != a.action {
			t.Errorf("acknowledged %s of %s/%s version %d has ledger entries %v, want exactly [%s]", a.action, a.typ, a.id, a.version, got, a.action)
		}
	}
	return n
}

func crashPatientBody(id, marker string, seq int) map[string]any {
	p := map[string]any{
		"resourceType": "Patient",
		"name":         []any{map[string]any{"family": "Crashtest", "given": []any{"V" + strconv.Itoa(seq)}}},
		"birthDate":    "1970-01-01",
	}
	return withIDAndMarker(p, id, marker)
}

func crashObservationBody(id, subject, marker string, seq int) map[string]any {
	o := map[string]any{
		"resourceType":      "Observation",
		"status":            "final",
		"code":              map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "29463-7"}}},
		"subject":           map[string]any{"reference": subject},
		"effectiveDateTime": "2020-05-01T10:00:00Z",
		"valueQuantity":     map[string]any{"value": 50 + seq%50, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"},
	}
	return withIDAndMarker(o, id, marker)
}

func withIDAndMarker(r map[string]any, id, marker string) map[string]any {
	if id != "" {
		r["id"] = id
	}
	if marker != "" {
		r["identifier"] = []any{map[string]any{"system": crashMarkerSys, "value": marker}}
	}
	return r
}

// parseLocation splits ".../fhir/Type/id/_history/v" or "Type/id/_history/v".
func parseLocation(loc string) (typ, id string, version int64, err error) {
	if i := strings.LastIndex(loc, "/fhir/"); i >= 0 {
		loc = loc[i+len("/fhir/"):]
	}
	parts := strings.Split(loc, "/")
	if len(parts) != 4 || parts[2] != "_history" || parts[0] == "" || parts[1] == "" {
		return "", "", 0, errors.New("not Type/id/_history/version")
	}
	v, err := strconv.ParseInt(parts[3], 10, 64)
	return parts[0], parts[1], v, err
}

func etag(v int64) string { return `W/"` + strconv.FormatInt(v, 10) + `"` }

// etagVersion parses W/"n"; 0 when it is not one.
func etagVersion(s string) int64 {
	s, ok := strings.CutPrefix(s, `W/"`)
	if !ok || !strings.HasSuffix(s, `"`) {
		return 0
	}
	v, _ := strconv.ParseInt(strings.TrimSuffix(s, `"`), 10, 64)
	return v
}

// bodyVersion is a resource's meta.versionId; 0 when absent.
func bodyVersion(body map[string]any) int64 {
	meta, _ := body["meta"].(map[string]any)
	s, _ := meta["versionId"].(string)
	v, _ := strconv.ParseInt(s, 10, 64)
	return v
}

func uuidFrom(rng *rand.Rand) string {
	var b [16]byte
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}
