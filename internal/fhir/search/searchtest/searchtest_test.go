package searchtest

import (
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/fhir/search"
)

// Every string parameter branch of the protected types gets a resource,
// but for the ones that reach through a reference or an extension, which
// index nothing of the resource itself.
func TestStringCanaries(t *testing.T) {
	reg, err := search.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	v, err := fhir.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	got, skipped := StringCanaries(reg, v)
	for _, s := range skipped {
		t.Logf("skipped %s.%s %s: %s", s.Type, s.Param, s.Path, s.Reason)
	}
	t.Logf("%d canary resources, %d branches skipped", len(got), len(skipped))
	if len(got) < 50 || len(skipped) > 0 && !onlyUnsupported(skipped) {
		t.Fatalf("only %d canary resources", len(got))
	}
	seen := map[string]bool{}
	for _, c := range got {
		if seen[c.Value] {
			t.Errorf("canary %s repeats", c.Value)
		}
		seen[c.Value] = true
	}
}

// onlyUnsupported: every skipped branch is a parameter Ward does not index.
func onlyUnsupported(skipped []Skipped) bool {
	for _, s := range skipped {
		if !strings.HasPrefix(s.Reason, "unsupported: ") {
			return false
		}
	}
	return true
}
