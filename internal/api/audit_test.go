package api_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/store"
)

// ledgerEntries returns the ledger's entries from index from on, in the
// order of their times: a read's entry reaches the ledger through the
// spool, after writes that came later within the fold interval.
func ledgerEntries(t *testing.T, s *stack, from int64) []ledger.Entry {
	t.Helper()
	ctx := context.Background()
	s.flushLedger()
	n, err := s.db.LedgerSize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := s.db.LedgerEntries(ctx, from, n)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]ledger.Entry, len(rows))
	for i, r := range rows {
		e, err := ledger.DecodeEntry(r.Entry)
		if err != nil {
			t.Fatalf("entry %d: %v", r.Index, err)
		}
		out[i] = e
	}
	slices.SortStableFunc(out, func(a, b ledger.Entry) int { return a.Time.Compare(b.Time) })
	return out
}

func ledgerSize(t *testing.T, s *stack) int64 {
	t.Helper()
	s.flushLedger()
	n, err := s.db.LedgerSize(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// E1 (for the endpoints built so far): every request that reaches
// authentication adds exactly one entry with the right fields, allowed or
// denied, succeeding or failing; no token, secret or PHI value is in it.
func TestAuditOneEntryPerRequest(t *testing.T) {
	s := newStack(t)
	narrow := s.newToken("system/Patient.rs")
	id := idFrom(t, must(t, s.do("POST", "/fhir/Patient", canaryPatient()), http.StatusCreated))
	type call struct {
		name            string
		method, path    string
		body            any
		headers         []string
		status          int
		action, outcome string
		typ, rid        string
		patient         string
	}
	calls := []call{
		{name: "create", method: "POST", path: "/fhir/Patient", body: canaryPatient(), status: 201, action: "create", outcome: "success", typ: "Patient"},
		{name: "read", method: "GET", path: "/fhir/Patient/" + id, status: 200, action: "read", outcome: "success", typ: "Patient", rid: id, patient: id},
		{name: "vread", method: "GET", path: "/fhir/Patient/" + id + "/_history/1", status: 200, action: "vread", outcome: "success", typ: "Patient", rid: id, patient: id},
		{name: "read unknown", method: "GET", path: "/fhir/Patient/nope", status: 404, action: "read", outcome: "not-found", typ: "Patient", rid: "nope"},
		{name: "search", method: "GET", path: "/fhir/Patient?_id=" + id, status: 200, action: "search", outcome: "success", typ: "Patient", patient: id},
		{name: "bad search", method: "GET", path: "/fhir/Patient?nonsense=1", status: 400, action: "search", outcome: "invalid", typ: "Patient"},
		{name: "history", method: "GET", path: "/fhir/Patient/" + id + "/_history", status: 200, action: "history", outcome: "success", typ: "Patient", rid: id, patient: id},
		{name: "everything", method: "GET", path: "/fhir/Patient/" + id + "/$everything", status: 200, action: "everything", outcome: "success", typ: "Patient", rid: id, patient: id},
		{name: "no token", method: "GET", path: "/fhir/Patient/" + id, headers: []string{"Authorization", ""}, status: 401, action: "read", outcome: "denied", typ: "Patient", rid: s.pseudonym("resource-id", "Patient/"+id)},
		{name: "bad token", method: "GET", path: "/fhir/Patient", headers: []string{"Authorization", "Bearer x.y.z"}, status: 401, action: "search", outcome: "denied", typ: "Patient"},
		{name: "forbidden", method: "POST", path: "/fhir/Patient", body: canaryPatient(), headers: []string{"Authorization", "Bearer " + narrow}, status: 403, action: "create", outcome: "denied", typ: "Patient"},
		{name: "invalid body", method: "POST", path: "/fhir/Patient", body: `{"resourceType":"Patient","gender":"robot"}`, status: 400, action: "create", outcome: "invalid", typ: "Patient"},
		{name: "unknown type", method: "GET", path: "/fhir/Nope/1", status: 404, action: "read", outcome: "not-found", typ: s.pseudonym("resource-type", "Nope")},
		{name: "delete", method: "DELETE", path: "/fhir/Patient/" + id, status: 204, action: "delete", outcome: "success", typ: "Patient", rid: id, patient: id},
		{name: "read deleted", method: "GET", path: "/fhir/Patient/" + id, status: 410, action: "read", outcome: "not-found", typ: "Patient", rid: id},
	}
	for _, c := range calls {
		before := ledgerSize(t, s)
		r := s.do(c.method, c.path, c.body, c.headers...)
		if r.status != c.status {
			t.Fatalf("%s: status %d, want %d: %.300s", c.name, r.status, c.status, r.body)
		}
		got := ledgerEntries(t, s, before)
		if len(got) != 1 {
			t.Fatalf("%s: %d ledger entries, want exactly 1", c.name, len(got))
		}
		e := got[0]
		if e.Action != c.action || e.Outcome != c.outcome || e.ResourceType != c.typ || (c.rid != "" && e.ResourceID != c.rid) ||
			e.Patient != c.patient && !(c.action == "create" && e.Patient != "") {
			t.Errorf("%s: entry %+v", c.name, e)
		}
		if e.RequestID != r.header.Get("X-Request-Id") || e.Source != "127.0.0.1" || e.Time.IsZero() || e.Time.Location().String() != "UTC" {
			t.Errorf("%s: request id %q (want %q), source %q, time %v", c.name, e.RequestID, r.header.Get("X-Request-Id"), e.Source, e.Time)
		}
		if c.outcome != "denied" || c.name == "forbidden" {
			if e.Client == "" {
				t.Errorf("%s: no client in the entry", c.name)
			}
		}
		if c.name == "search" && strings.Join(e.Query, ",") != "_id" {
			t.Errorf("search entry query %v, want the parameter name only", e.Query)
		}
	}
	// Token issuance and its failure are entries too.
	before := ledgerSize(t, s)
	s.newToken("system/*.rs")
	if got := ledgerEntries(t, s, before); len(got) != 1 || got[0].Action != "token" || got[0].Outcome != "success" || got[0].Client == "" {
		t.Fatalf("token issuance entries: %+v", got)
	}
	// Nothing in any entry is a token, a secret or a PHI value.
	ctx := context.Background()
	rows, err := s.db.LedgerEntries(ctx, 0, ledgerSize(t, s))
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range rows {
		assertNoCanary(t, "ledger", row.Entry)
		if strings.Contains(string(row.Entry), s.token[:20]) {
			t.Fatalf("a token is in ledger entry %d", row.Index)
		}
	}
}

// A transaction's writes and their entries commit together: one entry per
// write, none for a transaction that failed but its own failure entry.
func TestAuditTransaction(t *testing.T) {
	s := newStack(t)
	pu := "urn:uuid:7a1c2a52-8f7e-4a8e-9d0c-5d3b6f3c1a77"
	before := ledgerSize(t, s)
	must(t, s.do("POST", "/fhir", tx("transaction", post(pu, patient("Tx", "One")), post("", observation(pu, "1-8", 1)))), http.StatusOK)
	got := ledgerEntries(t, s, before)
	if len(got) != 2 || got[0].Action != "create" || got[1].Action != "create" || got[0].RequestID != got[1].RequestID {
		t.Fatalf("transaction entries: %+v", got)
	}
	if got[0].Patient == "" || got[1].Patient != got[0].Patient {
		t.Fatalf("transaction entries' patients: %q %q", got[0].Patient, got[1].Patient)
	}
	before = ledgerSize(t, s)
	bad := observation(pu, "1-8", 1)
	bad["status"] = "nope"
	must(t, s.do("POST", "/fhir", tx("transaction", post(pu, patient("Tx", "Two")), post("", bad))), http.StatusBadRequest)
	if got := ledgerEntries(t, s, before); len(got) != 1 || got[0].Action != "transaction" || got[0].Outcome != "invalid" {
		t.Fatalf("failed transaction entries: %+v", got)
	}
}

// failingLedger is a store whose ledger cannot be written while down is
// set, as when its disk is full or its database is gone.
type failingLedger struct {
	store.Store
	down *atomic.Bool
}

func (f failingLedger) Begin(ctx context.Context) (store.Tx, error) {
	tx, err := f.Store.Begin(ctx)
	if err != nil {
		return nil, err
	}
	return failingLedgerTx{tx, f.down}, nil
}

type failingLedgerTx struct {
	store.Tx
	down *atomic.Bool
}

func (f failingLedgerTx) LockLedger(ctx context.Context) (int64, error) {
	if f.down.Load() {
		return 0, fmt.Errorf("injected: %w", store.ErrUnavailable)
	}
	return f.Tx.LockLedger(ctx)
}

// failingSpool is a ledger spool file whose writes of entries fail while
// down is set, as on a disk with failing blocks. Writes of zeros (the
// spool marking where its good frames end) still succeed, so the spool
// recovers when the fault clears (audit's own tests cover the spool that
// cannot even mark its end, and stays closed).
type failingSpool struct {
	audit.SpoolFile
	down *atomic.Bool
}

func (f failingSpool) WriteAt(p []byte, off int64) (int, error) {
	if f.down.Load() && slices.ContainsFunc(p, func(b byte) bool { return b != 0 }) {
		return 0, fmt.Errorf("injected: %w", syscall.EIO)
	}
	return f.SpoolFile.WriteAt(p, off)
}

// e2Requests are the requests TestAuditFailClosed makes during an outage:
// reads first, then writes.
func e2Requests(id string) []struct{ method, path string } {
	return []struct{ method, path string }{
		{"GET", "/fhir/Patient/" + id},
		{"GET", "/fhir/Patient?family=quxbrightwater"},
		{"GET", "/fhir/Patient/" + id + "/$everything"},
		{"GET", "/fhir/Patient/" + id + "/_history"},
		{"GET", "/fhir/Patient/unknown"},
		{"POST", "/fhir/Patient"},
		{"PUT", "/fhir/Patient/" + id},
		{"DELETE", "/fhir/Patient/" + id},
	}
}

// E2: when a request's ledger entry cannot be recorded, the request fails
// with 503 and nothing is served or written. A write's entry commits with
// the write in the database; a read's entry goes to the ledger directly
// (PostgreSQL) or through the spool file (SQLite), so each of those can
// fail on its own.
func TestAuditFailClosed(t *testing.T) {
	for _, c := range []struct {
		name string
		// which requests the outage refuses; the rest are answered
		// and recorded.
		refusesReads, refusesWrites bool
		spool                       bool // the outage is the spool's, not the database ledger's
		direct                      bool
	}{
		{name: "database ledger, no spool", refusesReads: true, refusesWrites: true, direct: true},
		{name: "spool", refusesReads: true, spool: true},
		{name: "database ledger behind the spool", refusesWrites: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var down atomic.Bool
			o := stackOptions{directLedger: c.direct}
			if c.spool {
				o.wrapSpool = func(f audit.SpoolFile) audit.SpoolFile { return failingSpool{f, &down} }
			} else {
				o.wrapStore = func(st store.Store) store.Store { return failingLedger{st, &down} }
			}
			s := newStackWith(t, o)
			id := idFrom(t, must(t, s.do("POST", "/fhir/Patient", canaryPatient()), http.StatusCreated))
			versions := countAll(t, s)
			size := ledgerSize(t, s)
			down.Store(true)
			answered, refusals := map[string]bool{}, map[string]bool{}
			for _, r := range e2Requests(id) {
				var body any
				if r.method == "POST" || r.method == "PUT" {
					p := canaryPatient()
					if r.method == "PUT" {
						p["id"] = id
					}
					body = p
				}
				got := s.do(r.method, r.path, body)
				refused := c.refusesReads
				if r.method != "GET" {
					refused = c.refusesWrites
				}
				if !refused {
					if got.status >= 500 {
						t.Errorf("%s %s: %d, want it answered: its entry can be recorded", r.method, r.path, got.status)
					}
					answered[got.header.Get("X-Request-Id")] = true
					continue
				}
				if got.status != http.StatusServiceUnavailable {
					t.Errorf("%s %s with the ledger down: %d, want 503", r.method, r.path, got.status)
				}
				if !c.direct && !c.spool {
					// The refusal itself is recorded, through the spool.
					refusals[got.header.Get("X-Request-Id")] = true
				}
				assertNoCanary(t, r.method+" "+r.path, got.body)
				if got.header.Get("ETag") != "" || got.header.Get("Location") != "" {
					t.Errorf("%s %s: a withheld response kept its headers", r.method, r.path)
				}
			}
			down.Store(false)
			wantVersions := versions
			if !c.refusesWrites {
				wantVersions += 3 // the create, the update and the deletion
			}
			if n := countAll(t, s); n != wantVersions {
				t.Fatalf("%v versions after the outage, want %v", n, wantVersions)
			}
			// Every answered request is in the ledger, once the outage is
			// over, and nothing refused is.
			entries := ledgerEntries(t, s, size)
			recorded := map[string]int{}
			for _, e := range entries {
				recorded[e.RequestID]++
				if refusals[e.RequestID] && e.Outcome != "error" {
					t.Errorf("a refused request's entry: %+v", e)
				}
			}
			for rid := range answered {
				if recorded[rid] != 1 {
					t.Errorf("answered request %s has %d entries, want 1", rid, recorded[rid])
				}
			}
			if want := len(answered) + len(refusals) + 1; len(entries) != want { // +1: countAll's own history read
				t.Fatalf("%d entries after the outage, want %d: %+v", len(entries), want, entries)
			}
			after := http.StatusOK
			if !c.refusesWrites {
				after = http.StatusGone // the deletion went through
			}
			must(t, s.do("GET", "/fhir/Patient/"+id, nil), after)
		})
	}
}

// Reads and searches inside a bundle are accounted one by one, with their
// patients: what a bundle disclosed is in the ledger, not only that a
// bundle was posted.
func TestAuditBundleReads(t *testing.T) {
	s := newStack(t)
	id := idFrom(t, must(t, s.do("POST", "/fhir/Patient", patient("Bundled", "Read")), http.StatusCreated))
	before := ledgerSize(t, s)
	b := tx("batch",
		map[string]any{"request": map[string]any{"method": "GET", "url": "Patient/" + id}},
		map[string]any{"request": map[string]any{"method": "GET", "url": "Patient?_id=" + id}},
		map[string]any{"request": map[string]any{"method": "GET", "url": "Patient/unknown"}},
		post("", patient("Bundled", "Write")),
	)
	r := must(t, s.do("POST", "/fhir", b), http.StatusOK)
	got := ledgerEntries(t, s, before)
	count := map[string]int{}
	for _, e := range got {
		count[e.Action+"/"+e.Outcome]++
		if e.RequestID != r.header.Get("X-Request-Id") {
			t.Errorf("entry %+v is not the bundle request's", e)
		}
		if (e.Action == "read" || e.Action == "search") && e.Outcome == "success" && e.Patient != id {
			t.Errorf("%s entry names patient %q, want %q", e.Action, e.Patient, id)
		}
	}
	want := map[string]int{"read/success": 1, "search/success": 1, "read/not-found": 1, "create/success": 1, "batch/success": 1}
	if fmt.Sprint(count) != fmt.Sprint(want) {
		t.Fatalf("bundle entries %v, want %v", count, want)
	}
}

// A search whose page holds several patients' data is one entry (E1) that
// names each of them, so that "who saw patient X's data" finds it under
// every X, in the store's index and in the AuditEvent view; it is found
// under no one else. A search over one patient is accounted as before.
func TestAuditSearchSeveralPatients(t *testing.T) {
	s := newStack(t)
	var ids []string
	for _, fam := range []string{"Aalto", "Baird", "Cohen", "Dunne"} {
		ids = append(ids, idFrom(t, must(t, s.do("POST", "/fhir/Patient", patient(fam, "Sev")), http.StatusCreated)))
	}
	three, fourth := ids[:3], ids[3]
	for _, id := range three {
		must(t, s.do("POST", "/fhir/Observation", observation("Patient/"+id, "2339-0", 5.1)), http.StatusCreated)
	}
	must(t, s.do("POST", "/fhir/Observation", observation("Patient/"+fourth, "8867-4", 70)), http.StatusCreated)
	sorted := slices.Sorted(slices.Values(three))

	// The search over three patients: one entry, naming the three.
	at := ledgerSize(t, s)
	r := must(t, s.do("GET", "/fhir/Observation?code=2339-0", nil), http.StatusOK)
	if n := len(r.json(t)["entry"].([]any)); n != 3 {
		t.Fatalf("the search found %d Observations, want 3", n)
	}
	got := ledgerEntries(t, s, at)
	if len(got) != 1 {
		t.Fatalf("%d ledger entries for one search, want exactly 1", len(got))
	}
	if e := got[0]; e.Action != "search" || e.Patient != "" || !slices.Equal(e.Patients, sorted) {
		t.Fatalf("search entry: action %q, patient %q, patients %q; want patients %q", e.Action, e.Patient, e.Patients, sorted)
	}
	for _, id := range three {
		if !slices.Contains(entriesOf(t, s, id), at) {
			t.Errorf("the search entry %d is not among patient %s's entries", at, id)
		}
		if !slices.Contains(auditEventsOf(t, s, id), strconv.FormatInt(at, 10)) {
			t.Errorf("AuditEvent?patient= misses the search entry %d for one of its patients", at)
		}
	}
	if slices.Contains(entriesOf(t, s, fourth), at) || slices.Contains(auditEventsOf(t, s, fourth), strconv.FormatInt(at, 10)) {
		t.Errorf("the search entry %d is found under a patient whose data it did not hold", at)
	}
	// The AuditEvent names each patient as an entity.
	ae := must(t, s.do("GET", "/fhir/AuditEvent/"+strconv.FormatInt(at, 10), nil, s.auditor()...), http.StatusOK)
	for _, id := range three {
		if !strings.Contains(string(ae.body), `"reference":"Patient/`+id+`"`) {
			t.Errorf("AuditEvent %d does not name one of its patients", at)
		}
	}

	// One patient's search: that patient in Patient and in Asked, with
	// the token's identifier, format version 3 with an empty patients list.
	at = ledgerSize(t, s)
	must(t, s.do("GET", "/fhir/Observation?subject=Patient/"+three[0], nil), http.StatusOK)
	if got := ledgerEntries(t, s, at); len(got) != 1 || got[0].Patient != three[0] || len(got[0].Patients) != 0 ||
		len(got[0].Asked) != 1 || got[0].Asked[0] != three[0] || !strings.HasPrefix(got[0].Token, "hmac:") {
		t.Fatalf("one patient's search: %+v", got)
	}
	if raw := rawEntry(t, s, at); !strings.HasPrefix(raw, `{"v":3,`) || !strings.Contains(raw, `"patients":[],"asked":["`+three[0]+`"]`) {
		t.Fatalf("a one-patient search entry: %.400s", raw)
	}

	// _include counts: the Observation is one patient's, the included
	// performer another's.
	obs := observation("Patient/"+three[0], "718-7", 13)
	obs["performer"] = []any{map[string]any{"reference": "Patient/" + three[1]}}
	oid := idFrom(t, must(t, s.do("POST", "/fhir/Observation", obs), http.StatusCreated))
	at = ledgerSize(t, s)
	must(t, s.do("GET", "/fhir/Observation?_id="+oid+"&_include=Observation:performer", nil), http.StatusOK)
	if got := ledgerEntries(t, s, at); len(got) != 1 || !slices.Equal(got[0].Patients, slices.Sorted(slices.Values(three[:2]))) {
		t.Fatalf("search with _include: %+v", got)
	}

	// History over several patients, and a search inside a batch.
	at = ledgerSize(t, s)
	must(t, s.do("GET", "/fhir/Observation/_history", nil), http.StatusOK)
	if got := ledgerEntries(t, s, at); len(got) != 1 || got[0].Action != "history" || !slices.Equal(got[0].Patients, slices.Sorted(slices.Values(ids))) {
		t.Fatalf("type history: %+v", got)
	}
	at = ledgerSize(t, s)
	must(t, s.do("POST", "/fhir", tx("batch", map[string]any{"request": map[string]any{"method": "GET", "url": "Observation?code=2339-0"}})), http.StatusOK)
	var search []int64
	for i, e := range ledgerEntries(t, s, at) {
		if e.Action == "search" && slices.Equal(e.Patients, sorted) {
			search = append(search, at+int64(i))
		}
	}
	if len(search) != 1 {
		t.Fatalf("the batch has %d search entries naming the three patients, want 1", len(search))
	}
	for _, id := range three {
		if !slices.Contains(entriesOf(t, s, id), search[0]) {
			t.Error("the batch's search entry is not among its patients' entries")
		}
	}
}

// entriesOf returns the indexes of the ledger entries the store finds
// under patient.
func entriesOf(t *testing.T, s *stack, patient string) []int64 {
	t.Helper()
	s.flushLedger()
	rows, err := s.db.LedgerEntriesByPatient(context.Background(), patient, time.Time{}, time.Time{}, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []int64
	for _, r := range rows {
		out = append(out, r.Index)
	}
	return out
}

// auditEventsOf returns the ids of the AuditEvents a search by patient
// answers.
func auditEventsOf(t *testing.T, s *stack, patient string) []string {
	t.Helper()
	b := must(t, s.do("GET", "/fhir/AuditEvent?patient=Patient/"+patient+"&_count=1000", nil, s.auditor()...), http.StatusOK).json(t)
	var out []string
	entries, _ := b["entry"].([]any)
	for _, e := range entries {
		out = append(out, e.(map[string]any)["resource"].(map[string]any)["id"].(string))
	}
	return out
}

func rawEntry(t *testing.T, s *stack, index int64) string {
	t.Helper()
	s.flushLedger()
	rows, err := s.db.LedgerEntries(context.Background(), index, index+1)
	if err != nil || len(rows) != 1 {
		t.Fatalf("entry %d: %v", index, err)
	}
	return string(rows[0].Entry)
}
