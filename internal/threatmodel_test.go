package internal_test

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// strideColumns are the STRIDE classes, in the order of the table's columns
// after the component and its packages.
var strideColumns = []string{"Spoofing", "Tampering", "Repudiation", "Information disclosure", "Denial of service", "Elevation of privilege"}

const strideHeading = "## STRIDE by component"

var (
	backticked = regexp.MustCompile("`([^`]+)`")
	testName   = regexp.MustCompile(`^(Test|Fuzz)[A-Z0-9_][A-Za-z0-9_]*$`)
	testFunc   = regexp.MustCompile(`(?m)^func ((?:Test|Fuzz)[A-Za-z0-9_]*)\(`)
)

// strideRow is one component of the table.
type strideRow struct {
	component string
	packages  []string
	cells     []string // one per strideColumns
}

// parseStride reads the table under strideHeading.
func parseStride(doc string) ([]strideRow, error) {
	_, rest, ok := strings.Cut(doc, strideHeading+"\n")
	if !ok {
		return nil, fmt.Errorf("no %q section", strideHeading)
	}
	if i := strings.Index(rest, "\n## "); i >= 0 {
		rest = rest[:i]
	}
	var rows []strideRow
	header := false
	for line := range strings.Lines(rest) {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if !header {
			want := append([]string{"component", "packages"}, strideColumns...)
			if !slices.Equal(cells, want) {
				return nil, fmt.Errorf("table header %q, want %q", cells, want)
			}
			header = true
			continue
		}
		if strings.Trim(cells[0], "-") == "" {
			continue // the separator line
		}
		if len(cells) != 2+len(strideColumns) {
			return nil, fmt.Errorf("row %q has %d cells, want %d", cells[0], len(cells), 2+len(strideColumns))
		}
		r := strideRow{component: cells[0], cells: cells[2:]}
		for _, m := range backticked.FindAllStringSubmatch(cells[1], -1) {
			r.packages = append(r.packages, m[1])
		}
		rows = append(rows, r)
	}
	if !header {
		return nil, fmt.Errorf("no table under %q", strideHeading)
	}
	return rows, nil
}

// checkStride returns what is wrong with the table: a package with no row
// or with two, a package named that does not exist, a cell that names no
// test and is not "n/a — why", a test named that does not exist, and a row
// that is n/a throughout but names a package the binary links.
func checkStride(rows []strideRow, pkgs, linked, tests map[string]bool) []string {
	var problems []string
	seen := map[string]string{}
	for _, r := range rows {
		if len(r.packages) == 0 {
			problems = append(problems, fmt.Sprintf("%s: names no package", r.component))
		}
		for _, p := range r.packages {
			if !pkgs[p] {
				problems = append(problems, fmt.Sprintf("%s: %s is not a package of the repository", r.component, p))
			}
			if other, dup := seen[p]; dup {
				problems = append(problems, fmt.Sprintf("%s is in two rows: %s and %s", p, other, r.component))
			}
			seen[p] = r.component
		}
		allNA := true
		for i, c := range r.cells {
			na := strings.HasPrefix(c, "n/a — ") && len(strings.TrimSpace(strings.TrimPrefix(c, "n/a — "))) > 0
			allNA = allNA && na
			named := 0
			for _, m := range backticked.FindAllStringSubmatch(c, -1) {
				if !testName.MatchString(m[1]) {
					continue
				}
				named++
				if !tests[m[1]] {
					problems = append(problems, fmt.Sprintf("%s, %s: no test %s in the repository", r.component, strideColumns[i], m[1]))
				}
			}
			if !na && named == 0 {
				problems = append(problems, fmt.Sprintf("%s, %s: names no test and is not \"n/a — why\"", r.component, strideColumns[i]))
			}
		}
		if allNA {
			for _, p := range r.packages {
				if linked[p] {
					problems = append(problems, fmt.Sprintf("%s: n/a throughout, but %s is linked into the ward binary", r.component, p))
				}
			}
		}
	}
	for p := range pkgs {
		if _, ok := seen[p]; !ok {
			problems = append(problems, fmt.Sprintf("package %s has no row in the STRIDE table", p))
		}
	}
	slices.Sort(problems)
	return problems
}

// testNames returns the Test and Fuzz functions of every _test.go file in
// the repository.
func testNames(t *testing.T) map[string]bool {
	t.Helper()
	top := root(t)
	names := map[string]bool{}
	err := filepath.WalkDir(top, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != top {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range testFunc.FindAllSubmatch(data, -1) {
			names[string(m[1])] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// linkedByWard returns the module packages that cmd/ward imports, directly
// or through others (non-test files only).
func linkedByWard(pkgs map[string]map[string]bool) map[string]bool {
	linked := map[string]bool{}
	var visit func(string)
	visit = func(p string) {
		if linked[p] {
			return
		}
		linked[p] = true
		for imp := range pkgs[p] {
			if rel, ok := strings.CutPrefix(imp, module); ok {
				visit(rel)
			}
		}
	}
	visit("cmd/ward")
	return linked
}

// TestStrideTable: docs/THREAT-MODEL.md has a STRIDE row for every package
// under internal/ and cmd/ward, and every test it names exists.
func TestStrideTable(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(root(t), "docs", "THREAT-MODEL.md"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := parseStride(string(doc))
	if err != nil {
		t.Fatal(err)
	}
	imports, _ := packages(t)
	pkgs := map[string]bool{}
	for p := range imports {
		pkgs[p] = true
	}
	for _, p := range checkStride(rows, pkgs, linkedByWard(imports), testNames(t)) {
		t.Error(p)
	}
}

// The checker finds each kind of mistake it is there for.
func TestStrideTableChecks(t *testing.T) {
	pkgs := map[string]bool{"internal/a": true, "internal/b": true, "internal/kit": true}
	linked := map[string]bool{"cmd/ward": true, "internal/a": true, "internal/b": true}
	tests := map[string]bool{"TestA": true, "FuzzB": true}
	table := func(rows ...string) string {
		return "# x\n\n" + strideHeading + "\n\n| component | packages | " + strings.Join(strideColumns, " | ") + " |\n|---|---|---|---|---|---|---|---|\n" +
			strings.Join(rows, "\n") + "\n\n## Next\n| not | a | row |\n"
	}
	good := []string{
		"| a | `internal/a` | t (`TestA`) | n/a — why | `FuzzB` | n/a — why | n/a — why | n/a — why |",
		"| b | `internal/b` | n/a — why | n/a — why | n/a — why | n/a — why | n/a — why | x (`TestA`) |",
		"| kits | `internal/kit` | n/a — not linked | n/a — not linked | n/a — not linked | n/a — not linked | n/a — not linked | n/a — not linked |",
	}
	for _, tt := range []struct {
		name string
		doc  string
		want string // a substring of the one problem expected; "" for none
	}{
		{"good", table(good...), ""},
		{"package without a row", table(good[0], good[2]), "internal/b has no row"},
		{"unknown test", table(strings.Replace(good[0], "TestA", "TestGone", 1), good[1], good[2]), "no test TestGone"},
		{"cell without a test", table(strings.Replace(good[0], "t (`TestA`)", "something", 1), good[1], good[2]), "Spoofing: names no test"},
		{"n/a without a reason", table(strings.Replace(good[1], "n/a — why | n/a — why | n/a — why | n/a — why | n/a — why", "n/a — | n/a — why | n/a — why | n/a — why | n/a — why", 1), good[0], good[2]), "names no test"},
		{"unknown package", table(good[0], good[1], strings.Replace(good[2], "`internal/kit`", "`internal/kit`, `internal/gone`", 1)), "internal/gone is not a package"},
		{"package in two rows", table(good[0], strings.Replace(good[1], "`internal/b`", "`internal/b`, `internal/a`", 1), good[2]), "internal/a is in two rows"},
		{"n/a row for a linked package", table(good[0], strings.Replace(good[2], "`internal/kit`", "`internal/kit`, `internal/b`", 1)), "internal/b is linked"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rows, err := parseStride(tt.doc)
			if err != nil {
				t.Fatal(err)
			}
			got := checkStride(rows, pkgs, linked, tests)
			switch {
			case tt.want == "" && len(got) > 0:
				t.Errorf("problems in a good table: %q", got)
			case tt.want != "" && (len(got) != 1 || !strings.Contains(got[0], tt.want)):
				t.Errorf("got %q, want one problem with %q", got, tt.want)
			}
		})
	}
	for _, bad := range []string{"# x\n", "# x\n" + strideHeading + "\n| component | S |\n"} {
		if _, err := parseStride(bad); err == nil {
			t.Errorf("parseStride accepted %q", bad)
		}
	}
}
