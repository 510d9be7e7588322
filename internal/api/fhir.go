package api

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/fhir/search"
	"github.com/wardhealth/ward/internal/records"
)

// fhir routes a request under /fhir. The path shapes are FHIR R4's RESTful
// API; anything else is a 404.
func (s *Server) fhir(w http.ResponseWriter, r *http.Request) {
	path := strings.Trim(strings.TrimPrefix(r.URL.Path, "/fhir"), "/")
	var seg []string
	if path != "" {
		seg = strings.Split(path, "/")
	}
	if len(seg) == 1 && seg[0] == "metadata" {
		if r.Method != http.MethodGet {
			s.writeError(w, r, errMethod)
			return
		}
		q, err := search.ParseParams(r.URL.RawQuery)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if !acceptable(r, q) {
			s.writeError(w, r, errNotAcceptable)
			return
		}
		writeJSON(w, http.StatusOK, s.meta)
		return
	}
	c, err := s.authenticate(w, r)
	x := exchangeOf(r)
	if len(seg) > 0 && !isExportPath(seg[0]) {
		x.typ = seg[0]
	}
	if len(seg) > 1 && fhir.ValidID(seg[1]) {
		x.id = seg[1]
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// The one reading of the query every FHIR route uses: strict, so that
	// no parameter is silently dropped (catalogue C9).
	q, err := search.ParseParams(r.URL.RawQuery)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if len(seg) == 3 && seg[0] == exportFilePath {
		// NDJSON, not FHIR JSON: exportFile checks Accept itself.
		if err := s.exportFile(w, r, c, seg[1], seg[2]); err != nil {
			s.writeError(w, r, err)
		}
		return
	}
	if !acceptable(r, q) {
		err := errNotAcceptable
		if isRawBinaryRead(r.Method, seg) {
			// A Binary in its own content type (binary.go).
			err = s.binaryRead(w, r, c, seg)
		}
		if err != nil {
			s.writeError(w, r, err)
		}
		return
	}
	if _, ok := r.Header["X-Provenance"]; ok && !takesProvenance(r.Method, seg) {
		s.writeError(w, r, badRequestf("X-Provenance qualifies a create or an update only (a Bundle may include Provenance resources)"))
		return
	}
	route := s.route
	if isRawBinaryWrite(r, seg) {
		route = func(w http.ResponseWriter, r *http.Request, c records.Caller, seg []string, _ url.Values) error {
			return s.binaryWrite(w, r, c, seg)
		}
	}
	if err := route(w, r, c, seg, q); err != nil {
		s.writeError(w, r, err)
	}
}

func (s *Server) route(w http.ResponseWriter, r *http.Request, c records.Caller, seg []string, q url.Values) error {
	m := r.Method
	switch {
	case len(seg) == 0:
		if m == http.MethodPost {
			return s.bundle(w, r, c)
		}
	case len(seg) == 1 && seg[0] == "_history":
		if m == http.MethodGet {
			return s.history(w, r, c, "", "", q)
		}
	case len(seg) == 1 && seg[0] == "$export":
		if m == http.MethodGet {
			return s.exportKickoff(w, r, c, records.ExportSystem, "", q)
		}
	case len(seg) == 2 && seg[0] == exportStatusPath:
		return s.exportStatus(w, r, c, seg[1])
	case len(seg) == 2 && seg[0] == "Patient" && seg[1] == "$export":
		if m == http.MethodGet {
			return s.exportKickoff(w, r, c, records.ExportPatient, "", q)
		}
	case !fhir.IsResourceType(seg[0]):
		return errNotFound
	case seg[0] == "AuditEvent":
		return s.auditEvent(w, r, c, seg, q)
	case m == http.MethodPut && len(seg) > 2 && putsID(seg):
		// Patient/a/b, or Patient/a%2Fb: an update of an id with a slash.
		return badRequestf("the id in the URL is not a valid FHIR id")
	case len(seg) == 1:
		switch m {
		case http.MethodGet:
			return s.search(w, r, c, seg[0], q)
		case http.MethodPost:
			return s.create(w, r, c, seg[0])
		case http.MethodPut:
			return s.conditionalUpdate(w, r, c, seg[0])
		case http.MethodPatch:
			return s.patch(w, r, c, seg[0], "")
		case http.MethodDelete:
			if r.URL.RawQuery == "" {
				return errMethod // a type is never deleted whole
			}
			if _, _, err := s.records.DeleteWhere(r.Context(), c, seg[0], r.URL.RawQuery); err != nil {
				return err
			}
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
	case len(seg) == 2 && seg[1] == "_search":
		if m == http.MethodPost {
			params, err := searchForm(r)
			if err != nil {
				return err
			}
			return s.search(w, r, c, seg[0], params)
		}
	case len(seg) == 2 && seg[1] == "_history":
		if m == http.MethodGet {
			return s.history(w, r, c, seg[0], "", q)
		}
	case !fhir.ValidID(seg[1]):
		if len(seg) == 2 && m == http.MethodPut {
			// An update names the id it writes: a malformed one ("..",
			// "a_b") is bad input. Elsewhere it names nothing there.
			return badRequestf("the id in the URL is not a valid FHIR id")
		}
		return errNotFound
	case len(seg) == 2:
		switch m {
		case http.MethodGet, http.MethodHead:
			view, err := readView(seg[0], q)
			if err != nil {
				return err
			}
			e, err := s.records.Read(r.Context(), c, seg[0], seg[1])
			if err == nil && e.Body != nil {
				// The body is already masked for the caller: a view only
				// removes more (A7).
				e.Body, err = view.Apply(e.Body)
			}
			return s.writeEntry(w, r, e, err, http.StatusOK)
		case http.MethodPut:
			return s.update(w, r, c, seg[0], seg[1])
		case http.MethodPatch:
			return s.patch(w, r, c, seg[0], seg[1])
		case http.MethodDelete:
			if _, err := s.records.Delete(r.Context(), c, seg[0], seg[1]); err != nil {
				return err
			}
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
	case len(seg) == 3 && seg[2] == "_history":
		if m == http.MethodGet {
			return s.history(w, r, c, seg[0], seg[1], q)
		}
	case len(seg) == 3 && seg[0] == "Patient" && seg[2] == "$everything":
		if m == http.MethodGet {
			return s.everything(w, r, c, seg[1], q)
		}
	case len(seg) == 3 && seg[0] == "Patient" && (seg[2] == "$erase" || seg[2] == "$erase-approve"):
		return s.erasure(w, r, c, seg[1], seg[2])
	case len(seg) == 3 && seg[0] == "Group" && seg[2] == "$export":
		if m == http.MethodGet {
			return s.exportKickoff(w, r, c, records.ExportGroup, seg[1], q)
		}
	case len(seg) == 3 && seg[0] == "Patient" && fhir.IsResourceType(seg[2]):
		if m == http.MethodGet {
			return s.searchAt(w, r, c, seg[1], seg[2], q)
		}
	case len(seg) == 3 && seg[0] == "Patient" && seg[2] == "$access-log":
		if m == http.MethodGet {
			return s.accessLog(w, r, c, seg[1], q)
		}
	case len(seg) == 3 && seg[2] == "$signatures":
		return s.signatures(w, r, c, seg[0], seg[1])
	case len(seg) == 5 && seg[2] == "_history" && seg[4] == "$sign":
		v, ok := records.ParseVersion(seg[3])
		if !ok {
			return errNotFound
		}
		return s.sign(w, r, c, seg[0], seg[1], v)
	case len(seg) == 4 && seg[2] == "_history":
		// A version id Ward never issues ("+1", "01", "1.0") names no
		// version: 404, as an unknown version of a resource does, and
		// whether or not the resource exists (invariant 10).
		v, ok := records.ParseVersion(seg[3])
		if !ok {
			return errNotFound
		}
		if m == http.MethodGet || m == http.MethodHead {
			e, err := s.records.VRead(r.Context(), c, seg[0], seg[1], v)
			return s.writeEntry(w, r, e, err, http.StatusOK)
		}
	default:
		return errNotFound
	}
	return errMethod
}

// putsID reports whether a PUT to /fhir/seg... (a resource type and at
// least two more segments) names no route but an id with a slash in it:
// a bad id (400), where a PUT to a route that takes no PUT is a 405.
func putsID(seg []string) bool {
	third := seg[2]
	return third != "_history" && !strings.HasPrefix(third, "$") && !fhir.IsResourceType(third)
}

// isExportPath reports whether a first path segment is one of the bulk
// export's own ($export-status, $export-file), which name no resource
// type.
func isExportPath(seg string) bool {
	return seg == exportStatusPath || seg == exportFilePath || seg == "$export"
}

// readResource reads and strictly parses a request body.
func (s *Server) readResource(r *http.Request) (*fhir.Resource, error) {
	mt, err := bodyMediaType(r)
	if err != nil || (mt != "application/fhir+json" && mt != "application/json" && mt != "application/json+fhir") {
		return nil, errMediaType
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errTooLarge
		}
		return nil, errBadRequest
	}
	return fhir.Parse(body, fhir.Limits{MaxBytes: int(s.cfg.MaxBody)})
}

// takesProvenance reports whether a request to /fhir/seg... is a create or
// an update of one resource: the writes an X-Provenance header may
// qualify. Elsewhere the header is refused, not ignored.
func takesProvenance(method string, seg []string) bool {
	switch {
	case len(seg) == 0 || seg[0] == "AuditEvent":
		return false
	case method == http.MethodPost:
		return len(seg) == 1
	case method == http.MethodPut:
		return len(seg) <= 2
	}
	return false
}

// provenance reads the X-Provenance header of a create or update (R4
// http.html#provenance): a Provenance resource in JSON, parsed as
// strictly as a body, that the write stores with it (records.
// WithProvenance). A malformed one is bad input, refused before anything
// is written.
func (s *Server) provenance(r *http.Request) ([]records.WriteOption, error) {
	vs := r.Header.Values("X-Provenance")
	switch len(vs) {
	case 0:
		return nil, nil
	case 1:
	default:
		return nil, badRequestf("X-Provenance: give one Provenance")
	}
	p, err := fhir.Parse([]byte(vs[0]), fhir.Limits{MaxBytes: int(s.cfg.MaxBody)})
	if err != nil {
		var fe *fhir.Error
		if !errors.As(err, &fe) {
			return nil, badRequestf("X-Provenance: not a Provenance resource in JSON")
		}
		issues := slices.Clone(fe.Issues)
		for i := range issues {
			issues[i].Diagnostics = "X-Provenance: " + issues[i].Diagnostics
		}
		return nil, &fhir.Error{Issues: issues}
	}
	if p.Type != "Provenance" {
		return nil, badRequestf("X-Provenance must hold a Provenance resource")
	}
	if _, ok := p.Object["target"]; ok {
		return nil, badRequestf("X-Provenance: Provenance.target is set by Ward to the version written; leave it out")
	}
	return []records.WriteOption{records.WithProvenance(p)}, nil
}

// SubscriptionSecretHeader carries a new Subscription's signing secret in
// the answer to its creation, the only time it is given out.
const SubscriptionSecretHeader = "X-Ward-Subscription-Secret" // #nosec G101 -- a header name, not a credential

func (s *Server) create(w http.ResponseWriter, r *http.Request, c records.Caller, typ string) error {
	prov, err := s.provenance(r)
	if err != nil {
		return err
	}
	res, err := s.readResource(r)
	if err != nil {
		return err
	}
	if res.Type != typ {
		return badRequestf("the resource type does not match the URL")
	}
	var (
		e       records.Entry
		created = true
	)
	if crit := r.Header.Get("If-None-Exist"); crit != "" {
		e, created, err = s.records.CreateIfNoneExist(r.Context(), c, res, crit, prov...)
	} else if typ == "Subscription" && len(prov) == 0 {
		// The signing secret is given out here, once (README,
		// Subscriptions); records refuses every other way to create one.
		var secret records.SubscriptionSecret
		e, secret, err = s.records.CreateSubscription(r.Context(), c, res)
		if err == nil {
			w.Header().Set(SubscriptionSecretHeader, secret.Text())
		}
	} else {
		e, err = s.records.Create(r.Context(), c, res, prov...)
	}
	if err != nil {
		return err
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
		w.Header().Set("Location", s.fhirBase()+"/"+e.Location())
	}
	return s.writeEntry(w, r, e, nil, code)
}

func (s *Server) update(w http.ResponseWriter, r *http.Request, c records.Caller, typ, id string) error {
	prov, err := s.provenance(r)
	if err != nil {
		return err
	}
	res, err := s.readResource(r)
	if err != nil {
		return err
	}
	var ifMatch int64
	if v := r.Header.Get("If-Match"); v != "" {
		if ifMatch, err = records.ParseETag(v); err != nil {
			return badRequestf("If-Match: " + err.Error())
		}
	}
	e, created, err := s.records.Update(r.Context(), c, typ, id, res, ifMatch, prov...)
	if err != nil {
		return err
	}
	return s.writeWrite(w, r, e, created)
}

func (s *Server) conditionalUpdate(w http.ResponseWriter, r *http.Request, c records.Caller, typ string) error {
	if r.URL.RawQuery == "" {
		return errMethod
	}
	prov, err := s.provenance(r)
	if err != nil {
		return err
	}
	res, err := s.readResource(r)
	if err != nil {
		return err
	}
	if res.Type != typ {
		return badRequestf("the resource type does not match the URL")
	}
	e, created, err := s.records.UpdateWhere(r.Context(), c, typ, r.URL.RawQuery, res, prov...)
	if err != nil {
		return err
	}
	return s.writeWrite(w, r, e, created)
}

// patch serves PATCH /fhir/{type}/{id}, and with id "" the conditional
// PATCH /fhir/{type}?criteria, whose criteria must match exactly one
// resource. The body is a JSON Patch (application/json-patch+json) or a
// FHIRPath Patch (a Parameters resource in FHIR JSON); If-Match pins the
// version patched.
func (s *Server) patch(w http.ResponseWriter, r *http.Request, c records.Caller, typ, id string) error {
	if id == "" && r.URL.RawQuery == "" {
		return errMethod // a type is never patched whole
	}
	p, err := s.readPatch(r)
	if err != nil {
		return err
	}
	var ifMatch int64
	if v := r.Header.Get("If-Match"); v != "" {
		if ifMatch, err = records.ParseETag(v); err != nil {
			return badRequestf("If-Match: " + err.Error())
		}
	}
	var e records.Entry
	if id == "" {
		e, err = s.records.PatchWhere(r.Context(), c, typ, r.URL.RawQuery, p, ifMatch)
	} else {
		e, err = s.records.Patch(r.Context(), c, typ, id, p, ifMatch)
	}
	return s.writeEntry(w, r, e, err, http.StatusOK)
}

// jsonPatchType is the media type of a JSON Patch body (RFC 6902).
const jsonPatchType = "application/json-patch+json"

// readPatch reads a PATCH body, bounded like any body and to
// fhir.DefaultMaxPatchOps operations: a JSON Patch, or a FHIRPath Patch
// (a Parameters resource sent as FHIR JSON). Any other media type is 415.
func (s *Server) readPatch(r *http.Request) (records.Patcher, error) {
	mt, err := bodyMediaType(r)
	if err != nil || (mt != jsonPatchType && !isFHIRJSON(mt)) {
		return nil, errMediaType
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errTooLarge
		}
		return nil, errBadRequest
	}
	lim := fhir.Limits{MaxBytes: int(s.cfg.MaxBody)}
	if mt == jsonPatchType {
		return fhir.ParseJSONPatch(body, lim, 0)
	}
	return s.records.ParseFHIRPathPatch(body, lim)
}

func (s *Server) writeWrite(w http.ResponseWriter, r *http.Request, e records.Entry, created bool) error {
	code := http.StatusOK
	if created {
		code = http.StatusCreated
		w.Header().Set("Location", s.fhirBase()+"/"+e.Location())
	}
	return s.writeEntry(w, r, e, nil, code)
}

// writeEntry answers with one resource version, honouring Prefer: return.
func (s *Server) writeEntry(w http.ResponseWriter, r *http.Request, e records.Entry, err error, code int) error {
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("ETag", etag(e.Version))
	h.Set("Last-Modified", e.LastUpdated.UTC().Format(http.TimeFormat))
	if r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch {
		switch preferReturn(r) {
		case "minimal":
			w.WriteHeader(code)
			return nil
		case "OperationOutcome":
			writeJSON(w, code, fhir.Outcome())
			return nil
		}
	}
	if r.Method == http.MethodHead {
		h.Set("Content-Type", fhirJSON)
		w.WriteHeader(code)
		return nil
	}
	writeJSON(w, code, e.Body)
	return nil
}

func preferReturn(r *http.Request) string {
	for _, v := range r.Header.Values("Prefer") {
		for _, part := range strings.Split(v, ";") {
			if k, val, ok := strings.Cut(strings.TrimSpace(part), "="); ok && k == "return" {
				return strings.Trim(val, `"`)
			}
		}
	}
	return "representation"
}

func etag(v int64) string { return `W/"` + strconv.FormatInt(v, 10) + `"` }

func (s *Server) fhirBase() string { return s.cfg.BaseURL + "/fhir" }

// searchForm merges a POST _search form body with the URL's parameters,
// read as strictly as a query string: the pairs of both, in one reading,
// so that a single-valued parameter in the body and the URL is refused
// too.
func searchForm(r *http.Request) (url.Values, error) {
	if mt, err := bodyMediaType(r); err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, errMediaType
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, errTooLarge
	}
	return search.ParseParams(string(body) + "&" + r.URL.RawQuery)
}

func (s *Server) history(w http.ResponseWriter, r *http.Request, c records.Caller, typ, id string, params url.Values) error {
	q, offset, err := s.pageParamsFrom(params, c, r.URL.Path)
	if err != nil {
		return err
	}
	req := records.HistoryRequest{Type: typ, ID: id, Offset: offset}
	for k, vs := range q {
		switch k {
		case "_count":
			n, err := strconv.Atoi(vs[0])
			if err != nil || n < 0 {
				return badRequestf("_count must be a non-negative integer")
			}
			req.Count = n
		case "_since", "_at":
			t, err := time.Parse(time.RFC3339Nano, vs[0])
			if err != nil {
				return badRequestf(k + " must be an instant (RFC 3339 with a time zone)")
			}
			if k == "_since" {
				req.Since = t
			} else {
				req.At = t
			}
		case "_format", "_pretty":
		default:
			return &search.QueryError{Param: k, Reason: "not supported by history"}
		}
	}
	c.Query = records.QueryNames(s.cfg.Pseudonyms, q)
	page, err := s.records.History(r.Context(), c, req)
	if err != nil {
		return err
	}
	return s.writeHistory(w, r, c, q, page, offset)
}

func (s *Server) search(w http.ResponseWriter, r *http.Request, c records.Caller, typ string, params url.Values) error {
	return s.searchAt(w, r, c, "", typ, params)
}

// searchAt serves a search of typ, or with patient set the compartment
// search GET /fhir/Patient/{patient}/{typ}.
func (s *Server) searchAt(w http.ResponseWriter, r *http.Request, c records.Caller, patient, typ string, params url.Values) error {
	path := "/fhir/" + typ
	if patient != "" {
		path = "/fhir/Patient/" + patient + "/" + typ
	}
	q, offset, err := s.pageParamsFrom(params, c, path)
	if err != nil {
		return err
	}
	withOffset := cloneValues(q)
	if offset > 0 {
		withOffset.Set("_offset", strconv.Itoa(offset))
	}
	c.Query = records.QueryNames(s.cfg.Pseudonyms, q)
	var res records.SearchResult
	if patient != "" {
		res, err = s.records.SearchCompartment(r.Context(), c, patient, typ, withOffset)
	} else {
		res, err = s.records.Search(r.Context(), c, typ, withOffset)
	}
	if err != nil {
		return err
	}
	return s.writeSearch(w, r, c, path, q, res)
}

// accessLog serves Patient/{id}/$access-log: every ledger entry naming
// the patient, oldest first, as a searchset of AuditEvents, paged like a
// search (records.AccessLog says who may read it).
func (s *Server) accessLog(w http.ResponseWriter, r *http.Request, c records.Caller, id string, params url.Values) error {
	q, offset, err := s.pageParamsFrom(params, c, r.URL.Path)
	if err != nil {
		return err
	}
	withOffset := cloneValues(q)
	delete(withOffset, "_format")
	delete(withOffset, "_pretty")
	if offset > 0 {
		withOffset.Set("_offset", strconv.Itoa(offset))
	}
	c.Query = records.QueryNames(s.cfg.Pseudonyms, q)
	res, err := s.records.AccessLog(r.Context(), c, id, withOffset, exchangeOf(r).mfa)
	if err != nil {
		return err
	}
	if _, ok := q["_count"]; ok {
		q = cloneValues(q)
		q.Set("_count", strconv.Itoa(res.Count))
	}
	links := [][2]string{{"self", s.link(r.URL.Path, q, res.Offset, c)}}
	if res.More && res.Count > 0 {
		links = append(links, [2]string{"next", s.link(r.URL.Path, q, res.Offset+res.Count, c)})
	}
	writeJSON(w, http.StatusOK, s.searchset(&res, links))
	return nil
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

func (s *Server) bundle(w http.ResponseWriter, r *http.Request, c records.Caller) error {
	res, err := s.readResource(r)
	if err != nil {
		return err
	}
	if res.Type != "Bundle" {
		return badRequestf("POST to the base URL takes a transaction or batch Bundle")
	}
	b, err := fhir.ParseBundle(res)
	if err != nil {
		return err
	}
	var results []records.EntryResult
	exchangeOf(r).action = b.Type
	switch b.Type {
	case "transaction":
		results, err = s.records.Transaction(r.Context(), c, b)
	case "batch":
		results, err = s.records.Batch(r.Context(), c, b)
	default:
		return badRequestf("Bundle.type must be transaction or batch")
	}
	if err != nil {
		return err
	}
	return s.writeBundleResponse(w, r, c, b.Type+"-response", results)
}

// auditEvent serves the read-only AuditEvent view of the ledger. Writing an
// AuditEvent is refused: the ledger is written by Ward alone.
func (s *Server) auditEvent(w http.ResponseWriter, r *http.Request, c records.Caller, seg []string, q url.Values) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead && !(len(seg) == 2 && seg[1] == "_search" && r.Method == http.MethodPost) {
		return errForbidden
	}
	if err := s.flushLedger(r.Context()); err != nil {
		return err
	}
	switch {
	case len(seg) == 1 || seg[1] == "_search":
		params := q
		if r.Method == http.MethodPost {
			var err error
			if params, err = searchForm(r); err != nil {
				return err
			}
		}
		c.Query = records.QueryNames(s.cfg.Pseudonyms, params)
		res, err := s.records.AuditEvents(r.Context(), c, params)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, s.searchset(&res, nil))
		return nil
	case len(seg) == 2:
		e, err := s.records.AuditEvent(r.Context(), c, seg[1])
		return s.writeEntry(w, r, e, err, http.StatusOK)
	}
	return errNotFound
}

// readView is the subset a read asks for with _summary or _elements (R4
// lets a read take both, as a search does; _summary wins). Anything it
// cannot serve is a 400 before the resource is read.
func readView(typ string, q url.Values) (fhir.Subset, error) {
	if v, ok := q["_summary"]; ok {
		sub, ok := fhir.SummaryMode(v[0])
		if !ok {
			return fhir.Subset{}, &search.QueryError{Param: "_summary", Reason: "a read takes true, false, text or data"}
		}
		if !sub.Whole() || v[0] == "false" {
			return sub, nil
		}
	}
	if v, ok := q["_elements"]; ok && v[0] != "" {
		sub, _, ok := fhir.ElementsOf(typ, v[0])
		if !ok {
			return fhir.Subset{}, &search.QueryError{Param: "_elements", Reason: "names an element that is not at the root of " + typ}
		}
		return sub, nil
	}
	return fhir.Subset{}, nil
}
