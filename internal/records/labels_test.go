package records_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/store"
)

// These tests hold the records service to security labels and Consent
// (catalogue A3, A5, A6): a related practitioner does not see, count or
// overwrite patient A's HIV-labelled Observation unless A's Consent names
// them; a Consent can withhold all of A's data from a practitioner; only
// a privileged writer sets or removes labels.

const hivLabel = `"meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"HIV"}]},`

// labelledObservation is an Observation about subject carrying meta.
func labelledObservation(subject, ident, meta string) string {
	return strings.Replace(observation(subject, ident, ""), `{"resourceType":"Observation",`, `{"resourceType":"Observation",`+meta, 1)
}

// practitioner is a practitioner's caller related to patients.
func practitioner(t testing.TB, ref string, patients ...string) records.Caller {
	t.Helper()
	sc, err := policy.ParseScope("user/*.cruds")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(patients)
	return records.Caller{RequestID: "req", Subject: policy.Subject{ClientID: "app", UserID: "u-" + ref, Role: "practitioner",
		FHIRUser: "Practitioner/" + ref, Related: patients, Scopes: []policy.Scope{sc}}}
}

// patientUser is a patient's own caller.
func patientUser(t *testing.T, id string) records.Caller {
	t.Helper()
	sc, err := policy.ParseScope("user/*.rs")
	if err != nil {
		t.Fatal(err)
	}
	return records.Caller{RequestID: "req", Subject: policy.Subject{ClientID: "app", UserID: "u-" + id, Role: "patient",
		FHIRUser: "Patient/" + id, Scopes: []policy.Scope{sc}}}
}

// withID puts id into a resource body.
func withID(body, id string) string {
	return strings.Replace(body, `{"resourceType":"Observation",`, `{"resourceType":"Observation","id":"`+id+`",`, 1)
}

// actorJSON is a Consent actor naming Practitioner/ref.
func actorJSON(ref string) string {
	return `{"role":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ParticipationType","code":"PRCP"}]},"reference":{"reference":"Practitioner/` + ref + `"}}`
}

// privacyConsent is patient's active patient-privacy Consent with one
// provision.
func privacyConsent(patient, provision string) string {
	return `{"resourceType":"Consent","status":"active",` +
		`"scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},` +
		`"category":[{"coding":[{"system":"http://loinc.org","code":"59284-0"}]}],` +
		`"patient":{"reference":"Patient/` + patient + `"},"policyRule":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"OPTIN"}]},` +
		`"provision":` + provision + `}`
}

type labelFixture struct {
	*fixture
	hiv  string         // A's HIV-labelled Observation
	x, y records.Caller // practitioners related to A
	pa   records.Caller // patient A
}

func newLabelFixture(t *testing.T) *labelFixture {
	f := &labelFixture{fixture: newFixture(t)}
	f.hiv = f.create(labelledObservation(patA, "a-hiv", hivLabel))
	f.x = practitioner(t, "x", patA, patB)
	f.y = practitioner(t, "y", patA, patB)
	f.pa = patientUser(t, patA)
	return f
}

// searchIDs runs a search and returns its total and match ids.
func (f *labelFixture) searchIDs(c records.Caller, typ string, q url.Values) (int, []string, []records.Entry) {
	f.t.Helper()
	res, err := f.svc.Search(context.Background(), c, typ, q)
	if err != nil {
		f.t.Fatalf("search %s?%s: %v", typ, q.Encode(), err)
	}
	var ids []string
	for _, e := range res.Matches {
		ids = append(ids, e.ID)
	}
	slices.Sort(ids)
	return res.Total, ids, res.Included
}

func (f *labelFixture) sees(c records.Caller, id string) bool {
	f.t.Helper()
	_, err := f.svc.Read(context.Background(), c, "Observation", id)
	switch {
	case err == nil:
		return true
	case errors.Is(err, records.ErrHidden):
		like(f.t, "read", err, f.unknownErr(c))
		return false
	}
	f.t.Fatalf("read %s: %v", id, err)
	return false
}

func (f *labelFixture) everything(c records.Caller) ([]string, error) {
	var ids []string
	err := f.svc.Everything(context.Background(), c, patA, func(e records.Entry) error {
		ids = append(ids, e.Type+"/"+e.ID)
		return nil
	})
	return ids, err
}

func sortedIDs(ids ...string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}

func TestLabelsHideFromRelatedPractitioner(t *testing.T) {
	f := newLabelFixture(t)
	ctx := context.Background()
	aObs := sortedIDs(f.obsA, f.obsAPerformsB)
	byA := url.Values{"subject": {"Patient/" + patA}}

	if !f.sees(f.y, f.obsA) || f.sees(f.y, f.hiv) {
		t.Fatal("a related practitioner must see A's normal Observation and not the HIV-labelled one")
	}
	if _, err := f.svc.VRead(ctx, f.y, "Observation", f.hiv, 1); !errors.Is(err, records.ErrHidden) {
		t.Fatalf("vread of the labelled version: %v", err)
	}
	if _, err := f.svc.History(ctx, f.y, records.HistoryRequest{Type: "Observation", ID: f.hiv}); !errors.Is(err, records.ErrHidden) {
		t.Fatalf("history of the labelled resource: %v", err)
	}
	total, ids, _ := f.searchIDs(f.y, "Observation", byA)
	if total != 2 || !slices.Equal(ids, aObs) {
		t.Fatalf("practitioner search: total %d, %v; want 2, %v", total, ids, aObs)
	}
	total, _, _ = f.searchIDs(f.y, "Observation", url.Values{"subject": {"Patient/" + patA}, "_count": {"0"}})
	if total != 2 {
		t.Fatalf("count-only search: %d", total)
	}
	_, _, inc := f.searchIDs(f.y, "Patient", url.Values{"_id": {patA}, "_revinclude": {"Observation:subject"}})
	for _, e := range inc {
		if e.ID == f.hiv {
			t.Fatal("_revinclude brought the labelled Observation")
		}
	}
	if len(inc) != 2 {
		t.Fatalf("_revinclude: %d included, want A's 2 normal Observations", len(inc))
	}
	ev, err := f.everything(f.y)
	if err != nil || slices.Contains(ev, "Observation/"+f.hiv) || !slices.Contains(ev, "Observation/"+f.obsA) {
		t.Fatalf("$everything: %v, %v", ev, err)
	}

	// The patient sees their own labelled data.
	if !f.sees(f.pa, f.hiv) {
		t.Fatal("the patient must see their own labelled Observation")
	}
	total, ids, _ = f.searchIDs(f.pa, "Observation", byA)
	if want := sortedIDs(f.obsA, f.obsAPerformsB, f.hiv); total != 3 || !slices.Equal(ids, want) {
		t.Fatalf("patient search: total %d, %v; want 3, %v", total, ids, want)
	}
	// A service with a system/ scope too.
	if !f.sees(f.sys, f.hiv) {
		t.Fatal("a system service must see the labelled Observation")
	}
}

func TestConsentPermitsAndDenies(t *testing.T) {
	f := newLabelFixture(t)
	ctx := context.Background()
	byA := url.Values{"subject": {"Patient/" + patA}}

	permit := f.create(privacyConsent(patA, `{"type":"permit","actor":[`+actorJSON("x")+`],`+
		`"securityLabel":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"HIV"}]}`))
	if !f.sees(f.x, f.hiv) {
		t.Fatal("a Consent permitting x for HIV must let x see the HIV-labelled Observation")
	}
	if f.sees(f.y, f.hiv) {
		t.Fatal("x's permit must not reach y")
	}
	if total, ids, _ := f.searchIDs(f.x, "Observation", byA); total != 3 || !slices.Contains(ids, f.hiv) {
		t.Fatalf("x's search: %d %v", total, ids)
	}
	// A PSY-labelled Observation stays hidden from x: the permit names HIV only.
	psy := f.create(labelledObservation(patA, "a-psy", strings.Replace(hivLabel, "HIV", "PSY", 1)))
	if f.sees(f.x, psy) {
		t.Fatal("a permit for HIV must not lift PSY")
	}
	if total, ids, _ := f.searchIDs(f.x, "Observation", byA); total != 3 || slices.Contains(ids, psy) {
		t.Fatalf("x's search with a PSY Observation: %d %v", total, ids)
	}

	// Deny y: all of A's data is withheld from y, though y is related.
	deny := f.create(privacyConsent(patA, `{"type":"deny","actor":[`+actorJSON("y")+`]}`))
	if f.sees(f.y, f.obsA) {
		t.Fatal("a Consent denying y must hide A's normal Observation from y")
	}
	if _, err := f.svc.Read(ctx, f.y, "Patient", patA); !errors.Is(err, records.ErrHidden) {
		t.Fatalf("y reads A's Patient: %v", err)
	}
	if total, ids, _ := f.searchIDs(f.y, "Observation", byA); total != 0 || len(ids) != 0 {
		t.Fatalf("y's search of A: %d %v", total, ids)
	}
	if total, ids, _ := f.searchIDs(f.y, "Observation", url.Values{}); total != 2 || !slices.Equal(ids, sortedIDs(f.obsB, f.obsBPerformsA)) {
		t.Fatalf("y's search still sees B: %d %v", total, ids)
	}
	if _, err := f.everything(f.y); !errors.Is(err, records.ErrHidden) {
		t.Fatalf("y's $everything of A: %v", err)
	}
	if _, _, err := f.svc.Update(ctx, f.y, "Observation", f.obsA, parse(t, withID(observation(patA, "a-1", ""), f.obsA)), 0); !errors.Is(err, records.ErrForbidden) {
		t.Fatalf("y updates A's Observation: %v", err)
	}
	if _, err := f.svc.Create(ctx, f.y, parse(t, observation(patA, "a-new", ""))); !errors.Is(err, records.ErrForbidden) {
		t.Fatalf("y creates in A's record: %v", err)
	}
	if !f.sees(f.x, f.obsA) {
		t.Fatal("y's deny must not touch x")
	}
	// Lifting the deny (a service marks it inactive) gives y back at once.
	f.put("Consent", deny, strings.Replace(privacyConsent(patA, `{"type":"deny","actor":[`+actorJSON("y")+`]}`),
		`"status":"active"`, `"status":"inactive","id":"`+deny+`"`, 1))
	if !f.sees(f.y, f.obsA) {
		t.Fatal("an inactive Consent must have no effect")
	}
	_ = permit
}

func TestConsentExpired(t *testing.T) {
	f := newLabelFixture(t)
	f.create(privacyConsent(patA, `{"type":"deny","actor":[`+actorJSON("y")+`],"period":{"start":"2000-01-01","end":"2001-01-01"}}`))
	f.create(privacyConsent(patA, `{"type":"permit","actor":[`+actorJSON("y")+`],"period":{"end":"2001"}}`))
	if !f.sees(f.y, f.obsA) || f.sees(f.y, f.hiv) {
		t.Fatal("expired Consents must have no effect")
	}
}

func TestLabelWrites(t *testing.T) {
	f := newLabelFixture(t)
	ctx := context.Background()
	f.create(privacyConsent(patA, `{"type":"permit","actor":[`+actorJSON("x")+`]}`))

	// x may see it, and updates it without meta: the label stays.
	e, _, err := f.svc.Update(ctx, f.x, "Observation", f.hiv, parse(t, `{"resourceType":"Observation","id":"`+f.hiv+`","status":"amended","code":{"text":"weight"},"subject":{"reference":"Patient/`+patA+`"}}`), 0)
	if err != nil {
		t.Fatalf("x updates the labelled Observation: %v", err)
	}
	if !bytes.Contains(e.Body, []byte(`"code":"HIV"`)) {
		t.Fatalf("the update dropped the label: %s", e.Body)
	}
	stored, err := f.svc.Read(ctx, f.sys, "Observation", f.hiv)
	if err != nil || !bytes.Contains(stored.Body, []byte(`"code":"HIV"`)) || !bytes.Contains(stored.Body, []byte(`"amended"`)) {
		t.Fatalf("stored after x's update: %s, %v", stored.Body, err)
	}
	if f.sees(f.y, f.hiv) {
		t.Fatal("the updated version must stay hidden from y")
	}
	if total, ids, _ := f.searchIDs(f.y, "Observation", url.Values{"subject": {"Patient/" + patA}}); total != 2 || slices.Contains(ids, f.hiv) {
		t.Fatalf("y's search after the update: %d %v", total, ids)
	}

	before := f.state()
	refused := []struct {
		name string
		do   func() error
	}{
		{"practitioner creates with a label", func() error {
			_, err := f.svc.Create(ctx, f.x, parse(t, labelledObservation(patA, "a-new", hivLabel)))
			return err
		}},
		{"practitioner creates with a label by PUT", func() error {
			_, _, err := f.svc.Update(ctx, f.x, "Observation", "new-id", parse(t, strings.Replace(labelledObservation(patA, "a-new", hivLabel), `"resourceType":"Observation",`, `"resourceType":"Observation","id":"new-id",`, 1)), 0)
			return err
		}},
		{"practitioner adds a label", func() error {
			_, _, err := f.svc.Update(ctx, f.x, "Observation", f.obsA, parse(t, strings.Replace(labelledObservation(patA, "a-1", hivLabel), `"resourceType":"Observation",`, `"resourceType":"Observation","id":"`+f.obsA+`",`, 1)), 0)
			return err
		}},
		{"practitioner overwrites what they may not see", func() error {
			_, _, err := f.svc.Update(ctx, f.y, "Observation", f.hiv, parse(t, `{"resourceType":"Observation","id":"`+f.hiv+`","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/`+patA+`"}}`), 0)
			return err
		}},
		{"practitioner deletes what they may not see", func() error {
			_, err := f.svc.Delete(ctx, f.y, "Observation", f.hiv)
			return err
		}},
		{"practitioner writes themself a permit", func() error {
			_, err := f.svc.Create(ctx, f.y, parse(t, privacyConsent(patA, `{"type":"permit","actor":[`+actorJSON("y")+`]}`)))
			return err
		}},
	}
	for _, r := range refused {
		want := records.ErrForbidden
		if strings.Contains(r.name, "deletes") {
			want = records.ErrHidden // as a delete of an unknown id
		}
		if err := r.do(); !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", r.name, err, want)
		}
	}
	if after := f.state(); after != before {
		t.Fatalf("a refused write changed the store:\n%s\n---\n%s", before, after)
	}

	// A service (system/ scope) relabels: removing the label shows it to y.
	if _, _, err := f.svc.Update(ctx, f.sys, "Observation", f.hiv, parse(t, strings.Replace(observation(patA, "a-hiv", ""), `"resourceType":"Observation",`, `"resourceType":"Observation","id":"`+f.hiv+`",`, 1)), 0); err != nil {
		t.Fatal(err)
	}
	if !f.sees(f.y, f.hiv) {
		t.Fatal("once a service removed the label, y must see the Observation")
	}
	// ... but its history holds a labelled version, which y may not page through.
	if _, err := f.svc.History(ctx, f.y, records.HistoryRequest{Type: "Observation", ID: f.hiv}); !errors.Is(err, records.ErrHidden) {
		t.Fatalf("history with a labelled version: %v", err)
	}
}

// TestTypeHistoryHidesLabelledVersions: a person whose role reaches every
// patient pages through type and system histories holding versions
// labelled beyond what they see. The hidden versions are neither listed
// nor counted (the page has no total), and paging by the offsets the
// pages give neither repeats a version nor stops before the last one.
func TestTypeHistoryHidesLabelledVersions(t *testing.T) {
	pol, err := policy.New([]policy.Role{{Name: "registrar", Reach: policy.ReachAll,
		Grants: []policy.Scope{{Context: "user", Type: "*", Read: true, Search: true}}}})
	if err != nil {
		t.Fatal(err)
	}
	svc, _ := newService(t, records.Config{Policy: pol})
	ctx := context.Background()
	sys := service(t, "system/*.cruds")
	if _, _, err := svc.Update(ctx, sys, "Patient", patA, parse(t, `{"resourceType":"Patient","id":"`+patA+`"}`), 0); err != nil {
		t.Fatal(err)
	}
	var visible, all []string
	for i, labelled := range []bool{false, true, true, false, true, false} {
		body := observation(patA, fmt.Sprint("h-", i), "")
		if labelled {
			body = labelledObservation(patA, fmt.Sprint("h-", i), hivLabel)
		}
		e, err := svc.Create(ctx, sys, parse(t, body))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, e.ID)
		if !labelled {
			visible = append(visible, e.ID)
		}
	}
	slices.Reverse(all) // history is newest first
	slices.Reverse(visible)
	registrar := person(t, "registrar", "Practitioner/r", nil, "user/*.rs")

	pages := func(c records.Caller, typ string, count int) (ids []string, totals []bool) {
		t.Helper()
		for offset, n := 0, 0; ; n++ {
			if n > 20 {
				t.Fatal("history paging does not end")
			}
			p, err := svc.History(ctx, c, records.HistoryRequest{Type: typ, Offset: offset, Count: count})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range p.Entries {
				if e.Type == "Observation" {
					ids = append(ids, e.ID)
				}
			}
			totals = append(totals, p.HasTotal)
			if !p.More {
				return ids, totals
			}
			if p.Next <= offset {
				t.Fatalf("next page at %d after a page at %d", p.Next, offset)
			}
			offset = p.Next
		}
	}
	for _, count := range []int{1, 2, 100} {
		for _, typ := range []string{"Observation", ""} {
			ids, totals := pages(registrar, typ, count)
			if !slices.Equal(ids, visible) {
				t.Errorf("registrar, %q history by %d: %v, want %v", typ, count, ids, visible)
			}
			if slices.Contains(totals, true) {
				t.Errorf("registrar, %q history by %d: a page with a total", typ, count)
			}
			ids, totals = pages(sys, typ, count)
			if !slices.Equal(ids, all) || slices.Contains(totals, false) {
				t.Errorf("service, %q history by %d: %v (totals %v), want %v with totals", typ, count, ids, totals, all)
			}
		}
	}
	p, err := svc.History(ctx, sys, records.HistoryRequest{Type: "Observation"})
	if err != nil || p.Total != len(all) {
		t.Fatalf("service's total: %d, %v; want %d", p.Total, err, len(all))
	}
}

// upgradedStore is a store whose versions predate their sensitivity class
// until they are classified.
type upgradedStore struct {
	store.Store
	pending bool
}

func (u *upgradedStore) SensitivityPending(context.Context) (bool, error) { return u.pending, nil }
func (u *upgradedStore) SensitivityClassified(context.Context) error {
	u.pending = false
	return nil
}

// TestClassifyStored: a labelled version stored before Ward kept its class
// (class 0) is counted in a related practitioner's search total, though
// never served; ClassifyStored gives it its class, after which the total
// leaves it out, and a second run does nothing.
func TestClassifyStored(t *testing.T) {
	up := &upgradedStore{}
	svc, db := newServiceWith(t, records.Config{}, func(s store.Store) store.Store { up.Store = s; return up })
	ctx := context.Background()
	sys := service(t, "system/*.cruds")
	if _, _, err := svc.Update(ctx, sys, "Patient", patA, parse(t, `{"resourceType":"Patient","id":"`+patA+`"}`), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Create(ctx, sys, parse(t, observation(patA, "plain", ""))); err != nil {
		t.Fatal(err)
	}
	hiv, err := svc.Create(ctx, sys, parse(t, labelledObservation(patA, "hiv", hivLabel)))
	if err != nil {
		t.Fatal(err)
	}
	// As the sensitivity migration left it.
	if n, err := db.SetSensitivity(ctx, []store.Resource{{Type: "Observation", ID: hiv.ID, Version: hiv.Version}}); err != nil || n != 1 {
		t.Fatalf("reset the class: %d, %v", n, err)
	}
	up.pending = true
	doctor := practitioner(t, "d", patA)
	total := func() (int, int) {
		t.Helper()
		res, err := svc.Search(ctx, doctor, "Observation", url.Values{"subject": {"Patient/" + patA}, "_total": {"accurate"}})
		if err != nil {
			t.Fatal(err)
		}
		return res.Total, len(res.Matches)
	}
	if n, shown := total(); n != 2 || shown != 1 {
		t.Fatalf("before classifying: total %d, %d shown; want the unclassified version counted (2) and not shown (1)", n, shown)
	}
	classified, unreadable, err := svc.ClassifyStored(ctx)
	if err != nil || classified != 1 || unreadable != 0 {
		t.Fatalf("ClassifyStored: %d classified, %d unreadable, %v; want 1, 0", classified, unreadable, err)
	}
	if up.pending {
		t.Fatal("classification not recorded as done")
	}
	if n, shown := total(); n != 1 || shown != 1 {
		t.Fatalf("after classifying: total %d, %d shown; want 1, 1", n, shown)
	}
	if c, u, err := svc.ClassifyStored(ctx); err != nil || c != 0 || u != 0 {
		t.Fatalf("second run: %d, %d, %v", c, u, err)
	}
}
