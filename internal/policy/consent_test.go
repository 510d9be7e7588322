package policy

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/fhir"
)

var (
	hiv  = Label{SystemActCode, "HIV"}
	psy  = Label{SystemActCode, "PSY"}
	resR = LabelRestricted
	resV = LabelVeryRestricted
	norm = Label{SystemConfidentiality, "N"}
	test = Label{"http://terminology.hl7.org/CodeSystem/v3-ActReason", "HTEST"}
)

func TestSensitivityCodesSorted(t *testing.T) {
	if len(sensitivityCodes) > 64 || !slices.IsSorted(sensitivityCodes) || len(slices.Compact(slices.Clone(sensitivityCodes))) != len(sensitivityCodes) {
		t.Fatal("sensitivity codes must be sorted, distinct and at most 64: they index a uint64")
	}
}

func TestClassOf(t *testing.T) {
	tests := []struct {
		labels []Label
		want   Class
	}{
		{nil, 0},
		{[]Label{norm, test}, 0},
		{[]Label{{SystemConfidentiality, "L"}, {SystemConfidentiality, "M"}, {SystemConfidentiality, "U"}}, 0},
		{[]Label{resR}, ClassRestricted},
		{[]Label{resV}, ClassVeryRestricted},
		{[]Label{hiv}, ClassSensitive},
		{[]Label{{SystemActCode, "ETH"}, {SystemActCode, "SUD"}, {SystemActCode, "SEX"}}, ClassSensitive},
		{[]Label{resR, psy}, ClassRestricted | ClassSensitive},
		{[]Label{{"", "HIV"}}, 0},                  // no system: not Ward's label
		{[]Label{{SystemActCode, "TREAT"}}, 0},     // an ActCode that is not a sensitivity
		{[]Label{{SystemConfidentiality, "r"}}, 0}, // codes are case-sensitive
		{[]Label{{SystemActReason, "HIV"}}, 0},     // another system
		{[]Label{resV, resR, hiv}, classAll},
	}
	for _, tt := range tests {
		if got := ClassOf(tt.labels); got != tt.want {
			t.Errorf("ClassOf(%v) = %b, want %b", tt.labels, got, tt.want)
		}
	}
}

func TestSecurityLabels(t *testing.T) {
	res, err := fhir.Parse([]byte(`{"resourceType":"Observation","meta":{"security":[
		{"system":"`+SystemActCode+`","code":"HIV"},{"system":"x","display":"no code"},{"code":"R"}]}}`), fhir.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	got := SecurityLabels(res)
	want := []Label{hiv, {"", "R"}}
	if !slices.Equal(got, want) {
		t.Fatalf("SecurityLabels = %v, want %v", got, want)
	}
	if !SameLabels([]Label{hiv, resR, hiv}, []Label{resR, hiv}) || SameLabels([]Label{hiv}, []Label{hiv, resR}) {
		t.Fatal("SameLabels")
	}
	if !LabelsWithin(nil, []Label{hiv}) || LabelsWithin([]Label{psy}, []Label{hiv}) {
		t.Fatal("LabelsWithin")
	}
}

func TestMayRelabel(t *testing.T) {
	p, err := New([]Role{{Name: "labeller", Reach: ReachAll, Relabel: true, Grants: mustScopes("user/*.cruds")}})
	if err != nil {
		t.Fatal(err)
	}
	allow := Decision{Allow: true}
	bound := Decision{Allow: true, Patients: []string{"a"}}
	person := func(role string) Subject { return Subject{ClientID: "app", UserID: "u", Role: role} }
	tests := []struct {
		name string
		sub  Subject
		d    Decision
		want bool
	}{
		{"system service", Subject{ClientID: "svc"}, allow, true},
		{"service for a launch patient", Subject{ClientID: "svc", Patient: "a"}, bound, false},
		{"denied", Subject{ClientID: "svc"}, Decision{}, false},
		{"practitioner", person(RolePractitioner), bound, false},
		{"patient", person(RolePatient), bound, false},
		{"privacy officer", person(RolePrivacyOfficer), allow, false},
		{"admin", person(RoleAdmin), allow, false},
		{"configured role with Relabel", person("labeller"), allow, true},
		{"unknown role", person("nobody"), allow, false},
	}
	for _, tt := range tests {
		if got := p.MayRelabel(tt.sub, tt.d); got != tt.want {
			t.Errorf("%s: MayRelabel = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func consentJSON(t testing.TB, body string) Consent {
	t.Helper()
	res, err := fhir.Parse([]byte(body), fhir.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return ParseConsent(res)
}

const privacy = `"scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},"patient":{"reference":"Patient/a"}`

func TestParseConsent(t *testing.T) {
	c := consentJSON(t, `{"resourceType":"Consent","id":"c1","status":"active",`+privacy+`,
		"provision":{"type":"deny","period":{"start":"2024-01-01","end":"2024-12"},
		  "actor":[{"reference":{"reference":"Practitioner/y"}}],
		  "purpose":[{"system":"`+SystemActReason+`","code":"HPAYMT"}],
		  "class":[{"system":"http://hl7.org/fhir/resource-types","code":"Observation"}],
		  "securityLabel":[{"system":"`+SystemActCode+`","code":"HIV"},{"system":"`+SystemConfidentiality+`","code":"N"}],
		  "provision":[{"actor":[{"reference":{"reference":"Practitioner/x"}}],"type":"permit","period":{"end":"2024-06-15T12:00:00Z"}},
		    {"actor":[{"reference":{"reference":"Practitioner/z"}}]}]}}`)
	if !c.Active || c.Patient != "a" || c.ID != "c1" || len(c.Rules) != 3 {
		t.Fatalf("ParseConsent = %+v", c)
	}
	d, p, inherited := c.Rules[0], c.Rules[1], c.Rules[2]
	day := func(s string) time.Time { tm, _ := time.Parse(time.RFC3339, s); return tm }
	if d.Permit || !slices.Equal(d.Actors, []string{"Practitioner/y"}) || !slices.Equal(d.Purposes, []string{"HPAYMT"}) ||
		!slices.Equal(d.Types, []string{"Observation"}) || !slices.Equal(d.Labels, []Label{hiv}) ||
		!d.Start.Equal(day("2024-01-01T00:00:00Z")) || !d.End.Equal(day("2025-01-01T00:00:00Z")) || d.Void {
		t.Fatalf("root rule = %+v", d)
	}
	if !p.Permit || !p.End.Equal(day("2024-06-15T12:00:01Z")) || !p.Start.Equal(d.Start) || p.Void {
		t.Fatalf("nested permit = %+v (period within the parent's)", p)
	}
	if inherited.Permit || !slices.Equal(inherited.Actors, []string{"Practitioner/z"}) {
		t.Fatalf("nested provision without a type takes its parent's: %+v", inherited)
	}

	inactive := []string{
		`{"resourceType":"Consent","status":"draft",` + privacy + `}`,
		`{"resourceType":"Consent","status":"inactive",` + privacy + `}`,
		`{"resourceType":"Consent","status":"active","scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"research"}]},"patient":{"reference":"Patient/a"}}`,
		`{"resourceType":"Consent","status":"active","scope":{"coding":[{"system":"other","code":"patient-privacy"}]},"patient":{"reference":"Patient/a"}}`,
		`{"resourceType":"Consent","status":"active","scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]}}`,
		`{"resourceType":"Consent","status":"active","scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},"patient":{"reference":"Group/a"}}`,
	}
	for _, body := range inactive {
		if c := consentJSON(t, body); c.Active {
			t.Errorf("%s: active", body)
		}
	}

	// What Ward cannot evaluate voids a permit and broadens a deny.
	unknown := []struct {
		prov string
		void bool // for the permit
		deny func(Rule) bool
	}{
		{`"actor":[{"reference":{"identifier":{"value":"x"}}}]`, true, func(r Rule) bool { return len(r.Actors) == 0 }},
		{`"class":[{"system":"urn:other","code":"lab"}]`, true, func(r Rule) bool { return len(r.Types) == 0 }},
		{`"class":[{"system":"http://hl7.org/fhir/resource-types","code":"Observation"},{"system":"urn:other","code":"lab"}]`, true, func(r Rule) bool { return len(r.Types) == 0 }},
		{`"code":[{"coding":[{"system":"http://loinc.org","code":"1"}]}]`, true, func(r Rule) bool { return true }},
		{`"data":[{"meaning":"instance","reference":{"reference":"Observation/1"}}]`, true, func(r Rule) bool { return true }},
		{`"action":[{"coding":[{"code":"disclose"}]}]`, true, func(r Rule) bool { return true }},
		{`"period":{"start":"yesterday"}`, true, func(r Rule) bool { return r.Start.IsZero() }},
		{`"securityLabel":[{"system":"` + SystemConfidentiality + `","code":"N"}]`, true, func(r Rule) bool { return len(r.Labels) == 0 }},
		{`"action":[{"coding":[{"code":"access"}]}]`, false, func(r Rule) bool { return true }},
	}
	for _, u := range unknown {
		for _, typ := range []string{"permit", "deny"} {
			prov := u.prov
			if !strings.HasPrefix(prov, `"actor"`) {
				prov = `"actor":[{"reference":{"reference":"Practitioner/x"}}],` + prov
			}
			c := consentJSON(t, `{"resourceType":"Consent","status":"active",`+privacy+`,"provision":{"type":"`+typ+`",`+prov+`}}`)
			if len(c.Rules) != 1 {
				t.Fatalf("%s: %d rules", u.prov, len(c.Rules))
			}
			r := c.Rules[0]
			if typ == "permit" && r.Void != u.void {
				t.Errorf("permit with %s: Void = %v, want %v", u.prov, r.Void, u.void)
			}
			if typ == "deny" && (r.Void || !u.deny(r)) {
				t.Errorf("deny with %s: %+v, want it broader", u.prov, r)
			}
		}
	}
}

// TestView is the table of the label and Consent rules: who sees which
// labelled data of patient a.
func TestView(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	pol, err := New([]Role{{Name: "analyst", Reach: ReachAll, Grants: mustScopes("user/*.rs")}})
	if err != nil {
		t.Fatal(err)
	}
	person := func(role, fhirUser string) Subject {
		return Subject{ClientID: "app", UserID: "u", Role: role, FHIRUser: fhirUser, Scopes: mustScopes("user/*.cruds"), Related: []string{"a", "b"}}
	}
	patientA := Subject{ClientID: "app", UserID: "ua", Role: RolePatient, FHIRUser: "Patient/a", Scopes: mustScopes("user/*.rs")}
	patientB := Subject{ClientID: "app", UserID: "ub", Role: RolePatient, FHIRUser: "Patient/b", Scopes: mustScopes("user/*.rs")}
	x, y := person(RolePractitioner, "Practitioner/x"), person(RolePractitioner, "Practitioner/y")
	stranger := person(RolePractitioner, "Practitioner/s")
	stranger.Related, stranger.Emergency = nil, []string{"a"}
	yGrant := y
	yGrant.Emergency = []string{"a"}
	analyst := person("analyst", "Practitioner/n")
	system := Subject{ClientID: "svc", Scopes: mustScopes("system/*.rs")}
	launched := Subject{ClientID: "svc", Scopes: mustScopes("patient/*.rs"), Patient: "a"}

	consent := func(prov string) Consent {
		return consentJSON(t, `{"resourceType":"Consent","status":"active",`+privacy+`,"provision":`+prov+`}`)
	}
	actor := func(ref string) string { return `"actor":[{"reference":{"reference":"` + ref + `"}}]` }
	label := func(l Label) string { return `"securityLabel":[{"system":"` + l.System + `","code":"` + l.Code + `"}]` }
	permitXHIV := consent(`{"type":"permit",` + actor("Practitioner/x") + `,` + label(hiv) + `}`)
	permitXAll := consent(`{"type":"permit",` + actor("Practitioner/x") + `}`)
	permitXV := consent(`{"type":"permit",` + actor("Practitioner/x") + `,` + label(resV) + `}`)
	denyY := consent(`{"type":"deny",` + actor("Practitioner/y") + `}`)
	denyAll := consent(`{"type":"deny"}`)
	denyYObs := consent(`{"type":"deny",` + actor("Practitioner/y") + `,"class":[{"system":"http://hl7.org/fhir/resource-types","code":"Observation"}]}`)
	expired := consent(`{"type":"deny",` + actor("Practitioner/y") + `,"period":{"end":"2025-02-28"}}`)
	future := consent(`{"type":"permit",` + actor("Practitioner/x") + `,"period":{"start":"2025-03-02"}}`)
	permitXTreat := consent(`{"type":"permit",` + actor("Practitioner/x") + `,"purpose":[{"code":"TREAT"}]}`)
	denyPayment := consent(`{"type":"deny","purpose":[{"code":"HPAYMT"}]}`)
	permitXDenyHIV := consent(`{"type":"permit",` + actor("Practitioner/x") + `,"provision":[{"type":"deny",` + actor("Practitioner/x") + `,` + label(hiv) + `}]}`)
	inactiveDeny := consentJSON(t, `{"resourceType":"Consent","status":"inactive",`+privacy+`,"provision":{"type":"deny"}}`)
	otherPatient := consentJSON(t, `{"resourceType":"Consent","status":"active","scope":{"coding":[{"code":"patient-privacy"}]},"patient":{"reference":"Patient/b"},"provision":{"type":"deny"}}`)

	normal := []Label(nil)
	labels := map[string][]Label{"N": normal, "HIV": {hiv}, "PSY": {psy}, "R": {resR}, "V": {resV}, "R+HIV": {resR, hiv}, "HIV+PSY": {hiv, psy}, "HTEST": {test}}
	tests := []struct {
		name     string
		sub      Subject
		typ      string
		patient  string
		consents []Consent
		purpose  string
		sees     string // the keys of labels the subject sees, in order N HIV PSY R V R+HIV HIV+PSY HTEST
	}{
		{"system service sees everything", system, "Observation", "a", []Consent{denyAll}, "", "N HIV PSY R V R+HIV HIV+PSY HTEST"},
		{"the patient sees their own, whatever their Consent", patientA, "Observation", "a", []Consent{denyAll}, "", "N HIV PSY R V R+HIV HIV+PSY HTEST"},
		{"another patient is not the patient", patientB, "Observation", "a", nil, "", "N HTEST"},
		{"related practitioner: normal only", y, "Observation", "a", nil, "", "N HTEST"},
		{"a service for a launch patient: normal only", launched, "Observation", "a", nil, "", "N HTEST"},
		{"configured role reaching all: normal only", analyst, "Observation", "a", nil, "", "N HTEST"},
		{"permit x HIV", x, "Observation", "a", []Consent{permitXHIV}, "", "N HIV HTEST"},
		{"permit x HIV does not reach y", y, "Observation", "a", []Consent{permitXHIV}, "", "N HTEST"},
		{"permit x without labels: all but nothing more", x, "Observation", "a", []Consent{permitXAll}, "", "N HIV PSY R V R+HIV HIV+PSY HTEST"},
		{"permit x V", x, "Observation", "a", []Consent{permitXV}, "", "N V HTEST"},
		{"deny y hides everything", y, "Observation", "a", []Consent{denyY}, "", ""},
		{"deny y does not touch x", x, "Observation", "a", []Consent{denyY, permitXHIV}, "", "N HIV HTEST"},
		{"deny everyone", x, "Observation", "a", []Consent{denyAll}, "", ""},
		{"deny everyone wins over a permit", x, "Observation", "a", []Consent{denyAll, permitXAll}, "", ""},
		{"deny y Observations", y, "Observation", "a", []Consent{denyYObs}, "", ""},
		{"deny y Observations leaves Conditions", y, "Condition", "a", []Consent{denyYObs}, "", "N HTEST"},
		{"deny y Observations hides Provenances, which may be about one", y, "Provenance", "a", []Consent{denyYObs}, "", ""},
		{"a permit of Observations does not reach Provenances", x, "Provenance", "a", []Consent{consent(`{"type":"permit",` + actor("Practitioner/x") + `,"class":[{"system":"http://hl7.org/fhir/resource-types","code":"Observation"}]}`)}, "", "N HTEST"},
		{"expired deny has no effect", y, "Observation", "a", []Consent{expired}, "", "N HTEST"},
		{"permit not yet in force", x, "Observation", "a", []Consent{future}, "", "N HTEST"},
		{"inactive deny has no effect", y, "Observation", "a", []Consent{inactiveDeny}, "", "N HTEST"},
		{"another patient's Consent has no effect", y, "Observation", "a", []Consent{otherPatient}, "", "N HTEST"},
		{"permit for TREAT, purpose TREAT", x, "Observation", "a", []Consent{permitXTreat}, "TREAT", "N HIV PSY R V R+HIV HIV+PSY HTEST"},
		{"permit for TREAT, no purpose stated", x, "Observation", "a", []Consent{permitXTreat}, "", "N HTEST"},
		{"permit for TREAT, purpose HPAYMT", x, "Observation", "a", []Consent{permitXTreat}, "HPAYMT", "N HTEST"},
		{"deny for payment, purpose payment", x, "Observation", "a", []Consent{denyPayment}, "HPAYMT", ""},
		{"deny for payment, purpose TREAT", x, "Observation", "a", []Consent{denyPayment}, "TREAT", "N HTEST"},
		{"deny for payment, no purpose stated", x, "Observation", "a", []Consent{denyPayment}, "", ""},
		{"nested deny of HIV within a permit", x, "Observation", "a", []Consent{permitXDenyHIV}, "", "N PSY R V HTEST"},
		{"break the glass overrides a deny, lifts R and sensitivity, not V", stranger, "Observation", "a", []Consent{denyAll}, "", "N HIV PSY R R+HIV HIV+PSY HTEST"},
		{"break the glass with a permit for V", stranger, "Observation", "a", []Consent{denyAll, consent(`{"type":"permit",` + actor("Practitioner/s") + `,` + label(resV) + `}`)}, PurposeBTG, "N HIV PSY R V R+HIV HIV+PSY HTEST"},
		{"the BTG purpose without a grant overrides nothing", y, "Observation", "a", []Consent{denyAll}, PurposeBTG, ""},
		{"a grant for a related patient is no emergency", yGrant, "Observation", "a", []Consent{denyY}, "", ""},
		{"shared resources: normal only", x, "Organization", "", nil, "", "N HTEST"},
	}
	order := []string{"N", "HIV", "PSY", "R", "V", "R+HIV", "HIV+PSY", "HTEST"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := pol.Decide(tt.sub, Request{Action: ActionRead, Type: tt.typ})
			if !d.Allow {
				t.Fatalf("decision %+v", d)
			}
			v := pol.View(tt.sub, d, Facts{Type: tt.typ, Patient: tt.patient, Consents: tt.consents, Purpose: tt.purpose, Now: now})
			var sees []string
			for _, k := range order {
				admit := v.Admits(labels[k])
				if a, known := v.AdmitsClass(ClassOf(labels[k])); known && a != admit {
					t.Errorf("%s: AdmitsClass = %v, Admits = %v", k, a, admit)
				}
				if admit {
					sees = append(sees, k)
				}
			}
			got := ""
			for i, s := range sees {
				if i > 0 {
					got += " "
				}
				got += s
			}
			if got != tt.sees {
				t.Fatalf("sees %q, want %q", got, tt.sees)
			}
			if v.Hidden() != (tt.sees == "") {
				t.Fatalf("Hidden = %v", v.Hidden())
			}
		})
	}
}

// TestViewPartial: a view that sees some sensitivity codes names the
// others, so that a search can leave out exactly what it does not see.
func TestViewPartial(t *testing.T) {
	x := Subject{ClientID: "app", UserID: "u", Role: RolePractitioner, FHIRUser: "Practitioner/x", Scopes: mustScopes("user/*.rs"), Related: []string{"a"}}
	d := Decide(x, Request{Action: ActionSearch, Type: "Observation"})
	c := consentJSON(t, `{"resourceType":"Consent","status":"active",`+privacy+`,"provision":{"type":"permit","actor":[{"reference":{"reference":"Practitioner/x"}}],"securityLabel":[{"system":"`+SystemActCode+`","code":"HIV"}]}}`)
	v := Policy{}.View(x, d, Facts{Type: "Observation", Patient: "a", Consents: []Consent{c}, Now: time.Now()})
	if !v.Partial() || v.Classes() != 0 || v.All() {
		t.Fatalf("view %+v: want partial", v)
	}
	hidden := v.HiddenCodes()
	if len(hidden) != len(sensitivityCodes)-1 || slices.Contains(hidden, hiv) || !slices.Contains(hidden, psy) {
		t.Fatalf("HiddenCodes = %v", hidden)
	}
	if _, known := v.AdmitsClass(ClassSensitive); known {
		t.Fatal("a partial view cannot decide a sensitive resource by its class")
	}
	full := Policy{}.View(Subject{ClientID: "svc", Scopes: mustScopes("system/*.rs")}, Decision{Allow: true}, Facts{})
	if !full.All() || full.Partial() || len(full.HiddenCodes()) != 0 {
		t.Fatalf("unrestricted view %+v", full)
	}
}

func BenchmarkView(b *testing.B) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	x := Subject{ClientID: "app", UserID: "u", Role: RolePractitioner, FHIRUser: "Practitioner/x", Scopes: mustScopes("user/*.cruds"), Related: []string{"a", "b", "c"}}
	d := Decide(x, Request{Action: ActionRead, Type: "Observation"})
	consents := []Consent{
		consentJSON(b, `{"resourceType":"Consent","status":"active",`+privacy+`,"provision":{"type":"permit","actor":[{"reference":{"reference":"Practitioner/x"}}],"securityLabel":[{"system":"`+SystemActCode+`","code":"HIV"}]}}`),
		consentJSON(b, `{"resourceType":"Consent","status":"active",`+privacy+`,"provision":{"type":"deny","actor":[{"reference":{"reference":"Practitioner/y"}}],"period":{"start":"2024","end":"2026"}}}`),
	}
	labels := []Label{hiv}
	b.ReportAllocs()
	for b.Loop() {
		v := Policy{}.View(x, d, Facts{Type: "Observation", Patient: "a", Consents: consents, Now: now})
		if !v.Admits(labels) {
			b.Fatal("not admitted")
		}
	}
}
