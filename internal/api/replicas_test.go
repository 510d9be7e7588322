package api_test

import (
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/ratelimit"
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

// Two replicas on one PostgreSQL database share each client id's count of
// failed secrets: guesses spread over both are throttled as if sent to
// one (catalogue G2), and a lock set through one holds on the other. The
// request-rate buckets are each replica's own, as documented: a client
// that spent its budget on one is still served by the other.
func TestReplicasShareSecretThrottle(t *testing.T) {
	schema := newPGSchema(t)
	open := func(t *testing.T, _ string) store.Store { return schema.open(t) }
	clk := newFrozenClock()
	limits := ratelimit.Config{Principal: ratelimit.Limit{Rate: 1, Burst: 10}}
	a := newStackWith(t, stackOptions{openStore: open, authNow: clk.Now, apiNow: clk.Now, limits: limits})
	b := newStackWith(t, stackOptions{openStore: open, authNow: clk.Now, apiNow: clk.Now, limits: limits, keyFile: filepath.Join(a.dir, "keys.json")})
	c, secret, err := a.auth.CreateClient(t.Context(), "svc", []string{"system/*.rs"})
	if err != nil {
		t.Fatal(err)
	}
	wrong := secret.Reveal()[:8] + "guessed"
	checked := 0
	for i := range 40 {
		s := []*stack{a, b}[i%2]
		switch r := s.secretRequest(c.ID, wrong); r.status {
		case http.StatusUnauthorized:
			checked++
		case http.StatusTooManyRequests:
		default:
			t.Fatalf("guess %d: %d %s", i, r.status, r.body)
		}
	}
	if checked != 5 {
		t.Fatalf("40 guesses spread over two replicas: %d checked, want the 5 free ones of one shared count", checked)
	}
	for _, s := range []*stack{a, b} {
		if r := s.secretRequest(c.ID, secret.Reveal()); r.status != http.StatusTooManyRequests {
			t.Fatalf("the right secret during the lock: %d, want 429 on both replicas", r.status)
		}
	}
	clk.Advance(time.Second)
	// Each replica names itself as the issuer: one token from each.
	tokA, tokB := a.tokenWith(c.ID, secret.Reveal()), b.tokenWith(c.ID, secret.Reveal())

	// Request rates are per replica.
	for range 10 {
		if code, _ := a.getAs("/fhir/Patient?_count=1", tokA); code != http.StatusOK {
			t.Fatalf("within the budget on a: %d", code)
		}
	}
	if code, _ := a.getAs("/fhir/Patient?_count=1", tokA); code != http.StatusTooManyRequests {
		t.Fatalf("over the budget on a: %d, want 429", code)
	}
	if code, _ := b.getAs("/fhir/Patient?_count=1", tokB); code != http.StatusOK {
		t.Fatalf("the same client on b: %d, want its own budget there", code)
	}
}
