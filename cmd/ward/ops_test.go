package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/health"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/siem"
	"github.com/wardhealth/ward/internal/store/sqlite"
)

// switchDB fails its trivial query while down; closing it for real is
// checked too.
type switchDB struct {
	db interface {
		LedgerSize(context.Context) (int64, error)
	}
	down atomic.Bool
}

func (s *switchDB) LedgerSize(ctx context.Context) (int64, error) {
	if s.down.Load() {
		return 0, errors.New("dial tcp 10.1.2.3:5432: connection refused")
	}
	return s.db.LedgerSize(ctx)
}

// switchKEK is a key provider that can become unreachable (D4).
type switchKEK struct {
	keys.KEKProvider
	down atomic.Bool
}

func (k *switchKEK) Unwrap(ctx context.Context, w []byte, id string, aad []byte) ([]byte, error) {
	if k.down.Load() {
		return nil, keys.ErrUnavailable
	}
	return k.KEKProvider.Unwrap(ctx, w, id, aad)
}

func readyz(t *testing.T, h http.Handler) (int, health.Report) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	var rep health.Report
	if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil {
		t.Fatalf("/readyz body %q: %v", rec.Body, err)
	}
	for _, leak := range []string{"10.1.2.3", "keys.json", "ward.db"} {
		if strings.Contains(rec.Body.String(), leak) {
			t.Errorf("/readyz shows %q: %s", leak, rec.Body)
		}
	}
	return rec.Code, rep
}

func failing(rep health.Report) []string {
	var out []string
	for _, c := range rep.Checks {
		if !c.OK {
			out = append(out, c.Name+": "+c.Reason)
		}
	}
	return out
}

// /readyz is 200 only while the database answers, the key provider
// unwraps, the ledger accepts entries and the SIEM backlog is under its
// bound; each failure (injected) makes it 503 naming that check, and it
// is 200 again once the failure ends.
func TestReadiness(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "ward.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	keyPath := filepath.Join(dir, "keys.json")
	if err := keys.CreateLocalFile(keyPath, keys.LocalParams{}, rand.Reader); err != nil {
		t.Fatal(err)
	}
	kf, err := keys.OpenLocalFile(keyPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	log, err := audit.OpenSpooled(ctx, st, filepath.Join(dir, "spool"), audit.Config{})
	if err != nil {
		t.Fatal(err)
	}
	db, kek := &switchDB{db: st}, &switchKEK{KEKProvider: kf}
	var backlog atomic.Uint64
	halt := new(audit.Halt)
	r := readiness{db: db, kek: kek, ledger: log, halt: halt, bound: 1000,
		siem: func() siem.Stats {
			return siem.Stats{Sinks: []siem.SinkStats{{Name: "syslog", Backlog: backlog.Load()}}}
		}}
	h := health.New(time.Second, r.checks(false)...)

	if code, rep := readyz(t, h); code != 200 || len(rep.Checks) != 4 {
		t.Fatalf("all well: %d %v", code, rep)
	}
	for _, c := range []struct {
		name       string
		fail, heal func()
		want       string
	}{
		{"database", func() { db.down.Store(true) }, func() { db.down.Store(false) }, "database: " + string(reasonDatabase)},
		{"keys", func() { kek.down.Store(true) }, func() { kek.down.Store(false) }, "keys: " + string(reasonKeys)},
		{"siem", func() { backlog.Store(1001) }, func() { backlog.Store(1000) }, "siem: " + string(reasonSIEMBehind)},
	} {
		c.fail()
		code, rep := readyz(t, h)
		if got := failing(rep); code != http.StatusServiceUnavailable || len(got) != 1 || got[0] != c.want {
			t.Errorf("%s failing: %d %v, want 503 [%s]", c.name, code, got, c.want)
		}
		c.heal()
		if code, rep := readyz(t, h); code != 200 {
			t.Errorf("%s healed: %d %v", c.name, code, failing(rep))
		}
	}

	// A read-only investigation halts signing on purpose: still ready.
	halt.Stop(errors.New("ledger tampered"))
	if code, rep := readyz(t, health.New(time.Second, r.checks(true)...)); code != 200 {
		t.Errorf("read-only with the halt stopped: %d %v", code, failing(rep))
	}
	if code, rep := readyz(t, h); code != 503 || failing(rep)[0] != "ledger: "+string(reasonHalted) {
		t.Errorf("halted: %d %v", code, failing(rep))
	}

	// The real things: a closed ledger, a closed database.
	h2 := health.New(time.Second, readiness{db: st, kek: kf, ledger: log}.checks(false)...)
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}
	st.Close()
	code, rep := readyz(t, h2)
	if got := failing(rep); code != 503 || len(got) != 2 || got[0] != "database: "+string(reasonDatabase) || got[1] != "ledger: "+string(reasonClosed) {
		t.Errorf("database and ledger closed: %d %v", code, got)
	}
}

// ward serve --metrics-addr serves /metrics on its own loopback listener
// (plain HTTP), not on the FHIR listener; /readyz answers 200 on the FHIR
// listener; a non-loopback address would be served over TLS.
func TestServeMetricsListener(t *testing.T) {
	dir := t.TempDir()
	maddr := freeAddr(t)
	s := startServe(t, "--dev", "--data", dir, "--metrics-addr", maddr)
	c := dial(t, dir)
	id := c.create(patient(family(t), "Metrics"))
	c.read("Patient", id)

	resp, err := c.http.Get("https://" + s.addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"ready":true`) {
		t.Fatalf("/readyz: %d %s", resp.StatusCode, body)
	}
	resp, err = c.http.Get("https://" + s.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == 200 {
		t.Error("the FHIR listener serves /metrics")
	}

	resp, err = http.Get("http://" + maddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	names := map[string]bool{}
	idLike := regexp.MustCompile(`[0-9a-f]{8}-|[A-Za-z0-9_-]{20,}`)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		name, _, _ := strings.Cut(line, "{")
		name, _, _ = strings.Cut(name, " ")
		names[name] = true
		if strings.Contains(line, id) || strings.Contains(line, c.creds.ClientID) {
			t.Errorf("metric line carries an id: %s", line)
		}
		if i, j := strings.IndexByte(line, '{'), strings.LastIndexByte(line, '}'); i >= 0 && j > i && strings.HasPrefix(name, "ward_") && idLike.MatchString(line[i:j]) {
			t.Errorf("metric label looks like an id: %s", line)
		}
	}
	for _, want := range []string{"ward_http_requests_total", "ward_http_request_duration_seconds_bucket", "ward_audit_group_entries_bucket",
		"ward_audit_group_wait_seconds_bucket", "ward_key_provider_seconds_bucket", "ward_ledger_entries", "ward_ledger_unsigned_entries",
		"ward_audit_spool_unfolded_entries", "ward_detector_behind_entries", "ward_detector_lag_seconds", "go_goroutines"} {
		if !names[want] {
			t.Errorf("/metrics has no %s", want)
		}
	}
	s.stopOK()
}

// A --metrics-addr that is not host:port is refused before anything starts.
func TestServeMetricsAddrRefused(t *testing.T) {
	var out, errb strings.Builder
	code := run(context.Background(), []string{"serve", "--dev", "--data", t.TempDir(), "--addr", freeAddr(t), "--metrics-addr", "nonsense"}, &out, &errb)
	if code != 2 || !strings.Contains(errb.String(), "--metrics-addr") {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
}
