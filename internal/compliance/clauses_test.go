package compliance_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/compliance"
)

// repoTests parses every _test.go file of the module and returns the
// top-level test functions ("func TestName(t *testing.T)") by package
// directory: "<dir>.<TestName>".
func repoTests(t *testing.T) map[string]bool {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found at %s: %v", root, err)
	}
	out := map[string]bool{}
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !strings.HasPrefix(fn.Name.Name, "Test") || fn.Type.Params.NumFields() != 1 {
				continue
			}
			out[filepath.ToSlash(rel)+"."+fn.Name.Name] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestClausesNameExistingTests: every clause the table calls met or met
// with a condition names at least one test, and every test any clause
// names exists in the repository, in the package it says: a renamed or
// deleted test fails here (and CI runs them all at the same commit).
func TestClausesNameExistingTests(t *testing.T) {
	tests := repoTests(t)
	if !tests["internal/compliance.TestClausesNameExistingTests"] {
		t.Fatal("the parser does not find this very test: the walk is broken")
	}
	seen := map[string]bool{}
	for _, c := range compliance.Clauses {
		key := c.Regulation + " " + c.ID
		if seen[key] {
			t.Errorf("%s: listed twice", key)
		}
		seen[key] = true
		switch c.Base {
		case compliance.Met, compliance.MetWithCondition:
			if len(c.Tests) == 0 {
				t.Errorf("%s is %s but names no test", key, c.Base)
			}
			if c.Feature == "" {
				t.Errorf("%s is %s but names no feature", key, c.Base)
			}
		case compliance.NotMet:
			if c.Missing == "" {
				t.Errorf("%s is not met but says nothing is missing", key)
			}
		case compliance.Operator:
			if c.Condition == "" {
				t.Errorf("%s is the operator's but says not what", key)
			}
		default:
			t.Errorf("%s: unknown status %q", key, c.Base)
		}
		if c.Base == compliance.MetWithCondition && c.Condition == "" {
			t.Errorf("%s is met with a condition but names none", key)
		}
		for _, name := range c.Tests {
			if !tests[name] {
				t.Errorf("%s names %s, which is not a test in the repository", key, name)
			}
		}
	}
}

// TestClausesCoverTheIssue: the table covers every regulation part the
// report must; the e-signature clauses are carried by the e-signature
// feature and name its tests; password aging (11.300(b)) stays not met,
// saying so.
func TestClausesCoverTheIssue(t *testing.T) {
	want := []string{"164.308", "164.312", "164.404", "164.524", "164.528",
		"Art. 5", "Art. 15", "Art. 16", "Art. 17", "Art. 20", "Art. 25", "Art. 30", "Art. 32", "Art. 33", "Art. 34",
		"11.10(a)", "11.10(b)", "11.10(c)", "11.10(d)", "11.10(e)", "11.10(f)", "11.10(g)", "11.10(h)", "11.10(i)", "11.10(j)", "11.10(k)",
		"11.50", "11.70", "11.100(a)", "11.100(b)", "11.100(c)", "11.200(a)", "11.200(b)",
		"11.300(a)", "11.300(b)", "11.300(c)", "11.300(d)", "11.300(e)"}
	for _, w := range want {
		found := false
		for _, c := range compliance.Clauses {
			if c.ID == w || strings.HasPrefix(c.ID, w+"(") {
				found = true
			}
		}
		if !found {
			t.Errorf("no clause for %s", w)
		}
	}
	byID := map[string]compliance.Clause{}
	for _, c := range compliance.Clauses {
		if c.Regulation == compliance.Part11 {
			byID[c.ID] = c
		}
	}
	for _, id := range []string{"11.50", "11.70", "11.100(a)", "11.200(a)", "11.300(d)"} {
		c := byID[id]
		if c.Base != compliance.Met && c.Base != compliance.MetWithCondition {
			t.Errorf("%s: %s, want met (with its condition) by the e-signature feature", id, c.Base)
		}
		esign := false
		for _, name := range c.Tests {
			if strings.Contains(name, "ESign") || strings.HasPrefix(name, "internal/esign.") || strings.HasSuffix(name, "DecideSign") {
				esign = true
			}
		}
		if !esign {
			t.Errorf("%s names no e-signature test: %v", id, c.Tests)
		}
	}
	if c := byID["11.300(b)"]; c.Base != compliance.NotMet || !strings.Contains(c.Missing, "password aging") {
		t.Errorf("11.300(b): %s (%s), want not met: password aging", c.Base, c.Missing)
	}
}
