package loadgen

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = ms(i + 1) // 1..100 ms
	}
	for _, tc := range []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one value", []time.Duration{ms(7)}, 99, ms(7)},
		{"p50 of 1..100", hundred, 50, ms(50)},
		{"p90 of 1..100", hundred, 90, ms(90)},
		{"p99 of 1..100", hundred, 99, ms(99)},
		{"p100 of 1..100", hundred, 100, ms(100)},
		{"p1 of 1..100", hundred, 1, ms(1)},
		{"p50 of four is second", []time.Duration{ms(1), ms(2), ms(3), ms(4)}, 50, ms(2)},
		{"p51 of four is third", []time.Duration{ms(1), ms(2), ms(3), ms(4)}, 51, ms(3)},
		{"p99 of ten is last", []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 99, 10},
		{"tiny p clamps to first", []time.Duration{ms(5), ms(6)}, 0.0001, ms(5)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := percentile(tc.sorted, tc.p); got != tc.want {
				t.Errorf("percentile(%v) = %v, want %v", tc.p, got, tc.want)
			}
		})
	}
}

func TestSummarizeAndRates(t *testing.T) {
	// 1..200 ms in reverse order: summarize must sort.
	var lat []time.Duration
	for i := 200; i >= 1; i-- {
		lat = append(lat, ms(i))
	}
	p := summarize("read", 200, 150, 50, 4*time.Second, lat)
	want := Phase{Name: "read", Requests: 200, Resources: 150, Errors: 50, Elapsed: 4 * time.Second,
		P50: ms(100), P90: ms(180), P99: ms(198), Max: ms(200)}
	if p != want {
		t.Fatalf("summarize = %+v, want %+v", p, want)
	}
	if !slices.IsSorted(lat) {
		t.Error("latencies not sorted in place")
	}
	if got := p.RequestsPerSec(); got != 50 {
		t.Errorf("RequestsPerSec = %v, want 50", got)
	}
	if got := p.ResourcesPerSec(); got != 37.5 {
		t.Errorf("ResourcesPerSec = %v, want 37.5", got)
	}
	if got := (Phase{Requests: 5}).RequestsPerSec(); got != 0 {
		t.Errorf("rate with zero elapsed = %v, want 0", got)
	}
}

func TestReportPrintAndJSON(t *testing.T) {
	r := &Report{
		Ingest:   Phase{Name: "ingest", Requests: 40, Resources: 9626, Elapsed: 2 * time.Second, P50: ms(180), P90: ms(300), P99: ms(450), Max: ms(460)},
		ReadByID: Phase{Name: "read", Requests: 20000, Resources: 19990, Errors: 10, Elapsed: 4 * time.Second, P50: 1500 * time.Microsecond, P99: ms(12)},
		Search:   Phase{Name: "search"},
	}
	var buf bytes.Buffer
	r.Print(&buf)
	lines := strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("table has %d lines, want 4:\n%s", len(lines), buf.String())
	}
	for _, l := range lines[1:] {
		if len(l) != len(lines[0]) {
			t.Errorf("row %q not aligned with header %q", l, lines[0])
		}
	}
	for _, want := range []string{"4813.0", "5000.0", "4997.5", "1.50ms", "180ms", "12.0ms"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, buf.String())
		}
	}

	buf.Reset()
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	if strings.Count(buf.String(), "\n") != 1 {
		t.Errorf("JSON summary is not one line: %q", buf.String())
	}
	var got map[string]phaseJSON
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if g := got["ingest"]; g.Resources != 9626 || g.ResourcesPerSec != 4813 || g.P99MS != 450 || g.ElapsedMS != 2000 {
		t.Errorf("ingest JSON = %+v", g)
	}
	if g := got["read"]; g.Errors != 10 || g.RequestsPerSec != 5000 || g.P50MS != 1.5 {
		t.Errorf("read JSON = %+v", g)
	}
	if r.Errors() != 10 {
		t.Errorf("Errors() = %d, want 10", r.Errors())
	}
}
