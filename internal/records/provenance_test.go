package records_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/store"
)

// These tests hold a write's Provenance to catalogue case H4: a
// correction records its reason and keeps the earlier value in history.

// reasonCanary is free text a Provenance carries that no ledger entry
// and no stored row may hold in the clear.
const reasonCanary = "CANARY-the-nurse-misread-the-scale-4be1"

const actReason = "http://terminology.hl7.org/CodeSystem/v3-ActReason"

// correction is a Provenance giving a reason for a write: a plain code,
// text and a display (both holding the canary), and a coding that is not
// a plain code.
func correction(t *testing.T) *fhir.Resource {
	return parse(t, `{"resourceType":"Provenance",
		"recorded":"2020-01-01T00:00:00Z",
		"reason":[{"coding":[{"system":"`+actReason+`","code":"PATRQT","display":"`+reasonCanary+`"},
			{"system":"urn:test","code":"two words"}],"text":"`+reasonCanary+`"}],
		"agent":[{"who":{"reference":"Practitioner/p1"}}]}`)
}

// weight is an Observation of patient's weight in kg.
func weight(patient, kg string) string {
	return `{"resourceType":"Observation","status":"final","code":{"text":"weight"},` +
		`"subject":{"reference":"Patient/` + patient + `"},` +
		`"valueQuantity":{"value":` + kg + `,"unit":"kg"}}`
}

// provenanceOf finds the one Provenance targeting typ/id, as the caller
// sees it.
func provenanceOf(t *testing.T, svc *records.Service, c records.Caller, target string) []records.Entry {
	t.Helper()
	res, err := svc.Search(context.Background(), c, "Provenance", url.Values{"target": {target}})
	if err != nil {
		t.Fatal(err)
	}
	return res.Matches
}

// object decodes a served body.
func object(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// targetOf is the one target reference of a Provenance body.
func targetOf(t *testing.T, body []byte) string {
	t.Helper()
	targets, _ := object(t, body)["target"].([]any)
	if len(targets) != 1 {
		t.Fatalf("Provenance targets %v, want one", targets)
	}
	ref, _ := targets[0].(map[string]any)["reference"].(string)
	return ref
}

// ledgerText is every ledger entry as stored, for a search for what no
// entry may hold.
func ledgerText(t *testing.T, db store.Store) []byte {
	t.Helper()
	ctx := context.Background()
	n, err := db.LedgerSize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := db.LedgerEntries(ctx, 0, n)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for _, row := range rows {
		b.Write(row.Entry)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// entryFor is the newest ledger entry of action on typ/id.
func entryFor(t *testing.T, db store.Store, action, typ, id string) ledger.Entry {
	t.Helper()
	ctx := context.Background()
	n, err := db.LedgerSize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := db.LedgerEntries(ctx, 0, n)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(rows) - 1; i >= 0; i-- {
		e, err := ledger.DecodeEntry(rows[i].Entry)
		if err != nil {
			t.Fatal(err)
		}
		if e.Action == action && e.ResourceType == typ && (id == "" || e.ResourceID == id) {
			return e
		}
	}
	t.Fatalf("no %s entry for %s/%s", action, typ, id)
	return ledger.Entry{}
}

// TestCorrectionWithProvenance is H4: a correction carrying a Provenance
// stores it sealed in the patient's compartment, targeting the version
// the correction created; the correction's entry records the reason's
// code and never its text; history keeps the earlier value.
func TestCorrectionWithProvenance(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	id := f.create(weight(patA, "70"))

	e, created, err := f.svc.Update(ctx, f.sys, "Observation", id, parse(t, `{"id":"`+id+`",`+weight(patA, "72")[1:]), 0,
		records.WithProvenance(correction(t)))
	if err != nil || created || e.Version != 2 {
		t.Fatalf("correction: version %d, created %v, %v", e.Version, created, err)
	}

	// The Provenance targets the exact new version, recorded at the commit.
	found := provenanceOf(t, f.svc, f.sys, "Observation/"+id)
	if len(found) != 1 {
		t.Fatalf("Provenance?target=Observation/%s: %d matches, want 1", id, len(found))
	}
	prov := found[0]
	if got, want := targetOf(t, prov.Body), "Observation/"+id+"/_history/2"; got != want {
		t.Errorf("target %q, want %q", got, want)
	}
	lastUpdated := object(t, e.Body)["meta"].(map[string]any)["lastUpdated"]
	if got := object(t, prov.Body)["recorded"]; got != lastUpdated {
		t.Errorf("recorded %v, want the correction's commit time %v", got, lastUpdated)
	}

	// Sealed in the patient's compartment, not shared as R4's compartment
	// definition would leave it: the row says so, and the body is sealed.
	row, err := f.db.Current(ctx, "Provenance", prov.ID)
	if err != nil {
		t.Fatal(err)
	}
	if row.Compartment != patA || prov.Compartment != patA {
		t.Errorf("Provenance stored in compartment %q (served %q), want %q", row.Compartment, prov.Compartment, patA)
	}
	if bytes.Contains(row.Body, []byte(reasonCanary)) || bytes.Contains(row.Body, []byte("PATRQT")) {
		t.Error("the stored Provenance holds its content in the clear")
	}
	// So a token limited to the patient finds it, another patient's does not.
	if got := provenanceOf(t, f.svc, caller(t, patA, "patient/*.rs"), "Observation/"+id); len(got) != 1 {
		t.Errorf("patient A's token finds %d Provenances of A's correction, want 1", len(got))
	}
	if got := provenanceOf(t, f.svc, caller(t, patB, "patient/*.rs"), "Observation/"+id); len(got) != 0 {
		t.Errorf("patient B's token finds %d Provenances of A's correction, want 0", len(got))
	}

	// The correction's entry names the Provenance and its coded reason.
	upd := entryFor(t, f.db, "update", "Observation", id)
	if want := "provenance=Provenance/" + prov.ID + " reason=" + actReason + "|PATRQT"; upd.Detail != want || upd.Version != "2" {
		t.Errorf("update entry: version %q detail %q, want 2 and %q", upd.Version, upd.Detail, want)
	}
	// The Provenance's create has an entry of its own, naming the patient.
	if c := entryFor(t, f.db, "create", "Provenance", prov.ID); c.Patient != patA || c.Outcome != "success" {
		t.Errorf("Provenance create entry: patient %q outcome %q", c.Patient, c.Outcome)
	}
	// No entry holds the reason's text or display.
	if bytes.Contains(ledgerText(t, f.db), []byte(reasonCanary)) {
		t.Error("a ledger entry holds the reason's free text")
	}

	// History keeps the earlier value.
	h, err := f.svc.History(ctx, f.sys, records.HistoryRequest{Type: "Observation", ID: id})
	if err != nil {
		t.Fatal(err)
	}
	values := map[int64]string{}
	for _, v := range h.Entries {
		q, _ := object(t, v.Body)["valueQuantity"].(map[string]any)
		values[v.Version] = fmt.Sprint(q["value"])
	}
	if len(h.Entries) != 2 || values[1] != "70" || values[2] != "72" {
		t.Errorf("history values by version %v, want 1:70 2:72", values)
	}

	// _revinclude reaches it from the corrected resource.
	res, err := f.svc.Search(ctx, f.sys, "Observation", url.Values{"_id": {id}, "_revinclude": {"Provenance:target"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Included) != 1 || res.Included[0].ID != prov.ID {
		t.Errorf("_revinclude=Provenance:target included %d resources, want the Provenance", len(res.Included))
	}
}

// TestCreateWithProvenance: a create's Provenance targets version 1 of
// the new id, in the new resource's compartment.
func TestCreateWithProvenance(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	e, err := f.svc.Create(ctx, f.sys, parse(t, weight(patB, "60")), records.WithProvenance(correction(t)))
	if err != nil {
		t.Fatal(err)
	}
	found := provenanceOf(t, f.svc, f.sys, "Observation/"+e.ID)
	if len(found) != 1 || targetOf(t, found[0].Body) != "Observation/"+e.ID+"/_history/1" || found[0].Compartment != patB {
		t.Fatalf("Provenance of a create: %+v", found)
	}
	if c := entryFor(t, f.db, "create", "Observation", e.ID); !strings.HasPrefix(c.Detail, "provenance=Provenance/"+found[0].ID+" ") {
		t.Errorf("create entry detail %q", c.Detail)
	}
}

// TestProvenanceRefusedRefusesWrite: a write whose Provenance may not be
// written, or is malformed, writes nothing at all.
func TestProvenanceRefusedRefusesWrite(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	id := f.create(weight(patA, "70"))
	body := func() *fhir.Resource { return parse(t, `{"id":"`+id+`",`+weight(patA, "72")[1:]) }
	cases := []struct {
		name string
		c    records.Caller
		prov string
		want error
	}{
		{"no Provenance create", service(t, "system/Observation.cruds"), "", records.ErrForbidden},
		{"target set by the caller", f.sys, `{"resourceType":"Provenance","recorded":"2020-01-01T00:00:00Z","target":[{"reference":"Observation/` + id + `"}],"agent":[{"who":{"reference":"Practitioner/p1"}}]}`, records.ErrInvalid},
		{"not a Provenance", f.sys, `{"resourceType":"Basic","code":{"text":"x"}}`, records.ErrInvalid},
		{"invalid Provenance", f.sys, `{"resourceType":"Provenance","recorded":"2020-01-01T00:00:00Z"}`, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := f.state()
			provs := len(provenanceOf(t, f.svc, f.sys, "Observation/"+id))
			prov := correction(t)
			if tc.prov != "" {
				prov = parse(t, tc.prov)
			}
			_, _, err := f.svc.Update(ctx, tc.c, "Observation", id, body(), 0, records.WithProvenance(prov))
			var fe *fhir.Error
			switch {
			case err == nil:
				t.Fatal("write accepted")
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Fatalf("%v, want %v", err, tc.want)
			case tc.want == nil && !errors.As(err, &fe):
				t.Fatalf("%v, want a validation error", err)
			}
			if after := f.state(); after != before {
				t.Errorf("a refused write changed versions or the ledger:\n%s\nwant\n%s", after, before)
			}
			if n := len(provenanceOf(t, f.svc, f.sys, "Observation/"+id)); n != provs {
				t.Errorf("a refused write stored a Provenance (%d, was %d)", n, provs)
			}
			if _, err := f.svc.Create(ctx, tc.c, parse(t, weight(patA, "1")), records.WithProvenance(prov)); err == nil {
				t.Error("create accepted")
			}
			if after := f.state(); after != before {
				t.Errorf("a refused create changed versions or the ledger")
			}
		})
	}
}

// TestProvenanceWithinCompartment: under a patient/ obligation the
// Provenance is written in the obligation's compartment, and a write
// outside it writes no Provenance either.
func TestProvenanceWithinCompartment(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	a := caller(t, patA, "patient/*.cruds")
	e, _, err := f.svc.Update(ctx, a, "Observation", f.obsA, parse(t, `{"id":"`+f.obsA+`",`+observation(patA, "a-1", "")[1:]), 0,
		records.WithProvenance(correction(t)))
	if err != nil {
		t.Fatal(err)
	}
	found := provenanceOf(t, f.svc, a, "Observation/"+f.obsA)
	if len(found) != 1 || found[0].Compartment != patA || targetOf(t, found[0].Body) != e.Location() {
		t.Fatalf("Provenance of A's own correction: %+v", found)
	}

	before := f.state()
	_, _, err = f.svc.Update(ctx, a, "Observation", f.obsB, parse(t, `{"id":"`+f.obsB+`",`+observation(patB, "b-1", "")[1:]), 0,
		records.WithProvenance(correction(t)))
	if !errors.Is(err, records.ErrForbidden) {
		t.Fatalf("A's correction of B's Observation: %v", err)
	}
	if f.state() != before || len(provenanceOf(t, f.svc, f.sys, "Observation/"+f.obsB)) != 0 {
		t.Error("a refused correction wrote something")
	}
}

// racingStore lets another writer in between a write's read of the
// current version and its commit, once: the write loses the optimistic
// race and is settled again.
type racingStore struct {
	store.Store
	race atomic.Pointer[func()]
}

func (s *racingStore) Current(ctx context.Context, typ, id string) (store.Resource, error) {
	r, err := s.Store.Current(ctx, typ, id)
	if fn := s.race.Swap(nil); fn != nil {
		(*fn)()
	}
	return r, err
}

// TestProvenanceTargetsRetriedVersion: when a write is retried after
// losing a race, its Provenance targets the version finally written, and
// its entry names that version.
func TestProvenanceTargetsRetriedVersion(t *testing.T) {
	ctx := context.Background()
	var rs *racingStore
	svc, db := newServiceWith(t, records.Config{}, func(st store.Store) store.Store {
		rs = &racingStore{Store: st}
		return rs
	})
	sys := service(t, "system/*.cruds")
	if _, _, err := svc.Update(ctx, sys, "Patient", patA, parse(t, `{"resourceType":"Patient","id":"`+patA+`"}`), 0); err != nil {
		t.Fatal(err)
	}
	e, err := svc.Create(ctx, sys, parse(t, weight(patA, "70")))
	if err != nil {
		t.Fatal(err)
	}
	id := e.ID
	body := func(kg string) *fhir.Resource { return parse(t, `{"id":"`+id+`",`+weight(patA, kg)[1:]) }
	raced := false
	other := func() {
		raced = true
		if _, _, err := svc.Update(ctx, sys, "Observation", id, body("71"), 0); err != nil {
			t.Error(err)
		}
	}
	rs.race.Store(&other)
	e, _, err = svc.Update(ctx, sys, "Observation", id, body("72"), 0, records.WithProvenance(correction(t)))
	if err != nil {
		t.Fatal(err)
	}
	if !raced || e.Version != 3 {
		t.Fatalf("raced %v, version %d: the test did not make the write retry", raced, e.Version)
	}
	found := provenanceOf(t, svc, sys, "Observation/"+id)
	if len(found) != 1 || targetOf(t, found[0].Body) != "Observation/"+id+"/_history/3" {
		t.Fatalf("Provenance after a retry: %+v", found)
	}
	upd := entryFor(t, db, "update", "Observation", id)
	if upd.Version != "3" || !strings.HasPrefix(upd.Detail, "provenance=Provenance/"+found[0].ID) {
		t.Errorf("entry of the retried write: version %q detail %q", upd.Version, upd.Detail)
	}
}

// TestProvenanceReasonCodes: the entry records at most three plain
// "system|code" reasons, and nothing that could be text.
func TestProvenanceReasonCodes(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	coding := func(sys, code string) string {
		return `{"system":"` + sys + `","code":"` + code + `","display":"` + reasonCanary + `"}`
	}
	prov := parse(t, `{"resourceType":"Provenance","recorded":"2020-01-01T00:00:00Z",
		"reason":[{"coding":[`+coding(actReason, "PATRQT")+`,`+coding("urn:x", "a b")+`,`+coding("urn:x", "a|b")+`,`+
		coding("", "NOSYS")+`,`+coding("urn:x", strings.Repeat("L", 80))+`,`+coding("urn:x", "c,d")+`]},
		{"coding":[`+coding("urn:x", "TWO")+`,`+coding("urn:x", "THREE")+`,`+coding("urn:x", "FOUR")+`]},
		{"text":"`+reasonCanary+`"}],
		"agent":[{"who":{"reference":"Practitioner/p1"}}]}`)
	e, err := f.svc.Create(ctx, f.sys, parse(t, weight(patA, "70")), records.WithProvenance(prov))
	if err != nil {
		t.Fatal(err)
	}
	got := entryFor(t, f.db, "create", "Observation", e.ID).Detail
	_, reasons, _ := strings.Cut(got, " reason=")
	if want := actReason + "|PATRQT,urn:x|TWO,urn:x|THREE"; reasons != want {
		t.Errorf("reasons %q, want %q", reasons, want)
	}
	if bytes.Contains(ledgerText(t, f.db), []byte(reasonCanary)) {
		t.Error("a ledger entry holds a reason's text or display")
	}
}

// TestProvenanceCarriesTargetLabels: the Provenance of a write to a
// labelled resource carries its labels, so a practitioner who may not
// see the resource does not see why it was changed either, and the
// patient does.
func TestProvenanceCarriesTargetLabels(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	hiv := f.create(labelledObservation(patA, "h-1", hivLabel))
	if _, _, err := f.svc.Update(ctx, f.sys, "Observation", hiv, parse(t, withID(labelledObservation(patA, "h-1", hivLabel), hiv)), 0,
		records.WithProvenance(correction(t))); err != nil {
		t.Fatal(err)
	}
	found := provenanceOf(t, f.svc, f.sys, "Observation/"+hiv)
	if len(found) != 1 || !strings.Contains(string(found[0].Body), `"code":"HIV"`) {
		t.Fatalf("the Provenance of a labelled write does not carry its label: %+v", found)
	}
	if got := provenanceOf(t, f.svc, practitioner(t, "p1", patA), "Observation/"+hiv); len(got) != 0 {
		t.Error("a practitioner who may not see the labelled Observation sees its Provenance")
	}
	if got := provenanceOf(t, f.svc, patientUser(t, patA), "Observation/"+hiv); len(got) != 1 {
		t.Error("the patient does not see the Provenance of their own labelled Observation")
	}
}
