package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/auth"
	"github.com/wardhealth/ward/internal/policy"
)

// This file is the authorisation matrix (catalogue A1-A8 and B2): every
// kind of caller, crossed with a representative set of resource types,
// every interaction, and patients the caller owns, is related to, reaches
// through break-the-glass, or does not reach, with security labels and a
// patient's Consent; each cell runs end to end through HTTP with tokens
// from the real sign-in, and is compared with an expected-decision table
// written by hand from the README ("Who sees what"), docs/THREAT-MODEL.md
// ("Access by label and Consent") and the catalogue. The table never asks
// package policy (this file does not import it): it is a second,
// independent statement of the rules, so a change that widens access
// shows here as an unexpected allow, which always fails the test.
//
// Besides each cell's decision, every answer is checked for what it must
// not hold:
//   - no search, include, history, batch or $everything result names a
//     resource the caller may not see, and every match set and _total is
//     exactly what the caller sees (A2, A3);
//   - every denied read (read, vread, history, $everything, batch entry)
//     answers exactly as the same read of an unknown id, and a hidden one
//     is in the ledger as denied (A1, A5);
//   - every refused write adds one ledger entry, denied, and at the end
//     the store holds exactly the versions and resources the allowed
//     writes made (A4);
//   - no answer to a practitioner holds a social security number (A7);
//   - server-controlled meta, security labels and method overrides (A6,
//     A8) have their own cells.
//
// Where Ward answers differently from the table in the deny direction for
// a known, stated reason, the cell is listed in knownGaps: logged, not
// failed, while it differs, and failed once it matches.

// kind is a kind of caller.
type kind string

const (
	svcAll      kind = "service system/*.cruds"
	svcObs      kind = "service system/Observation.rs"
	svcAudit    kind = "service system/AuditEvent.rs"
	patientUser kind = "patient"                          // patient O, token asks user/*.cruds (wider than the role)
	patientApp  kind = "patient app patient/*.rs"         // patient O, launch patient O
	pract       kind = "practitioner"                     // Practitioner P1: CareTeam of R
	practObsApp kind = "practitioner app user/Obs.rs"     // P1 again, token narrower than the role
	practBTG    kind = "practitioner break-the-glass (U)" // Practitioner P2: CareTeam of R, grant for U
	admin       kind = "admin"
	auditor     kind = "auditor" // token user/AuditEvent.rs
	privacy     kind = "privacy-officer"
)

var kinds = []kind{svcAll, svcObs, svcAudit, patientUser, patientApp, pract, practObsApp, practBTG, admin, auditor, privacy}

// The patients: O is the patient user's own record, R is related to both
// practitioners through a CareTeam, U is related to nobody (P2 reaches it
// through break-the-glass only).
var patientKeys = []string{"O", "R", "U"}

// ---- The expected table. Nothing below this line until "the world" may
// ---- call Ward; every rule is stated in plain words.

// reaches says which patients' compartments a caller reaches, and whether
// it reaches shared resources (Practitioner, Organization):
//   - a service: what its system/ scopes say, every patient (README);
//   - a patient: their own compartment and shared resources (README);
//   - a patient/ scope narrows to the launch patient's compartment, which
//     holds no shared resource (README: "narrows further, to the launch
//     patient");
//   - a practitioner: patients with a care relationship, plus those of an
//     active break-the-glass grant, and shared resources (README);
//   - admin, auditor, privacy officer: no clinical data (README).
var reaches = map[kind]struct{ O, R, U, shared bool }{
	svcAll:      {true, true, true, true},
	svcObs:      {true, true, true, true},
	svcAudit:    {true, true, true, true},
	patientUser: {O: true, shared: true},
	patientApp:  {O: true},
	pract:       {R: true, shared: true},
	practObsApp: {R: true, shared: true},
	practBTG:    {R: true, U: true, shared: true},
	admin:       {},
	auditor:     {},
	privacy:     {},
}

// grants is what a caller may do on clinical types, by type ("*": every
// type), as SMART letters: the intersection of the role and the token's
// scopes, never the union (README, B2).
var grants = map[kind]map[string]string{
	svcAll:      {"*": "cruds"},
	svcObs:      {"Observation": "rs"},
	svcAudit:    {},          // audit data only: no clinical type
	patientUser: {"*": "rs"}, // role: read, search; the token's cud adds nothing
	patientApp:  {"*": "rs"},
	pract:       {"*": "cruds"},
	practObsApp: {"Observation": "rs"}, // the role's cud and other types add nothing
	practBTG:    {"*": "cruds"},
	admin:       {}, // no clinical data, whatever the token asks
	auditor:     {},
	privacy:     {},
}

// ledgerReaders read AuditEvent and /ledger: the auditor role, and a
// service, each with a scope that names AuditEvent; a wildcard scope
// (system/*.cruds) does not cover audit data (README, A8: separation of
// duties). The ledger holds every patient's entries, so nobody limited to
// some patients reads it. Nobody writes AuditEvent.
var ledgerReaders = map[kind]bool{svcAudit: true, auditor: true}

// accountAdmins manage people's accounts (/admin/users): the admin role
// only, never a service (README).
var accountAdmins = map[kind]bool{admin: true}

func may(k kind, typ string, letter byte) bool {
	g := grants[k]
	return strings.IndexByte(g["*"], letter) >= 0 || strings.IndexByte(g[typ], letter) >= 0
}

func reachesPatient(k kind, p string) bool {
	r := reaches[k]
	switch p {
	case "O":
		return r.O
	case "R":
		return r.R
	case "U":
		return r.U
	case "":
		return r.shared
	}
	return false
}

// unrestricted: reaches every patient, so type-wide interactions that
// cannot be narrowed to some patients (type history) are open to it.
func unrestricted(k kind) bool { return k == svcAll || k == svcObs }

// labelSeen is the security-label rule (docs/THREAT-MODEL.md, "Access by
// label and Consent": restricted and sensitive data is for the patient
// and for whom they permit):
//   - no restricting label: seen by whoever reaches the data;
//   - a service acting with a system/ scope sees every label;
//   - the patient sees their own data, whatever its labels;
//   - break-the-glass lifts R and sensitivity labels (HIV), never V;
//   - nobody else sees R, HIV or V without a permitting Consent (none here).
func labelSeen(k kind, patient, label string) bool {
	switch {
	case label == "":
		return true
	case unrestricted(k):
		return true
	case (k == patientUser || k == patientApp) && patient == "O":
		return true
	case k == practBTG && patient == "U" && label != "V":
		return true
	}
	return false
}

// consentHides: patient R's active privacy Consent denies Practitioner
// P1 (pract and practObsApp) access to R's Conditions. P2 is not named.
// A Provenance may be about any type, so a Consent that withholds some
// of R's data withholds R's Provenances too (docs/THREAT-MODEL.md).
func consentHides(k kind, patient, typ string) bool {
	return (k == pract || k == practObsApp) && patient == "R" && (typ == "Condition" || typ == "Provenance")
}

// sees: the caller may read this resource (letter r) or find it in a
// search (letter s).
func sees(k kind, r *seeded, letter byte) bool {
	return may(k, r.typ, letter) && reachesPatient(k, r.patient) && labelSeen(k, r.patient, r.label) && !consentHides(k, r.patient, r.typ)
}

// mayWrite: the caller may create, update or delete (letter) a resource
// of typ, labelled label, in patient's compartment: it needs the letter,
// the reach, no Consent hiding the compartment's data of that type from
// it, and to see the label. A new Patient is a new compartment, which
// nobody limited to some patients reaches; a shared resource is
// everyone's, which such a caller reads but does not change.
func mayWrite(k kind, typ, patient, label string, letter byte, newPatient bool) bool {
	if !may(k, typ, letter) || !reachesPatient(k, patient) || consentHides(k, patient, typ) || !labelSeen(k, patient, label) {
		return false
	}
	return !(newPatient || patient == "") || unrestricted(k)
}

// mayLabel: only a privileged caller sets or removes security labels
// (A6): no built-in role does; a service acting with a system/ scope may.
func mayLabel(k kind) bool { return k == svcAll }

// verdict is a cell's expected answer.
type verdict struct {
	allow  bool
	status int
}

func allowWith(st int) verdict { return verdict{true, st} }

// readWant: without the letter, 403 before anything is looked up (the
// answer names no resource); with it, anything unseen is 404 exactly as an
// unknown id (A1, A5: not allowed looks like not there).
func readWant(k kind, r *seeded) verdict {
	switch {
	case !may(k, r.typ, 'r'):
		return verdict{false, 403}
	case !sees(k, r, 'r'):
		return verdict{false, 404}
	}
	return allowWith(200)
}

// searchWant: without the letter 403; with it 200, and the resource is
// among the matches exactly when the caller sees it (A2).
func searchWant(k kind, r *seeded) verdict {
	if !may(k, r.typ, 's') {
		return verdict{false, 403}
	}
	return verdict{sees(k, r, 's'), 200}
}

// typeHistoryWant: a type history spans every patient's versions and
// cannot be narrowed to some: only a caller reaching every patient has it;
// anyone else is refused (403) rather than shown a filtered page whose
// total counts others.
func typeHistoryWant(k kind, r *seeded) verdict {
	if !may(k, r.typ, 'r') || !unrestricted(k) {
		return verdict{false, 403}
	}
	return verdict{sees(k, r, 'r'), 200}
}

// writeWant: writes outside reach, or forbidden by letter, label or
// Consent, are 403 with nothing written (A4).
// deleteWant: a delete is a write, except that deleting what the caller
// may not even see answers exactly as deleting an unknown id does, not
// found (invariant 10).
func deleteWant(k kind, r *seeded) verdict {
	if may(k, r.typ, 'd') && !sees(k, r, 'r') && r.patient != "" {
		return verdict{false, 404}
	}
	return writeWant(k, r, 'd', 204)
}

// patchWant: a patch is an update of what the caller reads. Without
// update or read 403 before anything is looked up; what the caller does
// not see is 404 as an unknown id; the rest as an update.
func patchWant(k kind, r *seeded) verdict {
	switch {
	case !may(k, r.typ, 'u') || !may(k, r.typ, 'r'):
		return verdict{false, 403}
	case !sees(k, r, 'r'):
		return verdict{false, 404}
	}
	return writeWant(k, r, 'u', 200)
}

func writeWant(k kind, r *seeded, letter byte, ok int) verdict {
	if !mayWrite(k, r.typ, r.patient, r.label, letter, false) {
		return verdict{false, 403}
	}
	return allowWith(ok)
}

// conditionalCreateWant: POST with If-None-Exist criteria selecting r
// by id. It needs create and search; a caller that sees r gets r back
// (200, nothing written: "allowed" here means r was reached); for anyone
// else the criteria match nothing, and the body, for patient q, is
// created (201) if the caller may write it, else 403.
func conditionalCreateWant(k kind, r *seeded, q string) verdict {
	switch {
	case !may(k, r.typ, 'c') || !may(k, r.typ, 's'):
		return verdict{false, 403}
	case sees(k, r, 's'):
		return allowWith(200)
	case mayWrite(k, r.typ, q, "", 'c', r.typ == "Patient"):
		return verdict{false, 201}
	}
	return verdict{false, 403}
}

// conditionalUpdateWant: PUT with criteria selecting r by id. It needs
// search and update; a caller that sees r updates it (200) if it may
// write it, else 403; for anyone else the criteria match nothing, and the
// body, for patient q and without an id, is created (201) if the caller
// may write it, else 403. Reaching r here is "allowed".
func conditionalUpdateWant(k kind, r *seeded, q string) verdict {
	switch {
	case !may(k, r.typ, 's') || !may(k, r.typ, 'u'):
		return verdict{false, 403}
	case sees(k, r, 's') && mayWrite(k, r.typ, r.patient, r.label, 'u', false):
		return allowWith(200)
	case sees(k, r, 's'):
		return verdict{false, 403}
	case mayWrite(k, r.typ, q, "", 'c', r.typ == "Patient"):
		return verdict{false, 201}
	}
	return verdict{false, 403}
}

// createWant: creating a resource like r for r's patient. A labelled
// create needs a caller that may label (A6).
func createWant(k kind, r *seeded) verdict {
	if !mayWrite(k, r.typ, r.patient, r.label, 'c', r.typ == "Patient") || (r.label != "" && !mayLabel(k)) {
		return verdict{false, 403}
	}
	return allowWith(201)
}

// correctionWant: an update carrying a Provenance (X-Provenance) is the
// update and the create of a Provenance about it, in the same patient's
// compartment: both must be allowed, or nothing is written (H4).
func correctionWant(k kind, r *seeded) verdict {
	if v := writeWant(k, r, 'u', 200); !v.allow {
		return v
	}
	if !mayWrite(k, "Provenance", r.patient, "", 'c', false) {
		return verdict{false, 403}
	}
	return allowWith(200)
}

// everythingWant: Patient/X/$everything is reading X's record: whoever
// may read Patient X has it (README: a patient reads their own
// compartment); without Patient read 403; X out of reach 404 (A1).
func everythingWant(k kind, p *seeded) verdict { return readWant(k, p) }

// signaturesWant: a resource's signature record needs the read letter on
// its type and on Provenance (its signatures are Provenances); with both,
// anything unseen is 404 as an unknown id.
func signaturesWant(k kind, r *seeded) verdict {
	if may(k, r.typ, 'r') && !may(k, "Provenance", 'r') {
		return verdict{false, 403}
	}
	return readWant(k, r)
}

// signWant: only a person who may read the resource and holds the right
// to sign signs, and nobody here holds it: a service is refused (403)
// whatever it may see; a person is refused as a read would be where a
// read is, and with 403 where a read is allowed.
func signWant(k kind, r *seeded) verdict {
	if strings.HasPrefix(string(k), "service") {
		return verdict{false, 403}
	}
	if v := readWant(k, r); !v.allow {
		return v
	}
	return verdict{false, 403}
}

// ---- The world: the data, the callers, and what each cell asks.

// referencedBy is what $everything adds to patient p's record for k: the
// Practitioners, Organizations, Locations and Medications that a resource
// of the record k sees refers to.
func (w *authzWorld) referencedBy(k kind, p string) map[string]bool {
	out := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["reference"].(string); ok {
				if typ, _, ok := strings.Cut(ref, "/"); ok && slices.Contains([]string{"Practitioner", "Organization", "Location", "Medication"}, typ) {
					out[ref] = true
				}
			}
			for _, c := range v {
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	for _, r := range w.all {
		if r.patient == p && !r.deleted && sees(k, r, 's') {
			walk(r.body)
		}
	}
	return out
}

// seeded is one resource the matrix wrote, with what the table needs.
type seeded struct {
	typ, id string
	patient string // "O", "R", "U", or "" for a shared resource
	label   string // "", "R", "HIV", "V"
	subject string // the patient its subject/patient parameter names ("" if none)
	bridge  bool   // an Observation whose focus names every patient
	perfOrg bool   // performer is the shared Organization
	deleted bool
	body    map[string]any // as stored, without server-controlled meta
	version int            // the versions written, counted from what the matrix saw succeed
	scratch bool           // written and deleted by one cell; its versions are not counted
}

func (r *seeded) ref() string { return r.typ + "/" + r.id }

type authzWorld struct {
	t      *testing.T
	s      *stack
	pid    map[string]string // patient key -> Patient id
	all    []*seeded
	byRef  map[string]*seeded
	main   map[string]*seeded // "Type|label|patient" -> the resource of that row
	org    *seeded
	shared []*seeded // Practitioner and Organization rows
	tokens map[kind]string
	totp   map[string]string   // TOTP secrets by user id
	unrel  map[string]response // unknown-id answers, by kind and request shape
	stats  authzStats
	gaps   map[string]string
}

type authzStats struct {
	cells, allows, denies      int
	unexpectedAllow            int
	unexpectedDeny             int
	wrongStatus                int
	knownGaps                  int
	bundles, deniedBodies      int
	leaks, wrongTotals, ledger int
	maskChecked, maskLeaks     int
	answers                    int
}

var labelCoding = map[string]map[string]any{
	"R":   {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"},
	"V":   {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "V"},
	"HIV": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "HIV"},
}

// matrixMRN is the system of the medical record numbers that the
// matrix's Observations give with their subject.
const matrixMRN = "urn:matrix:mrn"

// clinicalBody is a resource of typ for patient id.
func clinicalBody(typ, patientID, orgID string) map[string]any {
	subj := map[string]any{"reference": "Patient/" + patientID}
	switch typ {
	case "Observation":
		// The subject carries the patient's MRN too, for subject:identifier.
		subj["identifier"] = map[string]any{"system": matrixMRN, "value": "MRN-" + patientID}
		return map[string]any{"resourceType": typ, "status": "final", "subject": subj,
			"code":          map[string]any{"text": "pulse", "coding": []any{map[string]any{"system": "http://loinc.org", "code": "8867-4"}}},
			"valueQuantity": map[string]any{"value": 72, "system": "http://unitsofmeasure.org", "code": "/min"},
			"performer":     []any{map[string]any{"reference": "Organization/" + orgID}}}
	case "Condition":
		return map[string]any{"resourceType": typ, "code": map[string]any{"text": "asthma"}, "subject": subj,
			"clinicalStatus": map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}}}}
	case "Encounter":
		return map[string]any{"resourceType": typ, "status": "finished", "class": map[string]any{"code": "AMB"}, "subject": subj}
	case "MedicationRequest":
		return map[string]any{"resourceType": typ, "status": "active", "intent": "order",
			"medicationCodeableConcept": map[string]any{"text": "aspirin"}, "subject": subj}
	case "Patient":
		return map[string]any{"resourceType": typ, "active": true, "link": []any{map[string]any{"type": "seealso", "other": subj}}}
	}
	panic("no body for " + typ)
}

func withLabel(body map[string]any, label string) map[string]any {
	if label != "" {
		body["meta"] = map[string]any{"security": []any{labelCoding[label]}}
	}
	return body
}

// create writes body with the full-scope service token and records it.
func (w *authzWorld) create(body map[string]any, r *seeded) *seeded {
	w.t.Helper()
	got := must(w.t, w.s.do("POST", "/fhir/"+body["resourceType"].(string), body), http.StatusCreated).json(w.t)
	r.typ, r.id, r.version = body["resourceType"].(string), got["id"].(string), 1
	body["id"] = r.id
	r.body = body
	w.all = append(w.all, r)
	w.byRef[r.ref()] = r
	return r
}

func (w *authzWorld) seed() {
	t, s := w.t, w.s
	for i, p := range patientKeys {
		r := w.create(map[string]any{"resourceType": "Patient", "active": true,
			"identifier": []any{map[string]any{"system": "http://hl7.org/fhir/sid/us-ssn", "value": ssnOf(i),
				"type": map[string]any{"coding": []any{map[string]any{"system": v2IdentifierType, "code": "SS"}}}}}}, &seeded{})
		r.patient, r.subject = p, p
		w.pid[p] = r.id
		w.main["Patient||"+p] = r
	}
	w.org = w.create(map[string]any{"resourceType": "Organization", "name": "Matrix Clinic"}, &seeded{})
	p1 := w.create(map[string]any{"resourceType": "Practitioner", "active": true}, &seeded{})
	p2 := w.create(map[string]any{"resourceType": "Practitioner", "active": true}, &seeded{})
	w.shared = []*seeded{w.org, w.create(map[string]any{"resourceType": "Practitioner", "active": true}, &seeded{})}
	for _, pr := range []*seeded{p1, p2} {
		ct := map[string]any{"resourceType": "CareTeam", "subject": map[string]any{"reference": "Patient/" + w.pid["R"]},
			"participant": []any{map[string]any{"member": map[string]any{"reference": pr.ref()}}}}
		w.create(ct, &seeded{patient: "R", subject: "R"})
	}
	for _, p := range patientKeys {
		for _, typ := range []string{"Observation", "Condition", "Encounter", "MedicationRequest"} {
			w.main[typ+"||"+p] = w.create(clinicalBody(typ, w.pid[p], w.org.id), &seeded{patient: p, subject: p, perfOrg: typ == "Observation"})
		}
		for _, l := range []string{"R", "HIV", "V"} {
			w.main["Observation|"+l+"|"+p] = w.create(withLabel(clinicalBody("Observation", w.pid[p], w.org.id), l),
				&seeded{patient: p, subject: p, label: l, perfOrg: true})
		}
		b := clinicalBody("Observation", w.pid[p], w.org.id)
		delete(b, "performer")
		b["focus"] = []any{map[string]any{"reference": "Patient/" + w.pid["O"]}, map[string]any{"reference": "Patient/" + w.pid["R"]},
			map[string]any{"reference": "Patient/" + w.pid["U"]}}
		w.create(b, &seeded{patient: p, subject: p, bridge: true})
		// A deleted Observation: deleted, unknown and forbidden answer alike (A5).
		d := w.create(clinicalBody("Observation", w.pid[p], w.org.id), &seeded{patient: p, subject: p, perfOrg: true})
		must(t, s.do("DELETE", "/fhir/"+d.ref(), nil), http.StatusNoContent)
		d.deleted, d.version = true, 2
		w.main["Observation|deleted|"+p] = d
	}
	// R's privacy Consent denies P1 its Conditions.
	consent := map[string]any{"resourceType": "Consent", "status": "active",
		"scope":      map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}}},
		"category":   []any{map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "59284-0"}}}},
		"patient":    map[string]any{"reference": "Patient/" + w.pid["R"]},
		"policyRule": map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}}},
		"provision": map[string]any{"type": "deny", "actor": []any{map[string]any{
			"role":      map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "PRCP"}}},
			"reference": map[string]any{"reference": p1.ref()}}},
			"class": []any{map[string]any{"system": "http://hl7.org/fhir/resource-types", "code": "Condition"}}}}
	w.create(consent, &seeded{patient: "R"})
	w.s.checkpoint(t) // so that /ledger/checkpoint has one to serve
	w.signIn(p1.ref(), p2.ref())
}

// person creates a user and returns their user id and a token from the
// real sign-in, with a TOTP second factor when mfa is set.
func (w *authzWorld) person(username, role, fhirUser string, mfa bool, scopes ...string) (string, string) {
	u, err := w.s.users.Create(context.Background(), auth.NewUser{Username: username, Role: role, FHIRUser: fhirUser, Password: testPassword})
	if err != nil {
		w.t.Fatal(err)
	}
	return w.token(username, u.ID, mfa, scopes...), u.ID
}

func (w *authzWorld) token(username, userID string, mfa bool, scopes ...string) string {
	s := w.s
	a := s.newApp(false, append([]string{"openid", "fhirUser"}, scopes...)...)
	rp := s.relyingParty(a, append([]string{"openid", "fhirUser"}, scopes...)...)
	if mfa {
		return s.signInTOTP(a, rp, username, w.secret(userID))
	}
	return rp.exchange(w.t, s.signIn(s.newBrowser(), a, rp.authURL("m"), username, testPassword)).AccessToken
}

// secret enrols a TOTP factor once per user.
func (w *authzWorld) secret(userID string) string {
	if sec, ok := w.totp[userID]; ok {
		return sec
	}
	sec := w.s.enrolTOTP(userID)
	w.totp[userID] = sec
	return sec
}

func (w *authzWorld) signIn(p1, p2 string) {
	s := w.s
	tk := w.tokens
	tk[svcAll] = s.token
	tk[svcObs] = s.newToken("system/Observation.rs")
	tk[svcAudit] = s.newToken("system/AuditEvent.rs")
	var pu, d1 string
	tk[patientUser], pu = w.person("pat.matrix", policy.RolePatient, "Patient/"+w.pid["O"], false, "user/*.cruds")
	tk[patientApp] = w.token("pat.matrix", pu, false, "launch/patient", "patient/*.rs")
	tk[pract], d1 = w.person("dr.matrix", policy.RolePractitioner, p1, false, "user/*.cruds")
	tk[practObsApp] = w.token("dr.matrix", d1, false, "user/Observation.rs")
	tk[practBTG], _ = w.person("dr.glass.matrix", policy.RolePractitioner, p2, true, "user/*.cruds")
	tk[admin], _ = w.person("root.matrix", policy.RoleAdmin, "", true, "user/*.cruds")
	tk[auditor], _ = w.person("audit.matrix", policy.RoleAuditor, "", true, "user/AuditEvent.rs")
	tk[privacy], _ = w.person("pia.matrix", policy.RolePrivacyOfficer, "", true, "user/*.cruds")
	must(w.t, s.do("POST", "/emergency", map[string]any{"patient": w.pid["U"], "reason": "matrix: unconscious, no records here", "purposeOfUse": "BTG"},
		"Authorization", "Bearer "+tk[practBTG], "Content-Type", "application/json"), http.StatusCreated)
}

// as sends a request as k. Whatever it answers a practitioner holds no
// social security number (A7).
func (w *authzWorld) as(k kind, method, path string, body any, headers ...string) response {
	got := w.s.do(method, path, body, append([]string{"Authorization", "Bearer " + w.tokens[k]}, headers...)...)
	w.noForeignIDs(k, method+" "+path, path, body, got)
	if masked(k) {
		w.stats.maskChecked++
		for i := range patientKeys {
			if bytes.Contains(got.body, []byte(ssnOf(i))) {
				w.stats.maskLeaks++
				w.t.Errorf("A7: %s %s answered %s a social security number", method, path, k)
			}
		}
	}
	return got
}

// noForeignIDs checks that an answer to k names no clinical resource k
// may not see, anywhere in its body (A1-A3), unless the request named it
// first. Patients and shared resources are left out, since what k sees
// refers to them by id (a bridge Observation names every patient, an
// Observation its performer), and so is the ledger, which names every
// resource to whoever may read it.
func (w *authzWorld) noForeignIDs(k kind, what, path string, body any, got response) {
	if strings.HasPrefix(path, "/fhir/AuditEvent") || strings.HasPrefix(path, "/ledger/") {
		return
	}
	req := path
	if body != nil {
		b, _ := json.Marshal(body)
		req += string(b)
	}
	w.stats.answers++
	for _, r := range w.all {
		if r.typ != "Patient" && r.patient != "" && !r.scratch && !sees(k, r, 'r') && bytes.Contains(got.body, []byte(r.id)) && !strings.Contains(req, r.id) {
			w.stats.leaks++
			w.t.Errorf("LEAK %s: the answer to %s names %s", what, k, w.describe(r.ref()))
		}
	}
}

// ssnOf is the synthetic social security number of patient i (9xx
// numbers are never issued).
// v2IdentifierType is the code system of identifier types (MR, SS...).
const v2IdentifierType = "http://terminology.hl7.org/CodeSystem/v2-0203"

func ssnOf(i int) string { return fmt.Sprintf("987-65-432%d", i) }

// masked: the practitioner role never sees social security numbers
// (README: "social security identifiers are never shown").
func masked(k kind) bool { return k == pract || k == practObsApp || k == practBTG }

// bodyFor is what k sends to update r: r as k sees it, so a practitioner
// sends a Patient without the social security number it never saw.
func bodyFor(k kind, r *seeded) map[string]any {
	if !masked(k) || r.typ != "Patient" {
		return r.body
	}
	b := clone(r.body)
	delete(b, "identifier")
	return b
}

// ---- Checking.

// bundleOf is the part of a Bundle the checks read.
type bundleOf struct {
	ResourceType string `json:"resourceType"`
	Total        *int   `json:"total"`
	Entry        []struct {
		Resource *struct {
			ResourceType string `json:"resourceType"`
			ID           string `json:"id"`
		} `json:"resource"`
		Search *struct {
			Mode string `json:"mode"`
		} `json:"search"`
		Response *struct {
			Status   string          `json:"status"`
			Location string          `json:"location"`
			Outcome  json.RawMessage `json:"outcome"`
		} `json:"response"`
	} `json:"entry"`
}

func parseBundle(r response) (bundleOf, error) {
	var b bundleOf
	err := json.Unmarshal(r.body, &b)
	if err == nil && b.ResourceType != "Bundle" {
		err = fmt.Errorf("a %s, not a Bundle", b.ResourceType)
	}
	return b, err
}

// served returns the resources of a Bundle: all, and the matches.
func (b bundleOf) served() (all, matches []string) {
	for _, e := range b.Entry {
		if e.Resource == nil {
			continue
		}
		ref := e.Resource.ResourceType + "/" + e.Resource.ID
		all = append(all, ref)
		if e.Search == nil || e.Search.Mode != "include" {
			matches = append(matches, ref)
		}
	}
	return all, matches
}

// noLeak checks that every resource a Bundle serves k is one k sees
// (A2, A3): a seeded resource out of reach, or anything unknown to the
// matrix, is a leak.
func (w *authzWorld) noLeak(k kind, cell string, refs []string) {
	for _, ref := range refs {
		r, ok := w.byRef[ref]
		if !ok && unrestricted(k) {
			continue
		}
		if !ok || !sees(k, r, 'r') {
			w.stats.leaks++
			w.t.Errorf("LEAK %s: served %s, which %s may not see", cell, w.describe(ref), k)
		}
	}
}

// describe names a resource by its row, never by content.
func (w *authzWorld) describe(ref string) string {
	r, ok := w.byRef[ref]
	if !ok {
		return ref + " (not seeded)"
	}
	return fmt.Sprintf("%s of patient %q label %q", r.typ, r.patient, r.label)
}

// expectSet checks that a search's matches and _total are exactly the
// seeded resources pick selects among those k sees (A2, A3: totals never
// count what the caller may not see).
func (w *authzWorld) expectSet(k kind, cell string, b bundleOf, matches []string, pick func(*seeded) bool) {
	var want []string
	for _, r := range w.all {
		if !r.deleted && pick(r) && sees(k, r, 's') {
			want = append(want, r.ref())
		}
	}
	got := slices.Clone(matches)
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		w.stats.wrongTotals++
		w.t.Errorf("%s: matches %d resources, want %d: extra %v missing %v", cell, len(got), len(want),
			w.names(minus(got, want)), w.names(minus(want, got)))
	}
	if b.Total != nil && *b.Total != len(want) {
		w.stats.wrongTotals++
		w.t.Errorf("%s: _total %d, want %d", cell, *b.Total, len(want))
	}
}

func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

func (w *authzWorld) names(refs []string) []string {
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = w.describe(r)
	}
	return out
}

// record compares a cell's answer with the table. A cell whose key is a
// known gap is logged, not failed, while it differs; it fails once it
// matches, so the marker goes with the fix.
func (w *authzWorld) record(cell string, exp verdict, gotAllow bool, gotStatus int) {
	w.stats.cells++
	if gotAllow {
		w.stats.allows++
	} else {
		w.stats.denies++
	}
	var problem string
	switch {
	case gotAllow && !exp.allow:
		problem = "UNEXPECTED ALLOW"
	case !gotAllow && exp.allow:
		problem = "unexpected deny"
	case gotStatus != exp.status:
		problem = "wrong status"
	}
	gap, known := w.gaps[cell]
	switch {
	case known && problem == "":
		w.t.Errorf("%s: matches the table now; remove its known-gap entry (%s)", cell, gap)
	case known && problem != "UNEXPECTED ALLOW":
		w.stats.knownGaps++
		w.t.Logf("known gap, %s: %s, status %d, want %d (%s)", cell, problem, gotStatus, exp.status, gap)
		return
	}
	switch problem {
	case "UNEXPECTED ALLOW":
		w.stats.unexpectedAllow++
	case "unexpected deny":
		w.stats.unexpectedDeny++
	case "wrong status":
		w.stats.wrongStatus++
	}
	if problem != "" {
		w.t.Errorf("%s: %s: status %d, want %d (allow=%v)", cell, problem, gotStatus, exp.status, exp.allow)
	}
}

// deniedLikeUnknown checks a denied read against the same read of an
// unknown id (A5): a 404 for a hidden resource, and a 403 decided before
// anything is looked up, must both be indistinguishable from it.
func (w *authzWorld) deniedLikeUnknown(k kind, cell string, got response, unknownPath string, get func(string) response) {
	key := string(k) + " " + unknownPath
	unk, ok := w.unrel[key]
	if !ok {
		unk = get(unknownPath)
		w.unrel[key] = unk
	}
	w.stats.deniedBodies++
	if got.status != unk.status || string(got.body) != string(unk.body) {
		w.t.Errorf("%s: denied answer %d %.200s differs from an unknown id's %d %.200s", cell, got.status, got.body, unk.status, unk.body)
	}
}

// auditedDenied checks that a hidden read added one ledger entry, with
// outcome denied (A1).
func (w *authzWorld) auditedDenied(cell string, from int64) {
	es := ledgerEntries(w.t, w.s, from)
	if len(es) != 1 || es[0].Outcome != "denied" {
		w.stats.ledger++
		w.t.Errorf("%s: a hidden read must add one entry with outcome denied; got %+v", cell, es)
	}
}

const unknownID = "no-such-id-0"

// ---- The cells.

// row is one line of the grid: a resource type, with a label, in one
// patient's compartment.
type row struct {
	typ, label string
}

var rows = []row{
	{"Patient", ""}, {"Observation", ""}, {"Observation", "R"}, {"Observation", "HIV"}, {"Observation", "V"},
	{"Condition", ""}, {"Encounter", ""}, {"MedicationRequest", ""},
}

func relation(k kind, p string) string {
	switch {
	case unrestricted(k):
		return "any"
	case reaches[k] == struct{ O, R, U, shared bool }{}:
		return "none"
	case p == "O" && (k == patientUser || k == patientApp):
		return "own"
	case p == "R" && (k == pract || k == practObsApp || k == practBTG):
		return "related"
	case p == "U" && k == practBTG:
		return "emergency"
	case p == "":
		return "shared"
	}
	return "unrelated"
}

func cellName(k kind, p, interaction string, rw row) string {
	t := rw.typ
	if rw.label != "" {
		t += "[" + rw.label + "]"
	}
	return fmt.Sprintf("%s | %s | %s | %s", k, strings.TrimSpace(relation(k, p)+" "+p), interaction, t)
}

// run runs every cell for every caller.
func (w *authzWorld) run() {
	for _, k := range kinds {
		searches := map[string]response{}
		for _, rw := range rows {
			for _, p := range patientKeys {
				w.gridCells(k, p, rw, searches)
			}
		}
		for _, p := range patientKeys {
			w.patientCells(k, p)
		}
		w.sharedCells(k)
		w.iterateCells(k)
		w.ledgerCells(k)
		w.a6Cells(k)
		w.a8Cells(k)
	}
}

func (w *authzWorld) gridCells(k kind, p string, rw row, searches map[string]response) {
	r := w.main[rw.typ+"|"+rw.label+"|"+p]
	base := "/fhir/" + r.typ
	get := func(path string) response { return w.as(k, "GET", path, nil) }
	name := func(i string) string { return cellName(k, p, i, rw) }

	w.readCell(k, name("read"), readWant(k, r), "/fhir/"+r.ref(), base+"/"+unknownID, get)
	w.readCell(k, name("vread"), readWant(k, r), "/fhir/"+r.ref()+"/_history/1", base+"/"+unknownID+"/_history/1", get)
	w.readCell(k, name("history"), readWant(k, r), "/fhir/"+r.ref()+"/_history", base+"/"+unknownID+"/_history", get)

	byPatient := base + "?_total=accurate&_count=500&patient=" + w.pid[p]
	pick := func(x *seeded) bool { return x.typ == r.typ && x.subject == p }
	if r.typ == "Patient" {
		byPatient = base + "?_total=accurate&_id=" + w.pid[p]
	}
	w.searchCell(k, name("search by patient"), searchWant(k, r), r, get(byPatient), pick)
	all, ok := searches[r.typ]
	if !ok {
		all = get(base + "?_total=accurate&_count=500")
		searches[r.typ] = all
	}
	w.searchCell(k, name("search, no filter"), searchWant(k, r), r, all, func(x *seeded) bool { return x.typ == r.typ })
	hist, ok := searches[r.typ+"/_history"]
	if !ok {
		hist = get(base + "/_history?_count=1000")
		searches[r.typ+"/_history"] = hist
	}
	w.historyCell(k, name("type history"), typeHistoryWant(k, r), r, hist)

	w.createCell(k, name("create"), r)
	w.transactionCell(k, name("transaction entry"), r)
	w.updateCell(k, name("update"), r)
	w.correctionCell(k, name("update with X-Provenance"), r)
	w.deleteCell(k, name("delete"), r)
	w.batchCell(k, name("batch entry"), readWant(k, r), r)
	w.bundleWriteCells(k, name, r)
	w.conditionalCells(k, name, r)
}

func (w *authzWorld) readCell(k kind, cell string, exp verdict, path, unknownPath string, get func(string) response) {
	from := ledgerSize(w.t, w.s)
	got := get(path)
	w.record(cell, exp, got.status == 200, got.status)
	if got.status == 404 {
		w.auditedDenied(cell, from)
	}
	if got.status == 403 || got.status == 404 {
		w.deniedLikeUnknown(k, cell, got, unknownPath, get)
	}
	if got.status == 200 && strings.HasSuffix(path, "/_history") {
		if b, err := parseBundle(got); err == nil {
			all, _ := b.served()
			w.stats.bundles++
			w.noLeak(k, cell, all)
		}
	}
}

func (w *authzWorld) searchCell(k kind, cell string, exp verdict, r *seeded, got response, pick func(*seeded) bool) {
	if got.status != 200 {
		w.record(cell, exp, false, got.status)
		return
	}
	b, err := parseBundle(got)
	if err != nil {
		w.t.Errorf("%s: %v", cell, err)
		return
	}
	all, matches := b.served()
	w.stats.bundles++
	w.noLeak(k, cell, all)
	w.expectSet(k, cell, b, matches, pick)
	w.record(cell, exp, slices.Contains(matches, r.ref()), got.status)
}

func (w *authzWorld) historyCell(k kind, cell string, exp verdict, r *seeded, got response) {
	if got.status != 200 {
		w.record(cell, exp, false, got.status)
		return
	}
	b, err := parseBundle(got)
	if err != nil {
		w.t.Errorf("%s: %v", cell, err)
		return
	}
	all, _ := b.served()
	w.stats.bundles++
	w.noLeak(k, cell, all)
	w.record(cell, exp, slices.Contains(all, r.ref()), got.status)
}

// newLike is a fresh resource like r (for r's patient, with r's label).
func (w *authzWorld) newLike(r *seeded) map[string]any {
	return withLabel(clinicalBody(r.typ, w.pid[r.patient], w.org.id), r.label)
}

// cleanup deletes what an allowed create wrote, with the service token,
// so every cell sees the seeded data and nothing else.
func (w *authzWorld) cleanup(ref string) {
	if ref != "" {
		must(w.t, w.s.do("DELETE", "/fhir/"+ref, nil), http.StatusNoContent)
	}
}

// write sends one write as k; a refused write must add exactly one
// ledger entry, with outcome denied (A4: refused, nothing written,
// audited).
func (w *authzWorld) write(k kind, cell, method, path string, body any, headers ...string) response {
	from := ledgerSize(w.t, w.s)
	got := w.as(k, method, path, body, headers...)
	if got.status == 403 {
		es := ledgerEntries(w.t, w.s, from)
		if len(es) != 1 || es[0].Outcome != "denied" {
			w.stats.ledger++
			w.t.Errorf("%s: a refused write must add one entry with outcome denied; got %+v", cell, es)
		}
	}
	return got
}

func (w *authzWorld) createCell(k kind, cell string, r *seeded) {
	got := w.write(k, cell, "POST", "/fhir/"+r.typ, w.newLike(r))
	w.record(cell, createWant(k, r), got.status == 201, got.status)
	if got.status == 201 {
		w.cleanup(r.typ + "/" + got.json(w.t)["id"].(string))
	}
}

func (w *authzWorld) transactionCell(k kind, cell string, r *seeded) {
	bundle := map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{map[string]any{
		"fullUrl": "urn:uuid:5e1ec7ed-0000-4000-8000-000000000001", "resource": w.newLike(r),
		"request": map[string]any{"method": "POST", "url": r.typ}}}}
	got := w.write(k, cell, "POST", "/fhir", bundle)
	exp := createWant(k, r)
	if exp.allow {
		exp.status = 200
	}
	w.record(cell, exp, got.status == 200, got.status)
	if got.status != 200 {
		return
	}
	b, err := parseBundle(got)
	if err != nil || len(b.Entry) != 1 || b.Entry[0].Response == nil {
		w.t.Errorf("%s: transaction response %.300s", cell, got.body)
		return
	}
	loc := b.Entry[0].Response.Location
	if i := strings.Index(loc, "/_history"); i > 0 {
		loc = loc[:i]
	}
	w.cleanup(loc[strings.Index(loc, r.typ+"/"):])
}

func (w *authzWorld) updateCell(k kind, cell string, r *seeded) {
	if r.deleted {
		return
	}
	got := w.write(k, cell, "PUT", "/fhir/"+r.ref(), bodyFor(k, r)) // the same content, labels kept
	w.record(cell, writeWant(k, r, 'u', 200), got.status == 200 || got.status == 201, got.status)
	if got.status < 300 {
		r.version++
	}
}

// correctionCell is updateCell with an X-Provenance header: the
// Provenance is stored exactly when the update is.
func (w *authzWorld) correctionCell(k kind, cell string, r *seeded) {
	if r.deleted {
		return
	}
	provenances := func() []string {
		b, err := parseBundle(must(w.t, w.s.do("GET", "/fhir/Provenance?_count=1000&target="+r.ref(), nil), http.StatusOK))
		if err != nil {
			w.t.Fatalf("%s: finding Provenances: %v", cell, err)
		}
		_, refs := b.served()
		return refs
	}
	before := provenances()
	got := w.write(k, cell, "PUT", "/fhir/"+r.ref(), bodyFor(k, r), "X-Provenance", provenanceHeader(w.t))
	w.record(cell, correctionWant(k, r), got.status == 200 || got.status == 201, got.status)
	if got.status < 300 {
		r.version++
	}
	wrote := minus(provenances(), before)
	if len(wrote) != 0 && (len(wrote) != 1 || got.status >= 300) {
		w.stats.ledger++
		w.t.Errorf("%s: status %d wrote %d Provenances", cell, got.status, len(wrote))
	}
	// The Provenance is the patient's data, labelled as what it is
	// about: every later cell checks who sees it.
	for _, ref := range wrote {
		typ, id, _ := strings.Cut(ref, "/")
		p := &seeded{typ: typ, id: id, patient: r.patient, label: r.label, version: 1}
		w.all = append(w.all, p)
		w.byRef[ref] = p
	}
}

func (w *authzWorld) deleteCell(k kind, cell string, r *seeded) {
	got := w.write(k, cell, "DELETE", "/fhir/"+r.ref(), nil)
	w.record(cell, deleteWant(k, r), got.status == 204, got.status)
	if got.status == 204 {
		if st := w.s.do("PUT", "/fhir/"+r.ref(), r.body).status; st != 200 && st != 201 {
			w.t.Fatalf("%s: restoring the deleted resource: %d", cell, st)
		}
		r.version += 2
	}
	if got.status == 404 && may(k, r.typ, 'd') && !sees(k, r, 'r') {
		// Invariant 10: deleting what the caller may not see should
		// answer as deleting an unknown id does.
		key := string(k) + " DELETE " + r.typ
		unk, ok := w.unrel[key]
		if !ok {
			unk = w.as(k, "DELETE", "/fhir/"+r.typ+"/"+unknownID, nil)
			w.unrel[key] = unk
		}
		w.record(strings.Replace(cell, "| delete |", "| delete, hidden vs unknown id |", 1), verdict{false, unk.status}, false, got.status)
	}
	w.patchCell(k, strings.Replace(cell, "| delete |", "| patch |", 1), r)
	w.fhirPathPatchCell(k, strings.Replace(cell, "| delete |", "| FHIRPath patch |", 1), r)
}

// fhirPathPatchCell: a FHIRPath Patch that changes no content (it
// deletes an element no seeded resource has) is decided exactly as a
// JSON Patch is.
func (w *authzWorld) fhirPathPatchCell(k kind, cell string, r *seeded) {
	if r.deleted {
		return
	}
	patch := `{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"delete"},` +
		`{"name":"path","valueString":"` + r.typ + `.implicitRules"}]}]}`
	got := w.write(k, cell, "PATCH", "/fhir/"+r.ref(), patch, "Content-Type", "application/fhir+json")
	w.record(cell, patchWant(k, r), got.status == 200, got.status)
	if got.status == 200 {
		r.version++
	}
}

// patchCell: a JSON Patch that changes no content (its one operation a
// test that holds) still writes a version, so it is allowed exactly as
// an update of what the caller can read is.
func (w *authzWorld) patchCell(k kind, cell string, r *seeded) {
	if r.deleted {
		return
	}
	patch := `[{"op":"test","path":"/resourceType","value":"` + r.typ + `"}]`
	got := w.write(k, cell, "PATCH", "/fhir/"+r.ref(), patch, "Content-Type", "application/json-patch+json")
	w.record(cell, patchWant(k, r), got.status == 200, got.status)
	if got.status == 200 {
		r.version++
	}
}

func (w *authzWorld) batchCell(k kind, cell string, exp verdict, r *seeded) {
	entry := func(path string) response {
		b := map[string]any{"resourceType": "Bundle", "type": "batch", "entry": []any{map[string]any{
			"request": map[string]any{"method": "GET", "url": path}}}}
		got := w.as(k, "POST", "/fhir", b)
		bb, err := parseBundle(got)
		if got.status != 200 || err != nil || len(bb.Entry) != 1 || bb.Entry[0].Response == nil {
			return got
		}
		st, _ := strconv.Atoi(strings.SplitN(bb.Entry[0].Response.Status, " ", 2)[0])
		all, _ := bb.served()
		w.noLeak(k, cell, all)
		return response{status: st, body: bb.Entry[0].Response.Outcome}
	}
	got := entry(r.ref())
	w.record(cell, exp, got.status == 200, got.status)
	if got.status == 403 || got.status == 404 {
		w.deniedLikeUnknown(k, cell, got, r.typ+"/"+unknownID, entry)
	}
}

// bundleWriteCells: an update as a transaction entry, a deletion as a
// batch entry; each is decided as the same write on its own.
func (w *authzWorld) bundleWriteCells(k kind, name func(string) string, r *seeded) {
	if r.deleted {
		return
	}
	cell := name("transaction entry (PUT)")
	tx := map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{map[string]any{
		"fullUrl": "urn:uuid:5e1ec7ed-0000-4000-8000-000000000002", "resource": bodyFor(k, r),
		"request": map[string]any{"method": "PUT", "url": r.ref()}}}}
	got := w.write(k, cell, "POST", "/fhir", tx)
	w.record(cell, writeWant(k, r, 'u', 200), got.status == 200, got.status)
	if got.status == 200 {
		r.version++
	}

	// A patch as a transaction entry (a FHIRPath Patch) and as a batch
	// entry (a JSON Patch in a Binary), each changing no content: decided
	// exactly as the PATCH it stands for.
	cell = name("transaction entry (PATCH)")
	fpNoop := map[string]any{"resourceType": "Parameters", "parameter": []any{map[string]any{"name": "operation", "part": []any{
		map[string]any{"name": "type", "valueCode": "delete"}, map[string]any{"name": "path", "valueString": r.typ + ".implicitRules"}}}}}
	tx = map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{map[string]any{
		"resource": fpNoop, "request": map[string]any{"method": "PATCH", "url": r.ref()}}}}
	got = w.write(k, cell, "POST", "/fhir", tx)
	w.record(cell, patchWant(k, r), got.status == 200, got.status)
	if got.status == 200 {
		r.version++
	}
	cell = name("batch entry (PATCH)")
	jpNoop := map[string]any{"resourceType": "Binary", "contentType": "application/json-patch+json",
		"data": base64.StdEncoding.EncodeToString([]byte(`[{"op":"test","path":"/resourceType","value":"` + r.typ + `"}]`))}
	got = w.as(k, "POST", "/fhir", map[string]any{"resourceType": "Bundle", "type": "batch", "entry": []any{map[string]any{
		"resource": jpNoop, "request": map[string]any{"method": "PATCH", "url": r.ref()}}}})
	st := got.status
	if b, err := parseBundle(got); got.status == 200 && err == nil && len(b.Entry) == 1 && b.Entry[0].Response != nil {
		st, _ = strconv.Atoi(strings.SplitN(b.Entry[0].Response.Status, " ", 2)[0])
	}
	w.record(cell, patchWant(k, r), st == 200, st)
	if st == 200 {
		r.version++
	}

	cell = name("batch entry (DELETE)")
	batch := map[string]any{"resourceType": "Bundle", "type": "batch", "entry": []any{map[string]any{
		"request": map[string]any{"method": "DELETE", "url": r.ref()}}}}
	got = w.as(k, "POST", "/fhir", batch)
	st = got.status
	if b, err := parseBundle(got); got.status == 200 && err == nil && len(b.Entry) == 1 && b.Entry[0].Response != nil {
		st, _ = strconv.Atoi(strings.SplitN(b.Entry[0].Response.Status, " ", 2)[0])
	}
	w.record(cell, deleteWant(k, r), st == 204, st)
	if st == 204 {
		if st := w.s.do("PUT", "/fhir/"+r.ref(), r.body).status; st != 200 && st != 201 {
			w.t.Fatalf("%s: restoring the deleted resource: %d", cell, st)
		}
		r.version += 2
	}
}

// writablePatient is the first patient k may write typ for, or fallback.
func writablePatient(k kind, typ, fallback string) string {
	for _, p := range patientKeys {
		if mayWrite(k, typ, p, "", 'c', false) {
			return p
		}
	}
	return fallback
}

// conditionalCells: criteria that select the row's resource by id, in a
// conditional create and a conditional update. Matching is a search: it
// must not reach what the caller may not see, neither to hand it back
// nor to overwrite it (A3, A4).
func (w *authzWorld) conditionalCells(k kind, name func(string) string, r *seeded) {
	if r.deleted {
		return
	}
	q := writablePatient(k, r.typ, r.patient)
	idOf := func(got response) string {
		var m struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(got.body, &m)
		return m.ID
	}
	cell := name("conditional create selecting it")
	got := w.write(k, cell, "POST", "/fhir/"+r.typ, clinicalBody(r.typ, w.pid[q], w.org.id), "If-None-Exist", "_id="+r.id)
	w.record(cell, conditionalCreateWant(k, r, q), got.status == 200 && idOf(got) == r.id, got.status)
	if got.status == 201 {
		w.cleanup(r.typ + "/" + idOf(got))
	}

	cell = name("conditional update selecting it")
	body := bodyFor(k, r)
	if !sees(k, r, 's') {
		body = clinicalBody(r.typ, w.pid[q], w.org.id)
	}
	got = w.write(k, cell, "PUT", "/fhir/"+r.typ+"?_id="+r.id, body)
	reached := got.status == 200 && idOf(got) == r.id
	w.record(cell, conditionalUpdateWant(k, r, q), reached, got.status)
	switch {
	case got.status == 201:
		w.cleanup(r.typ + "/" + idOf(got))
	case reached:
		r.version++
	}
}

// patientCells are the cells aimed at one patient as a whole:
// $everything, _include through a reference to the patient, and
// _revinclude from the patient.
func (w *authzWorld) patientCells(k kind, p string) {
	pat := w.main["Patient||"+p]
	rw := row{typ: "Patient"}
	get := func(path string) response { return w.as(k, "GET", path, nil) }

	cell := cellName(k, p, "$everything", rw)
	from := ledgerSize(w.t, w.s)
	got := get("/fhir/" + pat.ref() + "/$everything")
	w.record(cell, everythingWant(k, pat), got.status == 200, got.status)
	if got.status == 404 {
		w.auditedDenied(cell, from)
	}
	if got.status == 403 || got.status == 404 {
		w.deniedLikeUnknown(k, cell, got, "/fhir/Patient/"+unknownID+"/$everything", get)
	}
	if got.status == 200 {
		if b, err := parseBundle(got); err == nil {
			all, _ := b.served()
			w.stats.bundles++
			w.noLeak(k, cell, all)
			reached := w.referencedBy(k, p)
			w.expectSet(k, cell, bundleOf{}, all, func(x *seeded) bool { return x.patient == p || reached[x.ref()] && sees(k, x, 'r') })
		}
	}

	// Electronic signatures: the signature record reads as the resource
	// does; asking to sign is refused to all (nobody holds the right).
	obs := w.main["Observation||"+p]
	cell = cellName(k, p, "$signatures", row{typ: "Observation"})
	from = ledgerSize(w.t, w.s)
	got = get("/fhir/" + obs.ref() + "/$signatures")
	w.record(cell, signaturesWant(k, obs), got.status == 200, got.status)
	if got.status == 404 {
		w.auditedDenied(cell, from)
		w.deniedLikeUnknown(k, cell, got, "/fhir/Observation/"+unknownID+"/$signatures", get)
	}
	cell = cellName(k, p, "$sign", row{typ: "Observation"})
	from = ledgerSize(w.t, w.s)
	got = w.as(k, "POST", "/fhir/"+obs.ref()+"/_history/1/$sign", map[string]any{"meaning": "1.2.840.10065.1.12.1.1"}, "Content-Type", "application/json")
	w.record(cell, signWant(k, obs), got.status == 200, got.status)
	if got.status == 404 {
		w.auditedDenied(cell, from)
	}

	// A deleted resource: 410 to whoever sees it, and to anyone else
	// exactly what an unknown id answers (A5).
	del := w.main["Observation|deleted|"+p]
	cell = cellName(k, p, "read a deleted resource", row{typ: "Observation"})
	exp := readWant(k, del)
	if exp.allow {
		exp.status = 410
	}
	from = ledgerSize(w.t, w.s)
	got = get("/fhir/" + del.ref())
	w.record(cell, exp, got.status == 410, got.status)
	if got.status == 404 {
		w.auditedDenied(cell, from)
	}
	if got.status == 403 || got.status == 404 {
		w.deniedLikeUnknown(k, cell, got, "/fhir/Observation/"+unknownID, get)
	}

	// _elements and _summary show no masked element (A7; as() checks).
	for _, q := range []string{"&_elements=identifier", "&_summary=true"} {
		got := get("/fhir/Patient?_total=accurate&_id=" + w.pid[p] + q)
		w.searchCell(k, cellName(k, p, "search with "+q[1:], rw), searchWant(k, pat), pat, got, func(x *seeded) bool { return x == pat })
	}

	w.chainCells(k, p, pat)

	// _include: bridges in every compartment name every patient as focus;
	// the caller finds the bridges it sees and must get Patient p only if
	// it may read it.
	cell = cellName(k, p, "_include aimed at the patient", row{typ: "Observation"})
	got = get("/fhir/Observation?_total=accurate&_include=Observation:focus&focus=Patient/" + w.pid[p])
	exp = verdict{false, 403}
	if may(k, "Observation", 's') {
		exp = verdict{w.anyBridge(k) && sees(k, pat, 'r'), 200}
	}
	w.includeCell(k, cell, exp, got, pat, func(x *seeded) bool { return x.bridge })

	// _revinclude: the Patient and what refers to it.
	cell = cellName(k, p, "_revinclude from the patient", rw)
	got = get("/fhir/Patient?_total=accurate&_revinclude=Observation:subject&_id=" + w.pid[p])
	w.includeCell(k, cell, searchWant(k, pat), got, pat, func(x *seeded) bool { return x == pat })
	if got.status == 200 {
		b, _ := parseBundle(got)
		all, _ := b.served()
		var want []string
		if sees(k, pat, 's') {
			for _, x := range w.all {
				if x.typ == "Observation" && x.subject == p && !x.deleted && sees(k, x, 's') {
					want = append(want, x.ref())
				}
			}
		}
		if inc := minus(all, []string{pat.ref()}); !sameSet(inc, want) {
			w.stats.wrongTotals++
			w.t.Errorf("%s: includes %v, want %v", cell, w.names(inc), w.names(want))
		}
	}
}

// chainCells: chained parameters and _has aimed at patient p (A3). Each
// hop is a search as the caller: it needs search on every type it
// passes (403 otherwise), and a hop through what the caller may not see
// (p's record out of reach, a label, a Consent, a masked element)
// matches nothing, as if it did not exist; totals count only what is
// seen. Each cell's matches and _total must be exactly the table's.
func (w *authzWorld) chainCells(k kind, p string, pat *seeded) {
	get := func(path string) response { return w.as(k, "GET", path, nil) }
	seenObs := func(pick func(*seeded) bool) bool {
		for _, x := range w.all {
			if x.typ == "Observation" && x.subject == p && !x.deleted && pick(x) && sees(k, x, 's') {
				return true
			}
		}
		return false
	}
	labelled := w.main["Observation|R|"+p]
	cond := w.main["Condition||"+p]
	cells := []struct {
		name  string
		types []string // the types searched, outer first
		query string
		// pick: the resources the answer must match, among those k sees,
		// when every hop is allowed.
		pick   func(*seeded) bool
		masked bool // a hop reaches an element masked for k: 403
	}{
		{"chained search aimed at the patient", []string{"Observation", "Patient"}, "Observation?subject:Patient._id=" + w.pid[p],
			func(x *seeded) bool { return x.typ == "Observation" && x.subject == p && sees(k, pat, 's') }, false},
		{"chained search by the patient's SSN", []string{"Observation", "Patient"},
			"Observation?subject:Patient.identifier=http://hl7.org/fhir/sid/us-ssn|" + ssnOf(slices.Index(patientKeys, p)),
			func(x *seeded) bool { return x.typ == "Observation" && x.subject == p && sees(k, pat, 's') }, masked(k)},
		{"_has aimed at the patient", []string{"Patient", "Observation"}, "Patient?_id=" + w.pid[p] + "&_has:Observation:subject:status=final",
			func(x *seeded) bool { return x == pat && seenObs(func(*seeded) bool { return true }) }, false},
		{"_has through a restricted (R) Observation", []string{"Patient", "Observation"},
			"Patient?_id=" + w.pid[p] + "&_has:Observation:subject:_id=" + labelled.id,
			func(x *seeded) bool { return x == pat && sees(k, labelled, 's') }, false},
		{"_has through a Condition (Consent)", []string{"Patient", "Condition"},
			"Patient?_id=" + w.pid[p] + "&_has:Condition:subject:_id=" + cond.id,
			func(x *seeded) bool { return x == pat && sees(k, cond, 's') }, false},
		// Composites and :of-type (A3): candidates are searched as the
		// caller, so one through what the caller may not see finds
		// nothing, and totals count only what it sees.
		{"composite search aimed at the patient", []string{"Observation"},
			"Observation?subject=Patient/" + w.pid[p] + "&code-value-quantity=http://loinc.org%7C8867-4$72",
			func(x *seeded) bool { return x.typ == "Observation" && x.subject == p }, false},
		{"composite search across two elements", []string{"Observation"},
			"Observation?subject=Patient/" + w.pid[p] + "&combo-code-value-quantity=http://loinc.org%7C8867-4$73,http://loinc.org%7C0000-0$72",
			func(*seeded) bool { return false }, false},
		{"composite search aimed at the patient through a chain", []string{"Patient", "Observation"},
			"Patient?_id=" + w.pid[p] + "&_has:Observation:subject:code-value-quantity=http://loinc.org%7C8867-4$72",
			func(x *seeded) bool { return x == pat && seenObs(func(*seeded) bool { return true }) }, false},
		// :identifier (A3): the Observations whose subject gives the
		// patient's MRN, narrowed as any search of them.
		{"search by the subject's identifier", []string{"Observation"},
			"Observation?subject:identifier=" + matrixMRN + "%7CMRN-" + w.pid[p],
			func(x *seeded) bool { return x.typ == "Observation" && x.subject == p }, false},
		{":of-type by the patient's SSN", []string{"Patient"},
			"Patient?identifier:of-type=" + v2IdentifierType + "%7CSS%7C" + ssnOf(slices.Index(patientKeys, p)),
			func(x *seeded) bool { return x == pat }, masked(k)},
		{"chained :of-type by the patient's SSN", []string{"Observation", "Patient"},
			"Observation?subject:Patient.identifier:of-type=" + v2IdentifierType + "%7CSS%7C" + ssnOf(slices.Index(patientKeys, p)),
			func(x *seeded) bool { return x.typ == "Observation" && x.subject == p && sees(k, pat, 's') }, masked(k)},
		{"_has and a chain back to the patient", []string{"Patient", "Observation", "Patient"},
			"Patient?_has:Observation:subject:subject:Patient._id=" + w.pid[p],
			func(x *seeded) bool {
				return x == pat && sees(k, pat, 's') && seenObs(func(*seeded) bool { return true })
			}, false},
	}
	for _, c := range cells {
		cell := cellName(k, p, c.name, row{typ: c.types[0]})
		got := get("/fhir/" + c.query + "&_total=accurate&_count=500")
		exp := verdict{false, 200}
		for _, typ := range c.types {
			if !may(k, typ, 's') {
				exp = verdict{false, 403}
			}
		}
		if exp.status == 200 && c.masked {
			exp = verdict{false, 403}
		}
		if got.status != 200 || exp.status != 200 {
			w.record(cell, exp, false, got.status)
			continue
		}
		b, err := parseBundle(got)
		if err != nil {
			w.t.Errorf("%s: %v", cell, err)
			continue
		}
		all, matches := b.served()
		w.stats.bundles++
		w.noLeak(k, cell, all)
		w.expectSet(k, cell, b, matches, c.pick)
		for _, x := range w.all {
			if !x.deleted && c.pick(x) && sees(k, x, 's') {
				exp.allow = true
			}
		}
		w.record(cell, exp, len(matches) > 0, got.status)
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	sort.Strings(a)
	sort.Strings(b)
	return slices.Equal(a, b)
}

func (w *authzWorld) anyBridge(k kind) bool {
	for _, x := range w.all {
		if x.bridge && sees(k, x, 's') {
			return true
		}
	}
	return false
}

// includeCell records whether target was served, checks the served
// resources and the matches.
func (w *authzWorld) includeCell(k kind, cell string, exp verdict, got response, target *seeded, pick func(*seeded) bool) {
	if got.status != 200 {
		w.record(cell, exp, false, got.status)
		return
	}
	b, err := parseBundle(got)
	if err != nil {
		w.t.Errorf("%s: %v", cell, err)
		return
	}
	all, matches := b.served()
	w.stats.bundles++
	w.noLeak(k, cell, all)
	w.expectSet(k, cell, b, matches, pick)
	w.record(cell, exp, slices.Contains(all, target.ref()), got.status)
}

// sharedCells: a Practitioner and an Organization, outside every
// patient's compartment.
func (w *authzWorld) sharedCells(k kind) {
	get := func(path string) response { return w.as(k, "GET", path, nil) }
	for _, r := range w.shared {
		rw := row{typ: r.typ}
		name := func(i string) string { return cellName(k, "", i, rw) }
		base := "/fhir/" + r.typ
		w.readCell(k, name("read"), readWant(k, r), "/fhir/"+r.ref(), base+"/"+unknownID, get)
		w.readCell(k, name("vread"), readWant(k, r), "/fhir/"+r.ref()+"/_history/1", base+"/"+unknownID+"/_history/1", get)
		w.readCell(k, name("history"), readWant(k, r), "/fhir/"+r.ref()+"/_history", base+"/"+unknownID+"/_history", get)
		w.searchCell(k, name("search"), searchWant(k, r), r, get(base+"?_total=accurate&_id="+r.id), func(x *seeded) bool { return x == r })

		body := map[string]any{"resourceType": r.typ, "active": true}
		if r.typ == "Organization" {
			body = map[string]any{"resourceType": r.typ, "name": "Another Clinic"}
		}
		got := w.as(k, "POST", base, body)
		w.record(name("create"), writeWant(k, r, 'c', 201), got.status == 201, got.status)
		if got.status == 201 {
			w.cleanup(r.typ + "/" + got.json(w.t)["id"].(string))
		}
		w.updateCell(k, name("update"), r)
		w.deleteCell(k, name("delete"), r)
	}
	// _revinclude from a shared resource that every patient's
	// Observations refer to: only those the caller sees come along.
	cell := cellName(k, "", "_revinclude from the shared Organization", row{typ: "Organization"})
	got := get("/fhir/Organization?_total=accurate&_revinclude=Observation:performer&_id=" + w.org.id)
	w.includeCell(k, cell, searchWant(k, w.org), got, w.org, func(x *seeded) bool { return x == w.org })
	if got.status == 200 {
		b, _ := parseBundle(got)
		all, _ := b.served()
		var want []string
		if sees(k, w.org, 's') {
			for _, x := range w.all {
				if x.perfOrg && !x.deleted && sees(k, x, 's') {
					want = append(want, x.ref())
				}
			}
		}
		if inc := minus(all, []string{w.org.ref()}); !sameSet(inc, want) {
			w.stats.wrongTotals++
			w.t.Errorf("%s: includes %v, want %v", cell, w.names(inc), w.names(want))
		}
	}
}

// iterateCells: _include:iterate from what a _revinclude brought (A3):
// the shared Organization, the Observations that name it as performer,
// and their subjects, each only if the caller sees it.
func (w *authzWorld) iterateCells(k kind) {
	cell := cellName(k, "", "_revinclude, then _include:iterate of the subjects", row{typ: "Organization"})
	got := w.as(k, "GET", "/fhir/Organization?_total=accurate&_id="+w.org.id+"&_revinclude=Observation:performer&_include:iterate=Observation:subject", nil)
	w.includeCell(k, cell, searchWant(k, w.org), got, w.org, func(x *seeded) bool { return x == w.org })
	if got.status != 200 {
		return
	}
	b, _ := parseBundle(got)
	all, _ := b.served()
	var want []string
	if sees(k, w.org, 's') {
		subjects := map[string]bool{}
		for _, x := range w.all {
			if x.perfOrg && !x.deleted && sees(k, x, 's') {
				want = append(want, x.ref())
				subjects[x.subject] = true
			}
		}
		for p := range subjects {
			if pat := w.main["Patient||"+p]; sees(k, pat, 'r') {
				want = append(want, pat.ref())
			}
		}
	}
	if inc := minus(all, []string{w.org.ref()}); !sameSet(inc, want) {
		w.stats.wrongTotals++
		w.t.Errorf("%s: includes %v, want %v", cell, w.names(inc), w.names(want))
	}
}

// ledgerCells: the audit trail and people's accounts.
func (w *authzWorld) ledgerCells(k kind) {
	rw := row{typ: "AuditEvent"}
	ok := func(m map[kind]bool) verdict {
		if m[k] {
			return allowWith(200)
		}
		return verdict{false, 403}
	}
	for _, c := range []struct{ name, method, path string }{
		{"read", "GET", "/fhir/AuditEvent/0"},
		{"search", "GET", "/fhir/AuditEvent?_count=5"},
		{"read /ledger/checkpoint", "GET", "/ledger/checkpoint"},
		{"read /ledger/keys", "GET", "/ledger/keys"},
	} {
		got := w.as(k, c.method, c.path, nil)
		w.record(cellName(k, "", c.name, rw), ok(ledgerReaders), got.status == 200, got.status)
	}
	// Nobody writes the ledger through FHIR, whatever the scopes (A8).
	ae := map[string]any{"resourceType": "AuditEvent"}
	got := w.as(k, "POST", "/fhir/AuditEvent", ae)
	w.record(cellName(k, "", "create", rw), verdict{false, 403}, got.status < 300, got.status)
	got = w.as(k, "DELETE", "/fhir/AuditEvent/0", nil)
	w.record(cellName(k, "", "delete", rw), verdict{false, 403}, got.status < 300, got.status)

	got = w.as(k, "GET", "/admin/users", nil)
	w.record(cellName(k, "", "list", row{typ: "/admin/users"}), ok(accountAdmins), got.status == 200, got.status)
	got = w.as(k, "GET", "/admin/emergency?reviewed=false", nil)
	w.record(cellName(k, "", "list", row{typ: "/admin/emergency"}), ok(map[kind]bool{privacy: true}), got.status == 200, got.status)
}

// a6Cells: server-controlled meta (A6). A client's versionId and
// lastUpdated are ignored (or the write refused); only a caller that may
// label sets a security label, on create or by update; a client that
// sends no labels on update cannot strip them unless it may label.
func (w *authzWorld) a6Cells(k kind) {
	p := ""
	for _, x := range patientKeys {
		if mayWrite(k, "Observation", x, "", 'c', false) {
			p = x
			break
		}
	}
	if p == "" {
		p = "O"
	}
	rw := row{typ: "Observation"}
	tmpl := w.main["Observation||"+p]

	body := w.newLike(tmpl)
	body["meta"] = map[string]any{"versionId": "7", "lastUpdated": "2001-01-01T00:00:00Z"}
	got := w.as(k, "POST", "/fhir/Observation", body)
	cell := cellName(k, p, "create with client versionId, lastUpdated", rw)
	w.record(cell, writeWant(k, tmpl, 'c', 201), got.status == 201, got.status)
	if got.status == 201 {
		m := got.json(w.t)
		meta, _ := m["meta"].(map[string]any)
		if meta["versionId"] != "1" || strings.HasPrefix(fmt.Sprint(meta["lastUpdated"]), "2001") {
			w.t.Errorf("%s: the server kept the client's meta: %v", cell, meta)
		}
		w.cleanup("Observation/" + m["id"].(string))
	}

	// Adding a label by update.
	fresh := w.create(w.newLike(tmpl), &seeded{patient: p, subject: p, perfOrg: true, scratch: true})
	labelled := withLabel(clone(fresh.body), "R")
	got = w.as(k, "PUT", "/fhir/"+fresh.ref(), labelled)
	exp := writeWant(k, fresh, 'u', 200)
	if !mayLabel(k) {
		exp = verdict{false, 403}
	}
	w.record(cellName(k, p, "update adding a security label", rw), exp, got.status == 200, got.status)
	w.cleanup(fresh.ref())
	fresh.deleted = true

	// Stripping a label by update: a labelled resource the caller sees
	// and may update (the patient's own labels cannot be written by the
	// patient, who may not update).
	q := ""
	for _, x := range patientKeys {
		if mayWrite(k, "Observation", x, "HIV", 'u', false) {
			q = x
			break
		}
	}
	if q == "" {
		return
	}
	fresh = w.create(withLabel(w.newLike(w.main["Observation||"+q]), "HIV"), &seeded{patient: q, subject: q, label: "HIV", perfOrg: true, scratch: true})
	unlabelled := clone(fresh.body)
	delete(unlabelled, "meta")
	got = w.as(k, "PUT", "/fhir/"+fresh.ref(), unlabelled)
	cell = cellName(k, q, "update without the stored label", row{typ: "Observation", label: "HIV"})
	w.record(cell, allowWith(200), got.status == 200, got.status)
	if got.status == 200 {
		kept := strings.Contains(string(got.body), `"code":"HIV"`)
		if kept == mayLabel(k) {
			w.t.Errorf("%s: label kept=%v; only a caller that may label removes one", cell, kept)
		}
	}
	w.cleanup(fresh.ref())
	fresh.deleted = true
}

func clone(m map[string]any) map[string]any {
	b, _ := json.Marshal(m)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}

// a8Cells: method override headers are refused whatever the token (A8);
// a read-only or patient token's DELETE and admin routes are in the grid.
func (w *authzWorld) a8Cells(k kind) {
	r := w.main["Observation||O"]
	for _, h := range []string{"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"} {
		got := w.as(k, "GET", "/fhir/"+r.ref(), nil, h, "DELETE")
		w.record(cellName(k, "O", "GET with "+h+": DELETE", row{typ: "Observation"}), verdict{false, 403}, got.status < 300, got.status)
	}
	// What the overrides were refused for did not happen.
	must(w.t, w.s.do("GET", "/fhir/"+r.ref(), nil), http.StatusOK)
}

// nothingElseWritten checks, with the full-scope service, that the store
// holds exactly what the matrix saw written: every resource has the
// versions the allowed writes made and no more (a refused update or
// delete wrote nothing), and every type holds exactly the seeded
// resources (a refused create or transaction wrote nothing) (A4).
func (w *authzWorld) nothingElseWritten() {
	types := map[string]bool{}
	for _, r := range w.all {
		types[r.typ] = true
		if r.scratch {
			continue
		}
		b, err := parseBundle(w.s.do("GET", "/fhir/"+r.ref()+"/_history?_count=1000", nil))
		if err != nil || b.Total == nil || *b.Total != r.version {
			w.t.Errorf("%s: history holds %v versions, want %d (%v)", w.describe(r.ref()), b.Total, r.version, err)
		}
	}
	for i, p := range patientKeys {
		if got := w.s.do("GET", "/fhir/Patient/"+w.pid[p], nil); !bytes.Contains(got.body, []byte(ssnOf(i))) {
			w.t.Errorf("A7: patient %s lost its social security number to a masked writer", p)
		}
	}
	if got := w.as(patientUser, "GET", "/fhir/Patient/"+w.pid["O"], nil); !bytes.Contains(got.body, []byte(ssnOf(0))) {
		w.t.Errorf("A7: the patient does not see their own social security number (status %d)", got.status)
	}
	for typ := range types {
		b, err := parseBundle(w.s.do("GET", "/fhir/"+typ+"?_total=accurate&_count=1000", nil))
		if err != nil {
			w.t.Errorf("%s: %v", typ, err)
			continue
		}
		_, got := b.served()
		var want []string
		for _, r := range w.all {
			if r.typ == typ && !r.deleted {
				want = append(want, r.ref())
			}
		}
		if !sameSet(got, want) {
			w.t.Errorf("%s: the store holds %v, want %v", typ, w.names(minus(got, want)), w.names(minus(want, got)))
		}
	}
}

// knownGaps are cells where Ward answers differently from the table in
// the deny direction, for a stated reason. An unexpected allow is never
// a known gap.
func knownGaps() map[string]string {
	g := map[string]string{}
	return g
}

// TestAuthorizationMatrix is catalogue cases A1-A8 and B2 as one matrix.
func TestAuthorizationMatrix(t *testing.T) {
	start := time.Now()
	s := newStack(t)
	w := &authzWorld{t: t, s: s, pid: map[string]string{}, byRef: map[string]*seeded{}, main: map[string]*seeded{},
		tokens: map[kind]string{}, totp: map[string]string{}, unrel: map[string]response{}, gaps: knownGaps()}
	w.seed()
	w.run()
	w.nothingElseWritten()
	st := w.stats
	t.Logf("authorisation matrix: %d cells (%d allowed, %d denied) over %d callers; unexpected allows %d, unexpected denies %d, wrong deny status %d, known gaps %d; "+
		"%d answers and %d result bundles checked (leaks %d, wrong sets or totals %d); %d denied reads compared with an unknown id (ledger misses %d); "+
		"%d practitioner answers checked for masked fields (leaks %d); %s",
		st.cells, st.allows, st.denies, len(kinds), st.unexpectedAllow, st.unexpectedDeny, st.wrongStatus, st.knownGaps,
		st.answers, st.bundles, st.leaks, st.wrongTotals, st.deniedBodies, st.ledger, st.maskChecked, st.maskLeaks, time.Since(start).Round(time.Millisecond))
	if st.unexpectedAllow != 0 || st.leaks != 0 || st.maskLeaks != 0 {
		t.Errorf("%d unexpected allows, %d leaks, %d masked-field leaks: must be 0", st.unexpectedAllow, st.leaks, st.maskLeaks)
	}
}
