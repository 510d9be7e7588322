package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/auth"
	"github.com/wardhealth/ward/internal/policy"
)

// TestPractitionerReach: a practitioner's user/ scopes reach the patients
// of their care relationships (a CareTeam, an Encounter), and nobody else,
// through read and search alike; shared resources are readable.
func TestPractitionerReach(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	patient := func() string {
		return must(t, s.do("POST", "/fhir/Patient", map[string]any{"resourceType": "Patient", "active": true}), http.StatusCreated).json(t)["id"].(string)
	}
	a, b, c := patient(), patient(), patient()
	pr := must(t, s.do("POST", "/fhir/Practitioner", map[string]any{"resourceType": "Practitioner", "active": true}), http.StatusCreated).json(t)["id"].(string)
	me := "Practitioner/" + pr
	must(t, s.do("POST", "/fhir/CareTeam", map[string]any{"resourceType": "CareTeam", "subject": map[string]any{"reference": "Patient/" + a},
		"participant": []any{map[string]any{"member": map[string]any{"reference": me}}}}), http.StatusCreated)
	must(t, s.do("POST", "/fhir/Encounter", map[string]any{"resourceType": "Encounter", "status": "finished", "class": map[string]any{"code": "AMB"},
		"subject": map[string]any{"reference": "Patient/" + b}, "participant": []any{map[string]any{"individual": map[string]any{"reference": me}}}}), http.StatusCreated)
	obs := map[string]string{}
	for _, p := range []string{a, b, c} {
		obs[p] = must(t, s.do("POST", "/fhir/Observation", map[string]any{"resourceType": "Observation", "status": "final",
			"code": map[string]any{"text": "pulse"}, "subject": map[string]any{"reference": "Patient/" + p}}), http.StatusCreated).json(t)["id"].(string)
	}
	if _, err := s.users.Create(ctx, auth.NewUser{Username: "dr.who", Role: policy.RolePractitioner, FHIRUser: me, Password: testPassword}); err != nil {
		t.Fatal(err)
	}
	app := s.newApp(false, "openid", "user/*.cruds")
	rp := s.relyingParty(app, "openid", "user/*.cruds")
	tok := rp.exchange(t, s.signIn(s.newBrowser(), app, rp.authURL("dr"), "dr.who", testPassword)).AccessToken
	as := []string{"Authorization", "Bearer " + tok}

	for p, want := range map[string]int{a: 200, b: 200, c: 404} {
		if st := s.do("GET", "/fhir/Observation/"+obs[p], nil, as...).status; st != want {
			t.Errorf("read Observation of %s: %d, want %d", p, st, want)
		}
	}
	body := string(must(t, s.do("GET", "/fhir/Observation?_total=accurate", nil, as...), http.StatusOK).body)
	if !strings.Contains(body, `"total":2`) || strings.Contains(body, obs[c]) {
		t.Errorf("search reached beyond the care relationships: %s", body)
	}
	if st := s.do("GET", "/fhir/Practitioner/"+pr, nil, as...).status; st != http.StatusOK {
		t.Errorf("shared Practitioner read: %d", st)
	}
	if st := s.do("POST", "/fhir/Observation", map[string]any{"resourceType": "Observation", "status": "final",
		"code": map[string]any{"text": "pulse"}, "subject": map[string]any{"reference": "Patient/" + c}}, as...).status; st != http.StatusForbidden {
		t.Errorf("write for an unrelated patient: %d, want 403", st)
	}
	if st := s.do("POST", "/fhir/Observation", map[string]any{"resourceType": "Observation", "status": "final",
		"code": map[string]any{"text": "pulse"}, "subject": map[string]any{"reference": "Patient/" + a}}, as...).status; st != http.StatusCreated {
		t.Errorf("write for a related patient: %d, want 201", st)
	}
}
