package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/auth"
	"github.com/wardhealth/ward/internal/policy"
)

// accessLogPage is what a test reads of one $access-log page.
type accessLogPage struct {
	Link []struct {
		Relation, URL string
	} `json:"link"`
	Entry []struct {
		Resource struct {
			ID          string `json:"id"`
			Outcome     string `json:"outcome"`
			OutcomeDesc string `json:"outcomeDesc"`
			Subtype     []struct {
				Code string `json:"code"`
			} `json:"subtype"`
			Agent []struct {
				Who struct {
					Reference  string `json:"reference"`
					Identifier struct {
						System, Value string
					} `json:"identifier"`
				} `json:"who"`
				Role []struct {
					Coding []struct{ System, Code string } `json:"coding"`
				} `json:"role"`
				Requestor bool `json:"requestor"`
			} `json:"agent"`
			Entity []struct {
				What struct {
					Reference string `json:"reference"`
				} `json:"what"`
			} `json:"entity"`
		} `json:"resource"`
	} `json:"entry"`
}

func (p accessLogPage) next() string {
	for _, l := range p.Link {
		if l.Relation == "next" {
			return l.URL
		}
	}
	return ""
}

// TestAccessLog is catalogue H1: a patient asks who saw their record and
// gets every access that named them (denied attempts included) with who,
// in what role, through which app, and nothing about anyone else; nobody
// but the patient, a privacy officer or an auditor may ask.
func TestAccessLog(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	newPatient := func() string {
		return must(t, s.do("POST", "/fhir/Patient", map[string]any{"resourceType": "Patient", "active": true}), http.StatusCreated).json(t)["id"].(string)
	}
	pat, other := newPatient(), newPatient()
	obs := must(t, s.do("POST", "/fhir/Observation", map[string]any{"resourceType": "Observation", "status": "final",
		"code": map[string]any{"text": "pulse"}, "subject": map[string]any{"reference": "Patient/" + pat}}), http.StatusCreated).json(t)["id"].(string)
	pr := must(t, s.do("POST", "/fhir/Practitioner", map[string]any{"resourceType": "Practitioner", "active": true}), http.StatusCreated).json(t)["id"].(string)
	must(t, s.do("POST", "/fhir/CareTeam", map[string]any{"resourceType": "CareTeam", "subject": map[string]any{"reference": "Patient/" + pat},
		"participant": []any{map[string]any{"member": map[string]any{"reference": "Practitioner/" + pr}}}}), http.StatusCreated)
	people := map[string]auth.NewUser{
		"dr.log":    {Username: "dr.log", Role: policy.RolePractitioner, FHIRUser: "Practitioner/" + pr},
		"dr.other":  {Username: "dr.other", Role: policy.RolePractitioner},
		"pat.log":   {Username: "pat.log", Role: policy.RolePatient, FHIRUser: "Patient/" + pat},
		"pat.other": {Username: "pat.other", Role: policy.RolePatient, FHIRUser: "Patient/" + other},
	}
	ids := map[string]string{}
	for name, u := range people {
		u.Password = testPassword
		created, err := s.users.Create(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		ids[name] = created.ID
	}
	token := func(user, scope string) []string {
		app := s.newApp(false, "openid", scope)
		rp := s.relyingParty(app, "openid", scope)
		return []string{"Authorization", "Bearer " + rp.exchange(t, s.signIn(s.newBrowser(), app, rp.authURL("st"), user, testPassword)).AccessToken}
	}
	doctor, stranger := token("dr.log", "user/*.cruds"), token("dr.other", "user/*.cruds")
	patient, otherPatient := token("pat.log", "user/*.rs"), token("pat.other", "user/*.rs")

	// What the log must show: the doctor's read, the stranger's refused
	// one (answered as an unknown id), and the service's search.
	must(t, s.do("GET", "/fhir/Observation/"+obs, nil, doctor...), http.StatusOK)
	if st := s.do("GET", "/fhir/Observation/"+obs, nil, stranger...).status; st != http.StatusNotFound {
		t.Fatalf("unrelated practitioner's read: %d, want 404", st)
	}
	must(t, s.do("GET", "/fhir/Observation?subject=Patient/"+pat, nil), http.StatusOK)
	must(t, s.do("GET", "/fhir/Patient/"+other, nil), http.StatusOK) // names only the other patient

	path := "/fhir/Patient/" + pat + "/$access-log"
	for name, c := range map[string]struct {
		auth []string
		want int
	}{
		"another patient":              {otherPatient, http.StatusForbidden},
		"the patient's practitioner":   {doctor, http.StatusForbidden},
		"a service without audit data": {[]string{"Authorization", "Bearer " + s.newToken("system/*.rs")}, http.StatusForbidden},
		"no token":                     {[]string{"Authorization", ""}, http.StatusUnauthorized},
	} {
		if st := s.do("GET", path, nil, c.auth...).status; st != c.want {
			t.Errorf("%s reads the access log: %d, want %d", name, st, c.want)
		}
	}
	if st := s.do("GET", "/fhir/Patient/"+other+"/$access-log", nil, patient...).status; st != http.StatusForbidden {
		t.Errorf("a patient reads another patient's access log: %d, want 403", st)
	}

	// The patient pages through their log: every entry naming them, once,
	// the refusals above included (each names the patient it asked for).
	var naming []string
	for i, e := range ledgerEntriesRaw(t, s, 0) { // in index order: i is the entry's index
		if e.Patient == pat || slices.Contains(e.Patients, pat) {
			naming = append(naming, strconv.Itoa(i))
		}
	}
	from := ledgerSize(t, s)
	var got []string
	var page accessLogPage
	denied, doctorRead := false, false
	for next, pages := path+"?_count=3", 0; next != ""; pages++ {
		if pages > 50 {
			t.Fatal("the access log does not end")
		}
		if err := json.Unmarshal(must(t, s.do("GET", strings.TrimPrefix(next, s.base), nil, patient...), http.StatusOK).body, &page); err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Entry {
			ae := e.Resource
			got = append(got, ae.ID)
			names := false
			for _, en := range ae.Entity {
				names = names || en.What.Reference == "Patient/"+pat
				if en.What.Reference == "Patient/"+other {
					t.Errorf("entry %s names the other patient", ae.ID)
				}
			}
			if !names {
				t.Errorf("entry %s does not name the patient", ae.ID)
			}
			person := ae.Agent[0]
			switch person.Who.Identifier.Value {
			case ids["dr.other"]:
				denied = denied || (ae.Outcome == "4" && ae.OutcomeDesc == "denied")
			case ids["dr.log"]:
				doctorRead = doctorRead || (person.Requestor && person.Who.Reference == "Practitioner/"+pr &&
					len(person.Role) == 1 && person.Role[0].Coding[0].Code == policy.RolePractitioner && ae.Subtype[0].Code == "read")
			}
		}
		next = page.next()
	}
	// Reading the log adds entries naming the patient as it goes: those
	// are the ones past from.
	var before []string
	for _, id := range got {
		if n, _ := strconv.Atoi(id); int64(n) < from {
			before = append(before, id)
		}
	}
	byIndex := func(a, b string) int { x, _ := strconv.Atoi(a); y, _ := strconv.Atoi(b); return x - y }
	slices.SortFunc(before, byIndex)
	if !slices.Equal(before, naming) {
		t.Errorf("the access log holds entries %v of those before it was read, the ledger %v naming the patient", before, naming)
	}
	if !denied {
		t.Error("the log does not show the refused attempt as denied")
	}
	if !doctorRead {
		t.Error("the log does not name the practitioner, their record and role for their read")
	}
	// Reading the log is itself recorded, naming the patient.
	es := ledgerEntries(t, s, from)
	if len(es) == 0 || es[0].Action != "access-log" || es[0].Patient != pat || es[0].Actor != ids["pat.log"] || es[0].Outcome != "success" {
		t.Errorf("the first read of the log's entry: %+v", es)
	}

	// An auditor's service may read it too.
	must(t, s.do("GET", path, nil, "Authorization", "Bearer "+s.newToken("system/AuditEvent.rs")), http.StatusOK)
	// The operation is declared.
	if meta := string(must(t, s.do("GET", "/fhir/metadata", nil), http.StatusOK).body); !strings.Contains(meta, `"access-log"`) {
		t.Error("the CapabilityStatement does not declare $access-log")
	}
}
