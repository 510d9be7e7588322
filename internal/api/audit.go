package api

import (
	"bytes"
	"context"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/signin"
)

// exchange is what the audit entry of one request says, when the records
// service does not write it: a request that never reaches records (a
// refused token, a malformed request, the sign-in pages, the ledger and
// OAuth2 routes). Handlers fill it in as they learn who asks and what is
// asked for. A request that reaches records is recorded there, with what
// it disclosed (records/trail.go), and its Trail says so.
type exchange struct {
	caller records.Caller // caller.ClientID is a registered client's id, never one as claimed
	// claimed is the client id a request to the OAuth2 endpoints names
	// before anything proved it or found it registered: recorded only as
	// a keyed hash (callerFields).
	claimed string
	user    string // the person, when a person is known
	// verified: a bearer token of the request verified, so its caller is
	// proven (caller.ClientID alone may name a client that proved nothing).
	verified bool
	// account is the id of the account a failed sign-in tried; username
	// the user name it tried when no account has it, recorded only as a
	// keyed hash.
	account, username string
	mfa               bool      // the person's sign-in used a second factor
	mfaTime           time.Time // when the person last checked a second factor; zero if never
	action            string
	typ, id           string
	patient           string // the patient the request names
	query             []string
	detail            string
	// bearer is the bearer token of a request to the OpenID provider's
	// endpoints, which authenticate it themselves: a successful request's
	// entry names the token's client and person. Never recorded.
	bearer string
	// signIn holds what the sign-in pages report of the request
	// (applySignIn folds it in before the entry is written).
	signIn signin.Events
}

type exchangeKey struct{}

// exchangeOf returns the request's exchange; requests that are not
// audited get a throwaway one.
func exchangeOf(r *http.Request) *exchange {
	if x, ok := r.Context().Value(exchangeKey{}).(*exchange); ok {
		return x
	}
	return &exchange{}
}

// unaudited are the only paths whose requests leave no ledger entry: the
// liveness and readiness probes (which an orchestrator calls every few
// seconds and which disclose no one's data), and public documents that say nothing about anyone (the
// CapabilityStatement, discovery, public keys, the sign-in pages' style
// sheet and script). Every other request is recorded, whichever route it
// reaches: a route added later, and a path that names no route, included
// (TestEveryRouteAudited walks the router's own route table).
var unaudited = map[string]bool{
	"/healthz":                              true,
	"/readyz":                               true,
	"/fhir/metadata":                        true,
	"/.well-known/smart-configuration":      true,
	"/fhir/.well-known/smart-configuration": true,
	signin.PathKeys:                         true,
	signin.PathDiscovery:                    true,
	signin.PathSignIn + "/style.css":        true,
	signin.PathSignIn + "/webauthn.js":      true,
}

// Audited reports whether requests for path are recorded in the ledger:
// all but those to the few paths in unaudited.
func Audited(path string) bool { return !unaudited[path] }

// auditWriter records the request's audit entry when the response status
// is decided, before a byte of the body leaves (invariant 3). When the
// entry cannot be recorded, the response is replaced by a 503 and the
// handler's body is discarded: nothing is served unaudited.
type auditWriter struct {
	http.ResponseWriter
	s      *Server
	r      *http.Request
	x      *exchange
	wrote  bool
	failed bool
}

func (w *auditWriter) WriteHeader(code int) {
	if w.wrote {
		return
	}
	w.wrote = true
	w.s.requestEvents(w.r, w.x, code)
	if err := w.s.record(w.r.Context(), w.x, code); err != nil {
		w.failed = true
		rid := requestID(w.r.Context())
		w.s.log.Error("audit entry not recorded; response withheld", "request_id", rid, "error", err.Error())
		h := w.ResponseWriter.Header()
		for _, k := range []string{"ETag", "Location", "Last-Modified", "Content-Length"} {
			h.Del(k)
		}
		h.Set("Content-Type", fhirJSON)
		w.ResponseWriter.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.ResponseWriter.Write(fhir.Outcome(issue("transient", "request "+rid+" could not be audited; nothing was served")))
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *auditWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.failed {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// Flush lets streamed responses ($everything) flush through the wrapper.
func (w *auditWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok && !w.failed {
		f.Flush()
	}
}

// record appends the exchange's entry through group commit and waits until
// it is durable.
func (s *Server) record(ctx context.Context, x *exchange, code int) error {
	applySignIn(x)
	if x.caller.Trail.Recorded() {
		// The records service wrote the request's entries: a write's in
		// its transaction, the rest before it returned (records/trail.go).
		s.emergencyEvents(x, ledger.OutcomeOf(code, false), x.caller.Trail.Emergency())
		return nil
	}
	if x.bearer != "" && code < 400 {
		if p, err := s.auth.Verify(ctx, x.bearer); err == nil {
			x.caller.ClientID, x.user, x.verified = p.ClientID, p.UserID, true
		}
	}
	if aggregated(x, code) {
		e := s.ledgerEntry(x, code)
		return s.recordFailure(ctx, e, failureKey{source: e.Source, action: e.Action, outcome: e.Outcome, detail: e.Detail, account: x.account})
	}
	rec, err := s.entry(x, code)
	if err != nil {
		return err
	}
	return s.ledger.Append(ctx, rec)
}

// entry encodes the audit entry of an exchange that ended with code.
func (s *Server) entry(x *exchange, code int) (audit.Record, error) {
	return audit.NewRecord(s.ledgerEntry(x, code))
}

// ledgerEntry is the audit entry of an exchange that ended with code.
func (s *Server) ledgerEntry(x *exchange, code int) ledger.Entry {
	now := s.cfg.Now().UTC()
	actor, client, typ, id, query := s.callerFields(x)
	e := ledger.Entry{
		Time: now, Actor: actor, Client: client, Source: x.caller.Source,
		Action: x.action, ResourceType: typ, ResourceID: id, Patient: x.patient,
		Outcome: ledger.OutcomeOf(code, false), Purpose: x.caller.Purpose, RequestID: x.caller.RequestID,
		Query: query, Detail: x.detail, Token: x.caller.Token,
	}
	if e.Detail == "" {
		e.Detail = strconv.Itoa(code)
	}
	s.emergencyUse(x, &e, x.patient)
	return e
}

// newExchange starts the audit record of a request.
func newExchange(r *http.Request, rid string) *exchange {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	x := &exchange{caller: records.Caller{RequestID: rid, Source: host, Trail: new(records.Trail)}}
	x.action = actionOf(r)
	if strings.HasPrefix(r.URL.Path, "/oauth2/") {
		x.claimed = claimedClient(r)
		if scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
			x.bearer = strings.TrimSpace(tok)
		}
	}
	return x
}

// claimedClient returns the client a request to the OAuth2 endpoints says
// it comes from: the user name of its Basic credentials (form-encoded, RFC
// 6749 section 2.3.1), or the client_id parameter of its query or form
// body, which is read here (at most 64 KiB) and put back for the handler.
// Until something proves it or finds the client registered, it is
// recorded only as a keyed hash (callerFields).
func claimedClient(r *http.Request) string {
	if id, _, ok := r.BasicAuth(); ok {
		if u, err := url.QueryUnescape(id); err == nil {
			return u
		}
		return id
	}
	if id := r.URL.Query().Get("client_id"); id != "" {
		return id
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); r.Method != http.MethodPost || r.Body == nil || mt != "application/x-www-form-urlencoded" {
		return ""
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), r.Body))
	if err != nil {
		return ""
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return ""
	}
	return form.Get("client_id")
}

// oauthActions are the actions of the OAuth2 endpoints: their paths
// below /oauth2/.
var oauthActions = map[string]bool{"authorize": true, "authorize/callback": true, "userinfo": true, "revoke": true, "introspect": true, "logout": true, "jwks": true}

// actionOf names the interaction a request asks for, from its method and
// path; handlers refine it. It is always one of Ward's own names, never
// text from the request.
func actionOf(r *http.Request) string {
	switch {
	case r.URL.Path == "/oauth2/token":
		return "token"
	case strings.HasPrefix(r.URL.Path, "/oauth2/"):
		if a := strings.TrimPrefix(r.URL.Path, "/oauth2/"); oauthActions[a] {
			return a
		}
		return "oauth2-unknown"
	case strings.HasPrefix(r.URL.Path, "/signin"):
		return "signin"
	case strings.HasPrefix(r.URL.Path, "/ledger/"):
		return "ledger"
	case r.URL.Path != "/fhir" && !strings.HasPrefix(r.URL.Path, "/fhir/") &&
		!strings.HasPrefix(r.URL.Path, "/admin/") && r.URL.Path != "/emergency":
		return "unknown-route"
	}
	seg := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/fhir"), "/"), "/")
	if a := exportAction(r.Method, seg); a != "" {
		return a
	}
	return records.Action(r.Method, seg)
}

// exportAction names a bulk export request by its path ("" for none).
func exportAction(method string, seg []string) string {
	switch {
	case seg[0] == exportFilePath:
		return "export-file"
	case seg[0] == exportStatusPath && method == http.MethodDelete:
		return "export-cancel"
	case seg[0] == exportStatusPath:
		return "export-status"
	case seg[len(seg)-1] == "$export":
		return "export-request"
	}
	return ""
}

// paramNames returns the sorted names of query parameters: names only, never
// values, go into audit entries (callerFields turns a name outside the
// names' alphabet into its keyed hash).
func paramNames(v map[string][]string) []string {
	names := make([]string, 0, len(v))
	for k := range v {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}
