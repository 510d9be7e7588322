package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/auth"
	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/store"
)

// TestSecurityAPI is detection and response through the admin API
// (catalogue G3, G4): only a security officer with a second factor lists
// and works alerts, opens an incident whose regulatory clocks run from
// discovery, and contains a person and a service, reversibly; every
// request is in the ledger.
func TestSecurityAPI(t *testing.T) {
	s := newStackWith(t, stackOptions{clocked: true})
	ctx := context.Background()
	bearer := func(tok string) []string {
		return []string{"Authorization", "Bearer " + tok, "Content-Type", "application/json"}
	}
	if !s.users.MFARequired(store.User{Role: policy.RoleSecurityOfficer}) {
		t.Fatal("the security-officer role does not need a second factor")
	}
	so, err := s.users.Create(ctx, auth.NewUser{Username: "sam.security", Role: policy.RoleSecurityOfficer, Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	app := s.newApp(false, "openid", "user/*.rs")
	rp := s.relyingParty(app, "openid", "user/*.rs")
	officer := s.signInTOTP(app, rp, "sam.security", s.enrolTOTP(so.ID))
	doc, err := s.users.Create(ctx, auth.NewUser{Username: "dr.snoop", Role: policy.RolePractitioner, Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	docApp := s.newApp(false, "openid", "user/*.rs")
	docRP := s.relyingParty(docApp, "openid", "user/*.rs")
	docToken := docRP.exchange(t, s.signIn(s.newBrowser(), docApp, docRP.authURL("d"), "dr.snoop", testPassword)).AccessToken
	svcID, svcToken := s.serviceToken("system/Patient.rs")

	raised := s.clock.Now().UTC().Add(-time.Hour).Truncate(time.Microsecond)
	if err := s.db.SaveAlerts(ctx, []store.Alert{
		{ID: "al-1", Key: "many-patients/" + doc.ID + "/1", Rule: "many-patients", Severity: "high", Actor: doc.ID, Summary: "80 distinct patients in 1h",
			Evidence: []int64{4, 9}, Count: 80, First: raised, Last: raised, Raised: raised},
		{ID: "al-2", Key: "service-volume/" + svcID + "/1", Rule: "service-volume", Severity: "medium", Actor: svcID, Client: svcID,
			Summary: "12x its baseline", Evidence: []int64{11}, Count: 1, First: raised, Last: raised, Raised: raised.Add(time.Minute)},
	}, 12); err != nil {
		t.Fatal(err)
	}

	// Nobody else: not the practitioner, a service, or an admin.
	for name, tok := range map[string]string{"practitioner": docToken, "service": s.token} {
		for _, p := range []string{"/admin/alerts", "/admin/incidents"} {
			if st := s.do("GET", p, nil, bearer(tok)...).status; st != http.StatusForbidden {
				t.Errorf("%s GET %s: %d, want 403", name, p, st)
			}
		}
		if st := s.do("POST", "/admin/contain", map[string]any{"user": doc.ID, "actions": []string{"suspend"}}, bearer(tok)...).status; st != http.StatusForbidden {
			t.Errorf("%s contains: %d, want 403", name, st)
		}
	}

	var list struct {
		Alerts []struct{ ID, Rule, Status, Actor, Incident string } `json:"alerts"`
		More   bool                                                 `json:"more"`
	}
	if err := json.Unmarshal(must(t, s.do("GET", "/admin/alerts", nil, bearer(officer)...), http.StatusOK).body, &list); err != nil ||
		len(list.Alerts) != 2 || list.Alerts[0].ID != "al-2" || list.Alerts[1].Status != "open" {
		t.Fatalf("alerts: %+v, %v", list, err)
	}
	if err := json.Unmarshal(must(t, s.do("GET", "/admin/alerts?rule=many-patients&_count=1", nil, bearer(officer)...), http.StatusOK).body, &list); err != nil ||
		len(list.Alerts) != 1 || list.Alerts[0].ID != "al-1" {
		t.Fatalf("alerts of one rule: %+v, %v", list, err)
	}
	for path, want := range map[string]int{
		"/admin/alerts?status=gone": 400, "/admin/alerts?color=red": 400, "/admin/alerts/nope": 404, "/admin/alerts?_count=-1": 400,
		"/admin/incidents/Jane%20Doe": 404,
	} {
		if st := s.do("GET", path, nil, bearer(officer)...).status; st != want {
			t.Errorf("GET %s: %d, want %d", path, st, want)
		}
	}
	a := must(t, s.do("POST", "/admin/alerts/al-2/acknowledge", nil, bearer(officer)...), http.StatusOK).json(t)
	if a["status"] != "acknowledged" || a["statusBy"] != so.ID {
		t.Fatalf("acknowledged: %v", a)
	}
	if st := s.do("POST", "/admin/alerts/al-2/delete", nil, bearer(officer)...).status; st != http.StatusNotFound {
		t.Errorf("unknown alert operation: %d", st)
	}

	// An incident from the practitioner's alert.
	if st := s.do("POST", "/admin/incidents", map[string]any{"alerts": []string{}}, bearer(officer)...).status; st != http.StatusBadRequest {
		t.Errorf("incident without alerts: %d", st)
	}
	inc := must(t, s.do("POST", "/admin/incidents", map[string]any{"alerts": []string{"al-1"}}, bearer(officer)...), http.StatusCreated).json(t)
	id, _ := inc["id"].(string)
	clocks, _ := inc["clocks"].([]any)
	if id == "" || len(clocks) != 2 || inc["discovered"] != raised.Format(time.RFC3339Nano) {
		t.Fatalf("incident: %v", inc)
	}
	gdpr := clocks[1].(map[string]any)
	if gdpr["regime"] != "GDPR" || gdpr["due"] != raised.Add(72*time.Hour).Format(time.RFC3339Nano) || gdpr["overdue"] != false {
		t.Fatalf("GDPR clock: %v", gdpr)
	}
	if st := s.do("POST", "/admin/incidents/"+id, map[string]any{"owner": so.ID}, bearer(officer)...).status; st != http.StatusBadRequest {
		t.Errorf("update without a revision: %d, want 400", st)
	}
	upd := must(t, s.do("POST", "/admin/incidents/"+id, map[string]any{"revision": 1, "owner": so.ID}, bearer(officer)...), http.StatusOK).json(t)
	if upd["owner"] != so.ID || upd["revision"] != float64(2) {
		t.Fatalf("assigned: %v", upd)
	}
	if st := s.do("POST", "/admin/incidents/"+id, map[string]any{"revision": 1, "step": "triage"}, bearer(officer)...).status; st != http.StatusConflict {
		t.Errorf("update on a stale revision: %d, want 409", st)
	}

	// Containment of the person: suspended, tokens revoked, second factor
	// to enrol again; the token stops at once; lifting re-enables the
	// account, and the old token stays revoked.
	must(t, s.do("GET", "/fhir/metadata", nil, bearer(docToken)...), http.StatusOK)
	from := ledgerSize(t, s)
	for name, body := range map[string]any{
		"both":            map[string]any{"user": doc.ID, "client": svcID, "actions": []string{"suspend"}},
		"neither":         map[string]any{"actions": []string{"suspend"}},
		"no actions":      map[string]any{"user": doc.ID},
		"unknown action":  map[string]any{"user": doc.ID, "actions": []string{"delete"}},
		"revoke a client": map[string]any{"client": svcID, "actions": []string{"reset-mfa"}},
		"unknown client":  map[string]any{"client": "nope", "actions": []string{"suspend"}},
		"not an id":       map[string]any{"user": "Jane Doe, ward 4", "actions": []string{"suspend"}},
	} {
		if st := s.do("POST", "/admin/contain", body, bearer(officer)...).status; st != http.StatusBadRequest {
			t.Errorf("containment, %s: %d, want 400", name, st)
		}
	}
	if st := s.do("POST", "/admin/contain", map[string]any{"user": "nope", "actions": []string{"suspend"}}, bearer(officer)...).status; st != http.StatusNotFound {
		t.Errorf("containment of an unknown user: %d, want 404", st)
	}
	logsBefore := s.logs.Len()
	must(t, s.do("POST", "/admin/contain", map[string]any{"user": doc.ID, "actions": []string{"suspend", "revoke", "reset-mfa"}, "incident": id}, bearer(officer)...), http.StatusOK)
	if st := s.do("GET", "/fhir/Patient", nil, bearer(docToken)...).status; st != http.StatusUnauthorized {
		t.Fatalf("the contained person's token: %d, want 401", st)
	}
	if u, err := s.users.User(ctx, doc.ID); err != nil || !u.Disabled || auth.HasMFA(u) {
		t.Fatalf("the contained person: %+v, %v", u, err)
	}
	if logs := s.logs.String()[logsBefore:]; !strings.Contains(logs, "security event: containment applied") || !strings.Contains(logs, doc.ID) {
		t.Fatalf("containment's security event: %s", logs)
	}
	must(t, s.do("POST", "/admin/contain/lift", map[string]any{"user": doc.ID, "incident": id}, bearer(officer)...), http.StatusOK)
	if u, err := s.users.User(ctx, doc.ID); err != nil || u.Disabled {
		t.Fatalf("after lifting: %+v, %v", u, err)
	}
	if st := s.do("GET", "/fhir/Patient", nil, bearer(docToken)...).status; st != http.StatusUnauthorized {
		t.Fatalf("the revoked token after lifting: %d, want 401", st)
	}

	// Containment of a service: suspended, then lifted.
	must(t, s.do("GET", "/fhir/Patient", nil, bearer(svcToken)...), http.StatusOK)
	must(t, s.do("POST", "/admin/contain", map[string]any{"client": svcID, "actions": []string{"suspend"}}, bearer(officer)...), http.StatusOK)
	if st := s.do("GET", "/fhir/Patient", nil, bearer(svcToken)...).status; st != http.StatusUnauthorized {
		t.Fatalf("the suspended service's token: %d, want 401", st)
	}
	must(t, s.do("POST", "/admin/contain/lift", map[string]any{"client": svcID}, bearer(officer)...), http.StatusOK)
	must(t, s.do("GET", "/fhir/Patient", nil, bearer(svcToken)...), http.StatusOK)

	// Breach scoping: what the person read in the window, proven against
	// a signed checkpoint, with the notification deadlines (G5).
	s.checkpoint(t)
	window := "actor=" + doc.ID + "&from=" + url.QueryEscape(raised.Add(-24*time.Hour).Format(time.RFC3339)) +
		"&to=" + url.QueryEscape(time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	rep := must(t, s.do("GET", "/admin/incidents/scope?"+window, nil, bearer(officer)...), http.StatusOK).json(t)
	if rep["actor"] != doc.ID || rep["deadlines"] == nil || rep["disclosures"] == nil {
		t.Fatalf("scope report: %.600v", rep)
	}
	csv := must(t, s.do("GET", "/admin/incidents/scope?"+window+"&format=csv", nil, bearer(officer)...), http.StatusOK)
	if !strings.HasPrefix(csv.header.Get("Content-Type"), "text/csv") {
		t.Fatalf("scope csv: %s", csv.header.Get("Content-Type"))
	}
	for q, want := range map[string]int{
		"actor=" + doc.ID: 400, window + "&client=x": 400, window + "&format=xml": 400,
		"actor=Jane%20Doe&from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z": 400,
	} {
		if st := s.do("GET", "/admin/incidents/scope?"+q, nil, bearer(officer)...).status; st != want {
			t.Errorf("scope ?%s: %d, want %d", q, st, want)
		}
	}
	if st := s.do("GET", "/admin/incidents/scope?"+window, nil, bearer(docToken)...).status; st != http.StatusForbidden && st != http.StatusUnauthorized {
		t.Errorf("scope by the practitioner: %d", st)
	}

	// The ledger has each containment request, and the incident's
	// timeline the actions taken for it.
	var got []string
	for _, e := range ledgerEntries(t, s, from) {
		if strings.HasPrefix(e.Action, "contain") && e.Outcome == "success" {
			got = append(got, e.Action+" "+e.ResourceType+"/"+e.ResourceID+" "+e.Detail+" by "+e.Actor)
		}
	}
	want := []string{
		"contain User/" + doc.ID + " reset-mfa,revoke,suspend incident=" + id + " by " + so.ID,
		"contain-lift User/" + doc.ID + " lift incident=" + id + " by " + so.ID,
		"contain Client/" + svcID + " suspend by " + so.ID,
		"contain-lift Client/" + svcID + " lift by " + so.ID,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("containment entries:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// What was typed where an id belongs never reaches the ledger.
	for _, e := range ledgerEntries(t, s, 0) {
		if strings.Contains(string(mustEncode(t, e)), "Jane") {
			t.Fatalf("a ledger entry holds text sent where an id belongs: %+v", e)
		}
	}
	full := must(t, s.do("GET", "/admin/incidents/"+id, nil, bearer(officer)...), http.StatusOK).json(t)
	tl, _ := full["timeline"].([]any)
	var whats []string
	for _, e := range tl {
		whats = append(whats, e.(map[string]any)["what"].(string))
	}
	if strings.Join(whats, " ") != "opened assigned contain:reset-mfa,revoke,suspend lift:lift" {
		t.Fatalf("timeline: %v", whats)
	}
}

// TestContainmentReachesReplicas is catalogue G6 across processes: two
// replicas share one PostgreSQL database; a security officer on one
// suspends a service and a person, and the other refuses their tokens
// once its verifier's cache bound (auth.Config.ClientCacheTTL, 5 s by
// default) has passed on its clock; lifting is seen the same way.
func TestContainmentReachesReplicas(t *testing.T) {
	schema := newPGSchema(t)
	open := func(t *testing.T, _ string) store.Store { return schema.open(t) }
	bClock := &testClock{}
	bClock.Freeze()
	a := newStackWith(t, stackOptions{openStore: open})
	b := newStackWith(t, stackOptions{openStore: open, keyFile: filepath.Join(a.dir, "keys.json"), authNow: bClock.Now})
	ctx := context.Background()
	bearer := func(tok string) []string {
		return []string{"Authorization", "Bearer " + tok, "Content-Type", "application/json"}
	}
	officer := a.mfaToken("sec.replica", policy.RoleSecurityOfficer)

	// The service's token, issued and verified by b.
	svcID, svcToken := b.serviceToken("system/Patient.rs")
	must(t, b.do("GET", "/fhir/Patient", nil, bearer(svcToken)...), http.StatusOK) // cached as active on b
	must(t, a.do("POST", "/admin/contain", map[string]any{"client": svcID, "actions": []string{"suspend"}}, bearer(officer)...), http.StatusOK)
	bClock.Advance(5*time.Second + time.Millisecond)
	if st := b.do("GET", "/fhir/Patient", nil, bearer(svcToken)...).status; st != http.StatusUnauthorized {
		t.Fatalf("the suspended service on the other replica after the bound: %d, want 401", st)
	}
	must(t, a.do("POST", "/admin/contain/lift", map[string]any{"client": svcID}, bearer(officer)...), http.StatusOK)
	bClock.Advance(5*time.Second + time.Millisecond)
	must(t, b.do("GET", "/fhir/Patient", nil, bearer(svcToken)...), http.StatusOK)

	// A person signed in through b, suspended through a.
	doc, err := a.users.Create(ctx, auth.NewUser{Username: "dr.replica", Role: policy.RolePractitioner, Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	app := b.newApp(false, "openid", "user/*.rs")
	rp := b.relyingParty(app, "openid", "user/*.rs")
	docToken := rp.exchange(t, b.signIn(b.newBrowser(), app, rp.authURL("r"), "dr.replica", testPassword)).AccessToken
	must(t, b.do("GET", "/fhir/metadata", nil, bearer(docToken)...), http.StatusOK)
	must(t, b.do("GET", "/fhir/Patient", nil, bearer(docToken)...), http.StatusOK)
	must(t, a.do("POST", "/admin/contain", map[string]any{"user": doc.ID, "actions": []string{"suspend"}}, bearer(officer)...), http.StatusOK)
	bClock.Advance(5*time.Second + time.Millisecond)
	if st := b.do("GET", "/fhir/Patient", nil, bearer(docToken)...).status; st != http.StatusUnauthorized {
		t.Fatalf("the suspended person on the other replica after the bound: %d, want 401", st)
	}
}
