package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/api"
	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/ratelimit"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/postgres"
	"github.com/wardhealth/ward/internal/store/storetest"
)

// syntheaBundles reads every Synthea transaction Bundle.
func syntheaBundles(b *testing.B) [][]byte {
	b.Helper()
	var out [][]byte
	for _, f := range syntheaFiles(b) {
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, data)
	}
	return out
}

// inParallel runs work(j) for j in [0, n) on workers goroutines.
func inParallel(workers, n int, work func(j int) bool) {
	var next atomic.Int64
	done := make(chan struct{})
	for w := 0; w < workers; w++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for {
				j := int(next.Add(1)) - 1
				if j >= n || !work(j) {
					return
				}
			}
		}()
	}
	for w := 0; w < workers; w++ {
		<-done
	}
}

// benchLimits lift the rate limits: a benchmark sends as much as the
// server answers, from one client at one address.
var benchLimits = ratelimit.Config{Principal: ratelimit.Limit{Rate: 1e6, Burst: 1e7}, Address: ratelimit.Limit{Rate: 1e6, Burst: 1e7}}

func benchStack(b *testing.B) *stack {
	// newStack takes a *testing.T for its helpers; a benchmark lends it one
	// that fails the benchmark.
	t := &testing.T{}
	s := newStackWith(t, stackOptions{limits: benchLimits})
	if t.Failed() {
		b.Fatal("stack setup failed")
	}
	return s
}

// BenchmarkIngestSynthea posts all 40 Synthea transaction Bundles (9,626
// resources) per iteration through HTTPS, with validation, encryption and
// blind indexes on. It reports resources/s.
func BenchmarkIngestSynthea(b *testing.B) {
	bundles := syntheaBundles(b)
	resources := 0
	for _, data := range bundles {
		resources += strings.Count(string(data), `"request"`)
	}
	s := benchStack(b)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		inParallel(4, len(bundles), func(j int) bool {
			r := s.do("POST", "/fhir", bundles[j])
			if r.status != http.StatusOK {
				b.Errorf("status %d", r.status)
				return false
			}
			return true
		})
	}
	b.ReportMetric(float64(resources*b.N)/time.Since(start).Seconds(), "resources/s")
}

// BenchmarkIngestBaseline stores the same resources' JSON into the same
// kind of database with no validation, encryption or indexing: one
// transaction per Bundle, as Ward's ingest does. Ward's ingest is reported
// as a ratio of this.
func BenchmarkIngestBaseline(b *testing.B) {
	bundles := syntheaBundles(b)
	type item struct {
		typ  string
		body []byte
	}
	var parsed [][]item
	resources := 0
	for _, data := range bundles {
		var req struct {
			Entry []struct {
				Resource json.RawMessage `json:"resource"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(data, &req); err != nil {
			b.Fatal(err)
		}
		var items []item
		for _, e := range req.Entry {
			var head struct {
				ResourceType string `json:"resourceType"`
			}
			_ = json.Unmarshal(e.Resource, &head)
			items = append(items, item{head.ResourceType, e.Resource})
		}
		resources += len(items)
		parsed = append(parsed, items)
	}
	s := benchStack(b)
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	var seq atomic.Int64
	for i := 0; i < b.N; i++ {
		inParallel(4, len(parsed), func(j int) bool {
			tx, err := s.db.Begin(ctx)
			if err != nil {
				b.Error(err)
				return false
			}
			for _, it := range parsed[j] {
				id := "r" + itoa(seq.Add(1))
				err := tx.PutVersion(ctx, store.Resource{Type: it.typ, ID: id, Version: 1, LastUpdated: time.Now(), Body: it.body}, nil)
				if err != nil {
					b.Error(err)
					_ = tx.Rollback()
					return false
				}
			}
			if err := tx.Commit(); err != nil {
				b.Error(err)
				return false
			}
			return true
		})
	}
	b.ReportMetric(float64(resources*b.N)/time.Since(start).Seconds(), "resources/s")
}

func itoa(n int64) string {
	const digits = "0123456789"
	if n == 0 {
		return "0"
	}
	var buf [20]byte
	i := len(buf)
	for n > 0 {
		i--
		buf[i] = digits[n%10]
		n /= 10
	}
	return string(buf[i:])
}

// BenchmarkReadByID reads resources by id with 16 concurrent clients over
// HTTPS (keep-alive, HTTP/2), after loading a few Synthea patients: with
// the durable ledger as ward serve runs it (every read waits until its
// entry is durable: in the spool on SQLite, in the pending table on
// PostgreSQL), on PostgreSQL also with each group committed to the ledger
// itself ("grouped", the way before the pending table), and with an
// in-memory ledger, to measure what durable auditing costs. PostgreSQL
// runs when WARD_TEST_POSTGRES is set.
func BenchmarkReadByID(b *testing.B) {
	backends := benchBackends()
	for _, be := range backends {
		for _, bc := range []struct {
			name   string
			ledger api.Appender
			direct bool
		}{{"ledger", nil, false}, {"grouped", nil, true}, {"memledger", &memLedger{}, false}} {
			if bc.direct && be.name == "sqlite" {
				continue // SQLite's default is the spool; grouped commits are PostgreSQL's comparison
			}
			b.Run(be.name+"/"+bc.name, func(b *testing.B) {
				t := &testing.T{}
				s := newStackWith(t, stackOptions{ledger: bc.ledger, limits: benchLimits, openStore: be.open(b), directLedger: bc.direct})
				if t.Failed() {
					b.Fatal("stack setup failed")
				}
				ids := loadForReads(b, s)
				var n atomic.Int64
				b.SetParallelism(readParallelism) // 2 cores x 8 = 16 clients by default
				b.ResetTimer()
				cpu0 := processCPU()
				start := time.Now()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						i := int(n.Add(1)) % len(ids)
						r := s.do("GET", "/fhir/"+ids[i], nil)
						if r.status != http.StatusOK {
							b.Errorf("status %d", r.status)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "reads/s")
				// Cores used and CPU per read (server and client, one process)
				// tell a wait-bound run from a CPU-bound one.
				cpu := processCPU() - cpu0
				b.ReportMetric(cpu.Seconds()/time.Since(start).Seconds(), "cores")
				b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/read")
			})
		}
	}
}

func loadForReads(b *testing.B, s *stack) []string {
	return loadBundles(b, s, syntheaBundles(b)[:4])
}

// loadBundles posts transaction Bundles one after another and returns
// the type/id of every resource they created.
func loadBundles(b *testing.B, s *stack, bundles [][]byte) []string {
	var ids []string
	for _, data := range bundles {
		r := s.do("POST", "/fhir", data)
		var resp struct {
			Entry []struct {
				Response struct {
					Location string `json:"location"`
				} `json:"response"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(r.body, &resp); err != nil {
			b.Fatal(err)
		}
		for _, e := range resp.Entry {
			parts := strings.Split(e.Response.Location, "/")
			ids = append(ids, parts[0]+"/"+parts[1])
		}
	}
	return ids
}

// memLedger is an in-memory Appender: the same read path without durable
// audit entries, the baseline for what the ledger costs a read.
type memLedger struct {
	mu sync.Mutex
	n  int
}

func (m *memLedger) Append(_ context.Context, recs ...audit.Record) error {
	m.mu.Lock()
	m.n += len(recs)
	m.mu.Unlock()
	return nil
}

// readParallelism is goroutines per core in BenchmarkReadByID; set
// WARD_BENCH_READ_PARALLELISM to measure other client counts.
var readParallelism = func() int {
	if n, err := strconv.Atoi(os.Getenv("WARD_BENCH_READ_PARALLELISM")); err == nil && n > 0 {
		return n
	}
	return 8
}()

// benchBackends are the stores the HTTP benchmarks run on: SQLite, and
// PostgreSQL when WARD_TEST_POSTGRES is set (a fresh schema per run; the
// stack's fake *testing.T runs no cleanups, so the schema and the store
// belong to the benchmark run).
func benchBackends() []benchBackend {
	backends := []benchBackend{{"sqlite", func(*testing.B) func(*testing.T, string) store.Store { return nil }}}
	if os.Getenv("WARD_TEST_POSTGRES") != "" {
		backends = append(backends, benchBackend{"postgres", func(b *testing.B) func(*testing.T, string) store.Store {
			return func(*testing.T, string) store.Store {
				sc := storetest.FreshSchema(b, "ward_api_bench_")
				db, err := postgres.Open(b.Context(), sc.URL)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { db.Close() })
				return db
			}
		}})
	}
	return backends
}

type benchBackend struct {
	name string
	open func(b *testing.B) func(t *testing.T, dir string) store.Store
}

// searchQueries are the searches ward load sends (internal/loadgen
// searchKinds), over the patients, family names and LOINC codes of the
// Synthea Bundles, interleaved kind by kind.
func searchQueries(b *testing.B, bundles [][]byte, ids []string) []string {
	var patients, families, codes []string
	seen := map[string]bool{}
	for _, data := range bundles {
		var bundle struct {
			Entry []struct {
				Resource struct {
					ResourceType string          `json:"resourceType"`
					Name         json.RawMessage `json:"name"` // a string in some types
					Code         struct {
						Coding []struct {
							System string `json:"system"`
							Code   string `json:"code"`
						} `json:"coding"`
					} `json:"code"`
				} `json:"resource"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(data, &bundle); err != nil {
			b.Fatal(err)
		}
		for _, e := range bundle.Entry {
			r := e.Resource
			switch r.ResourceType {
			case "Patient":
				var names []struct {
					Family string `json:"family"`
				}
				if json.Unmarshal(r.Name, &names) == nil && len(names) > 0 && names[0].Family != "" {
					families = append(families, names[0].Family)
				}
			case "Observation":
				for _, c := range r.Code.Coding {
					if c.System == "http://loinc.org" && !seen[c.Code] {
						seen[c.Code] = true
						codes = append(codes, c.Code)
					}
				}
			}
		}
	}
	for _, id := range ids {
		if p, ok := strings.CutPrefix(id, "Patient/"); ok {
			patients = append(patients, p)
		}
	}
	if len(patients) == 0 || len(families) == 0 || len(codes) == 0 {
		b.Fatalf("search values: %d patients, %d families, %d codes", len(patients), len(families), len(codes))
	}
	var qs []string
	for i := 0; i < 256; i++ {
		qs = append(qs,
			"/fhir/Patient?family="+url.QueryEscape(families[i%len(families)]),
			"/fhir/Observation?_count=50&subject=Patient%2F"+patients[i%len(patients)],
			"/fhir/Observation?code="+url.QueryEscape("http://loinc.org|"+codes[i%len(codes)]),
			"/fhir/Encounter?patient="+patients[i%len(patients)])
	}
	return qs
}

// BenchmarkSearch sends the searches of ward load (a name, a patient's
// Observations 50 to a page, a LOINC code, a patient's Encounters) with 16
// concurrent clients over HTTPS after loading the 40 Synthea patients (as
// ward load does; WARD_BENCH_SEARCH_BUNDLES=n loads the first n), with
// the durable ledger as ward serve runs it. It reports searches/s, the
// CPU time per search (server and client, one process) and the resources
// returned per search.
func BenchmarkSearch(b *testing.B) {
	for _, be := range benchBackends() {
		b.Run(be.name, func(b *testing.B) {
			t := &testing.T{}
			s := newStackWith(t, stackOptions{limits: benchLimits, openStore: be.open(b)})
			if t.Failed() {
				b.Fatal("stack setup failed")
			}
			bundles := syntheaBundles(b)
			if n, err := strconv.Atoi(os.Getenv("WARD_BENCH_SEARCH_BUNDLES")); err == nil && n > 0 && n < len(bundles) {
				bundles = bundles[:n]
			}
			qs := searchQueries(b, bundles, loadBundles(b, s, bundles))
			var n, found atomic.Int64
			b.SetParallelism(readParallelism)
			b.ResetTimer()
			cpu0 := processCPU()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r := s.do("GET", qs[int(n.Add(1))%len(qs)], nil)
					if r.status != http.StatusOK {
						b.Errorf("status %d", r.status)
						return
					}
					found.Add(int64(bytes.Count(r.body, []byte(`"fullUrl"`))))
				}
			})
			elapsed := time.Since(start)
			cpu := processCPU() - cpu0
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "searches/s")
			b.ReportMetric(cpu.Seconds()/elapsed.Seconds(), "cores")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/search")
			b.ReportMetric(float64(found.Load())/float64(b.N), "results/search")
		})
	}
}
