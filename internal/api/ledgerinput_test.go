package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/ledger"
)

// plantedName is a person's name and birth date, as a caller might try to
// plant them in the ledger, which can never be erased.
const plantedName = "Zelphine Quxbrightwater 1931-07-19"

// forged is planted text that would also forge a second entry and turn
// what a terminal shows around, were it stored as sent.
const forged = plantedName + "\r\n{\"v\":1,\"actor\":\"admin\"}\u202e\u2066\x1b[31m\u2028"

// holdsPlanted reports whether s holds any word of the planted name.
func holdsPlanted(s string) bool {
	for _, part := range strings.Fields(strings.ToLower(plantedName)) {
		if strings.Contains(strings.ToLower(s), part) {
			return true
		}
	}
	return false
}

// assertNothingPlanted fails when an entry holds any part of the planted
// name, or a control, line-separator or bidirectional-formatting
// character in any field.
func assertNothingPlanted(t *testing.T, entries []ledger.Entry) {
	t.Helper()
	for i, e := range entries {
		enc, err := e.Encode()
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(e) // the decoded fields, as a reader gets them
		if holdsPlanted(string(enc)) || holdsPlanted(string(raw)) {
			t.Errorf("entry %d holds part of the planted name (not shown: test output carries no PHI)", i)
		}
		fields := append([]string{e.Actor, e.Client, e.Source, e.Action, e.ResourceType, e.ResourceID, e.Version,
			e.Patient, e.Outcome, e.Purpose, e.RequestID, e.Detail}, append(e.Query, e.Patients...)...)
		for _, f := range fields {
			if strings.ContainsFunc(f, func(r rune) bool {
				return r < 0x20 || r == 0x7f || r == 0x2028 || r == 0x2029 || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069)
			}) {
				t.Errorf("entry %d: a field of %d bytes holds a control or formatting character", i, len(f))
			}
		}
	}
}

// TestUnprovenInputNotInLedger is catalogue case E5: what a caller that
// proved no one chose (a client id, a user name, a path, a method, a
// parameter name) reaches the ledger only as a keyed hash or one of Ward's
// own names, never as sent.
func TestUnprovenInputNotInLedger(t *testing.T) {
	s := newStack(t)
	long := forged + strings.Repeat("x", 300)
	a := s.newApp(false, "openid", "patient/*.rs")
	rp := s.relyingParty(a, "openid", "patient/*.rs")
	b := s.newBrowser()
	hashedClient := s.pseudonym("client", long)

	type step struct {
		name   string
		do     func() response
		status int
		check  func(e ledger.Entry) string // what is wrong with the request's entry
	}
	// is describes a field that is not what it should be, without
	// showing it when it holds the planted name.
	is := func(field, got, want string) string {
		switch {
		case got == want:
			return ""
		case holdsPlanted(got):
			return fmt.Sprintf("%s holds the planted name, want %q; ", field, want)
		}
		return fmt.Sprintf("%s %q, want %q; ", field, got, want)
	}
	steps := []step{
		{"token, client id in the form", func() response {
			return s.formPost("/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {long}, "client_secret": {"x"}}, "Authorization", "")
		}, 401, func(e ledger.Entry) string {
			return is("client", e.Client, hashedClient) + is("actor", e.Actor, hashedClient)
		}},
		{"token, client id in Basic credentials", func() response {
			return s.formPost("/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, "Authorization", basic(long, "x"))
		}, 401, func(e ledger.Entry) string { return is("client", e.Client, hashedClient) }},
		{"authorize, unknown client", func() response {
			u, _ := url.Parse(rp.authURL("e5"))
			q := u.Query()
			q.Set("client_id", long)
			u.RawQuery = q.Encode()
			return b.step("GET", u.String())
		}, 400, func(e ledger.Entry) string { return is("client", e.Client, hashedClient) }},
		{"unknown OAuth2 path", func() response { return s.do("GET", "/oauth2/"+url.PathEscape(forged), nil, "Authorization", "") },
			404, func(e ledger.Entry) string { return is("action", e.Action, "oauth2-unknown") }},
		{"FHIR path without a token", func() response {
			return s.do("GET", "/fhir/"+url.PathEscape(forged)+"/Zelphine-1931", nil, "Authorization", "")
		}, 401, func(e ledger.Entry) string {
			return is("resourceType", e.ResourceType, s.pseudonym("resource-type", forged)) +
				is("resourceId", e.ResourceID, s.pseudonym("resource-id", forged+"/Zelphine-1931"))
		}},
		{"FHIR id without a token", func() response { return s.do("GET", "/fhir/Patient/Zelphine-1931", nil, "Authorization", "") },
			401, func(e ledger.Entry) string {
				return is("resourceType", e.ResourceType, "Patient") + is("resourceId", e.ResourceID, s.pseudonym("resource-id", "Patient/Zelphine-1931"))
			}},
		{"unknown method", func() response { return s.do("ZELPHINE", "/fhir/Patient", nil) },
			405, func(e ledger.Entry) string { return is("action", e.Action, "unknown-method") }},
		{"parameter names", func() response {
			return s.do("GET", "/fhir/Patient?"+url.QueryEscape(forged)+"=1&_count=1", nil)
		}, 400, func(e ledger.Entry) string {
			// The strict query parser refuses the name before the
			// query's names are taken: none is recorded. Were it taken,
			// only its keyed hash could be.
			if len(e.Query) == 0 {
				return ""
			}
			return is("query", fmt.Sprint(e.Query), fmt.Sprint([]string{s.pseudonym("query-name", forged), "_count"}))
		}},
		{"sign-in, unknown user name", func() response {
			r := b.step("GET", rp.authURL("e5b"))
			b.step("GET", r.header.Get("Location"))
			return b.step("POST", "/signin", "username", "Zelphine.Quxbrightwater", "password", "not the password 1")
		}, 401, func(e ledger.Entry) string {
			return is("actor", e.Actor, s.pseudonym("username", "zelphine.quxbrightwater")) + is("client", e.Client, a.client.ID)
		}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			// A window of its own, so that the refusal has an entry of
			// its own rather than a count (E6).
			if err := s.api.FlushFailures(t.Context()); err != nil {
				t.Fatal(err)
			}
			before := ledgerSize(t, s)
			r := st.do()
			if r.status != st.status {
				t.Fatalf("status %d, want %d: %.300s", r.status, st.status, r.body)
			}
			entries := ledgerEntries(t, s, before)
			if len(entries) == 0 {
				t.Fatal("no entry")
			}
			last := entries[len(entries)-1]
			if p := st.check(last); p != "" {
				t.Error(p)
			}
			assertNothingPlanted(t, entries)
		})
	}
}

// TestHiddenReadNamesPatient is catalogue case H1 for denied reads (and
// A1, A5): a read, vread, history or $everything of another patient's
// data answers exactly as an unknown id does, and its entry names that
// patient, so that the patient's access report (the ledger's patient
// index, AuditEvent?patient=) shows the attempt.
func TestHiddenReadNamesPatient(t *testing.T) {
	s := newStack(t)
	s.newPatientUser("pat.h1")
	other := idFrom(t, must(t, s.do("POST", "/fhir/Patient", canaryPatient()), http.StatusCreated))
	obs := idFrom(t, must(t, s.do("POST", "/fhir/Observation", observation("Patient/"+other, "29463-7", 70)), http.StatusCreated))
	a := s.newApp(false, "openid", "fhirUser", "launch/patient", "patient/*.rs")
	rp := s.relyingParty(a, "openid", "fhirUser", "launch/patient", "patient/*.rs")
	tok := rp.exchange(t, s.signIn(s.newBrowser(), a, rp.authURL("h1"), "pat.h1", testPassword)).AccessToken
	as := []string{"Authorization", "Bearer " + tok}

	for _, tt := range []struct{ name, path, unknown string }{
		{"read", "/fhir/Observation/" + obs, "/fhir/Observation/nope"},
		{"vread", "/fhir/Observation/" + obs + "/_history/1", "/fhir/Observation/nope/_history/1"},
		{"history", "/fhir/Observation/" + obs + "/_history", "/fhir/Observation/nope/_history"},
		{"everything", "/fhir/Patient/" + other + "/$everything", "/fhir/Patient/nope/$everything"},
		{"patient read", "/fhir/Patient/" + other, "/fhir/Patient/nope"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			at := ledgerSize(t, s)
			r := s.do("GET", tt.path, nil, as...)
			u := s.do("GET", tt.unknown, nil, as...)
			if r.status != http.StatusNotFound || r.status != u.status || !bytes.Equal(r.body, u.body) {
				t.Fatalf("another patient's data answered %d %q, an unknown id %d %q: they must be the same 404", r.status, r.body, u.status, u.body)
			}
			var denied *ledger.Entry
			for _, e := range ledgerEntries(t, s, at) {
				if e.RequestID == r.header.Get("X-Request-Id") {
					denied = &e
				}
			}
			if denied == nil {
				t.Fatal("no entry for the denied request")
			}
			if denied.Outcome != "denied" || denied.Patient != other {
				t.Fatalf("entry: outcome %q, patient %q; want denied, naming the patient whose data was asked for", denied.Outcome, denied.Patient)
			}
			idx := slices.IndexFunc(ledgerEntriesRaw(t, s, at), func(e ledger.Entry) bool { return e.RequestID == denied.RequestID })
			if !slices.Contains(entriesOf(t, s, other), at+int64(idx)) {
				t.Error("the denied attempt is not in the patient's index")
			}
			if !slices.Contains(auditEventsOf(t, s, other), strconv.FormatInt(at+int64(idx), 10)) {
				t.Error("AuditEvent?patient= does not show the denied attempt")
			}
		})
	}
}

// ledgerEntriesRaw is ledgerEntries in ledger order.
func ledgerEntriesRaw(t *testing.T, s *stack, from int64) []ledger.Entry {
	t.Helper()
	s.flushLedger()
	n := ledgerSize(t, s)
	rows, err := s.db.LedgerEntries(t.Context(), from, n)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]ledger.Entry, len(rows))
	for i, r := range rows {
		if out[i], err = ledger.DecodeEntry(r.Entry); err != nil {
			t.Fatal(err)
		}
	}
	return out
}
