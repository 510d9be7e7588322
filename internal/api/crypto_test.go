package api_test

import (
	"bytes"
	"database/sql"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"unicode/utf16"

	_ "modernc.org/sqlite"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/fhir/search"
	"github.com/wardhealth/ward/internal/fhir/search/searchtest" // direct access to the database file, as an attacker with the disk would have
)

// canaries are identifying values that must never reach the disk or the
// logs in plaintext (D3).
var canaries = []string{
	"Quxbrightwater", "Zelphine", "MRN-CANARY-88123", "17 Canaryfield Lane", "Quillborough",
	"QX9 8ZZ", "1931-07-19", "+1-555-0199-377", "zelphine@canary.example",
}

// specCanary is one resource carrying a canary, and the search value
// that finds it.
type specCanary struct {
	searchtest.Canary
	Query string
}

var specCanaryList = sync.OnceValues(func() ([]specCanary, error) {
	reg, err := search.NewRegistry()
	if err != nil {
		return nil, err
	}
	v, err := fhir.NewValidator()
	if err != nil {
		return nil, err
	}
	list, skipped := searchtest.StringCanaries(reg, v)
	for _, sk := range skipped {
		if !strings.HasPrefix(sk.Reason, "unsupported: ") {
			return nil, fmt.Errorf("no canary resource for %s.%s %s: %s", sk.Type, sk.Param, sk.Path, sk.Reason)
		}
	}
	var out []specCanary
	for _, c := range list {
		if c.Type == "AuditEvent" {
			continue // a view of the ledger: nobody writes one (A8)
		}
		out = append(out, specCanary{Canary: c, Query: c.Value})
	}
	// Elements Ward requires (references and concepts the R4 definitions
	// require) are filled as validation names them.
	for _, c := range list {
		if c.Type == "AuditEvent" {
			continue
		}
		if c.Type == "Condition" && (c.Resource["abatementString"] != nil || c.Resource["abatementAge"] != nil || c.Resource["abatementRange"] != nil) {
			// con-4: an abated condition's clinical status is resolved.
			c.Resource["clinicalStatus"] = map[string]any{"coding": []any{map[string]any{
				"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "resolved"}}}
		}
		for attempt := 0; ; attempt++ {
			data, err := json.Marshal(c.Resource)
			if err != nil {
				return nil, err
			}
			r, err := fhir.Parse(data, fhir.Limits{})
			if err != nil {
				return nil, err
			}
			var verr *fhir.Error
			if err := v.Validate(r); err == nil {
				break
			} else if !errors.As(err, &verr) || attempt == 8 {
				return nil, fmt.Errorf("canary resource %s (%s): %w", c.Type, c.Param, err)
			}
			for _, is := range verr.Issues {
				if is.Code != fhir.CodeRequired {
					continue // an empty element a fill made, filled by a later one
				}
				for _, path := range is.Expression {
					if err := searchtest.FillRequired(v, c.Resource, path); err != nil {
						return nil, err
					}
				}
			}
		}
	}
	// Free text D3 names that is not a string parameter: a staff
	// member's contact points, a resource's source and tags.
	named := func(typ, param, path, query string, res map[string]any) {
		out = append(out, specCanary{Canary: searchtest.Canary{Type: typ, Param: param, Path: path, Value: searchtest.CanaryValue(typ, param, path), Resource: res}, Query: query})
	}
	email := searchtest.CanaryValue("PractitionerRole", "email", "telecom") + "@example.org"
	named("PractitionerRole", "email", "telecom", email, map[string]any{"resourceType": "PractitionerRole",
		"telecom": []any{map[string]any{"system": "email", "value": email}}})
	src := searchtest.CanaryValue("Observation", "_source", "meta.source")
	named("Observation", "_source", "meta.source", "urn:x:"+src, map[string]any{"resourceType": "Observation", "status": "final",
		"code": map[string]any{"text": "x"}, "meta": map[string]any{"source": "urn:x:" + src}})
	tag := searchtest.CanaryValue("Observation", "_tag", "meta.tag")
	named("Observation", "_tag", "meta.tag", "urn:x|"+tag, map[string]any{"resourceType": "Observation", "status": "final",
		"code": map[string]any{"text": "x"}, "meta": map[string]any{"tag": []any{map[string]any{"system": "urn:x", "code": tag}}}})
	// The canary value itself, without the decoration the search needs.
	for i := range out {
		out[i].Value = searchtest.CanaryValue(out[i].Type, out[i].Param, out[i].Path)
	}
	return out, nil
})

func specCanaries(t *testing.T) []specCanary {
	t.Helper()
	list, err := specCanaryList()
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// allCanaries are the fixed canaries and every generated one.
func allCanaries() []string {
	out := append([]string(nil), canaries...)
	list, err := specCanaryList()
	if err != nil {
		panic(err)
	}
	for _, c := range list {
		out = append(out, c.Value)
	}
	return out
}

func canaryPatient() map[string]any {
	return map[string]any{
		"resourceType": "Patient",
		"name":         []any{map[string]any{"family": "Quxbrightwater", "given": []any{"Zelphine"}}},
		"identifier":   []any{map[string]any{"system": "urn:oid:1.2.36.146.595.217.0.1", "value": "MRN-CANARY-88123"}},
		"birthDate":    "1931-07-19",
		"address": []any{map[string]any{
			"line": []any{"17 Canaryfield Lane"}, "city": "Quillborough", "postalCode": "QX9 8ZZ",
		}},
		"telecom": []any{
			map[string]any{"system": "phone", "value": "+1-555-0199-377"},
			map[string]any{"system": "email", "value": "zelphine@canary.example"},
		},
	}
}

// loadCanaries writes the canary patient through every write path and
// searches by each identifying value, so that every code path that could
// store or log a value has seen them.
func loadCanaries(t *testing.T, s *stack) {
	t.Helper()
	id := idFrom(t, must(t, s.do("POST", "/fhir/Patient", canaryPatient()), http.StatusCreated))
	upd := canaryPatient()
	upd["id"] = id
	must(t, s.do("PUT", "/fhir/Patient/"+id, upd), http.StatusOK)
	pu := "urn:uuid:0b5c2d6e-1f3a-4c8d-9e7b-2a4f6c8e0d13"
	must(t, s.do("POST", "/fhir", tx("transaction", post(pu, canaryPatient()), post("", observation(pu, "29463-7", 70)))), http.StatusOK)
	for _, q := range []string{
		"family=quxbrightwater", "given=Zelphine", "identifier=MRN-CANARY-88123", "birthdate=1931-07-19",
		"address-city=quillborough", "address-postalcode=QX9%208ZZ", "phone=%2B1-555-0199-377", "email=zelphine@canary.example",
		"family:exact=Quxbrightwater", "name=zelphine%20quxbrightwater",
	} {
		b := must(t, s.do("GET", "/fhir/Patient?"+q, nil), http.StatusOK).json(t)
		if b["total"].(float64) < 1 {
			t.Errorf("search %s found nothing", q)
		}
	}
	// The identifier inside a reference (subject:identifier) is
	// blind-indexed as the identifier parameter is, on shared resources
	// too: an Observation about a Device given by the canary value alone
	// (a patient given so is refused: TestPatientByIdentifierOnlyRefused),
	// and one with a literal reference to the patient too, are found by it.
	for _, subject := range []map[string]any{
		{"type": "Device", "identifier": map[string]any{"system": "urn:oid:1.2.36.146.595.217.0.1", "value": "MRN-CANARY-88123"}},
		{"reference": "Patient/" + id, "identifier": map[string]any{"system": "urn:oid:1.2.36.146.595.217.0.1", "value": "MRN-CANARY-88123"}},
	} {
		must(t, s.do("POST", "/fhir/Observation", map[string]any{"resourceType": "Observation", "status": "final",
			"code": map[string]any{"text": "x"}, "subject": subject}), http.StatusCreated)
	}
	for _, q := range []string{"subject:identifier=urn:oid:1.2.36.146.595.217.0.1|MRN-CANARY-88123", "subject:identifier=MRN-CANARY-88123"} {
		if b := must(t, s.do("GET", "/fhir/Observation?"+q, nil), http.StatusOK).json(t); b["total"].(float64) != 2 {
			t.Errorf("search Observation?%s found %v, want 2", strings.SplitN(q, "=", 2)[0], b["total"])
		}
	}
	// Every string search parameter of every protected type, and the
	// other free text named in D3, each under its own canary; each is
	// then found again by a search on its canary.
	for _, c := range specCanaries(t) {
		must(t, s.do("POST", "/fhir/"+c.Type, c.Resource), http.StatusCreated)
		b := must(t, s.do("GET", "/fhir/"+c.Type+"?"+c.Param+"="+url.QueryEscape(c.Query), nil), http.StatusOK).json(t)
		if b["total"].(float64) < 1 {
			t.Errorf("search %s?%s (%s) found nothing", c.Type, c.Param, c.Path)
		}
	}
	// Failed writes must not leak either.
	bad := canaryPatient()
	bad["gender"] = "robot"
	must(t, s.do("POST", "/fhir/Patient", bad), http.StatusBadRequest)
}

// scanForCanaries reports every file under dir that holds a canary, in
// any letter case.
func scanForCanaries(t *testing.T, dir string) {
	t.Helper()
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		assertNoCanary(t, path, data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files == 0 {
		t.Fatal("no files scanned")
	}
}

func assertNoCanary(t *testing.T, where string, data []byte) {
	t.Helper()
	lower := bytes.ToLower(data)
	for _, c := range allCanaries() {
		for _, form := range []string{c, strings.ToLower(c), strings.ReplaceAll(strings.ToLower(c), " ", "")} {
			if bytes.Contains(lower, []byte(strings.ToLower(form))) {
				t.Errorf("D3: %q found in plaintext in %s", form, filepath.Base(where))
			}
		}
		for name, form := range encodedForms(c) {
			if bytes.Contains(data, form) {
				t.Errorf("D3: %q found %s-encoded in %s", c, name, filepath.Base(where))
			}
		}
	}
}

// encodedForms are the ways a canary could sit on disk other than as
// text: base64 (standard and URL alphabets, at each of the three byte
// alignments a value can have inside a longer encoded string), hex in
// either case, and UTF-16 in either byte order.
func encodedForms(c string) map[string][]byte {
	out := map[string][]byte{
		"hex":      []byte(hex.EncodeToString([]byte(c))),
		"HEX":      []byte(strings.ToUpper(hex.EncodeToString([]byte(c)))),
		"utf-16le": utf16Bytes(c, binary.LittleEndian),
		"utf-16be": utf16Bytes(c, binary.BigEndian),
	}
	for pad := range 3 {
		for name, enc := range map[string]*base64.Encoding{"base64": base64.StdEncoding, "base64url": base64.URLEncoding} {
			s := enc.EncodeToString(append(make([]byte, pad), c...))
			// Keep the characters that depend on the canary alone: after
			// the padding's own, before the last (partial) group.
			from := (pad*8 + 5) / 6
			to := (len(s) / 4) * 4
			to -= 4
			if to-from >= 8 {
				out[fmt.Sprintf("%s+%d", name, pad)] = []byte(s[from:to])
			}
		}
	}
	return out
}

func utf16Bytes(s string, order binary.AppendByteOrder) []byte {
	var out []byte
	for _, u := range utf16.Encode([]rune(s)) {
		out = order.AppendUint16(out, u)
	}
	return out
}

// D3 on SQLite: zero canary hits in the database file, its WAL and shared
// memory files, the key and TLS files, and the logs.
func TestCanaryNotOnDiskSQLite(t *testing.T) {
	s := newStack(t)
	loadCanaries(t, s)
	// Scan while the WAL still holds the writes, and again after a
	// checkpoint folded them into the main file.
	scanForCanaries(t, s.dir)
	s.srv.Close()
	if c, ok := s.appender.(interface{ Close() error }); ok {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.db.Close(); err != nil {
		t.Fatal(err)
	}
	scanForCanaries(t, s.dir)
	assertNoCanary(t, "logs", s.logs.Bytes())
}

// rawDB opens the stack's SQLite file directly.
func rawDB(t *testing.T, s *stack) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(s.dir, "ward.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// D1: a flipped bit anywhere in a sealed body or a wrapped key is an error
// and releases no plaintext. D2: a sealed body moved to another resource
// or version does not open.
func TestTamperedCiphertext(t *testing.T) {
	s := newStack(t)
	a := idFrom(t, must(t, s.do("POST", "/fhir/Patient", canaryPatient()), http.StatusCreated))
	b := idFrom(t, must(t, s.do("POST", "/fhir/Patient", patient("Other", "Person")), http.StatusCreated))
	upd := patient("Other", "Person")
	upd["id"] = b
	must(t, s.do("PUT", "/fhir/Patient/"+b, upd), http.StatusOK)
	db := rawDB(t, s)

	var body []byte
	if err := db.QueryRow(`SELECT body FROM resources WHERE rid = ? AND version = 1`, a).Scan(&body); err != nil {
		t.Fatal(err)
	}
	failsClosed := func(name, path string) {
		t.Helper()
		r := s.do("GET", path, nil)
		if r.status < 500 {
			t.Errorf("%s: status %d, want a 5xx", name, r.status)
		}
		// A 5xx says only which request failed.
		want := `{"resourceType":"OperationOutcome","issue":[{"code":"exception","diagnostics":"request ` +
			r.header.Get("X-Request-Id") + ` failed","severity":"error"}]}`
		if string(r.body) != want {
			t.Errorf("%s: 5xx body %s, want only the request id", name, r.body)
		}
		assertNoCanary(t, name, r.body)
		if strings.Contains(string(r.body), `"Patient"`) && strings.Contains(string(r.body), "name") {
			t.Errorf("%s: response looks like a resource", name)
		}
	}
	// Flip bits at the start (version, nonce), middle (ciphertext) and end (tag).
	for _, i := range []int{0, 5, len(body) / 2, len(body) - 1} {
		mutated := append([]byte(nil), body...)
		mutated[i] ^= 0x40
		if _, err := db.Exec(`UPDATE resources SET body = ? WHERE rid = ? AND version = 1`, mutated, a); err != nil {
			t.Fatal(err)
		}
		failsClosed("flipped byte", "/fhir/Patient/"+a)
	}
	if _, err := db.Exec(`UPDATE resources SET body = ? WHERE rid = ? AND version = 1`, body, a); err != nil {
		t.Fatal(err)
	}
	must(t, s.do("GET", "/fhir/Patient/"+a, nil), http.StatusOK)

	// D2: A's body in B's current row; B's version 1 body in its version 2 row.
	if _, err := db.Exec(`UPDATE resources SET body = ? WHERE rid = ? AND version = 2`, body, b); err != nil {
		t.Fatal(err)
	}
	failsClosed("moved to another patient", "/fhir/Patient/"+b)
	var v1 []byte
	if err := db.QueryRow(`SELECT body FROM resources WHERE rid = ? AND version = 1`, b).Scan(&v1); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE resources SET body = ? WHERE rid = ? AND version = 2`, v1, b); err != nil {
		t.Fatal(err)
	}
	failsClosed("moved to another version", "/fhir/Patient/"+b)
	// And A's row relabelled as B's compartment with B's id does not open either.
	if _, err := db.Exec(`UPDATE resources SET compartment = ? WHERE rid = ? AND version = 1`, b, a); err != nil {
		t.Fatal(err)
	}
	failsClosed("moved to another compartment", "/fhir/Patient/"+a)
}

// D1 for wrapped keys: a data key whose wrapped form was altered does not
// unwrap, and nothing is served.
func TestTamperedWrappedKey(t *testing.T) {
	s := newStack(t)
	a := idFrom(t, must(t, s.do("POST", "/fhir/Patient", canaryPatient()), http.StatusCreated))
	db := rawDB(t, s)
	var wrapped []byte
	if err := db.QueryRow(`SELECT wrapped FROM data_keys WHERE compartment = ?`, a).Scan(&wrapped); err != nil {
		t.Fatal(err)
	}
	wrapped[len(wrapped)/2] ^= 1
	if _, err := db.Exec(`UPDATE data_keys SET wrapped = ? WHERE compartment = ?`, wrapped, a); err != nil {
		t.Fatal(err)
	}
	s.keyring.Evict(a)
	r := s.do("GET", "/fhir/Patient/"+a, nil)
	if r.status < 500 {
		t.Fatalf("status %d with a tampered wrapped key", r.status)
	}
	assertNoCanary(t, "response", r.body)
}

// D4: with the key provider down, writes that need a key answer 503 and
// nothing is written; there is no plaintext fallback.
func TestKeyProviderUnavailable(t *testing.T) {
	s := newStack(t)
	s.provider.down.Store(true)
	r := s.do("POST", "/fhir/Patient", canaryPatient())
	checkOutcome(t, "create while the key provider is down", r, http.StatusServiceUnavailable)
	if r.header.Get("X-Request-Id") == "" || !strings.Contains(string(r.body), r.header.Get("X-Request-Id")) {
		t.Error("the 503 does not carry the request id")
	}
	s.provider.down.Store(false)
	if n := countAll(t, s); n != 0 {
		t.Fatalf("%v versions written while the key provider was down", n)
	}
	scanForCanaries(t, s.dir)
	must(t, s.do("POST", "/fhir/Patient", canaryPatient()), http.StatusCreated)
}
