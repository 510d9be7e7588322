package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/auth"
	"github.com/wardhealth/ward/internal/policy"
)

// TestCompartmentSearch: GET /fhir/Patient/{id}/{type} answers the
// patient's resources of the type only, filtered and paged like a search
// (the links keep the compartment path), is recorded naming the patient,
// refuses a type outside the Patient compartment, and under a token bound
// to another patient matches nothing.
func TestCompartmentSearch(t *testing.T) {
	s := newStack(t)
	newPatient := func() string {
		return must(t, s.do("POST", "/fhir/Patient", map[string]any{"resourceType": "Patient", "active": true}), http.StatusCreated).json(t)["id"].(string)
	}
	a, b := newPatient(), newPatient()
	obs := func(p, status string) string {
		return must(t, s.do("POST", "/fhir/Observation", map[string]any{"resourceType": "Observation", "status": status,
			"code": map[string]any{"text": "pulse"}, "subject": map[string]any{"reference": "Patient/" + p}}), http.StatusCreated).json(t)["id"].(string)
	}
	mine := map[string]bool{obs(a, "final"): true, obs(a, "final"): true, obs(a, "amended"): true}
	theirs := obs(b, "final")

	type page struct {
		Link  []struct{ Relation, URL string } `json:"link"`
		Entry []struct {
			Resource struct{ ID string } `json:"resource"`
		} `json:"entry"`
	}
	var got []string
	from := ledgerSize(t, s)
	for next, n := "/fhir/Patient/"+a+"/Observation?_count=2", 0; next != "" && n < 10; n++ {
		var p page
		if err := json.Unmarshal(must(t, s.do("GET", next, nil), http.StatusOK).body, &p); err != nil {
			t.Fatal(err)
		}
		next = ""
		for _, e := range p.Entry {
			got = append(got, e.Resource.ID)
		}
		for _, l := range p.Link {
			if l.Relation == "next" {
				if !strings.Contains(l.URL, "/fhir/Patient/"+a+"/Observation") {
					t.Errorf("next link %s leaves the compartment path", l.URL)
				}
				next = strings.TrimPrefix(l.URL, s.base)
			}
		}
	}
	if len(got) != len(mine) {
		t.Errorf("compartment search found %v, want the patient's %d Observations", got, len(mine))
	}
	for _, id := range got {
		if !mine[id] || id == theirs {
			t.Errorf("compartment search found %s", id)
		}
	}
	es := ledgerEntries(t, s, from)
	if len(es) == 0 || es[0].Action != "search" || es[0].ResourceType != "Observation" || es[0].Patient != a {
		t.Errorf("the compartment search's entry: %+v", es)
	}
	filtered := string(must(t, s.do("GET", "/fhir/Patient/"+a+"/Observation?status=amended", nil), http.StatusOK).body)
	if strings.Count(filtered, `"resourceType":"Observation"`) != 1 {
		t.Errorf("a filtered compartment search: %s", filtered)
	}
	if st := s.do("GET", "/fhir/Patient/"+a+"/Organization", nil).status; st != http.StatusBadRequest {
		t.Errorf("a type outside the Patient compartment: %d, want 400", st)
	}
	if st := s.do("GET", "/fhir/Patient/"+a+"/NoSuchType", nil).status; st != http.StatusNotFound {
		t.Errorf("an unknown type: %d, want 404", st)
	}
	if _, err := s.users.Create(context.Background(), auth.NewUser{Username: "pat.b", Role: policy.RolePatient, FHIRUser: "Patient/" + b, Password: testPassword}); err != nil {
		t.Fatal(err)
	}
	app := s.newApp(false, "openid", "user/*.rs")
	rp := s.relyingParty(app, "openid", "user/*.rs")
	bound := rp.exchange(t, s.signIn(s.newBrowser(), app, rp.authURL("st"), "pat.b", testPassword)).AccessToken
	if own := string(must(t, s.do("GET", "/fhir/Patient/"+b+"/Observation", nil, "Authorization", "Bearer "+bound), http.StatusOK).body); !strings.Contains(own, theirs) {
		t.Errorf("the patient's own compartment search: %s", own)
	}
	other := string(must(t, s.do("GET", "/fhir/Patient/"+a+"/Observation", nil, "Authorization", "Bearer "+bound), http.StatusOK).body)
	if strings.Contains(other, `"resourceType":"Observation"`) {
		t.Errorf("a token bound to another patient sees this one's compartment: %s", other)
	}
}
