package main

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/wardhealth/ward/internal/store/storetest"
)

// ward audit verify finds tampering with the index that finds entries by
// patient (catalogue case E3 for ledger_patients and ledger_entries'
// patient column): a row deleted, added or edited, or an entry's patient
// changed, hides an entry from "who saw patient X" or files it under
// someone else without touching the Merkle tree; verify exits 1 naming
// the entry, and 0 again once the index is repaired. On SQLite and on
// PostgreSQL.
func TestAuditVerifyPatientIndex(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			dir := t.TempDir()
			flags := []string{"--data", dir}
			table := func(name string) string { return name }
			var raw *sql.DB
			if backend == "postgres" {
				sc := storetest.FreshSchema(t, "ward_cmd_index_")
				flags = append(flags, "--db", sc.URL)
				raw = sc.Admin
				table = func(name string) string { return sc.Name + "." + name }
			}
			srv := startServe(t, append([]string{"--dev"}, flags...)...)
			c := dial(t, dir)
			fam := family(t)
			var ids []string
			for i := 0; i < 3; i++ {
				ids = append(ids, c.create(patient(fam, "Indexed")))
			}
			if found := c.searchIDs("Patient?family=" + fam); len(found) != 3 {
				t.Fatalf("search found %d patients, want 3", len(found))
			}
			c.read("Patient", ids[0])
			srv.stopOK()
			if backend == "sqlite" {
				var err error
				if raw, err = sql.Open("sqlite", "file:"+filepath.Join(dir, "ward.db")+"?_pragma=busy_timeout(5000)"); err != nil {
					t.Fatal(err)
				}
				defer raw.Close()
			}
			verify := func() (int, string, string) {
				return ward(t, append([]string{"audit", "verify"}, flags...)...)
			}
			if code, out, stderr := verify(); code != 0 || !strings.Contains(out, "ledger intact") || !strings.Contains(out, "patient index intact") || !strings.Contains(out, "(3 rows") {
				t.Fatalf("verify of an untouched ledger: exit %d, %s %s", code, out, stderr)
			}

			// The search's entry and its three index rows; the read's entry.
			ent, pat := table("ledger_entries"), table("ledger_patients")
			var search, read, at int64
			if err := raw.QueryRow(`SELECT idx, at FROM `+pat+` WHERE patient = '`+ids[1]+`'`).Scan(&search, &at); err != nil {
				t.Fatal(err)
			}
			if err := raw.QueryRow(`SELECT MAX(idx) FROM ` + ent + ` WHERE patient = '` + ids[0] + `'`).Scan(&read); err != nil {
				t.Fatal(err)
			}
			row := func(p string) string { return fmt.Sprintf("('%s', %d, %d)", p, at, search) }
			for _, m := range []struct {
				name     string
				do, undo string
				index    int64
				reason   string
			}{
				{"delete an index row",
					fmt.Sprintf(`DELETE FROM %s WHERE patient = '%s' AND idx = %d`, pat, ids[1], search),
					`INSERT INTO ` + pat + ` (patient, at, idx) VALUES ` + row(ids[1]), search, "lacks patient"},
				{"add an index row",
					`INSERT INTO ` + pat + ` (patient, at, idx) VALUES ` + row("intruder"), fmt.Sprintf(`DELETE FROM %s WHERE patient = 'intruder'`, pat),
					search, "whom it does not name"},
				{"change an index row's patient", // to one sorting before any id
					fmt.Sprintf(`UPDATE %s SET patient = '0-someone-else' WHERE patient = '%s' AND idx = %d`, pat, ids[2], search),
					fmt.Sprintf(`UPDATE %s SET patient = '%s' WHERE patient = '0-someone-else'`, pat, ids[2]), search, "whom it does not name"},
				{"change an entry's patient column",
					fmt.Sprintf(`UPDATE %s SET patient = 'someone-else' WHERE idx = %d`, ent, read),
					fmt.Sprintf(`UPDATE %s SET patient = '%s' WHERE idx = %d`, ent, ids[0], read), read, "the patient column says \"someone-else\""},
			} {
				if _, err := raw.Exec(m.do); err != nil {
					t.Fatalf("%s: %v", m.name, err)
				}
				code, _, stderr := verify()
				if want := fmt.Sprintf("first bad index %d: ", m.index); code != 1 || !strings.Contains(stderr, "NOT intact") || !strings.Contains(stderr, want) || !strings.Contains(stderr, m.reason) {
					t.Errorf("%s: exit %d, %s; want exit 1 naming index %d (%s)", m.name, code, stderr, m.index, m.reason)
				}
				if _, err := raw.Exec(m.undo); err != nil {
					t.Fatalf("%s: undo: %v", m.name, err)
				}
				if code, out, stderr := verify(); code != 0 {
					t.Fatalf("%s: the repaired index: exit %d, %s %s", m.name, code, out, stderr)
				}
			}
		})
	}
}
