package records_test

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/fhir/fhirtest"
	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/records"
)

// Catalogue case A7: what a role may not see (the practitioner role's
// social security numbers) never leaves the service on any path, and a
// write by that role never erases it.

const (
	maskSSN = "987-65-4320" // the value that must never be served to a practitioner
	maskMRN = "MRN-A7-0001" // an identifier the practitioner does see
)

type maskFixture struct {
	t       *testing.T
	svc     *records.Service
	sys     records.Caller // system/*.cruds: no mask
	pract   records.Caller // practitioner with a care relationship to pat
	self    records.Caller // the patient, signed in: no mask
	clerk   records.Caller // a configured role reaching every patient, with the practitioner's mask
	viewer  records.Caller // the same role without a mask
	analyst records.Caller // whole elements masked
	pat     string
	obs     string
	org     string
}

func newMaskFixture(t *testing.T) *maskFixture {
	t.Helper()
	readAll := []policy.Scope{{Context: "user", Type: "*", Read: true, Search: true}}
	pol, err := policy.New([]policy.Role{
		{Name: "clerk", Reach: policy.ReachAll, Mask: []string{"Patient.identifier:" + policy.SSN}, Grants: readAll},
		{Name: "viewer", Reach: policy.ReachAll, Grants: readAll}, // the clerk without a mask
		{Name: "analyst", Reach: policy.ReachAll, Grants: readAll, Mask: []string{"Observation.valueQuantity", "Patient.managingOrganization"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	svc, _ := newService(t, records.Config{Policy: pol})
	f := &maskFixture{t: t, svc: svc}
	f.sys = service(t, "system/*.cruds")
	ctx := context.Background()
	org, err := f.svc.Create(ctx, f.sys, parse(t, `{"resourceType":"Organization","name":"Clinic"}`))
	if err != nil {
		t.Fatal(err)
	}
	f.org = org.ID
	p, err := f.svc.Create(ctx, f.sys, parse(t, f.patientBody("", true)))
	if err != nil {
		t.Fatal(err)
	}
	f.pat = p.ID
	// A second version, so that history has more than one to mask.
	if _, _, err := f.svc.Update(ctx, f.sys, "Patient", f.pat, parse(t, f.patientBody(f.pat, false)), 0); err != nil {
		t.Fatal(err)
	}
	o, err := f.svc.Create(ctx, f.sys, parse(t, `{"resourceType":"Observation","status":"final","code":{"text":"pulse"},"subject":{"reference":"Patient/`+f.pat+`"}}`))
	if err != nil {
		t.Fatal(err)
	}
	f.obs = o.ID
	f.pract = person(t, "practitioner", "Practitioner/p1", []string{f.pat}, "user/*.cruds")
	f.self = person(t, "patient", "Patient/"+f.pat, nil, "user/*.rs")
	f.clerk = person(t, "clerk", "", nil, "user/*.rs")
	f.viewer = person(t, "viewer", "", nil, "user/*.rs")
	f.analyst = person(t, "analyst", "", nil, "user/*.rs")
	return f
}

func (f *maskFixture) patientBody(id string, active bool) string {
	s := `{"resourceType":"Patient",`
	if id != "" {
		s += `"id":"` + id + `",`
	}
	a := "false"
	if active {
		a = "true"
	}
	return s + `"active":` + a + `,"managingOrganization":{"reference":"Organization/` + f.org + `"},` +
		`"identifier":[{"system":"urn:example:mrn","value":"` + maskMRN + `"},` +
		`{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"SS"}]},"system":"` + policy.SSN + `","value":"` + maskSSN + `"}],` +
		`"name":[{"family":"Doe"}]}`
}

// person is a signed-in person's caller.
func person(t *testing.T, role, fhirUser string, related []string, scopes ...string) records.Caller {
	t.Helper()
	sub := policy.Subject{ClientID: "app", UserID: "u-" + role, Role: role, FHIRUser: fhirUser, Related: related}
	for _, s := range scopes {
		sc, err := policy.ParseScope(s)
		if err != nil {
			t.Fatal(err)
		}
		sub.Scopes = append(sub.Scopes, sc)
	}
	return records.Caller{Subject: sub, RequestID: "req"}
}

// served collects every body that each path serves to c.
func (f *maskFixture) served(c records.Caller, withEverything bool) map[string][]byte {
	t, ctx := f.t, context.Background()
	t.Helper()
	out := map[string][]byte{}
	add := func(path string, es ...records.Entry) {
		for _, e := range es {
			out[path] = append(append(out[path], e.Body...), '\n')
		}
	}
	check := func(path string, err error) bool {
		if err != nil {
			t.Errorf("%s: %v", path, err)
		}
		return err == nil
	}
	e, err := f.svc.Read(ctx, c, "Patient", f.pat)
	if check("read", err) {
		add("read", e)
	}
	for _, v := range []int64{1, 2} {
		e, err := f.svc.VRead(ctx, c, "Patient", f.pat, v)
		if check("vread", err) {
			add("vread", e)
		}
	}
	h, err := f.svc.History(ctx, c, records.HistoryRequest{Type: "Patient", ID: f.pat})
	if check("instance history", err) {
		add("instance history", h.Entries...)
	}
	for name, q := range map[string]struct {
		typ    string
		params url.Values
	}{
		"search":                {"Patient", url.Values{"_id": {f.pat}}},
		"search _summary":       {"Patient", url.Values{"_id": {f.pat}, "_summary": {"true"}}},
		"search _elements":      {"Patient", url.Values{"_id": {f.pat}, "_elements": {"identifier"}}},
		"search by identifier":  {"Patient", url.Values{"identifier": {"urn:example:mrn|" + maskMRN}}},
		"_include":              {"Observation", url.Values{"_id": {f.obs}, "_include": {"Observation:subject"}}},
		"_revinclude":           {"Organization", url.Values{"_id": {f.org}, "_revinclude": {"Patient:organization"}}},
		"_include and _summary": {"Observation", url.Values{"_id": {f.obs}, "_include": {"Observation:patient"}, "_summary": {"data"}}},
	} {
		res, err := f.svc.Search(ctx, c, q.typ, q.params)
		if check(name, err) {
			add(name, res.Matches...)
			add(name, res.Included...)
		}
	}
	if withEverything {
		err := f.svc.Everything(ctx, c, f.pat, func(e records.Entry) error { add("$everything", e); return nil })
		check("$everything", err)
	}
	for _, typ := range []string{"transaction", "batch"} {
		res, err := f.svc.Transaction(ctx, c, bundle(t, "transaction", entry("GET", "Patient/"+f.pat, ""), entry("GET", "Patient?_id="+f.pat, "")))
		if typ == "batch" {
			res, err = f.svc.Batch(ctx, c, bundle(t, "batch", entry("GET", "Patient/"+f.pat, ""), entry("GET", "Observation?_id="+f.obs+"&_include=Observation:subject", "")))
		}
		if check(typ, err) {
			for _, r := range res {
				check(typ+" entry", r.Err)
				add(typ, r.Entry)
				if r.Search != nil {
					add(typ, r.Search.Matches...)
					add(typ, r.Search.Included...)
				}
			}
		}
	}
	// A conditional create that matches returns the match.
	e, created, err := f.svc.CreateIfNoneExist(ctx, c, parse(t, f.patientBody("", true)), "identifier=urn:example:mrn|"+maskMRN)
	if errors.Is(err, records.ErrForbidden) {
		// A role that may not create: nothing served.
	} else if check("conditional create", err) {
		if created {
			t.Error("conditional create created a second Patient")
		}
		add("conditional create", e)
	}
	return out
}

func TestMaskEveryPath(t *testing.T) {
	f := newMaskFixture(t)
	ctx := context.Background()

	for name, c := range map[string]records.Caller{"practitioner": f.pract, "clerk": f.clerk} {
		got := f.served(c, name == "practitioner")
		if len(got) < 12 {
			t.Errorf("%s: only %d paths served anything", name, len(got))
		}
		for path, body := range got {
			if bytes.Contains(body, []byte(maskSSN)) || bytes.Contains(body, []byte("4320")) {
				t.Errorf("%s: %s served the social security number", name, path)
			}
			if bytes.Contains(body, []byte(`"Patient"`)) && (!bytes.Contains(body, []byte(maskMRN)) || !bytes.Contains(body, []byte(`"code":"REDACTED"`))) {
				t.Errorf("%s: %s served a Patient without its MRN or without the REDACTED label", name, path)
			}
		}
	}

	// A masked view keeps the stored version: versionId, version and id.
	e, err := f.svc.Read(ctx, f.pract, "Patient", f.pat)
	if err != nil || e.Version != 2 || !bytes.Contains(e.Body, []byte(`"versionId":"2"`)) {
		t.Errorf("masked read: version %d, %v: %s", e.Version, err, e.Body)
	}
	if _, err := fhir.Parse(e.Body, fhir.Limits{}); err != nil {
		t.Errorf("masked Patient does not parse: %v", err)
	}

	// Type and system history, which only a role reaching every patient has.
	for _, typ := range []string{"Patient", ""} {
		h, err := f.svc.History(ctx, f.clerk, records.HistoryRequest{Type: typ})
		if err != nil || len(h.Entries) < 2 {
			t.Fatalf("%q history: %d entries, %v", typ, len(h.Entries), err)
		}
		for _, e := range h.Entries {
			if bytes.Contains(e.Body, []byte(maskSSN)) {
				t.Errorf("%q history served the SSN of %s", typ, e.Location())
			}
		}
	}

	// Callers without a mask see it.
	for name, c := range map[string]records.Caller{"service": f.sys, "patient": f.self} {
		got := f.served(c, name == "service")
		for _, path := range []string{"read", "vread", "instance history", "search", "_include", "_revinclude", "transaction", "batch"} {
			if !bytes.Contains(got[path], []byte(maskSSN)) || bytes.Contains(got[path], []byte("REDACTED")) {
				t.Errorf("%s: %s did not serve the unmasked Patient", name, path)
			}
		}
	}
}

// A practitioner's read-modify-write keeps what the practitioner cannot
// see; writing what it cannot see is refused.
func TestMaskWrites(t *testing.T) {
	f := newMaskFixture(t)
	ctx := context.Background()
	stored := func() string {
		t.Helper()
		e, err := f.svc.Read(ctx, f.sys, "Patient", f.pat)
		if err != nil {
			t.Fatal(err)
		}
		return string(e.Body)
	}

	seen, err := f.svc.Read(ctx, f.pract, "Patient", f.pat)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(seen.Body), `"family":"Doe"`, `"family":"Roe"`, 1)
	e, _, err := f.svc.Update(ctx, f.pract, "Patient", f.pat, parse(t, edited), seen.Version)
	if err != nil {
		t.Fatalf("practitioner update: %v", err)
	}
	if bytes.Contains(e.Body, []byte(maskSSN)) || !bytes.Contains(e.Body, []byte("Roe")) {
		t.Errorf("the update answered with %s", e.Body)
	}
	got := stored()
	if !strings.Contains(got, maskSSN) || !strings.Contains(got, maskMRN) || !strings.Contains(got, "Roe") {
		t.Errorf("after the practitioner's update the stored Patient is %s", got)
	}
	if strings.Contains(got, "REDACTED") {
		t.Errorf("the REDACTED marker was stored: %s", got)
	}
	// The carried-over SSN is indexed: a search by it still finds the Patient.
	res, err := f.svc.Search(ctx, f.sys, "Patient", url.Values{"identifier": {policy.SSN + "|" + maskSSN}})
	if err != nil || len(res.Matches) != 1 {
		t.Errorf("search by the carried-over SSN: %d matches, %v", len(res.Matches), err)
	}

	// The same through a transaction and a batch.
	for _, typ := range []string{"transaction", "batch"} {
		seen, err := f.svc.Read(ctx, f.pract, "Patient", f.pat)
		if err != nil {
			t.Fatal(err)
		}
		b := bundle(t, typ, entry("PUT", "Patient/"+f.pat, strings.Replace(string(seen.Body), `"active":false`, `"active":true`, 1)))
		var results []records.EntryResult
		if typ == "transaction" {
			results, err = f.svc.Transaction(ctx, f.pract, b)
		} else {
			results, err = f.svc.Batch(ctx, f.pract, b)
		}
		if err != nil || results[0].Err != nil {
			t.Fatalf("%s PUT: %v %v", typ, err, results[0].Err)
		}
		if bytes.Contains(results[0].Entry.Body, []byte(maskSSN)) {
			t.Errorf("%s answered with the SSN", typ)
		}
		if got := stored(); !strings.Contains(got, maskSSN) || !strings.Contains(got, `"active":true`) {
			t.Errorf("after a %s PUT the stored Patient is %s", typ, got)
		}
		if _, _, err := f.svc.Update(ctx, f.sys, "Patient", f.pat, parse(t, f.patientBody(f.pat, false)), 0); err != nil {
			t.Fatal(err)
		}
	}

	// Refused, with nothing written: setting a masked element, directly or
	// in a contained resource.
	before := stored()
	withSSN := f.patientBody(f.pat, false)
	for name, write := range map[string]func() error{
		"update with the SSN": func() error {
			_, _, err := f.svc.Update(ctx, f.pract, "Patient", f.pat, parse(t, withSSN), 0)
			return err
		},
		"update with another SSN": func() error {
			_, _, err := f.svc.Update(ctx, f.pract, "Patient", f.pat, parse(t, strings.Replace(withSSN, maskSSN, "111-22-3333", 1)), 0)
			return err
		},
		"create with a contained SSN": func() error {
			_, err := f.svc.Create(ctx, f.pract, parse(t, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/`+f.pat+`"},`+
				`"contained":[{"resourceType":"Patient","id":"c","identifier":[{"system":"`+policy.SSN+`","value":"1"}]}]}`))
			return err
		},
	} {
		if err := write(); !errors.Is(err, records.ErrForbidden) {
			t.Errorf("%s: %v, want ErrForbidden", name, err)
		}
	}
	if stored() != before {
		t.Error("a refused write changed the Patient")
	}

	// The service and the patient's own role have no mask: a service writes
	// the SSN, and may remove it.
	if _, _, err := f.svc.Update(ctx, f.sys, "Patient", f.pat, parse(t, `{"resourceType":"Patient","id":"`+f.pat+`","active":true}`), 0); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stored(), maskSSN) {
		t.Error("a service's update kept an SSN it removed")
	}
}

// BenchmarkReadMasked reads a Synthea Patient that holds a social security
// number as a role with the practitioner's mask (clerk) and as the same
// role without it (viewer): the difference is what masking adds to serving
// the resource. A service and a practitioner read it too.
func BenchmarkReadMasked(b *testing.B) {
	t := &testing.T{}
	f := newMaskFixture(t)
	if t.Failed() {
		b.Fatal("fixture setup failed")
	}
	files := fhirtest.Files(b, "synthea", "*.json")
	data, err := os.ReadFile(files[0])
	if err != nil {
		b.Fatal(err)
	}
	r, err := fhir.Parse(data, fhir.Limits{MaxBytes: 8 << 20})
	if err != nil {
		b.Fatal(err)
	}
	bundle, err := fhir.ParseBundle(r)
	if err != nil {
		b.Fatal(err)
	}
	var patient *fhir.Resource
	for _, e := range bundle.Entries {
		if e.Resource != nil && e.Resource.Type == "Patient" {
			patient = e.Resource
			break
		}
	}
	if patient == nil || !bytes.Contains(patient.Marshal(), []byte(policy.SSN)) {
		b.Skip("no Synthea Patient with an SSN")
	}
	ctx := context.Background()
	patient.SetID(f.pat)
	if _, _, err := f.svc.Update(ctx, f.sys, "Patient", f.pat, patient, 0); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		c    records.Caller
	}{{"viewer", f.viewer}, {"clerk", f.clerk}, {"service", f.sys}, {"practitioner", f.pract}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				e, err := f.svc.Read(ctx, bc.c, "Patient", f.pat)
				if err != nil || len(e.Body) == 0 {
					b.Fatal(err)
				}
			}
		})
	}
}

// A search by what a role may not see would tell it what it holds (which
// patient has this SSN): its criteria are refused; criteria naming other
// systems of a partly masked element are not.
func TestMaskSearchCriteria(t *testing.T) {
	f := newMaskFixture(t)
	ctx := context.Background()
	for _, tc := range []struct {
		c      records.Caller
		typ    string
		query  string
		refuse bool
	}{
		{f.pract, "Patient", "identifier=urn:example:mrn|" + maskMRN, false},
		{f.pract, "Patient", "identifier=urn:example:mrn|" + maskMRN + ",urn:example:mrn|2", false},
		{f.pract, "Patient", "identifier=" + policy.SSN + "|" + maskSSN, true},
		{f.pract, "Patient", "identifier=urn:example:mrn|1," + policy.SSN + "|" + maskSSN, true},
		{f.pract, "Patient", "identifier=" + maskSSN, true}, // a bare value matches every system
		{f.pract, "Patient", "identifier:missing=false", true},
		{f.pract, "Patient", "identifier:not=" + policy.SSN + "|" + maskSSN, true},
		{f.pract, "Patient", "family=Doe", false},
		{f.pract, "Observation", "subject=Patient/" + f.pat, false},
		{f.sys, "Patient", "identifier=" + policy.SSN + "|" + maskSSN, false},
		{f.self, "Patient", "identifier=" + maskSSN, false},
		{f.analyst, "Observation", "value-quantity=gt5", true},
		{f.analyst, "Observation", "combo-value-quantity=gt5", true},
		{f.analyst, "Observation", "_sort=value-quantity", true},
		{f.analyst, "Observation", "code=http://loinc.org|8867-4", false},
		{f.analyst, "Patient", "organization=Organization/" + f.org, true},
		{f.analyst, "Patient", "identifier=" + maskSSN, false},
	} {
		params, err := url.ParseQuery(tc.query)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.svc.Search(ctx, tc.c, tc.typ, params)
		if got := errors.Is(err, records.ErrForbidden); got != tc.refuse || (!tc.refuse && err != nil) {
			t.Errorf("%s %s?%s: %v, refused %v", tc.c.Role, tc.typ, tc.query, err, tc.refuse)
		}
	}

	// Conditional criteria are searches too.
	_, _, err := f.svc.UpdateWhere(ctx, f.pract, "Patient", "identifier="+policy.SSN+"|"+maskSSN, parse(t, `{"resourceType":"Patient","active":true}`))
	if !errors.Is(err, records.ErrForbidden) {
		t.Errorf("conditional update on the SSN: %v", err)
	}

	// _revinclude through a masked reference leaves the referrers out.
	for _, tc := range []struct {
		c    records.Caller
		want int
	}{{f.viewer, 1}, {f.analyst, 0}} {
		res, err := f.svc.Search(ctx, tc.c, "Organization", url.Values{"_id": {f.org}, "_revinclude": {"Patient:organization"}})
		if err != nil || len(res.Matches) != 1 || len(res.Included) != tc.want {
			t.Errorf("%s _revinclude: %d matches, %d included, %v; want %d included", tc.c.Role, len(res.Matches), len(res.Included), err, tc.want)
		}
	}
	e, err := f.svc.Read(ctx, f.analyst, "Patient", f.pat)
	if err != nil || bytes.Contains(e.Body, []byte("managingOrganization")) || !bytes.Contains(e.Body, []byte(maskSSN)) {
		t.Errorf("analyst read: %v %s", err, e.Body)
	}
}

// TestMaskReferenceIdentifiers: the practitioner's mask hides a social
// security number given as a reference's identifier, next to the literal
// reference, on every read and search, refuses :identifier searches that
// could match it, and keeps it through the practitioner's updates.
func TestMaskReferenceIdentifiers(t *testing.T) {
	f := newMaskFixture(t)
	ctx := context.Background()
	body := `{"resourceType":"Observation","status":"final","code":{"text":"weight"},` +
		`"subject":{"reference":"Patient/` + f.pat + `","identifier":{"system":"` + policy.SSN + `","value":"` + maskSSN + `"}}}`
	o, err := f.svc.Create(ctx, f.sys, parse(t, body))
	if err != nil {
		t.Fatal(err)
	}
	e, err := f.svc.Read(ctx, f.pract, "Observation", o.ID)
	if err != nil || bytes.Contains(e.Body, []byte(maskSSN)) || !bytes.Contains(e.Body, []byte(`"reference":"Patient/`+f.pat+`"`)) ||
		!bytes.Contains(e.Body, []byte(fhir.RedactedCode)) {
		t.Fatalf("practitioner read: %v %s", err, e.Body)
	}
	res, err := f.svc.Search(ctx, f.pract, "Observation", url.Values{"subject": {"Patient/" + f.pat}})
	if err != nil || len(res.Matches) != 2 {
		t.Fatalf("practitioner search: %v, %d matches", err, len(res.Matches))
	}
	for _, m := range res.Matches {
		if bytes.Contains(m.Body, []byte(maskSSN)) {
			t.Fatalf("practitioner search served the SSN: %s", m.Body)
		}
	}
	if e, err := f.svc.Read(ctx, f.sys, "Observation", o.ID); err != nil || !bytes.Contains(e.Body, []byte(maskSSN)) {
		t.Fatalf("system read: %v %s", err, e.Body)
	}

	for _, tc := range []struct {
		c      records.Caller
		query  string
		refuse bool
	}{
		{f.pract, "subject:identifier=" + policy.SSN + "|" + maskSSN, true},
		{f.pract, "subject:identifier=" + maskSSN, true}, // a bare value matches every system
		{f.pract, "subject:identifier=urn:example:mrn|1," + policy.SSN + "|" + maskSSN, true},
		{f.pract, "subject:identifier=urn:example:mrn|" + maskMRN, false},
		{f.clerk, "subject:identifier=" + policy.SSN + "|" + maskSSN, false}, // the clerk's mask names Patient.identifier only
		{f.sys, "subject:identifier=" + policy.SSN + "|" + maskSSN, false},
	} {
		params, err := url.ParseQuery(tc.query)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.svc.Search(ctx, tc.c, "Observation", params)
		if got := errors.Is(err, records.ErrForbidden); got != tc.refuse || (!tc.refuse && err != nil) {
			t.Errorf("%s Observation?%s: %v, refused %v", tc.c.Role, tc.query, err, tc.refuse)
		}
	}

	// A read-modify-write keeps what the practitioner could not see.
	seen := parse(t, string(e.Body))
	seen.Object["status"] = "amended"
	if _, _, err := f.svc.Update(ctx, f.pract, "Observation", o.ID, seen, 0); err != nil {
		t.Fatalf("practitioner update: %v", err)
	}
	stored, err := f.svc.Read(ctx, f.sys, "Observation", o.ID)
	if err != nil || !bytes.Contains(stored.Body, []byte(maskSSN)) || !bytes.Contains(stored.Body, []byte(`"amended"`)) || bytes.Contains(stored.Body, []byte(fhir.RedactedCode)) {
		t.Fatalf("after the practitioner's update: %v %s", err, stored.Body)
	}
	// Setting one, or replacing the reference that holds one, is refused.
	seen = parse(t, string(e.Body))
	seen.Object["subject"] = map[string]any{"reference": "Patient/" + f.pat, "identifier": map[string]any{"system": policy.SSN, "value": "1"}}
	if _, _, err := f.svc.Update(ctx, f.pract, "Observation", o.ID, seen, 0); !errors.Is(err, records.ErrForbidden) {
		t.Errorf("practitioner sets a reference SSN: %v", err)
	}
	if _, err := f.svc.Create(ctx, f.pract, parse(t, body)); !errors.Is(err, records.ErrForbidden) {
		t.Errorf("practitioner creates with a reference SSN: %v", err)
	}
}
