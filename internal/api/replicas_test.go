package api_test

import (
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"testing"

	"github.com/wardhealth/ward/internal/store"
)

// Two Ward replicas share one PostgreSQL database and one key file: what
// one writes the other reads, concurrent first writes for one patient
// converge on one data key, and concurrent If-Match updates through both
// never lose an update (F3 across processes).
func TestReplicasSharePostgres(t *testing.T) {
	schema := newPGSchema(t)
	open := func(t *testing.T, _ string) store.Store { return schema.open(t) }
	a := newStackWith(t, stackOptions{openStore: open})
	b := newStackWith(t, stackOptions{openStore: open, keyFile: filepath.Join(a.dir, "keys.json")})

	id := idFrom(t, must(t, a.do("POST", "/fhir/Patient", patient("Replica", "One")), http.StatusCreated))
	must(t, b.do("GET", "/fhir/Patient/"+id, nil), http.StatusOK)
	if got := must(t, b.do("GET", "/fhir/Patient?family=replica", nil), http.StatusOK).json(t); got["total"] != float64(1) {
		t.Fatalf("replica b finds %v patients by a blind-indexed name written through a", got["total"])
	}

	// Both replicas create a patient's first resources at once: one DEK wins.
	pid := "shared-patient"
	p := patient("Shared", "Key")
	p["id"] = pid
	var wg sync.WaitGroup
	for i, s := range []*stack{a, b, a, b} {
		wg.Add(1)
		go func(i int, s *stack) {
			defer wg.Done()
			r := s.do("POST", "/fhir/Observation", observation("Patient/"+pid, fmt.Sprintf("%d-1", i), float64(i)))
			if r.status != http.StatusCreated {
				t.Errorf("replica write: %d %s", r.status, r.body)
			}
		}(i, s)
	}
	wg.Wait()
	for _, s := range []*stack{a, b} {
		got := must(t, s.do("GET", "/fhir/Observation?subject=Patient/"+pid, nil), http.StatusOK).json(t)
		if got["total"] != float64(4) {
			t.Fatalf("a replica reads %v of the 4 Observations", got["total"])
		}
	}

	// Concurrent read-modify-write through both replicas.
	raceIfMatch(t, []*stack{a, b, a, b}, id, 4)
}
