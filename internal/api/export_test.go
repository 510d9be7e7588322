package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/api"
	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/auth"
	"github.com/wardhealth/ward/internal/policy"
)

// manifest is a Bulk Data manifest as a client reads it.
type manifest struct {
	TransactionTime     string `json:"transactionTime"`
	Request             string `json:"request"`
	RequiresAccessToken bool   `json:"requiresAccessToken"`
	Output              []struct {
		Type  string `json:"type"`
		URL   string `json:"url"`
		Count int    `json:"count"`
	} `json:"output"`
}

var asyncHeaders = []string{"Prefer", "respond-async", "Accept", "application/fhir+json"}

// kickoff starts an export and returns its status URL.
func (s *stack) kickoff(path string, auth ...string) string {
	s.t.Helper()
	r := must(s.t, s.do("GET", path, nil, append(slices.Clone(asyncHeaders), auth...)...), http.StatusAccepted)
	loc := r.header.Get("Content-Location")
	if !strings.HasPrefix(loc, s.base+"/fhir/$export-status/") {
		s.t.Fatalf("kick-off Content-Location %q", loc)
	}
	return loc
}

// awaitExport polls a status URL until the job completes, and returns its
// manifest. Polls answered 202 must carry X-Progress and Retry-After.
func (s *stack) awaitExport(status string, auth ...string) manifest {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := s.do("GET", status, nil, auth...)
		switch r.status {
		case http.StatusOK:
			return manifestOf(s.t, r)
		case http.StatusAccepted:
			if r.header.Get("X-Progress") == "" || r.header.Get("Retry-After") == "" {
				s.t.Fatalf("a 202 poll without X-Progress or Retry-After: %v", r.header)
			}
		default:
			s.t.Fatalf("poll: status %d: %s", r.status, r.body)
		}
		if time.Now().After(deadline) {
			s.t.Fatal("export did not complete within a minute")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// manifestOf reads a completed job's manifest.
func manifestOf(t *testing.T, r response) manifest {
	t.Helper()
	var m manifest
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("manifest: %v: %s", err, r.body)
	}
	if !m.RequiresAccessToken || m.TransactionTime == "" || r.header.Get("Expires") == "" {
		t.Errorf("manifest %s, Expires %q", r.body, r.header.Get("Expires"))
	}
	return m
}

// fetchAll fetches every file of a manifest and returns the resources by
// type, each as its JSON object.
func (s *stack) fetchAll(m manifest, auth ...string) map[string][]map[string]any {
	s.t.Helper()
	out := map[string][]map[string]any{}
	for _, o := range m.Output {
		r := must(s.t, s.do("GET", o.URL, nil, append([]string{"Accept", "application/fhir+ndjson"}, auth...)...), http.StatusOK)
		if ct := r.header.Get("Content-Type"); ct != "application/fhir+ndjson" {
			s.t.Errorf("file Content-Type %q", ct)
		}
		n := 0
		sc := bufio.NewScanner(bytes.NewReader(r.body))
		sc.Buffer(nil, 16<<20)
		for sc.Scan() {
			var res map[string]any
			if err := json.Unmarshal(sc.Bytes(), &res); err != nil {
				s.t.Fatalf("%s: line %d is not JSON: %v", o.URL, n+1, err)
			}
			if res["resourceType"] != o.Type {
				s.t.Errorf("%s lists %s but holds a %v", o.URL, o.Type, res["resourceType"])
			}
			out[o.Type] = append(out[o.Type], res)
			n++
		}
		if n != o.Count {
			s.t.Errorf("%s: %d lines, manifest count %d", o.URL, n, o.Count)
		}
	}
	return out
}

func ids(rs []map[string]any) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r["id"].(string))
	}
	slices.Sort(out)
	return out
}

// exportFixture stores two patients, each with an observation, and a
// shared Organization. The first patient's name is a canary.
func exportFixture(t *testing.T, s *stack) (pat1, pat2, obs1, obs2, org string) {
	t.Helper()
	create := func(body map[string]any) string {
		t.Helper()
		return must(t, s.do("POST", "/fhir/"+body["resourceType"].(string), body), http.StatusCreated).json(t)["id"].(string)
	}
	org = create(map[string]any{"resourceType": "Organization", "name": "Export Clinic"})
	pat1 = create(map[string]any{"resourceType": "Patient", "name": []any{map[string]any{"family": exportCanary}},
		"identifier": []any{map[string]any{"system": policy.SSN, "value": "912-34-5678"}}})
	pat2 = create(map[string]any{"resourceType": "Patient", "name": []any{map[string]any{"family": "Otherpatient"}}})
	obs1 = create(map[string]any{"resourceType": "Observation", "status": "final", "code": map[string]any{"text": "pulse"},
		"subject": map[string]any{"reference": "Patient/" + pat1}})
	obs2 = create(map[string]any{"resourceType": "Observation", "status": "final", "code": map[string]any{"text": "pulse"},
		"subject": map[string]any{"reference": "Patient/" + pat2}})
	return
}

const exportCanary = "Zyxcanaryexport"

// H2, end to end over HTTPS: a system export through the asynchronous
// pattern holds exactly the stored resources; another client cannot see
// the job or its files; the files at rest hold no plaintext; a file cut
// or altered at rest is refused; the ledger entry of the export names
// every patient, and is durable before the manifest lists a file;
// cancelling deletes the job and its files.
func TestExportAsync(t *testing.T) {
	s := newStack(t)
	pat1, pat2, obs1, obs2, org := exportFixture(t, s)
	reader := []string{"Authorization", "Bearer " + s.newToken("system/*.rs")}
	before := ledgerSize(t, s)

	// Refused kick-offs.
	must(t, s.do("GET", "/fhir/$export", nil, reader...), http.StatusBadRequest) // no Prefer: respond-async
	for _, q := range []string{"_outputFormat=text/csv", "_typeFilter=Patient%3Factive%3Dtrue", "_type=Nope", "_since=yesterday", "nonsense=1"} {
		must(t, s.do("GET", "/fhir/$export?"+q, nil, append(slices.Clone(asyncHeaders), reader...)...), http.StatusBadRequest)
	}

	status := s.kickoff("/fhir/$export?_outputFormat=application/fhir%2Bndjson", reader...)
	job := status[strings.LastIndexByte(status, '/')+1:]
	m := s.awaitExport(status, reader...)
	got := s.fetchAll(m, reader...)
	for typ, want := range map[string][]string{"Patient": {pat1, pat2}, "Observation": {obs1, obs2}, "Organization": {org}} {
		slices.Sort(want)
		if g := ids(got[typ]); !slices.Equal(g, want) {
			t.Errorf("%s: exported %v, want %v", typ, g, want)
		}
	}
	if len(got) != 3 {
		t.Errorf("exported types %v, want Patient, Observation, Organization", slices.Collect(mapsKeys(got)))
	}

	// Another client, even one with every scope, sees no job and no file.
	other := []string{"Authorization", "Bearer " + s.newToken("system/*.cruds")}
	must(t, s.do("GET", status, nil, other...), http.StatusNotFound)
	for _, o := range m.Output {
		must(t, s.do("GET", o.URL, nil, other...), http.StatusNotFound)
	}
	must(t, s.do("DELETE", status, nil, other...), http.StatusNotFound)
	must(t, s.do("GET", "/fhir/$export-status/"+strings.Repeat("a", 26), nil, reader...), http.StatusNotFound)
	must(t, s.do("GET", "/fhir/$export-file/"+job+"/99", nil, reader...), http.StatusNotFound)

	// At rest: no plaintext anywhere under the export directory.
	dir := filepath.Join(s.dir, "exports")
	files := 0
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files++
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, plain := range []string{exportCanary, "Otherpatient", "Export Clinic", "resourceType", pat1} {
			if bytes.Contains(data, []byte(plain)) {
				t.Errorf("%s holds %q in plaintext", path, plain)
			}
		}
		return nil
	})
	if files != len(m.Output) {
		t.Errorf("%d files at rest, manifest lists %d", files, len(m.Output))
	}

	// The export's entry names every patient; the kick-off, each poll and
	// each fetch are recorded too, naming the job.
	var export, kickoff, fetches int
	for _, e := range ledgerEntries(t, s, before) {
		if !strings.Contains(e.Detail, "export-job="+job) && e.ResourceID != job {
			continue
		}
		switch e.Action {
		case "export":
			export++
			named := append([]string{e.Patient}, e.Patients...)
			for _, p := range []string{pat1, pat2} {
				if !slices.Contains(named, p) {
					t.Errorf("the export's entry does not name patient %s: %+v", p, e)
				}
			}
			if e.Outcome != "success" {
				t.Errorf("export entry outcome %q", e.Outcome)
			}
		case "export-request":
			kickoff++
		case "export-file":
			fetches++
		}
	}
	if export != 1 || kickoff != 1 || fetches < len(m.Output) {
		t.Errorf("entries: %d export, %d kick-off, %d fetches; want 1, 1, %d", export, kickoff, fetches, len(m.Output))
	}

	// A file cut or altered at rest is refused, never served in part.
	first := filepath.Join(dir, job, "0.ndjson.sealed")
	orig, err := os.ReadFile(first)
	if err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string][]byte{
		"truncated": orig[:len(orig)-1],
		"one chunk": orig[:1],
		"bit flip":  flipAt(orig, len(orig)/2),
		"appended":  append(slices.Clone(orig), 0),
	} {
		if err := os.WriteFile(first, bad, 0o600); err != nil {
			t.Fatal(err)
		}
		r := s.do("GET", m.Output[0].URL, nil, reader...)
		if r.status != http.StatusInternalServerError || bytes.Contains(r.body, []byte("resourceType\":\""+m.Output[0].Type)) {
			t.Errorf("%s file: status %d, body %.200s", name, r.status, r.body)
		}
	}
	// Another job's file put in its place does not open either.
	status2 := s.kickoff("/fhir/$export?_type="+m.Output[0].Type, reader...)
	s.awaitExport(status2, reader...)
	job2 := status2[strings.LastIndexByte(status2, '/')+1:]
	other0, err := os.ReadFile(filepath.Join(dir, job2, "0.ndjson.sealed"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(first, other0, 0o600); err != nil {
		t.Fatal(err)
	}
	must(t, s.do("GET", m.Output[0].URL, nil, reader...), http.StatusInternalServerError)

	// Cancelling deletes the job and its files.
	must(t, s.do("DELETE", status, nil, reader...), http.StatusAccepted)
	must(t, s.do("GET", status, nil, reader...), http.StatusNotFound)
	must(t, s.do("GET", m.Output[0].URL, nil, reader...), http.StatusNotFound)
	if _, err := os.Stat(filepath.Join(dir, job)); !os.IsNotExist(err) {
		t.Errorf("the cancelled job's directory is still there: %v", err)
	}
}

func flipAt(b []byte, i int) []byte {
	out := slices.Clone(b)
	out[i] ^= 0x01
	return out
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// H2: a narrow token exports only what it may read. A service limited to
// Observations gets only Observations, and an explicit _type it may not
// search is refused; a practitioner gets only the patients of their care
// relationships, Patient-level, with the SSN masked as a read masks it;
// a Group export holds only the Group's members; _since leaves out what
// was not updated since.
func TestExportNarrow(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	pat1, pat2, obs1, _, _ := exportFixture(t, s)

	obsOnly := []string{"Authorization", "Bearer " + s.newToken("system/Observation.rs")}
	got := s.fetchAll(s.awaitExport(s.kickoff("/fhir/$export", obsOnly...), obsOnly...), obsOnly...)
	if len(got) != 1 || len(got["Observation"]) != 2 {
		t.Errorf("an Observation-only token exported %v", slices.Collect(mapsKeys(got)))
	}
	must(t, s.do("GET", "/fhir/$export?_type=Patient", nil, append(slices.Clone(asyncHeaders), obsOnly...)...), http.StatusForbidden)

	// A practitioner related to pat1 only.
	pr := must(t, s.do("POST", "/fhir/Practitioner", map[string]any{"resourceType": "Practitioner", "active": true}), http.StatusCreated).json(t)["id"].(string)
	must(t, s.do("POST", "/fhir/CareTeam", map[string]any{"resourceType": "CareTeam", "subject": map[string]any{"reference": "Patient/" + pat1},
		"participant": []any{map[string]any{"member": map[string]any{"reference": "Practitioner/" + pr}}}}), http.StatusCreated)
	if _, err := s.users.Create(ctx, auth.NewUser{Username: "dr.export", Role: policy.RolePractitioner, FHIRUser: "Practitioner/" + pr, Password: testPassword}); err != nil {
		t.Fatal(err)
	}
	app := s.newApp(false, "openid", "user/*.rs")
	rp := s.relyingParty(app, "openid", "user/*.rs")
	dr := []string{"Authorization", "Bearer " + rp.exchange(t, s.signIn(s.newBrowser(), app, rp.authURL("st"), "dr.export", testPassword)).AccessToken}
	got = s.fetchAll(s.awaitExport(s.kickoff("/fhir/Patient/$export", dr...), dr...), dr...)
	if g := ids(got["Patient"]); !slices.Equal(g, []string{pat1}) {
		t.Errorf("the practitioner exported patients %v, want only %s", g, pat1)
	}
	if g := ids(got["Observation"]); !slices.Equal(g, []string{obs1}) {
		t.Errorf("the practitioner exported observations %v, want only %s", g, obs1)
	}
	if _, ok := got["Practitioner"]; ok {
		t.Error("a Patient-level export holds shared resources")
	}
	line, _ := json.Marshal(got["Patient"])
	if bytes.Contains(line, []byte("912-34-5678")) || !bytes.Contains(line, []byte("REDACTED")) {
		t.Errorf("the practitioner's export is not masked as a read: %s", line)
	}
	// The read of the same patient masks the same way.
	read := must(t, s.do("GET", "/fhir/Patient/"+pat1, nil, dr...), http.StatusOK)
	var readRes map[string]any
	_ = json.Unmarshal(read.body, &readRes)
	readJSON, _ := json.Marshal([]map[string]any{readRes})
	if !bytes.Equal(readJSON, line) {
		t.Errorf("export %s differs from read %s", line, readJSON)
	}

	// A Group of pat2 only.
	grp := must(t, s.do("POST", "/fhir/Group", map[string]any{"resourceType": "Group", "type": "person", "actual": true,
		"member": []any{map[string]any{"entity": map[string]any{"reference": "Patient/" + pat2}}}}), http.StatusCreated).json(t)["id"].(string)
	all := []string{"Authorization", "Bearer " + s.newToken("system/*.rs")}
	got = s.fetchAll(s.awaitExport(s.kickoff("/fhir/Group/"+grp+"/$export?_type=Patient,Observation", all...), all...), all...)
	if g := ids(got["Patient"]); !slices.Equal(g, []string{pat2}) || len(got["Observation"]) != 1 || len(got) != 2 {
		t.Errorf("the Group export holds %v patients and %d observations", g, len(got["Observation"]))
	}
	must(t, s.do("GET", "/fhir/Group/nope/$export", nil, append(slices.Clone(asyncHeaders), all...)...), http.StatusNotFound)

	// _since after everything was written: nothing.
	since := time.Now().Add(time.Minute).UTC().Format(time.RFC3339)
	m := s.awaitExport(s.kickoff("/fhir/$export?_since="+strings.ReplaceAll(since, "+", "%2B"), all...), all...)
	if len(m.Output) != 0 {
		t.Errorf("_since in the future exported %v", m.Output)
	}
}

// H2: a finished job and its files are deleted once expired: the sweeper
// runs on an injected clock, no waiting.
func TestExportExpiry(t *testing.T) {
	s := newStackWith(t, stackOptions{clocked: true})
	exportFixture(t, s)
	reader := []string{"Authorization", "Bearer " + s.newToken("system/*.rs")}
	status := s.kickoff("/fhir/$export", reader...)
	job := status[strings.LastIndexByte(status, '/')+1:]
	m := s.awaitExport(status, reader...)
	dir := filepath.Join(s.dir, "exports", job)
	if n, err := s.exports.Sweep(context.Background()); err != nil || n != 0 {
		t.Fatalf("Sweep before expiry deleted %d: %v", n, err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("files gone before expiry: %v", err)
	}
	s.clock.Advance(61 * time.Minute)
	// Expired is not there, swept or not.
	must(t, s.do("GET", m.Output[0].URL, nil, reader...), http.StatusNotFound)
	if n, err := s.exports.Sweep(context.Background()); err != nil || n != 1 {
		t.Fatalf("Sweep after expiry deleted %d: %v", n, err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("expired files still on disk: %v", err)
	}
	if _, err := s.db.ExportJob(context.Background(), job); err == nil {
		t.Error("expired job still stored")
	}
	must(t, s.do("GET", status, nil, reader...), http.StatusNotFound)
}

// refuseExports is a ledger that cannot record the entry of an export's
// disclosure: every other entry is recorded.
type refuseExports struct{ api.Appender }

func (l refuseExports) Append(ctx context.Context, recs ...audit.Record) error {
	for _, r := range recs {
		if bytes.Contains(r.Entry, []byte(`"action":"export"`)) {
			return errors.New("test: ledger refuses the export's entry")
		}
	}
	return l.Appender.Append(ctx, recs...)
}

// H2 with invariant 3: when the export's entry cannot be made durable,
// the job fails, its manifest never lists a file, and its files are gone.
func TestExportUnrecordedNotServed(t *testing.T) {
	s := newStackWith(t, stackOptions{wrapLedger: func(a api.Appender) api.Appender { return refuseExports{a} }})
	exportFixture(t, s)
	reader := []string{"Authorization", "Bearer " + s.newToken("system/*.rs")}
	status := s.kickoff("/fhir/$export", reader...)
	job := status[strings.LastIndexByte(status, '/')+1:]
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := s.do("GET", status, nil, reader...)
		if r.status == http.StatusInternalServerError {
			break
		}
		if r.status != http.StatusAccepted || time.Now().After(deadline) {
			t.Fatalf("poll: status %d: %s", r.status, r.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	must(t, s.do("GET", "/fhir/$export-file/"+job+"/0", nil, reader...), http.StatusNotFound)
	if entries, _ := os.ReadDir(filepath.Join(s.dir, "exports", job)); len(entries) != 0 {
		t.Errorf("a failed job left %d files", len(entries))
	}
}
