package api_test

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/postgres"
	"github.com/wardhealth/ward/internal/store/storetest"
)

// pgSchema is a freshly created PostgreSQL schema, dropped when the test
// ends, and a connection that can read it directly, as a database
// administrator would.
type pgSchema struct {
	name  string
	url   string // WARD_TEST_POSTGRES with search_path set to name
	admin *sql.DB
}

// newPGSchema creates a schema with a random name. It skips the test when
// WARD_TEST_POSTGRES is unset, unless WARD_REQUIRE_POSTGRES=1.
func newPGSchema(t *testing.T) *pgSchema {
	t.Helper()
	sc := storetest.FreshSchema(t, "ward_api_test_")
	return &pgSchema{name: sc.Name, url: sc.URL, admin: sc.Admin}
}

// open opens a store on the schema; it is closed before the schema is
// dropped (cleanups run last-registered first).
func (p *pgSchema) open(t *testing.T) store.Store {
	t.Helper()
	db, err := postgres.Open(t.Context(), p.url)
	if err != nil {
		t.Fatalf("postgres.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return db
}

// postgresStore is a stackOptions.openStore over a fresh PostgreSQL schema.
func postgresStore(t *testing.T, _ string) store.Store {
	return newPGSchema(t).open(t)
}

// dump reads every row of every table in the schema as text, and the raw
// bytes of every bytea column (whose ::text form is hex and would hide a
// plaintext leak). It returns the data and the row count by table.
func (p *pgSchema) dump(t *testing.T) (map[string][]byte, map[string]int) {
	t.Helper()
	ctx := t.Context()
	rows, err := p.admin.QueryContext(ctx,
		`SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND table_type = 'BASE TABLE'`, p.name)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	data, counts := map[string][]byte{}, map[string]int{}
	read := func(table, query string, count bool) {
		rows, err := p.admin.QueryContext(ctx, query)
		if err != nil {
			t.Fatalf("read %s: %v", table, err)
		}
		defer rows.Close()
		for rows.Next() {
			var v []byte
			if err := rows.Scan(&v); err != nil {
				t.Fatalf("read %s: %v", table, err)
			}
			data[table] = append(append(data[table], v...), '\n')
			if count {
				counts[table]++
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("read %s: %v", table, err)
		}
	}
	for _, table := range tables {
		qualified := pgx.Identifier{p.name, table}.Sanitize()
		read(table, "SELECT t::text FROM "+qualified+" t", true)
		cols, err := p.admin.QueryContext(ctx,
			`SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 AND data_type = 'bytea'`, p.name, table)
		if err != nil {
			t.Fatal(err)
		}
		var blobs []string
		for cols.Next() {
			var c string
			if err := cols.Scan(&c); err != nil {
				t.Fatal(err)
			}
			blobs = append(blobs, c)
		}
		cols.Close()
		for _, c := range blobs {
			read(table, "SELECT "+pgx.Identifier{c}.Sanitize()+" FROM "+qualified, false)
		}
	}
	return data, counts
}

// D3 on PostgreSQL: no canary in any row of any table of Ward's schema,
// read as a database administrator would, nor in the logs.
func TestCanaryNotInPostgres(t *testing.T) {
	pg := newPGSchema(t)
	s := newStackWith(t, stackOptions{openStore: func(t *testing.T, _ string) store.Store { return pg.open(t) }})
	loadCanaries(t, s)
	// Only 5xx causes are logged: provoke some with the canary in the
	// request, so that the log check is not vacuous (and the dump below
	// covers failed writes too).
	s.provider.down.Store(true)
	must(t, s.do("POST", "/fhir/Patient", canaryPatient()), http.StatusServiceUnavailable)
	must(t, s.do("POST", "/fhir", tx("transaction", post("urn:uuid:2b1d4c6a-3e5f-4a7b-8c9d-0e1f2a3b4c5d", canaryPatient()))), http.StatusServiceUnavailable)
	s.provider.down.Store(false)
	data, counts := pg.dump(t)
	for _, table := range []string{"resources", "search_index", "data_keys", "clients"} {
		if _, ok := counts[table]; !ok || counts[table] == 0 {
			t.Errorf("table %s was not read or is empty (%d rows)", table, counts[table])
		}
	}
	total := 0
	for table, d := range data {
		total += len(d)
		assertNoCanary(t, "table "+table, d)
	}
	if total == 0 {
		t.Fatal("nothing read from the schema")
	}
	s.srv.Close() // no handler is still writing the log
	if s.logs.Len() == 0 {
		t.Error("the server logged nothing: the log check would be vacuous")
	}
	assertNoCanary(t, "logs", s.logs.Bytes())

	// The reader would see a leak: plaintext put in a text and in a
	// bytea column comes back in the dump.
	probe := pgx.Identifier{pg.name, "canary_probe"}.Sanitize()
	if _, err := pg.admin.ExecContext(t.Context(), "CREATE TABLE "+probe+" (s text, b bytea)"); err != nil {
		t.Fatal(err)
	}
	if _, err := pg.admin.ExecContext(t.Context(), "INSERT INTO "+probe+" VALUES ($1, $2)", canaries[0], []byte(canaries[2])); err != nil {
		t.Fatal(err)
	}
	data, _ = pg.dump(t)
	for _, c := range []string{canaries[0], canaries[2]} {
		if !bytes.Contains(data["canary_probe"], []byte(c)) {
			t.Errorf("the dump does not show %q stored in the probe table", c)
		}
	}
}

// A data set whose string values include SQL metacharacters and LIKE
// wildcards, loaded under fixed ids so that two servers can be compared.
const (
	sqlDrop  = `'; DROP TABLE x; --`
	sqlDrop2 = `"; DROP TABLE x; --`
	sqlOr    = `' OR '1'='1`
)

func cmpPatient(id, family, city, birth, gender string) map[string]any {
	p := map[string]any{
		"resourceType": "Patient", "id": id, "gender": gender, "birthDate": birth,
		"name": []any{map[string]any{"family": family, "given": []any{"Ada"}}},
	}
	if city != "" {
		p["address"] = []any{map[string]any{"city": city}}
	}
	return p
}

func cmpOrg(id, name, city string) map[string]any {
	o := map[string]any{"resourceType": "Organization", "id": id}
	if name != "" {
		o["name"] = name
	} else {
		// org-1: an Organization has a name or an identifier.
		o["identifier"] = []any{map[string]any{"system": "urn:x:org", "value": id}}
	}
	if city != "" {
		o["address"] = []any{map[string]any{"city": city}}
	}
	return o
}

// cmpObs makes an Observation; a nil value leaves valueQuantity out.
func cmpObs(id, pat, system, code, when string, value any) map[string]any {
	o := map[string]any{
		"resourceType":      "Observation",
		"id":                id,
		"status":            "final",
		"code":              map[string]any{"coding": []any{map[string]any{"system": system, "code": code}}},
		"subject":           map[string]any{"reference": "Patient/" + pat},
		"effectiveDateTime": when,
	}
	if value != nil {
		o["valueQuantity"] = map[string]any{"value": value, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}
	}
	return o
}

func comparisonData() []map[string]any {
	const loinc, x = "http://loinc.org", "urn:x"
	return []map[string]any{
		cmpPatient("pat-1", "Okafor", "Lagos", "1987-03-14", "female"),
		cmpPatient("pat-2", "Okoye", "50%", "1990-01-02", "male"),
		cmpPatient("pat-3", "Smith", "5000", "1987-03-14", "female"),
		cmpPatient("pat-4", "Under", "50_", "1975-12-31", "other"),
		cmpPatient("pat-5", "Slash", `back\slash`, "1975", "unknown"),
		cmpPatient("pat-6", "Plain", "50x", "2001-07", "male"),
		cmpPatient("pat-7", "Drop", sqlDrop, "1960-02-29", "female"),
		cmpPatient("pat-8", "Or", sqlOr, "1960-03-01", "female"),
		cmpPatient("pat-9", "O'Brien", "O'Brien", "1999-09-09", "male"),
		cmpPatient("pat-10", "Nowhere", "", "1999-09-09", "male"),

		cmpOrg("org-1", "50% Clinic", "Paris"),
		cmpOrg("org-2", "5000 Clinic", "Lyon"),
		cmpOrg("org-3", "50_ Labs", "50%"),
		cmpOrg("org-4", "50x Labs", "5000"),
		cmpOrg("org-5", `Back\Slash Care`, `a\b`),
		cmpOrg("org-6", "O'Brien Health", "O'Brien"),
		cmpOrg("org-7", sqlDrop, sqlOr),
		cmpOrg("org-8", sqlOr, sqlDrop),
		cmpOrg("org-9", "", ""),
		cmpOrg("org-10", "Backslash Care", "ab"),
		cmpOrg("org-11", sqlDrop2, ""),

		cmpObs("obs-1", "pat-1", loinc, "29463-7", "2020-05-01T10:00:00Z", 60),
		cmpObs("obs-2", "pat-1", loinc, "29463-7", "2020-06-01", 61),
		cmpObs("obs-3", "pat-1", loinc, "8302-2", "2021-01-15T08:30:00+02:00", 62),
		cmpObs("obs-4", "pat-3", loinc, "29463-7", "2019-12-31", 90),
		cmpObs("obs-5", "pat-2", x, "50%", "2020", 50),
		cmpObs("obs-6", "pat-2", x, "5000", "2020-05", 5000),
		cmpObs("obs-7", "pat-2", x, "50_", "2020-05-01", 0.5),
		cmpObs("obs-8", "pat-2", x, "5x0", "2018-01-01", -3),
		cmpObs("obs-9", "pat-4", x, `a\b`, "2022-02-02", 61),
		cmpObs("obs-10", "pat-4", x, sqlDrop, "2022-02-03", 1e6),
		cmpObs("obs-11", "pat-4", x, sqlOr, "2022-02-04", 0),
		cmpObs("obs-12", "pat-5", loinc, "29463-7", "2020-05-01T10:00:00Z", nil),
	}
}

// searchResult is what a search answered: its status and, for a 200, the
// entries (type/id and mode) of every page in order and each page's total.
type searchResult struct {
	status  int
	entries []string
	totals  []any
}

// sqlErrorText is text that would show a database error reached the
// client.
var sqlErrorText = []string{"syntax error", "sqlstate", "sqlite", "pq:", "pgx", "sqldb", "unterminated", "near \""}

func (s *stack) searchAll(t *testing.T, query string) searchResult {
	t.Helper()
	var res searchResult
	next := "/fhir/" + query
	for pages := 0; next != ""; pages++ {
		if pages == 20 {
			t.Fatalf("%s: paging does not end", query)
		}
		r := s.do("GET", next, nil)
		if r.status >= 500 {
			t.Errorf("%s: status %d: %.300s", query, r.status, r.body)
		}
		if r.status != http.StatusOK {
			// Database error text could only leak through an error answer;
			// a Bundle's random ids and paging tokens may spell anything.
			lower := strings.ToLower(string(r.body))
			for _, bad := range sqlErrorText {
				if strings.Contains(lower, bad) {
					t.Errorf("%s: response contains %q: %.300s", query, bad, r.body)
				}
			}
			res.status = r.status
			return res
		}
		b := r.json(t)
		res.status = r.status
		res.totals = append(res.totals, b["total"])
		entries, _ := b["entry"].([]any)
		for _, e := range entries {
			m := e.(map[string]any)
			rs := m["resource"].(map[string]any)
			mode, _ := m["search"].(map[string]any)["mode"].(string)
			res.entries = append(res.entries, fmt.Sprintf("%s/%s:%s", rs["resourceType"], rs["id"], mode))
		}
		if len(entries) == 0 {
			// _count=0 answers a next link to the same empty page; an
			// empty page ends the walk.
			break
		}
		next = links(b)["next"]
	}
	return res
}

// C3: the same data searched the same way answers the same on SQLite and
// PostgreSQL, and values with SQL metacharacters and LIKE wildcards match
// literally.
func TestSearchSameOnBothBackends(t *testing.T) {
	pg := newStackWith(t, stackOptions{openStore: postgresStore})
	lite := newStack(t)
	for _, s := range []*stack{lite, pg} {
		for _, res := range comparisonData() {
			path := fmt.Sprintf("/fhir/%s/%s", res["resourceType"], res["id"])
			must(t, s.do("PUT", path, res), http.StatusCreated)
		}
	}
	esc := url.QueryEscape
	none := []string{}
	cases := []struct {
		query string
		want  []string // the matching ids, in any order, when the search succeeds; nil: only compared
	}{
		// Plain (non-identifying) strings: LIKE prefix, contains, exact.
		{"Organization?name=50%25", []string{"org-1"}},
		{"Organization?name=50_", []string{"org-3"}},
		{"Organization?name=5000", []string{"org-2"}},
		{"Organization?name=50", []string{"org-1", "org-2", "org-3", "org-4"}},
		{"Organization?name:contains=%25", []string{"org-1"}},
		{"Organization?name:contains=_", []string{"org-3"}},
		{"Organization?name:contains=%5C", []string{"org-5"}},
		{"Organization?name:contains=" + esc(`\s`), []string{"org-5"}},
		{"Organization?name=" + esc(`back\`), []string{"org-5"}},
		{"Organization?name=backslash", []string{"org-10"}},
		{"Organization?name:exact=" + esc("50% Clinic"), []string{"org-1"}},
		{"Organization?name:exact=" + esc("50% clinic"), none},
		{"Organization?name:exact=" + esc(sqlDrop), []string{"org-7"}},
		{"Organization?name:exact=" + esc(sqlDrop2), []string{"org-11"}},
		{"Organization?name=" + esc(sqlOr), []string{"org-8"}},
		{"Organization?name=" + esc(sqlDrop), []string{"org-7"}},
		{"Organization?name=" + esc("'"), []string{"org-7", "org-8"}},
		{"Organization?name:contains=" + esc("'"), []string{"org-6", "org-7", "org-8"}},
		{"Organization?name:contains=" + esc(`"`), []string{"org-11"}},
		{"Organization?name:contains=" + esc("--"), []string{"org-7", "org-11"}},
		{"Organization?name:contains=" + esc("1'='1"), []string{"org-8"}},
		{"Organization?name:contains=" + esc("1'='2"), none},
		{"Organization?name:missing=true", []string{"org-9"}},
		{"Organization?name:missing=false", nil},
		{"Organization?address-city=50%25", []string{"org-3"}},
		{"Organization?address-city=" + esc(`a\`), []string{"org-5"}},
		{"Organization?address-city=a", []string{"org-5", "org-10"}},
		{"Organization?address-city:exact=" + esc(sqlOr), []string{"org-7"}},
		{"Organization?name=50&address-city=5000", []string{"org-4"}},
		{"Organization?name=50%25,50_", []string{"org-1", "org-3"}},
		{"Organization?_sort=name", nil},
		{"Organization?_sort=-name", nil},
		{"Organization?_sort=address-city,-_id", nil},
		{"Organization?_count=3&_sort=name", nil},
		{"Organization?_count=4&_sort=-name", nil},

		// Blind strings go through blind indexes: whole values only.
		{"Patient?address-city=50%25", []string{"pat-2"}},
		{"Patient?address-city=50_", []string{"pat-4"}},
		{"Patient?address-city=5000", []string{"pat-3"}},
		{"Patient?address-city=50", none},
		{"Patient?address-city=" + esc(`back\slash`), []string{"pat-5"}},
		{"Patient?address-city=" + esc(sqlDrop), []string{"pat-7"}},
		{"Patient?address-city=" + esc(sqlDrop2), none},
		{"Patient?address-city=" + esc(sqlOr), []string{"pat-8"}},
		{"Patient?address-city:exact=50%25", []string{"pat-2"}},
		{"Patient?address-city:missing=true", []string{"pat-10"}},
		{"Patient?address-city:contains=50", nil},
		{"Patient?family=" + esc("o'brien"), []string{"pat-9"}},
		{"Patient?family=okafor", []string{"pat-1"}},
		{"Patient?birthdate=1987-03-14", []string{"pat-1", "pat-3"}},
		{"Patient?gender=female", []string{"pat-1", "pat-3", "pat-7", "pat-8"}},
		{"Patient?gender:not=female", []string{"pat-2", "pat-4", "pat-5", "pat-6", "pat-9", "pat-10"}},
		{"Patient?gender=" + esc(sqlOr), none},
		{"Patient?_id=pat-1,pat-3", []string{"pat-1", "pat-3"}},
		{"Patient?_id=" + esc("'"), none},
		{"Patient?_id=" + esc(sqlOr), none},
		{"Patient?_id=%25", none},
		{"Patient?_id=pat-_", none},
		{"Patient?_id=" + esc(`pat-\`), none},
		{"Patient?_sort=_id", nil},
		{"Patient?_sort=-_id", nil},
		{"Patient?_sort=gender,-_id", nil},
		{"Patient?_count=4&_sort=-_id", nil},
		{"Patient?_id=pat-1&_revinclude=Observation:subject", nil},

		// Tokens, with the same characters as codes.
		{"Observation?code=50%25", []string{"obs-5"}},
		{"Observation?code=urn:x%7C50%25", []string{"obs-5"}},
		{"Observation?code=http://loinc.org%7C50%25", none},
		{"Observation?code=50_", []string{"obs-7"}},
		{"Observation?code=5_0", none},
		{"Observation?code=%25", none},
		{"Observation?code=" + esc(`a\b`), []string{"obs-9"}},
		{"Observation?code=" + esc(`a\`), none},
		{"Observation?code=" + esc(sqlDrop), []string{"obs-10"}},
		{"Observation?code=" + esc(sqlDrop2), none},
		{"Observation?code=" + esc(sqlOr), []string{"obs-11"}},
		{"Observation?code=" + esc("urn:x|"+sqlOr), []string{"obs-11"}},
		{"Observation?code:not=29463-7", nil},
		{"Observation?code:not=" + esc(sqlOr), nil},
		{"Observation?code:missing=false", nil},
		{"Observation?code:missing=true", none},
		{"Observation?code:exact=50%25", nil}, // unsupported on tokens: both must refuse alike

		// Numbers and dates with prefixes.
		{"Observation?value-quantity:missing=true", []string{"obs-12"}},
		{"Observation?value-quantity=61", []string{"obs-2", "obs-9"}},
		{"Observation?value-quantity=gt61", []string{"obs-3", "obs-4", "obs-6", "obs-10"}},
		{"Observation?value-quantity=lt0", nil},
		{"Observation?value-quantity=ge60", nil},
		{"Observation?value-quantity=le0.5", nil},
		{"Observation?value-quantity=ne61", nil},
		{"Observation?value-quantity=ap60", nil},
		{"Observation?value-quantity=5e1", nil},
		{"Observation?value-quantity=50%7Curn:x%7Ckg", nil},
		{"Observation?value-quantity=gt50&value-quantity=lt100", nil},
		{"Observation?date=2020", nil},
		{"Observation?date=2020-05", nil},
		{"Observation?date=2020-05-01T10:00:00Z", nil},
		{"Observation?date=ge2020-06", nil},
		{"Observation?date=lt2020-01-01", nil},
		{"Observation?date=sa2020-05-01", nil},
		{"Observation?date=eb2021", nil},
		{"Observation?date=ne2020", nil},
		{"Observation?date=ap2020-05-01", nil},
		{"Observation?date=gt2021-01-15T06:00:00Z", nil},
		{"Observation?_lastUpdated=gt2000-01-01", nil},
		{"Observation?_lastUpdated=lt2000-01-01", none},

		// References, sorting, paging, includes.
		{"Observation?subject=Patient/pat-1", []string{"obs-1", "obs-2", "obs-3"}},
		{"Observation?patient=pat-2&code:not=50%25", []string{"obs-6", "obs-7", "obs-8"}},
		{"Observation?subject=" + esc("Patient/"+sqlOr), nil},
		{"Observation?_sort=value-quantity", nil},
		{"Observation?_sort=-value-quantity", nil},
		{"Observation?_sort=date,-_id", nil},
		{"Observation?_sort=-date", nil},
		{"Observation?_sort=code,value-quantity", nil},
		{"Observation?_count=3&_sort=value-quantity", nil},
		{"Observation?_count=5&_sort=-date", nil},
		{"Observation?_count=2&code=29463-7&_sort=-value-quantity", nil},
		{"Observation?_count=0", nil},
		{"Observation?code=29463-7&_include=Observation:subject", nil},
		{"Observation?_count=2&_include=Observation:subject&_sort=_id", nil},
		{"Observation?code=29463-7&_include=Observation:subject&_include:iterate=Patient:organization", nil},

		// Chains and _has: each hop a search of its own, the same
		// metacharacters carried literally through it.
		{"Observation?subject:Patient.family=okafor", []string{"obs-1", "obs-2", "obs-3"}},
		{"Observation?subject.family=okafor", []string{"obs-1", "obs-2", "obs-3"}},
		{"Observation?subject:Patient.birthdate=1987-03-14", []string{"obs-1", "obs-2", "obs-3", "obs-4"}},
		{"Observation?subject:Patient.address-city=50%25", []string{"obs-5", "obs-6", "obs-7", "obs-8"}},
		{"Observation?subject:Patient.address-city=" + esc(sqlDrop), none},
		{"Observation?subject:Patient.gender=" + esc(sqlOr), none},
		{"Observation?subject:Patient._id=" + esc(sqlOr), none},
		{"Observation?subject:Patient.gender=female&code=29463-7", []string{"obs-1", "obs-2", "obs-4"}},
		{"Observation?subject:Patient.gender:not=female", []string{"obs-5", "obs-6", "obs-7", "obs-8", "obs-9", "obs-10", "obs-11", "obs-12"}},
		{"Observation?_count=2&_sort=-_id&subject:Patient.gender=female", nil},
		{"Patient?_has:Observation:subject:code=29463-7", []string{"pat-1", "pat-3", "pat-5"}},
		{"Patient?_has:Observation:subject:code=" + esc(sqlDrop), []string{"pat-4"}},
		{"Patient?_has:Observation:subject:value-quantity=gt61", []string{"pat-1", "pat-2", "pat-3", "pat-4"}},
		{"Patient?_has:Observation:subject:code=29463-7&gender=female", []string{"pat-1", "pat-3"}},
		{"Patient?_has:Observation:subject:code=29463-7&_has:Observation:subject:value-quantity=gt61", []string{"pat-1", "pat-3"}},
		{"Patient?_has:Observation:subject:subject:Patient.family=okafor", []string{"pat-1"}},

		// Result parameters.
		{"Patient?_summary=true&_sort=_id", nil},
		{"Patient?_summary=count&gender=female", nil},
		{"Observation?_elements=code&_sort=_id", nil},
		{"Patient?_elements=" + esc(sqlDrop), nil},
	}
	for _, c := range cases {
		a, b := lite.searchAll(t, c.query), pg.searchAll(t, c.query)
		if a.status != b.status {
			t.Errorf("%s: status %d on SQLite, %d on PostgreSQL", c.query, a.status, b.status)
			continue
		}
		if !slices.Equal(a.entries, b.entries) {
			t.Errorf("%s:\n  SQLite:     %v\n  PostgreSQL: %v", c.query, a.entries, b.entries)
		}
		if fmt.Sprint(a.totals) != fmt.Sprint(b.totals) {
			t.Errorf("%s: totals %v on SQLite, %v on PostgreSQL", c.query, a.totals, b.totals)
		}
		if c.want == nil || a.status != http.StatusOK {
			continue
		}
		var got []string
		for _, e := range a.entries {
			if _, rest, _ := strings.Cut(e, "/"); strings.HasSuffix(rest, ":match") {
				got = append(got, strings.TrimSuffix(rest, ":match"))
			}
		}
		want := slices.Clone(c.want)
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: matched %v, want %v", c.query, got, want)
		}
	}
	// The comparison is not vacuous: the sorted and paged searches found
	// resources, across several pages.
	if r := pg.searchAll(t, "Observation?_count=3&_sort=value-quantity"); len(r.entries) != 12 || len(r.totals) != 4 {
		t.Errorf("paged Observations: %d entries on %d pages, want 12 on 4", len(r.entries), len(r.totals))
	}
}

// F2 on PostgreSQL: a Synthea transaction Bundle loads whole, $everything
// returns the patient's resources, and a failing transaction leaves nothing.
func TestTransactionPostgres(t *testing.T) {
	s := newStackWith(t, stackOptions{openStore: postgresStore})
	files := syntheaFiles(t)
	// The smallest file keeps the test fast.
	slices.SortFunc(files, func(a, b string) int {
		ia, _ := os.Stat(a)
		ib, _ := os.Stat(b)
		return int(ia.Size() - ib.Size())
	})
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var req requestBundle
	if err := json.Unmarshal(data, &req); err != nil {
		t.Fatal(err)
	}
	resp := must(t, s.do("POST", "/fhir", data), http.StatusOK).json(t)
	entries := resp["entry"].([]any)
	if len(entries) != len(req.Entry) {
		t.Fatalf("%d response entries for %d requests", len(entries), len(req.Entry))
	}
	var pid string
	shared := 0
	for i, e := range entries {
		r := e.(map[string]any)["response"].(map[string]any)
		loc, _ := r["location"].(string)
		typ := req.Entry[i].Resource["resourceType"].(string)
		if r["status"] != "201 Created" || !strings.HasPrefix(loc, typ+"/") {
			t.Fatalf("entry %d (%s): status %v location %q", i, typ, r["status"], loc)
		}
		switch typ {
		case "Patient":
			pid = strings.Split(loc, "/")[1]
		case "Organization", "Practitioner", "Medication", "Location":
			shared++
		}
	}
	b := must(t, s.do("GET", "/fhir/Patient/"+pid+"/$everything", nil), http.StatusOK).json(t)
	all := b["entry"].([]any)
	// The record, then the shared resources it refers to.
	own := 0
	for _, e := range all {
		switch e.(map[string]any)["resource"].(map[string]any)["resourceType"] {
		case "Organization", "Practitioner", "Medication", "Location":
		default:
			own++
		}
	}
	if b["total"] != float64(len(all)) || own+shared != len(req.Entry) || own == len(all) || len(all)-own > shared {
		t.Fatalf("$everything: total %v, %d entries (%d of the record), %d shared, %d loaded", b["total"], len(all), own, shared, len(req.Entry))
	}
	if first := all[0].(map[string]any)["resource"].(map[string]any); first["resourceType"] != "Patient" || first["id"] != pid {
		t.Fatal("$everything does not start with the patient")
	}
	for _, e := range all[1:own] {
		raw, _ := json.Marshal(e.(map[string]any)["resource"])
		if !strings.Contains(string(raw), `"Patient/`+pid+`"`) {
			t.Fatal("$everything returned a resource that does not refer to the patient")
		}
	}

	before := countAll(t, s)
	pu := "urn:uuid:6f1c2a52-8f7e-4a8e-9d0c-5d3b6f3c1a01"
	bad := observation(pu, "1-8", 1)
	bad["status"] = "not-a-status"
	checkOutcome(t, "invalid entry", s.do("POST", "/fhir", tx("transaction", post(pu, patient("New", "One")), post("", bad))), http.StatusBadRequest)
	if after := countAll(t, s); after != before {
		t.Fatalf("a failed transaction changed the version count from %v to %v", before, after)
	}
}

// F3 on PostgreSQL: concurrent If-Match read-modify-write cycles never
// lose an update; every success is a distinct version.
func TestConcurrentIfMatchPostgres(t *testing.T) {
	s := newStackWith(t, stackOptions{openStore: postgresStore})
	id := idFrom(t, must(t, s.do("POST", "/fhir/Patient", patient("Race", "Condition")), http.StatusCreated))
	raceIfMatch(t, []*stack{s, s, s, s}, id, 5)
}
