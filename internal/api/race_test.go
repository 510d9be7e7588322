package api_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
)

// raceIfMatch runs one goroutine per entry of stacks, each making rounds
// successful read-modify-write updates of Patient/id with If-Match and
// retrying on 412. It checks that no update is lost (F3): every success
// reports a distinct version, the versions are exactly 2..1+successes, the
// final version and the history agree, and every version can be read.
func raceIfMatch(t *testing.T, stacks []*stack, id string, rounds int) {
	t.Helper()
	var (
		mu    sync.Mutex
		etags = map[string]bool{}
		wg    sync.WaitGroup
	)
	for w, s := range stacks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for done := 0; done < rounds; {
				cur := s.do("GET", "/fhir/Patient/"+id, nil)
				if cur.status != http.StatusOK {
					t.Errorf("read: %d", cur.status)
					return
				}
				res := cur.json(t)
				res["gender"] = []string{"male", "female", "other", "unknown"}[w%4]
				r := s.do("PUT", "/fhir/Patient/"+id, res, "If-Match", cur.header.Get("ETag"))
				switch r.status {
				case http.StatusOK:
					done++
					mu.Lock()
					if etags[r.header.Get("ETag")] {
						t.Errorf("version %s reported by two successful updates", r.header.Get("ETag"))
					}
					etags[r.header.Get("ETag")] = true
					mu.Unlock()
				case http.StatusPreconditionFailed:
				default:
					t.Errorf("update: %d %.300s", r.status, r.body)
					return
				}
			}
		}()
	}
	wg.Wait()
	n := len(stacks) * rounds
	if len(etags) != n {
		t.Fatalf("%d distinct successful updates, want %d", len(etags), n)
	}
	for v := 2; v <= 1+n; v++ {
		if !etags[fmt.Sprintf(`W/"%d"`, v)] {
			t.Errorf("no successful update made version %d", v)
		}
	}
	for _, s := range stacks[:min(2, len(stacks))] {
		last := must(t, s.do("GET", "/fhir/Patient/"+id, nil), http.StatusOK)
		if want := fmt.Sprintf(`W/"%d"`, 1+n); last.header.Get("ETag") != want {
			t.Fatalf("final version %s, want %s", last.header.Get("ETag"), want)
		}
		hist := must(t, s.do("GET", "/fhir/Patient/"+id+"/_history?_count=0", nil), http.StatusOK).json(t)
		if hist["total"] != float64(1+n) {
			t.Fatalf("history has %v versions, want %d", hist["total"], 1+n)
		}
	}
	for v := 1; v <= 1+n; v++ {
		must(t, stacks[0].do("GET", fmt.Sprintf("/fhir/Patient/%s/_history/%d", id, v), nil), http.StatusOK)
	}
}
