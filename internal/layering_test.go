// Package internal_test pins the architecture: which packages may import
// which (DESIGN.md, "Packages"), and that every package says what it is.
package internal_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/wardhealth/ward/"

// allowed lists, for each package, the module packages and third-party
// modules it may import. The standard library is always allowed. Imports
// flow one way: down DESIGN.md's list.
var allowed = map[string][]string{
	"internal/fhir":            {"github.com/go-json-experiment/json", "github.com/santhosh-tekuri/jsonschema/v6"},
	"internal/fhir/search":     {"internal/fhir"},
	"internal/keys":            {"golang.org/x/crypto"},
	"internal/keys/keystest":   {"internal/keys"},
	"internal/ledger":          {"golang.org/x/mod"},
	"internal/policy":          {"internal/fhir"},
	"internal/store":           {"internal/fhir"},
	"internal/store/sqldb":     {"internal/store"},
	"internal/store/storetest": {"internal/store"},
	"internal/store/sqlite":    {"internal/store", "internal/store/sqldb", "modernc.org/sqlite"},
	"internal/store/postgres":  {"internal/store", "internal/store/sqldb", "github.com/jackc/pgx/v5"},
	"internal/auth":            {"internal/keys", "internal/ledger", "internal/store", "internal/policy", "github.com/go-jose/go-jose/v4", "golang.org/x/crypto"},
	"internal/records":         {"internal/fhir", "internal/fhir/search", "internal/keys", "internal/ledger", "internal/policy", "internal/store"},
	"internal/api":             {"internal/records", "internal/auth", "internal/policy", "internal/fhir", "internal/fhir/search"},
	"internal/tlsconfig":       {},
	"internal/loadgen":         {},
	"cmd/ward":                 {"*"},
}

func root(t *testing.T) string {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(wd)
}

// packages returns each package directory (relative to the module root)
// with the imports of its non-test files.
func packages(t *testing.T) map[string]map[string]bool {
	t.Helper()
	top := root(t)
	out := map[string]map[string]bool{}
	fset := token.NewFileSet()
	for _, dir := range []string{"internal", "cmd"} {
		err := filepath.WalkDir(filepath.Join(top, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(top, filepath.Dir(path))
			rel = filepath.ToSlash(rel)
			if out[rel] == nil {
				out[rel] = map[string]bool{}
			}
			for _, imp := range f.Imports {
				out[rel][strings.Trim(imp.Path.Value, `"`)] = true
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestImportsFlowOneWay(t *testing.T) {
	for pkg, imports := range packages(t) {
		rules, ok := allowed[pkg]
		if !ok {
			t.Errorf("%s: package has no import rule; add it to allowed in layering_test.go (and DESIGN.md)", pkg)
			continue
		}
		if slices.Contains(rules, "*") {
			continue
		}
		for imp := range imports {
			if !strings.Contains(strings.SplitN(imp, "/", 2)[0], ".") {
				continue // standard library
			}
			name := strings.TrimPrefix(imp, module)
			if !slices.ContainsFunc(rules, func(r string) bool { return name == r || strings.HasPrefix(name, r+"/") }) {
				t.Errorf("%s may not import %s", pkg, imp)
			}
		}
	}
}

func TestEveryPackageHasDocComment(t *testing.T) {
	top := root(t)
	fset := token.NewFileSet()
	for pkg := range packages(t) {
		pkgs, err := parser.ParseDir(fset, filepath.Join(top, pkg), func(fi fs.FileInfo) bool {
			return !strings.HasSuffix(fi.Name(), "_test.go")
		}, parser.ParseComments|parser.PackageClauseOnly)
		if err != nil {
			t.Fatal(err)
		}
		documented := false
		for _, p := range pkgs {
			for _, f := range p.Files {
				documented = documented || (f.Doc != nil && len(strings.TrimSpace(f.Doc.Text())) > 40)
			}
		}
		if !documented {
			t.Errorf("%s: no package doc comment saying what it guarantees", pkg)
		}
	}
}
