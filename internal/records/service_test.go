package records

import (
	"sort"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/fhir"
)

// Ids are valid FHIR ids, unique, and sort in creation order across
// milliseconds.
func TestNewIDOrderAndFormat(t *testing.T) {
	var ids []string
	seen := map[string]bool{}
	for i := 0; i < 50; i++ {
		id := newID()
		if !fhir.ValidID(id) || len(id) != 26 {
			t.Fatalf("invalid id %q", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
		ids = append(ids, id)
		if i%10 == 9 {
			time.Sleep(2 * time.Millisecond)
		}
	}
	// Ids made in different milliseconds sort in creation order.
	for g := 0; g+1 < 5; g++ {
		later := append([]string(nil), ids[(g+1)*10:(g+2)*10]...)
		sort.Strings(later)
		for _, id := range ids[g*10 : (g+1)*10] {
			if id >= later[0] {
				t.Fatalf("id %s of batch %d sorts after %s of batch %d", id, g, later[0], g+1)
			}
		}
	}
}
