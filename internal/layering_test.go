// Package internal_test pins the architecture: which packages may import
// which (DESIGN.md, "Packages"), and that every package says what it is.
package internal_test

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
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
	"internal/fhir":                   {"internal/fhir/fhirpath", "github.com/go-json-experiment/json"},
	"internal/fhir/fhirpath":          {},
	"internal/fhir/search":            {"internal/fhir"},
	"internal/fhir/fhirtest":          {},
	"internal/fhir/search/searchtest": {"internal/fhir", "internal/fhir/search"},
	"internal/fsutil":                 {},
	"internal/strictjson":             {},
	"internal/keys":                   {"internal/fsutil", "internal/strictjson", "golang.org/x/crypto"},
	"internal/keys/keystest":          {"internal/keys"},
	"internal/keys/pkcs11":            {"internal/keys", "github.com/miekg/pkcs11"},
	"internal/keys/pkcs11/pkcs11test": {},
	"internal/ledger":                 {"internal/fsutil", "golang.org/x/mod"},
	"internal/policy":                 {"internal/fhir"},
	"internal/esign":                  {"internal/ledger", "internal/strictjson", "golang.org/x/mod"},
	"internal/store":                  {"internal/fhir"},
	"internal/store/sqldb":            {"internal/store"},
	"internal/store/storetest":        {"internal/store", "github.com/jackc/pgx/v5"},
	"internal/store/sqlite":           {"internal/store", "internal/store/sqldb", "modernc.org/sqlite"},
	"internal/store/postgres":         {"internal/store", "internal/store/sqldb", "github.com/jackc/pgx/v5"},
	"internal/auth":                   {"internal/auth/credential", "internal/auth/federation", "internal/keys", "internal/ledger", "internal/store", "internal/policy", "github.com/go-jose/go-jose/v4", "github.com/go-webauthn/webauthn", "golang.org/x/crypto"},
	"internal/auth/federation":        {"internal/policy", "github.com/go-jose/go-jose/v4"},
	"internal/auth/credential":        {"golang.org/x/crypto", "github.com/pquerna/otp", "github.com/boombuler/barcode"},
	"internal/audit":                  {"internal/fsutil", "internal/ledger", "internal/store", "golang.org/x/mod"},
	"internal/records":                {"internal/fhir", "internal/fhir/search", "internal/keys", "internal/ledger", "internal/esign", "internal/audit", "internal/policy", "internal/store"},
	"internal/signin":                 {"internal/auth", "internal/secevent", "internal/auth/credential", "internal/auth/federation", "internal/policy", "internal/store", "github.com/zitadel/oidc/v3", "github.com/go-jose/go-jose/v4", "golang.org/x/oauth2"},
	"internal/incident":               {"internal/ledger", "internal/store", "golang.org/x/mod"},
	"internal/bulk":                   {"internal/records", "internal/keys", "internal/store"},
	"internal/notify":                 {"internal/records", "internal/store"},
	"internal/compliance":             {"internal/ledger", "internal/policy", "internal/store", "golang.org/x/mod"},
	"internal/api":                    {"internal/signin", "internal/secevent", "internal/ratelimit", "internal/bulk", "internal/incident", "internal/records", "internal/esign", "internal/store", "internal/audit", "internal/ledger", "internal/auth", "internal/auth/credential", "internal/policy", "internal/fhir", "internal/fhir/search", "golang.org/x/mod"},
	"internal/detect":                 {"internal/ledger", "internal/strictjson", "internal/store"},
	"internal/detect/scenario":        {"internal/detect", "internal/ledger"},
	"internal/tlsconfig":              {},
	"internal/secevent":               {},
	"internal/siem":                   {"internal/secevent", "internal/fsutil"},
	"internal/ratelimit":              {},
	"internal/health":                 {},
	"internal/metrics":                {"github.com/prometheus/client_golang"},
	"internal/loadgen":                {"github.com/go-json-experiment/json"},
	"internal/browsertest":            {},
	"cmd/ward":                        {"*"},
}

func root(t *testing.T) string {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(wd)
}

// packages returns each package directory (relative to the module root)
// with the imports of its non-test files, and whether one of those files
// carries a package doc comment.
func packages(t *testing.T) (map[string]map[string]bool, map[string]bool) {
	t.Helper()
	top := root(t)
	out := map[string]map[string]bool{}
	documented := map[string]bool{}
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
			f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly|parser.ParseComments)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(top, filepath.Dir(path))
			rel = filepath.ToSlash(rel)
			if out[rel] == nil {
				out[rel] = map[string]bool{}
			}
			if f.Doc != nil && len(strings.TrimSpace(f.Doc.Text())) > 40 {
				documented[rel] = true
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
	return out, documented
}

func TestImportsFlowOneWay(t *testing.T) {
	pkgs, _ := packages(t)
	for pkg, imports := range pkgs {
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
			if !slices.ContainsFunc(rules, func(r string) bool { return permits(r, name) }) {
				t.Errorf("%s may not import %s", pkg, imp)
			}
		}
	}
}

// permits reports whether rule r allows importing name: a package of this
// module only by its exact path (internal/fhir does not admit
// internal/fhir/search), a third-party module with any of its packages.
func permits(r, name string) bool {
	if strings.HasPrefix(r, "internal/") {
		return name == r
	}
	return name == r || strings.HasPrefix(name, r+"/")
}

func TestPermitsMatchesExactly(t *testing.T) {
	for _, tc := range []struct {
		rule, name string
		want       bool
	}{
		{"internal/fhir", "internal/fhir", true},
		{"internal/fhir", "internal/fhir/search", false},
		{"internal/fhir", "internal/fhirx", false},
		{"golang.org/x/crypto", "golang.org/x/crypto/hkdf", true},
		{"golang.org/x/crypto", "golang.org/x/cryptox", false},
	} {
		if got := permits(tc.rule, tc.name); got != tc.want {
			t.Errorf("permits(%q, %q) = %v, want %v", tc.rule, tc.name, got, tc.want)
		}
	}
}

func TestEveryPackageHasDocComment(t *testing.T) {
	pkgs, documented := packages(t)
	for pkg := range pkgs {
		if !documented[pkg] {
			t.Errorf("%s: no package doc comment saying what it guarantees", pkg)
		}
	}
}

// TestRoleNamesLiveInPolicy: the privileged role names are string literals
// in internal/policy only; everything else names them through its
// constants, so that the privileged-role list has one owner.
func TestRoleNamesLiveInPolicy(t *testing.T) {
	top := root(t)
	names := map[string]bool{`"admin"`: true, `"auditor"`: true, `"privacy-officer"`: true}
	fset := token.NewFileSet()
	for _, dir := range []string{"internal", "cmd"} {
		err := filepath.WalkDir(filepath.Join(top, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && (d.Name() == "testdata" || d.Name() == "policy") {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			f, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				return err
			}
			ast.Inspect(f, func(n ast.Node) bool {
				if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING && names[lit.Value] {
					t.Errorf("%s: role name %s outside internal/policy", fset.Position(lit.Pos()), lit.Value)
				}
				return true
			})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

var updateArchitecture = flag.Bool("update", false, "rewrite the import table of docs/ARCHITECTURE.md")

// TestArchitectureDoc: docs/ARCHITECTURE.md lists every package and what
// it may import, exactly as allowed says.
func TestArchitectureDoc(t *testing.T) {
	path := filepath.Join(root(t), "docs", "ARCHITECTURE.md")
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- imports:begin -->\n", "<!-- imports:end -->"
	i, j := strings.Index(string(doc), begin), strings.Index(string(doc), end)
	if i < 0 || j < i {
		t.Fatalf("%s has no import table markers", path)
	}
	var b strings.Builder
	b.WriteString("| package | may import (besides the standard library) |\n|---|---|\n")
	for _, pkg := range slices.Sorted(maps.Keys(allowed)) {
		rules := allowed[pkg]
		list := "nothing"
		switch {
		case slices.Contains(rules, "*"):
			list = "anything"
		case len(rules) > 0:
			list = "`" + strings.Join(rules, "`, `") + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s |\n", pkg, list)
	}
	want := string(doc[:i+len(begin)]) + b.String() + string(doc[j:])
	if *updateArchitecture {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if string(doc) != want {
		t.Errorf("docs/ARCHITECTURE.md's import table is out of date; run: go test ./internal -run ArchitectureDoc -update")
	}
	pkgs, _ := packages(t)
	for pkg := range pkgs {
		if !strings.Contains(string(doc), "`"+pkg+"`") {
			t.Errorf("docs/ARCHITECTURE.md does not name %s", pkg)
		}
	}
}
