package api

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/wardhealth/ward/internal/incident"
	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/secevent"
	"github.com/wardhealth/ward/internal/store"
)

// Detection and response, for a person with the security-officer role
// signed in with a second factor (policy.DecideSecurity):
//
//	GET  /admin/alerts[?status=&rule=&actor=&incident=&_count=&_offset=]
//	GET  /admin/alerts/{id}
//	POST /admin/alerts/{id}/acknowledge | close | reopen
//	GET  /admin/incidents[?status=&_count=&_offset=]
//	POST /admin/incidents                {"alerts": [id, ...]}
//	GET  /admin/incidents/{id}
//	POST /admin/incidents/{id}           {"revision": n, one of "owner", "status", "step", "addAlerts"}
//	POST /admin/contain                  {"user"|"client": id, "actions": [...], "incident": id}
//	POST /admin/contain/lift             {"user"|"client": id, "incident": id}
//
// Every request is one ledger entry (its action, the alert, incident,
// user or client it concerned, and what was done), like every other
// administrative request; containment also raises a security event.

// WithIncidents serves the detection and response API over svc.
func (s *Server) WithIncidents(svc *incident.Service) *Server {
	s.incidents = svc
	for _, p := range []string{"/admin/alerts", "/admin/alerts/", "/admin/incidents", "/admin/incidents/", "/admin/contain", "/admin/contain/"} {
		s.handle(p, http.HandlerFunc(s.security))
	}
	return s
}

// maxSecurityPage bounds a page of alerts or incidents.
const maxSecurityPage = 500

func (s *Server) security(w http.ResponseWriter, r *http.Request) {
	x := exchangeOf(r)
	c, err := s.authenticate(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	seg := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/admin/"), "/"), "/")
	if len(seg) >= 2 && !incident.ValidRef(seg[1]) {
		// No alert or incident has it: nothing of it is recorded.
		s.writeError(w, r, errNotFound)
		return
	}
	get, post := r.Method == http.MethodGet, r.Method == http.MethodPost
	var (
		action policy.SecurityAction
		serve  func() (int, any, error)
	)
	switch {
	case seg[0] == "alerts" && len(seg) == 1 && get:
		x.typ, x.action, action = "Alert", "alert-list", policy.SecurityReadAlerts
		serve = func() (int, any, error) { return s.listAlerts(r, x) }
	case seg[0] == "alerts" && len(seg) == 2 && get:
		x.typ, x.id, x.action, action = "Alert", seg[1], "alert-read", policy.SecurityReadAlerts
		serve = func() (int, any, error) {
			a, err := s.incidents.Alert(r.Context(), seg[1])
			return http.StatusOK, incident.ViewOf(a), err
		}
	case seg[0] == "alerts" && len(seg) == 3 && post && alertOps[seg[2]] != "":
		x.typ, x.id, x.action, action = "Alert", seg[1], "alert-"+seg[2], policy.SecurityWork
		serve = func() (int, any, error) {
			a, err := s.incidents.SetAlertStatus(r.Context(), seg[1], alertOps[seg[2]], c.UserID)
			if err == nil {
				s.securityEvent(r, x, secevent.AlertChanged, map[string]string{secevent.AttrAlert: a.ID, secevent.AttrChange: a.Status})
			}
			return http.StatusOK, incident.ViewOf(a), err
		}
	case seg[0] == "incidents" && len(seg) == 1 && get:
		x.typ, x.action, action = "Incident", "incident-list", policy.SecurityReadAlerts
		serve = func() (int, any, error) { return s.listIncidents(r, x) }
	case seg[0] == "incidents" && len(seg) == 1 && post:
		x.typ, x.action, action = "Incident", "incident-open", policy.SecurityWork
		serve = func() (int, any, error) {
			var in struct {
				Alerts []string `json:"alerts"`
			}
			if err := decodeJSON(r, &in); err != nil {
				return 0, nil, err
			}
			inc, err := s.incidents.Open(r.Context(), c.UserID, in.Alerts)
			x.id = inc.ID
			if err == nil {
				s.securityEvent(r, x, secevent.IncidentChanged, map[string]string{secevent.AttrIncident: inc.ID, secevent.AttrChange: "opened"})
			}
			return http.StatusCreated, s.incidentView(inc), err
		}
	case seg[0] == "incidents" && len(seg) == 2 && seg[1] == "scope" && get:
		x.typ, x.action, action = "Incident", "breach-scope", policy.SecurityScope
		serve = func() (int, any, error) { return s.scopeBreach(r, x) }
	case seg[0] == "incidents" && len(seg) == 2 && get:
		x.typ, x.id, x.action, action = "Incident", seg[1], "incident-read", policy.SecurityReadAlerts
		serve = func() (int, any, error) {
			inc, err := s.incidents.Get(r.Context(), seg[1])
			return http.StatusOK, s.incidentView(inc), err
		}
	case seg[0] == "incidents" && len(seg) == 2 && post:
		x.typ, x.id, x.action, action = "Incident", seg[1], "incident-update", policy.SecurityWork
		serve = func() (int, any, error) {
			var in struct {
				Revision int64 `json:"revision"`
				incident.Change
			}
			if err := decodeJSON(r, &in); err != nil {
				return 0, nil, err
			}
			if in.Revision <= 0 {
				return 0, nil, badRequestf("revision is required: the incident's revision as read, so that no one else's change is overwritten")
			}
			x.detail = changeDetail(in.Change)
			inc, err := s.incidents.Update(r.Context(), seg[1], c.UserID, in.Revision, in.Change)
			if err == nil {
				s.securityEvent(r, x, secevent.IncidentChanged, map[string]string{secevent.AttrIncident: inc.ID, secevent.AttrChange: changeCode(in.Change)})
			}
			return http.StatusOK, s.incidentView(inc), err
		}
	case seg[0] == "contain" && len(seg) == 1 && post, seg[0] == "contain" && len(seg) == 2 && seg[1] == "lift" && post:
		x.action, action = "contain", policy.SecurityContain
		lift := len(seg) == 2
		if lift {
			x.action = "contain-lift"
		}
		serve = func() (int, any, error) { return s.contain(r, x, c.UserID, lift) }
	case (seg[0] == "alerts" && len(seg) <= 2) || (seg[0] == "incidents" && len(seg) <= 2) || seg[0] == "contain" && len(seg) <= 2:
		s.writeError(w, r, errMethod)
		return
	default:
		s.writeError(w, r, errNotFound)
		return
	}
	if d := policy.DecideSecurity(c.Subject, x.mfa, action); !d.Allow {
		x.detail = d.Reason
		s.writeError(w, r, errForbidden)
		return
	}
	if s.incidents == nil {
		s.writeError(w, r, errNotFound)
		return
	}
	code, v, err := serve()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if c, ok := v.(csvReport); ok {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.WriteHeader(code)
		_ = c.WritePatientsCSV(w)
		return
	}
	writeValue(w, code, v)
}

// scopeBreach is GET /admin/incidents/scope?actor=|client=&from=&to=
// [&discovered=][&format=json|csv]: everything the actor read or changed
// in the window, each entry with its inclusion proof (package incident).
// Its entry names the actor scoped in its detail.
func (s *Server) scopeBreach(r *http.Request, x *exchange) (int, any, error) {
	q, err := fixedParams(r, "actor", "client", "from", "to", "discovered", "format")
	if err != nil {
		return 0, nil, err
	}
	x.query = paramNames(q)
	format := q.Get("format")
	q.Del("format")
	if format != "" && format != "json" && format != "csv" {
		return 0, nil, badRequestf("format must be json (the report) or csv (the affected patients)")
	}
	rep, err := s.incidents.Scope(r.Context(), q)
	if err == nil {
		x.detail = "actor=" + rep.Actor + rep.Client // valid ids, checked by Scope
	}
	switch {
	case errors.Is(err, incident.ErrTooLarge):
		return 0, nil, badRequestf("the window holds more than " + strconv.Itoa(incident.MaxScopeEntries) + " entries of the actor: narrow it, or use ward incident scope")
	case errors.Is(err, incident.ErrNoCheckpoint), errors.Is(err, incident.ErrNoLedger):
		return 0, nil, fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	case err != nil:
		return 0, nil, err
	}
	if format == "csv" {
		return http.StatusOK, csvReport{rep}, nil
	}
	return http.StatusOK, rep, nil
}

// csvReport is a report answered as its affected patients' CSV.
type csvReport struct{ *incident.Report }

// alertOps are the alert changes by path segment, with the status each sets.
var alertOps = map[string]string{"acknowledge": store.AlertAcknowledged, "close": store.AlertClosed, "reopen": store.AlertOpen}

func (s *Server) listAlerts(r *http.Request, x *exchange) (int, any, error) {
	q, err := fixedParams(r, "status", "rule", "actor", "incident", "_count", "_offset")
	if err != nil {
		return 0, nil, err
	}
	x.query = paramNames(q)
	aq := store.AlertQuery{Status: q.Get("status"), Rule: q.Get("rule"), Actor: q.Get("actor"), Incident: q.Get("incident"), Count: 100}
	if aq.Count, aq.Offset, err = page(q, aq.Count); err != nil {
		return 0, nil, err
	}
	alerts, more, err := s.incidents.Alerts(r.Context(), aq)
	out := struct {
		Alerts []incident.AlertView `json:"alerts"`
		More   bool                 `json:"more"`
	}{Alerts: make([]incident.AlertView, 0, len(alerts)), More: more}
	for _, a := range alerts {
		out.Alerts = append(out.Alerts, incident.ViewOf(a))
	}
	return http.StatusOK, out, err
}

// page reads _count (default def, at most maxSecurityPage) and _offset.
func page(q map[string][]string, def int) (count, offset int, err error) {
	count = def
	if v, ok := q["_count"]; ok {
		if count, err = pageNumber("_count", v[0]); err != nil {
			return 0, 0, err
		}
		count = min(count, maxSecurityPage)
	}
	if v, ok := q["_offset"]; ok {
		if offset, err = pageNumber("_offset", v[0]); err != nil {
			return 0, 0, err
		}
	}
	return count, offset, nil
}

// incidentView is an incident with its regulatory clocks as they stand.
type incidentView struct {
	incident.Incident
	Clocks []incident.ClockView `json:"clocks"`
}

func (s *Server) incidentView(inc incident.Incident) incidentView {
	return incidentView{Incident: inc, Clocks: inc.Clocks(s.cfg.Now())}
}

func (s *Server) listIncidents(r *http.Request, x *exchange) (int, any, error) {
	q, err := fixedParams(r, "status", "_count", "_offset")
	if err != nil {
		return 0, nil, err
	}
	x.query = paramNames(q)
	count, offset, err := page(q, 100)
	if err != nil {
		return 0, nil, err
	}
	incs, more, err := s.incidents.List(r.Context(), q.Get("status"), offset, count)
	out := struct {
		Incidents []incidentView `json:"incidents"`
		More      bool           `json:"more"`
	}{Incidents: make([]incidentView, 0, len(incs)), More: more}
	for _, inc := range incs {
		out.Incidents = append(out.Incidents, s.incidentView(inc))
	}
	return http.StatusOK, out, err
}

// changeDetail is what an incident update's entry says it changed: the
// field and, for owner, status and step, the value (ids and codes).
func changeDetail(c incident.Change) string {
	switch {
	case c.Owner != "":
		return "owner=" + c.Owner
	case c.Status != "":
		return "status=" + c.Status
	case c.Step != "":
		return "step=" + c.Step
	case len(c.AddAlert) > 0:
		return "add-alerts=" + strconv.Itoa(len(c.AddAlert))
	}
	return ""
}

// changeCode names the kind of an incident change, for its event.
func changeCode(c incident.Change) string {
	switch {
	case c.Owner != "":
		return "assigned"
	case c.Status != "":
		return "status-" + c.Status
	case c.Step != "":
		return "step-done"
	}
	return "alerts-added"
}

// Containment actions.
const (
	containSuspend  = "suspend"   // a user disabled, a client suspended
	containRevoke   = "revoke"    // a user's tokens and sessions ended
	containResetMFA = "reset-mfa" // a user's second factors removed: enrol again
)

// contain applies or lifts containment of one user or client. A user can
// be suspended, have every token and session revoked, and be made to
// enrol a second factor again; a client can be suspended. Lifting
// re-enables the user or lifts the client's suspension (revoked tokens
// and removed factors stay so). Each is effective at once here and on
// every other replica within the token verifier's cache bound
// (auth.Config.ClientCacheTTL, 5 seconds by default).
func (s *Server) contain(r *http.Request, x *exchange, by string, lift bool) (int, any, error) {
	if _, err := fixedParams(r); err != nil {
		return 0, nil, err
	}
	var in struct {
		User     string   `json:"user"`
		Client   string   `json:"client"`
		Actions  []string `json:"actions"`
		Incident string   `json:"incident"`
	}
	if err := decodeJSON(r, &in); err != nil {
		return 0, nil, err
	}
	if (in.User == "") == (in.Client == "") {
		return 0, nil, badRequestf("name exactly one of user and client")
	}
	if !incident.ValidRef(in.User+in.Client) || in.Incident != "" && !incident.ValidRef(in.Incident) {
		return 0, nil, badRequestf("user, client and incident are ids: 1 to 128 letters, digits or -._:/@")
	}
	if lift && len(in.Actions) > 0 {
		return 0, nil, badRequestf("lifting takes no actions: it re-enables the user or lifts the client's suspension")
	}
	if !lift {
		if len(in.Actions) == 0 {
			return 0, nil, badRequestf("actions are required: suspend, revoke, reset-mfa for a user; suspend for a client")
		}
		for _, a := range in.Actions {
			ok := a == containSuspend || in.User != "" && (a == containRevoke || a == containResetMFA)
			if !ok {
				return 0, nil, badRequestf("unknown action for a " + map[bool]string{true: "user", false: "client"}[in.User != ""] + ": use suspend, revoke or reset-mfa for a user; suspend for a client")
			}
		}
		slices.Sort(in.Actions)
		in.Actions = slices.Compact(in.Actions)
	}
	ctx := r.Context()
	var inc incident.Incident
	if in.Incident != "" {
		var err error
		if inc, err = s.incidents.Get(ctx, in.Incident); err != nil {
			return 0, nil, err
		}
	}
	target, kind := in.User, "User"
	if in.Client != "" {
		target, kind = in.Client, "Client"
	}
	x.typ, x.id = kind, target
	verb := "lift"
	if !lift {
		verb = strings.Join(in.Actions, ",")
	}
	x.detail = verb
	if in.Incident != "" {
		x.detail += " incident=" + in.Incident
	}
	var err error
	switch {
	case in.Client != "":
		err = s.auth.SuspendClient(ctx, in.Client, !lift)
		if errors.Is(err, store.ErrNotFound) {
			err = badRequestf("no client " + strconv.Quote(in.Client))
		}
	case s.signin == nil:
		err = errNotFound
	default:
		users := s.signin.Users()
		if lift {
			err = users.SetDisabled(ctx, in.User, false)
		}
		for _, a := range in.Actions {
			if err != nil {
				break
			}
			switch a {
			case containSuspend:
				err = users.SetDisabled(ctx, in.User, true)
			case containRevoke:
				err = users.RevokeTokens(ctx, in.User)
			case containResetMFA:
				err = users.RemoveMFA(ctx, in.User)
			}
		}
		if err != nil {
			err = userError(err)
		}
		s.auth.ForgetPeople()
	}
	if err != nil {
		return 0, nil, err
	}
	ev := secevent.ContainmentOn
	if lift {
		ev = secevent.ContainmentOff
	}
	s.securityEvent(r, x, ev, map[string]string{secevent.AttrTarget: strings.ToLower(kind) + "/" + target,
		secevent.AttrChange: verb, secevent.AttrIncident: in.Incident})
	out := map[string]any{strings.ToLower(kind): target, "lifted": lift}
	if !lift {
		out["actions"] = in.Actions
	}
	if in.Incident != "" {
		what := "contain"
		if lift {
			what = "lift"
		}
		updated, err := s.incidents.Update(ctx, inc.ID, by, 0, incident.Change{Action: what + ":" + verb, Target: strings.ToLower(kind) + "/" + target})
		if err != nil {
			return 0, nil, err
		}
		out["incident"] = updated.ID
	}
	return http.StatusOK, out, nil
}

// securityEvent raises a detection and response event: what kind, the
// target ("user/ID", "client/ID", an alert or incident id) and what
// changed (codes).
func (s *Server) securityEvent(r *http.Request, x *exchange, kind secevent.Kind, attrs map[string]string) {
	e := secevent.New(kind, s.cfg.Now())
	e.Actor, e.Client, e.Source, e.Outcome = x.user, x.caller.ClientID, x.caller.Source, secevent.Success
	e.Attrs = map[string]string{secevent.AttrRequestID: requestID(r.Context())}
	for k, v := range attrs {
		if v != "" {
			e.Attrs[k] = v
		}
	}
	s.emit(e)
}
