package metrics_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/metrics"
)

// Sample is one line of the text exposition: a name, its labels, a value.
type Sample struct {
	Name   string
	Labels map[string]string
	Value  string
}

// Scrape reads h's exposition and parses its samples (the subset of the
// text format that client_golang writes: no escaped quotes in values).
func Scrape(t testing.TB, h http.Handler) []Sample {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: %d %s", rec.Code, rec.Body)
	}
	return Parse(t, rec.Body)
}

// Parse parses a text exposition.
func Parse(t testing.TB, r io.Reader) []Sample {
	t.Helper()
	var out []Sample
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s := Sample{Labels: map[string]string{}}
		head, value, ok := strings.Cut(line, " ")
		if i := strings.IndexByte(line, '{'); i >= 0 {
			j := strings.LastIndexByte(line, '}')
			head, value, ok = line[:i], strings.TrimSpace(line[j+1:]), j > i
			for _, kv := range splitLabels(line[i+1 : j]) {
				k, v, _ := strings.Cut(kv, "=")
				s.Labels[k] = strings.Trim(v, `"`)
			}
		}
		if !ok {
			t.Fatalf("unparsable line %q", line)
		}
		s.Name, s.Value = head, value
		out = append(out, s)
	}
	return out
}

func splitLabels(s string) []string {
	var out []string
	inQuote, start := false, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			inQuote = !inQuote
		case ',':
			if !inQuote {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

func find(samples []Sample, name string, labels map[string]string) (Sample, bool) {
	for _, s := range samples {
		if s.Name != name {
			continue
		}
		match := true
		for k, v := range labels {
			match = match && s.Labels[k] == v
		}
		if match {
			return s, true
		}
	}
	return Sample{}, false
}

type fakeKEK struct{ fail bool }

func (f fakeKEK) Wrap(ctx context.Context, dek, aad []byte) ([]byte, string, error) {
	if f.fail {
		return nil, "", errors.New("down")
	}
	return dek, "k1", nil
}
func (f fakeKEK) Unwrap(ctx context.Context, w []byte, id string, aad []byte) ([]byte, error) {
	if f.fail {
		return nil, errors.New("down")
	}
	return w, nil
}
func (fakeKEK) CurrentKEK() string { return "k1" }

// Every family the README lists is exposed, with the values reported, and
// the methods outside the known set collapse to "other".
func TestFamilies(t *testing.T) {
	m := metrics.New(metrics.Sources{
		Ledger: func(ctx context.Context) (metrics.LedgerStats, error) {
			return metrics.LedgerStats{Entries: 120, CheckpointSize: 100, CheckpointAge: 3 * time.Second}, nil
		},
		Audit: func() metrics.AuditStats { return metrics.AuditStats{Unfolded: 7, MaxUnfolded: 100} },
		SIEM: func() metrics.SIEMStats {
			return metrics.SIEMStats{Emitted: 9, Sinks: []metrics.SIEMSink{{Name: "syslog", Delivered: 5, Backlog: 4}}}
		},
		Detector: func() metrics.DetectorStats { return metrics.DetectorStats{Behind: 2, Lag: time.Second, Alerts: 3} },
		Keys: func() []metrics.KeyAge {
			return []metrics.KeyAge{{Kind: "token", Age: 10 * time.Second, MaxAge: 5 * time.Second, Over: true}, {Kind: "kek", Age: time.Second}}
		},
	})
	m.Request("GET /fhir/{type}/{id}", "GET", 200, time.Millisecond)
	m.Request("GET /fhir/{type}/{id}", "BREW", 404, time.Millisecond)
	m.Request("", "GET", 429, time.Millisecond)
	m.RateLimited("principal")
	m.ValidationFailed()
	m.Group(12, time.Millisecond, false)
	m.Group(3, time.Millisecond, true)
	m.Fold(15, time.Millisecond, false)
	k := m.KEK(fakeKEK{})
	_, _, _ = k.Wrap(context.Background(), []byte("k"), nil)
	_, _ = m.KEK(fakeKEK{fail: true}).Unwrap(context.Background(), nil, "k1", nil)
	got := Scrape(t, m.Handler())
	for _, want := range []struct {
		name   string
		labels map[string]string
		value  string
	}{
		{"ward_http_requests_total", map[string]string{"route": "GET /fhir/{type}/{id}", "method": "GET", "code": "200"}, "1"},
		{"ward_http_requests_total", map[string]string{"route": "GET /fhir/{type}/{id}", "method": "other", "code": "404"}, "1"},
		{"ward_http_requests_total", map[string]string{"route": "none", "code": "429"}, "1"},
		{"ward_http_request_duration_seconds_count", map[string]string{"route": "GET /fhir/{type}/{id}"}, "2"},
		{"ward_rate_limited_total", map[string]string{"policy": "principal"}, "1"},
		{"ward_validation_failures_total", nil, "1"},
		{"ward_audit_group_entries_sum", nil, "15"},
		{"ward_audit_group_wait_seconds_count", nil, "2"},
		{"ward_audit_group_failures_total", nil, "1"},
		{"ward_audit_fold_entries_sum", nil, "15"},
		{"ward_audit_fold_seconds_count", nil, "1"},
		{"ward_key_provider_seconds_count", map[string]string{"op": "wrap"}, "1"},
		{"ward_key_provider_errors_total", map[string]string{"op": "unwrap"}, "1"},
		{"ward_key_provider_errors_total", map[string]string{"op": "wrap"}, "0"},
		{"ward_ledger_entries", nil, "120"},
		{"ward_ledger_unsigned_entries", nil, "20"},
		{"ward_ledger_checkpoint_age_seconds", nil, "3"},
		{"ward_ledger_read_ok", nil, "1"},
		{"ward_audit_spool_unfolded_entries", nil, "7"},
		{"ward_siem_delivered_total", map[string]string{"sink": "syslog"}, "5"},
		{"ward_siem_backlog_events", map[string]string{"sink": "syslog"}, "4"},
		{"ward_siem_events_emitted_total", nil, "9"},
		{"ward_detector_behind_entries", nil, "2"},
		{"ward_detector_lag_seconds", nil, "1"},
		{"ward_detector_alerts_total", nil, "3"},
		{"ward_key_age_seconds", map[string]string{"kind": "token"}, "10"},
		{"ward_key_max_age_seconds", map[string]string{"kind": "token"}, "5"},
		{"ward_key_over_max_age", map[string]string{"kind": "token"}, "1"},
		{"ward_key_over_max_age", map[string]string{"kind": "kek"}, "0"},
		{"go_goroutines", nil, ""},
	} {
		s, ok := find(got, want.name, want.labels)
		if !ok {
			t.Errorf("no sample %s%v", want.name, want.labels)
			continue
		}
		if want.value != "" && s.Value != want.value {
			t.Errorf("%s%v = %s, want %s", want.name, want.labels, s.Value, want.value)
		}
	}
}

// A ledger that cannot be read leaves its gauges out and says so; the
// scrape still answers.
func TestLedgerReadFails(t *testing.T) {
	m := metrics.New(metrics.Sources{Ledger: func(ctx context.Context) (metrics.LedgerStats, error) {
		return metrics.LedgerStats{}, errors.New("database down")
	}})
	got := Scrape(t, m.Handler())
	if s, ok := find(got, "ward_ledger_read_ok", nil); !ok || s.Value != "0" {
		t.Errorf("ward_ledger_read_ok: %v %v, want 0", s, ok)
	}
	if _, ok := find(got, "ward_ledger_entries", nil); ok {
		t.Error("ward_ledger_entries exported although the ledger could not be read")
	}
}

// The cost of counting one request, with its route's children cached.
func BenchmarkObserveRequest(b *testing.B) {
	m := metrics.New(metrics.Sources{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Request("GET /fhir/{type}/{id}", "GET", 200, 3*time.Millisecond)
		}
	})
}
