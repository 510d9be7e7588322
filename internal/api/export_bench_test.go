package api_test

import (
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestExportSyntheaMemory exports the whole Synthea set (40 patients'
// Bundles, 9,626 resources) through the asynchronous pattern on SQLite
// and, with WARD_TEST_POSTGRES, PostgreSQL, once with one copy stored and
// once with four, and reports the export rate (resources/s) and the peak
// heap growth while the job runs, sampled with runtime.ReadMemStats. It
// fails when the peak with four copies is not flat: more than the peak
// with one copy plus 32 MiB, when the export itself grew by about 100 MB
// of NDJSON. It takes a minute or more: set WARD_EXPORT_BENCH=1.
//
//	WARD_EXPORT_BENCH=1 WARD_TEST_POSTGRES=... go test ./internal/api -run ExportSyntheaMemory -v
func TestExportSyntheaMemory(t *testing.T) {
	if os.Getenv("WARD_EXPORT_BENCH") != "1" {
		t.Skip("set WARD_EXPORT_BENCH=1 to export the Synthea set (a minute or more)")
	}
	bundles := make([][]byte, 0, 40)
	resources := 0
	for _, f := range syntheaFiles(t) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		bundles = append(bundles, data)
		resources += strings.Count(string(data), `"request"`)
	}
	backends := []struct {
		name string
		o    stackOptions
	}{{"sqlite", stackOptions{limits: benchLimits}}}
	if os.Getenv("WARD_TEST_POSTGRES") != "" {
		backends = append(backends, struct {
			name string
			o    stackOptions
		}{"postgres", stackOptions{limits: benchLimits, openStore: postgresStore}})
	} else {
		t.Log("WARD_TEST_POSTGRES unset: PostgreSQL skipped")
	}
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			s := newStackWith(t, be.o)
			reader := []string{"Authorization", "Bearer " + s.newToken("system/*.rs")}
			ingest := func() {
				inParallel(2, len(bundles), func(j int) bool {
					if r := s.do("POST", "/fhir", bundles[j]); r.status != http.StatusOK {
						t.Errorf("ingest: status %d", r.status)
						return false
					}
					return true
				})
			}
			var peaks [2]float64
			stored := 0
			for round, copies := range []int{1, 4} {
				for ; stored < copies; stored++ {
					ingest()
				}
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				base := ms.HeapAlloc
				var peak atomic.Uint64
				stop := make(chan struct{})
				sampled := make(chan struct{})
				go func() {
					defer close(sampled)
					var m runtime.MemStats
					for {
						runtime.ReadMemStats(&m)
						if m.HeapAlloc > peak.Load() {
							peak.Store(m.HeapAlloc)
						}
						select {
						case <-stop:
							return
						case <-time.After(2 * time.Millisecond):
						}
					}
				}()
				start := time.Now()
				status := s.kickoff("/fhir/$export", reader...)
				var m manifest
				for {
					r := s.do("GET", status, nil, reader...)
					if r.status == http.StatusOK {
						m = manifestOf(t, r)
						break
					}
					if r.status != http.StatusAccepted {
						t.Fatalf("poll: %d", r.status)
					}
					time.Sleep(5 * time.Millisecond)
				}
				elapsed := time.Since(start)
				close(stop)
				<-sampled
				n := 0
				for _, o := range m.Output {
					n += o.Count
				}
				if n < copies*resources {
					t.Fatalf("exported %d resources, want at least %d", n, copies*resources)
				}
				growth := float64(peak.Load()-min(base, peak.Load())) / (1 << 20)
				peaks[round] = growth
				t.Logf("%s, %d copies: %d resources in %v: %.0f resources/s; peak heap growth %.1f MiB (heap before %.1f MiB)",
					be.name, copies, n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), growth, float64(base)/(1<<20))
			}
			if peaks[1] > peaks[0]+32 {
				t.Errorf("peak heap growth %.1f MiB with four copies against %.1f MiB with one: memory does not stay flat", peaks[1], peaks[0])
			}
		})
	}
}
