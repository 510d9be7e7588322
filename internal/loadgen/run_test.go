package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/fhir/fhirtest"
)

func TestRunAgainstFake(t *testing.T) {
	f := newFakeWard(t)
	dir, resources := writeTestBundles(t, 3, 5)
	cfg := f.config(t, dir)
	var out bytes.Buffer
	cfg.Out = &out
	rep, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, out.String())
	}
	if rep.Ingest.Requests != 3 || rep.Ingest.Resources != resources || rep.Ingest.Errors != 0 {
		t.Errorf("ingest = %+v, want 3 requests, %d resources", rep.Ingest, resources)
	}
	if rep.ReadByID.Requests != cfg.Reads || rep.ReadByID.Resources != cfg.Reads || rep.ReadByID.Errors != 0 {
		t.Errorf("read = %+v, want %d requests all found", rep.ReadByID, cfg.Reads)
	}
	if rep.Search.Requests != cfg.Searches || rep.Search.Errors != 0 || rep.Search.Resources < cfg.Searches {
		t.Errorf("search = %+v, want %d requests each with a hit", rep.Search, cfg.Searches)
	}
	tokens, _, txs, reads, searches, zero := f.counts()
	if tokens != 1 || txs != 3 || reads != cfg.Reads || searches != cfg.Searches {
		t.Errorf("server saw tokens=%d txs=%d reads=%d searches=%d", tokens, txs, reads, searches)
	}
	if zero != 0 {
		t.Errorf("%d searches found nothing: search values not taken from the loaded data", zero)
	}
	for _, p := range []Phase{rep.Ingest, rep.ReadByID, rep.Search} {
		if p.Elapsed <= 0 || p.P50 <= 0 || p.P50 > p.P90 || p.P90 > p.P99 || p.P99 > p.Max {
			t.Errorf("phase %s latencies not ordered: %+v", p.Name, p)
		}
	}
	if !strings.Contains(out.String(), "phase") || strings.Contains(out.String(), "error:") {
		t.Errorf("output:\n%s", out.String())
	}
}

func TestRunRefreshesTokenOn401(t *testing.T) {
	f := newFakeWard(t)
	f.revokeAfterTx = true // every transaction invalidates all tokens
	dir, _ := writeTestBundles(t, 4, 2)
	cfg := f.config(t, dir)
	cfg.Concurrency, cfg.ReadConcurrency = 1, 4
	rep, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	tokens, unauthorized, _, _, _, _ := f.counts()
	// Bundles 2..4 each meet a revoked token once, and so may each of the
	// first reads in flight; the read workers share one refresh.
	if tokens != 5 || unauthorized < 4 || unauthorized > 3+cfg.ReadConcurrency {
		t.Errorf("tokens issued %d, 401s %d; want 5 and 4..%d", tokens, unauthorized, 3+cfg.ReadConcurrency)
	}
	if rep.Errors() != 0 || rep.Ingest.Requests != 4 {
		t.Errorf("report %+v", rep)
	}
}

func TestTokenRefreshBeforeExpiry(t *testing.T) {
	f := newFakeWard(t)
	f.expiresIn = 100
	cfg := f.config(t, t.TempDir())
	hc, err := newHTTPClient(cfg.CAFile, 1, 5*time.Second, false)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_000_000, 0)
	ts := &tokenSource{hc: hc, url: cfg.TokenURL, clientID: cfg.ClientID, secret: cfg.ClientSecret, now: func() time.Time { return now }}
	get := func() token {
		t.Helper()
		tok, err := ts.get(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	first := get()
	for _, step := range []struct {
		advance time.Duration
		fresh   bool
	}{
		{0, false},
		{79 * time.Second, false}, // before 80% of 100 s
		{time.Second, true},       // at 80 s: refresh (20 s margin)
		{50 * time.Second, false},
		{31 * time.Second, true}, // 81 s after the second token
	} {
		now = now.Add(step.advance)
		tok := get()
		if (tok != first) != step.fresh {
			t.Fatalf("after %v: fresh token = %v, want %v", step.advance, tok != first, step.fresh)
		}
		first = tok
	}
	if ts.fetches != 3 {
		t.Errorf("fetches = %d, want 3", ts.fetches)
	}
	// invalidate drops only the token it names.
	ts.invalidate("stale")
	if get() != first {
		t.Error("invalidating an old token dropped the current one")
	}
	ts.invalidate(first)
	if get() == first {
		t.Error("invalidated token still used")
	}
}

func TestTokenRejected(t *testing.T) {
	f := newFakeWard(t)
	dir, _ := writeTestBundles(t, 1, 1)
	cfg := f.config(t, dir)
	cfg.ClientSecret = "wrong-secret-value"
	rep, err := Run(t.Context(), cfg)
	if err == nil || rep != nil || !strings.Contains(err.Error(), "401 invalid_client") {
		t.Fatalf("Run = %v, %v; want a 401 invalid_client error and no report", rep, err)
	}
	if strings.Contains(err.Error(), "wrong-secret") {
		t.Error("error reveals the secret")
	}
}

func TestRunCountsErrors(t *testing.T) {
	f := newFakeWard(t)
	f.failReadEvery = 4
	dir, _ := writeTestBundles(t, 2, 3)
	cfg := f.config(t, dir)
	cfg.Reads = 40
	var out bytes.Buffer
	cfg.Out = &out
	rep, err := Run(t.Context(), cfg)
	if err == nil || !strings.Contains(err.Error(), "10 failure(s)") {
		t.Fatalf("Run error = %v, want 10 failures", err)
	}
	if rep == nil || rep.ReadByID.Errors != 10 || rep.ReadByID.Requests != 40 || rep.ReadByID.Resources != 30 {
		t.Fatalf("read phase = %+v, want 40 requests, 10 errors, 30 resources", rep.ReadByID)
	}
	o := out.String()
	if n := strings.Count(o, "error: read"); n != maxPrintedFailures {
		t.Errorf("%d errors described, want %d:\n%s", n, maxPrintedFailures, o)
	}
	for _, want := range []string{"status 500 Internal Server Error", "simulated storage failure", "and 5 more", "phase"} {
		if !strings.Contains(o, want) {
			t.Errorf("output lacks %q:\n%s", want, o)
		}
	}
	for _, phi := range []string{"Family0", "Family1", "urn:uuid", "p000"} {
		if strings.Contains(o, phi) {
			t.Errorf("output contains resource content %q:\n%s", phi, o)
		}
	}
}

func TestRunDetectsMisorderedResponse(t *testing.T) {
	f := newFakeWard(t)
	f.reverseResponse = true
	dir, _ := writeTestBundles(t, 2, 2)
	cfg := f.config(t, dir)
	var out bytes.Buffer
	cfg.Out = &out
	rep, err := Run(t.Context(), cfg)
	if err == nil {
		t.Fatal("misordered transaction-response accepted")
	}
	if rep.Ingest.Errors != 2 || rep.Ingest.Resources != 0 || rep.ReadByID.Requests != 0 {
		t.Errorf("report %+v", rep)
	}
	if !strings.Contains(out.String(), "out of order") {
		t.Errorf("output:\n%s", out.String())
	}
}

func TestRunNeverFollowsRedirects(t *testing.T) {
	var otherHits atomic.Int64
	other := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { otherHits.Add(1) }))
	defer other.Close()
	f := newFakeWard(t)
	f.redirectReadsTo = other.URL + "/steal"
	dir, _ := writeTestBundles(t, 1, 1)
	cfg := f.config(t, dir)
	cfg.Reads, cfg.Searches = 5, -1
	var out bytes.Buffer
	cfg.Out = &out
	rep, err := Run(t.Context(), cfg)
	if err == nil || rep.ReadByID.Errors != 5 {
		t.Fatalf("redirects: err %v, read %+v; want 5 errors", err, rep.ReadByID)
	}
	if otherHits.Load() != 0 {
		t.Error("redirect to another host was followed")
	}
	if rep.Search.Requests != 0 {
		t.Error("negative Searches did not skip the phase")
	}
	if !strings.Contains(out.String(), "status 307") {
		t.Errorf("output:\n%s", out.String())
	}
}

func TestRunStopsAtDeadline(t *testing.T) {
	f := newFakeWard(t)
	f.readDelay = 20 * time.Millisecond
	dir, _ := writeTestBundles(t, 1, 1)
	cfg := f.config(t, dir)
	cfg.Reads = 1_000_000
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	rep, err := Run(ctx, cfg)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error = %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Run took %v after a 500ms deadline", d)
	}
	if rep.ReadByID.Requests == 0 || rep.ReadByID.Requests >= cfg.Reads || rep.ReadByID.Errors != 0 {
		t.Errorf("read = %+v: want some requests, fewer than asked, and no errors from the cut", rep.ReadByID)
	}
}

func TestRunJSONOutput(t *testing.T) {
	f := newFakeWard(t)
	dir, resources := writeTestBundles(t, 1, 2)
	cfg := f.config(t, dir)
	cfg.JSON = true
	var out bytes.Buffer
	cfg.Out = &out
	if _, err := Run(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var got map[string]phaseJSON
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &got); err != nil {
		t.Fatalf("last line is not JSON: %v\n%s", err, out.String())
	}
	if got["ingest"].Resources != resources || got["read"].Requests != cfg.Reads {
		t.Errorf("JSON summary %+v", got)
	}
}

// TestRunSynthea posts the two smallest Synthea bundles to the fake and
// checks that every entry was created and every search found something.
func TestRunSynthea(t *testing.T) {
	names := fhirtest.Files(t, "synthea", "*.json")
	if len(names) < 2 {
		t.Skip("fewer than two Synthea bundles in the shared FHIR data")
	}
	size := func(n string) int64 {
		st, err := os.Stat(n)
		if err != nil {
			t.Fatal(err)
		}
		return st.Size()
	}
	slices.SortFunc(names, func(a, b string) int { return int(size(a) - size(b)) })
	dir := t.TempDir()
	want := 0
	for i, n := range names[:2] {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct{ Entry []json.RawMessage }
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		want += len(doc.Entry)
		if err := os.WriteFile(filepath.Join(dir, string(rune('a'+i))+".json"), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f := newFakeWard(t)
	cfg := f.config(t, dir)
	cfg.Reads, cfg.Searches = 200, 40
	var out bytes.Buffer
	cfg.Out = &out
	rep, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, out.String())
	}
	if rep.Ingest.Resources != want || rep.Ingest.Requests != 2 {
		t.Errorf("ingest %+v, want %d resources", rep.Ingest, want)
	}
	if rep.ReadByID.Resources != 200 || rep.Search.Requests != 40 {
		t.Errorf("read %+v search %+v", rep.ReadByID, rep.Search)
	}
	if _, _, _, _, _, zero := f.counts(); zero != 0 {
		t.Errorf("%d searches found nothing", zero)
	}
	t.Logf("\n%s", out.String())
}

func TestSearchsetEntries(t *testing.T) {
	for _, tc := range []struct {
		body string
		n    int
		ok   bool
	}{
		{`{"resourceType":"Bundle","type":"searchset","total":2,"entry":[{"resource":{"a":[1,{"b":"}"}]}},{"fullUrl":"x"}]}`, 2, true},
		{`{"entry":[],"type":"searchset","link":[{"relation":"self"}],"resourceType":"Bundle"}`, 0, true},
		{`{"resourceType":"Bundle","type":"searchset"}`, 0, true},
		{`{"resourceType":"Bundle","type":"batch-response","entry":[{}]}`, 0, false},
		{`{"resourceType":"Patient","type":"searchset"}`, 0, false},
		{`{"resourceType":"Bundle","type":"searchset","entry":[{}]`, 0, false},
		{`{"resourceType":"Bundle","type":"searchset","entry":[{},1]}`, 0, false},
		{`{"resourceType":"Bundle","type":"searchset","entry":{}}`, 0, false},
		{`{"resourceType":"Bundle","type":"searchset"} {}`, 0, false},
		{`{"resourceType":"Bundle","type":"searchset","type":"searchset"}`, 0, false},
		{`{"resourceType":"Bundle","type":"searchset","entry":[{"x":tru}]}`, 0, false},
		{`[]`, 0, false},
		{``, 0, false},
	} {
		n, err := searchsetEntries([]byte(tc.body))
		if (err == nil) != tc.ok || n != tc.n {
			t.Errorf("searchsetEntries(%s) = %d, %v; want %d, ok %v", tc.body, n, err, tc.n, tc.ok)
		}
	}
}

// TestHTTP1 checks what --http1 changes: the protocol, and one connection
// per concurrent request instead of one shared HTTP/2 connection.
func TestHTTP1(t *testing.T) {
	var mu sync.Mutex
	protos, conns := map[int]int{}, map[string]bool{}
	release := make(chan struct{})
	var arrived sync.WaitGroup
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		protos[r.ProtoMajor]++
		conns[r.RemoteAddr] = true
		mu.Unlock()
		arrived.Done()
		<-release // every request is in flight at once
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	const parallel = 4
	for _, http1 := range []bool{false, true} {
		clear(protos)
		clear(conns)
		release = make(chan struct{})
		hc, err := newHTTPClient(ca, parallel, 5*time.Second, http1)
		if err != nil {
			t.Fatal(err)
		}
		arrived.Add(parallel)
		var done sync.WaitGroup
		for range parallel {
			done.Go(func() {
				resp, err := hc.Get(srv.URL)
				if err != nil {
					t.Error(err)
					return
				}
				drainClose(resp.Body)
			})
		}
		arrived.Wait()
		close(release)
		done.Wait()
		wantProto, wantConns := 2, 1
		if http1 {
			wantProto, wantConns = 1, parallel
		}
		if protos[wantProto] != parallel || len(conns) != wantConns {
			t.Errorf("http1=%v: requests by protocol %v over %d connections; want %d over HTTP/%d and %d connections", http1, protos, len(conns), parallel, wantProto, wantConns)
		}
		hc.CloseIdleConnections()
	}
}
