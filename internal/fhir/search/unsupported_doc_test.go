package search_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/fhir/search"
)

var update = flag.Bool("update", false, "rewrite golden files")

// The list of search parameters Ward cannot evaluate is published in
// docs/unsupported-search-parameters.md; this test keeps it exact. Refresh
// it with: go test ./internal/fhir/search -run UnsupportedDoc -update
func TestUnsupportedDoc(t *testing.T) {
	r, err := search.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("# Search parameters Ward does not support\n\n")
	b.WriteString("Generated from the R4 SearchParameter definitions by\n")
	b.WriteString("`go test ./internal/fhir/search -run UnsupportedDoc -update`; a test keeps it current.\n")
	b.WriteString("Searching on one of these answers 400 with an OperationOutcome naming the parameter.\n\n")
	b.WriteString("| resource type | parameter | type | reason |\n|---|---|---|---|\n")
	params := r.Unsupported()
	for _, p := range params {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", p.Base, p.Code, p.Type, strings.ReplaceAll(p.Reason, "|", "\\|"))
	}
	fmt.Fprintf(&b, "\n%d parameters in all.\n", len(params))
	path := filepath.Join("..", "..", "..", "docs", "unsupported-search-parameters.md")
	if *update {
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(got) != b.String() {
		t.Fatalf("%s is out of date; run: go test ./internal/fhir/search -run UnsupportedDoc -update", path)
	}
}
