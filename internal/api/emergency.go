package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wardhealth/ward/internal/auth"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/secevent"
)

// stepUpMaxAge is how recent a second factor must be to break the glass.
const stepUpMaxAge = 10 * time.Minute

// maxEmergencyBody bounds the JSON body of the break-the-glass routes.
const maxEmergencyBody = 16 << 10

// grantView is a break-the-glass grant as the API shows it.
type grantView struct {
	ID       string     `json:"id"`
	User     string     `json:"user"`
	Patient  string     `json:"patient"`
	Purpose  string     `json:"purposeOfUse"`
	Reason   string     `json:"reason,omitempty"`
	Created  time.Time  `json:"created"`
	Expires  time.Time  `json:"expires"`
	Reviewed *time.Time `json:"reviewed,omitempty"`
	Reviewer string     `json:"reviewer,omitempty"`
	Outcome  string     `json:"outcome,omitempty"`
	Note     string     `json:"note,omitempty"`
}

func grantViewOf(g records.EmergencyGrant, withText bool) grantView {
	v := grantView{ID: g.ID, User: g.UserID, Patient: g.Patient, Purpose: g.Purpose, Created: g.Created, Expires: g.Expires,
		Reviewer: g.Reviewer, Outcome: g.Outcome}
	if !g.Reviewed.IsZero() {
		t := g.Reviewed
		v.Reviewed = &t
	}
	if withText {
		v.Reason, v.Note = g.Reason, g.Note
	}
	return v
}

// breakGlass is break-the-glass access:
//
//	POST /emergency   {patient, reason, purposeOfUse: "BTG"}
//
// A person whose role reaches patients through care relationships, with a
// second factor checked in the last ten minutes, gets a time-limited grant
// to one patient outside them (records.BreakGlass): 201 with the grant,
// 401 insufficient_user_authentication (RFC 9470) without a fresh second
// factor, 409 for a patient already related, 404 for an unknown one. The
// grant is in the ledger with the grant's id and purpose BTG, and raises a
// security event; the reason is not echoed, logged or recorded in clear.
func (s *Server) breakGlass(w http.ResponseWriter, r *http.Request) {
	x := exchangeOf(r)
	x.action = records.ActionEmergencyGrant
	c, err := s.authenticate(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if r.Method != http.MethodPost {
		s.writeError(w, r, errMethod)
		return
	}
	if _, err := fixedParams(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	var in struct {
		Patient string `json:"patient"`
		Reason  string `json:"reason"`
		Purpose string `json:"purposeOfUse"`
	}
	if err := decodeJSON(r, &in); err != nil {
		s.writeError(w, r, err)
		return
	}
	if in.Purpose == policy.PurposeBTG {
		c.Purpose, x.caller.Purpose = in.Purpose, in.Purpose
	}
	if fhir.ValidID(in.Patient) {
		x.patient = in.Patient
	}
	fresh := auth.Principal{MFATime: x.mfaTime}.FreshMFA(s.cfg.Now(), stepUpMaxAge)
	req := records.EmergencyRequest{Patient: in.Patient, Reason: in.Reason, Purpose: in.Purpose, FreshMFA: fresh}
	g, err := s.records.BreakGlass(r.Context(), c, req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	e := secevent.New(secevent.BreakGlassGranted, s.cfg.Now())
	e.Actor, e.Client, e.Source, e.Outcome = g.UserID, c.ClientID, c.Source, secevent.Success
	e.Attrs = map[string]string{secevent.AttrGrant: g.ID, secevent.AttrPatient: g.Patient,
		secevent.AttrExpires: g.Expires.UTC().Format(time.RFC3339), secevent.AttrRequestID: c.RequestID}
	s.emit(e)
	writeValue(w, http.StatusCreated, grantViewOf(g, false))
}

// adminEmergency is the break-the-glass review queue:
//
//	GET  /admin/emergency[?reviewed=false][&_count=n][&_offset=n]   list, oldest first
//	POST /admin/emergency/{id}/review   {outcome, note}             close a grant, once
//
// Only a person whose role reviews (privacy-officer), signed in with a
// second factor, may call it (policy.DecidePrivacy). Outcomes are
// justified, unjustified and escalated; a second review is 409, and
// nobody reviews their own grant. The list shows each grant's reason, so
// its entry names the patients listed.
func (s *Server) adminEmergency(w http.ResponseWriter, r *http.Request) {
	x := exchangeOf(r)
	c, err := s.authenticate(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	rest := strings.Trim(strings.TrimPrefix(r.URL.Path, "/admin/emergency"), "/")
	id, op, _ := strings.Cut(rest, "/")
	var action policy.PrivacyAction
	switch {
	case rest == "" && r.Method == http.MethodGet:
		action, x.action = policy.PrivacyListEmergency, records.ActionEmergencyList
	case id != "" && op == "review" && r.Method == http.MethodPost:
		action, x.action, x.id = policy.PrivacyReviewEmergency, records.ActionEmergencyReview, id
	case rest == "" || op == "review":
		s.writeError(w, r, errMethod)
		return
	default:
		s.writeError(w, r, errNotFound)
		return
	}
	if d := s.records.Policy().DecidePrivacy(c.Subject, x.mfa, action); !d.Allow {
		x.detail = d.Reason
		s.writeError(w, r, errForbidden)
		return
	}
	if action == policy.PrivacyListEmergency {
		s.listEmergency(w, r, x)
		return
	}
	if _, err := fixedParams(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	var in struct {
		Outcome string `json:"outcome"`
		Note    string `json:"note"`
	}
	if err := decodeJSON(r, &in); err != nil {
		s.writeError(w, r, err)
		return
	}
	g, err := s.records.ReviewEmergency(r.Context(), c, id, in.Outcome, in.Note)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeValue(w, http.StatusOK, grantViewOf(g, true))
}

func (s *Server) listEmergency(w http.ResponseWriter, r *http.Request, x *exchange) {
	q, err := fixedParams(r, "reviewed", "_count", "_offset")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	x.query = paramNames(q)
	var eq records.EmergencyQuery
	for k, vs := range q {
		var err error
		switch k {
		case "reviewed":
			if vs[0] != "false" {
				err = badRequestf("reviewed takes false (the open grants); leave it out for all")
			}
			eq.Unreviewed = true
		case "_count":
			eq.Count, err = pageNumber(k, vs[0])
		case "_offset":
			eq.Offset, err = pageNumber(k, vs[0])
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	c := x.caller
	c.Query = records.QueryNames(s.cfg.Pseudonyms, q)
	grants, more, err := s.records.EmergencyGrants(r.Context(), c, eq)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := struct {
		Grants []grantView `json:"grants"`
		More   bool        `json:"more"`
	}{Grants: make([]grantView, 0, len(grants)), More: more}
	for _, g := range grants {
		out.Grants = append(out.Grants, grantViewOf(g, true))
	}
	writeValue(w, http.StatusOK, out)
}

func pageNumber(name, v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, badRequestf(name + " must be a non-negative integer")
	}
	return n, nil
}

// decodeJSON reads a small JSON object strictly: application/json in
// UTF-8, no unknown fields, nothing after it.
func decodeJSON(r *http.Request, v any) error { return decodeJSONAs(r, v, "application/json") }

// decodeJSONAs is decodeJSON for a body of one of the media types.
func decodeJSONAs(r *http.Request, v any, types ...string) error {
	if mt, err := bodyMediaType(r); err != nil || !slices.Contains(types, mt) {
		return errMediaType
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxEmergencyBody+1))
	if err != nil || !utf8.Valid(body) {
		// encoding/json would read invalid UTF-8 as U+FFFD: other text
		// than was sent.
		return errBadRequest
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errBadRequest
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errBadRequest
	}
	return nil
}

// emergencyUse marks e as an access through a break-the-glass grant when
// it names a patient the caller reaches only through one (purpose of use
// BTG, the grant's id in the detail), and raises a security event.
func (s *Server) emergencyUse(x *exchange, e *ledger.Entry, patient string) {
	if len(x.caller.Grants) == 0 || patient == "" || x.action == records.ActionEmergencyGrant { // asking for a grant touches no data
		return
	}
	s.emergencyEvents(x, e.Outcome, x.caller.MarkEmergency(e, patient))
}

// emergencyEvents raises a security event for each patient the request
// reached only through a break-the-glass grant.
func (s *Server) emergencyEvents(x *exchange, outcome string, patients []string) {
	if x.action == records.ActionEmergencyGrant { // asking for a grant touches no data
		return
	}
	for _, p := range patients {
		e := secevent.New(secevent.BreakGlassUsed, s.cfg.Now())
		e.Actor, e.Client, e.Source, e.Outcome = x.caller.UserID, x.caller.ClientID, x.caller.Source, outcomeOf(outcome)
		e.Attrs = map[string]string{secevent.AttrGrant: x.caller.Grants[p], secevent.AttrPatient: p,
			secevent.AttrAction: x.action, secevent.AttrRequestID: x.caller.RequestID}
		s.emit(e)
	}
}
