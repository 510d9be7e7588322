package api

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/bulk"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/store"
)

// FHIR Bulk Data export (HL7 FHIR Bulk Data Access 2.0), the asynchronous
// pattern:
//
//	GET /fhir/$export, /fhir/Patient/$export, /fhir/Group/{id}/$export
//	    with Prefer: respond-async -> 202, Content-Location: the status URL
//	GET    /fhir/$export-status/{job} -> 202 + X-Progress while it runs,
//	       200 + the manifest once complete, 500 if it failed
//	DELETE /fhir/$export-status/{job} -> 202: cancelled, files deleted
//	GET    /fhir/$export-file/{job}/{n} -> the NDJSON file
//
// The kick-off reaches the records service, which plans the export and
// records it; polling, fetching and cancelling never do, so their entries
// are the HTTP layer's (the exchange), naming the job. Only the client
// (and person) that started a job sees it; anyone else gets 404.

// WithExports serves bulk export through m.
func (s *Server) WithExports(m *bulk.Manager) *Server {
	s.exports = m
	return s
}

const (
	exportStatusPath = "$export-status"
	exportFilePath   = "$export-file"
	ndjson           = "application/fhir+ndjson"
)

// exportKickoff starts an export of level (records.ExportSystem,
// ExportPatient or ExportGroup; group names the Group).
func (s *Server) exportKickoff(w http.ResponseWriter, r *http.Request, c records.Caller, level, group string, q url.Values) error {
	x := exchangeOf(r)
	x.action = "export-request"
	if s.exports == nil {
		return errNotFound
	}
	if s.cfg.ReadOnly {
		return errReadOnly // a job is state written
	}
	if !respondAsync(r) {
		return badRequestf("$export needs the header Prefer: respond-async")
	}
	req := records.ExportRequest{Level: level, Group: group}
	for k, vs := range q {
		v := vs[0]
		if len(vs) > 1 && k != "_type" {
			return badRequestf(k + " may be given once")
		}
		switch k {
		case "_outputFormat":
			if v != ndjson && v != "application/ndjson" && v != "ndjson" {
				return badRequestf("_outputFormat: Ward exports application/fhir+ndjson only")
			}
		case "_type":
			for _, v := range vs {
				for _, t := range strings.Split(v, ",") {
					t = strings.TrimSpace(t)
					if !fhir.IsResourceType(t) {
						return badRequestf("_type: not a resource type")
					}
					req.Types = append(req.Types, t)
				}
			}
		case "_since":
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return badRequestf("_since must be an instant (RFC 3339 with a time zone)")
			}
			req.Since = t
		case "_typeFilter", "_elements", "patient", "includeAssociatedData", "_until":
			return badRequestf(k + " is not supported by Ward's $export")
		case "_format", "_pretty":
		default:
			return badRequestf("unknown $export parameter")
		}
	}
	c.Query = records.QueryNames(s.cfg.Pseudonyms, q)
	job, err := s.exports.Start(r.Context(), c, req, s.cfg.BaseURL+r.URL.RequestURI())
	if err != nil {
		if err == bulk.ErrBusy {
			w.Header().Set("Retry-After", "60")
		}
		return err
	}
	w.Header().Set("Content-Location", s.fhirBase()+"/"+exportStatusPath+"/"+job)
	writeJSON(w, http.StatusAccepted, fhir.Outcome(issue("informational", "export job "+job+" accepted")))
	return nil
}

// respondAsync reports whether the request carries Prefer: respond-async.
func respondAsync(r *http.Request) bool {
	for _, v := range r.Header.Values("Prefer") {
		for _, part := range strings.Split(v, ",") {
			for _, p := range strings.Split(part, ";") {
				if strings.EqualFold(strings.TrimSpace(p), "respond-async") {
					return true
				}
			}
		}
	}
	return false
}

// exportStatus answers a poll (GET) or a cancellation (DELETE).
func (s *Server) exportStatus(w http.ResponseWriter, r *http.Request, c records.Caller, job string) error {
	x := exchangeOf(r)
	x.typ, x.id = "", job
	if s.exports == nil {
		return errNotFound
	}
	switch r.Method {
	case http.MethodDelete:
		x.action = "export-cancel"
		if err := s.exports.Cancel(r.Context(), c, job); err != nil {
			return err
		}
		writeJSON(w, http.StatusAccepted, fhir.Outcome(issue("informational", "export job "+job+" cancelled and its files deleted")))
		return nil
	case http.MethodGet:
	default:
		return errMethod
	}
	x.action = "export-status"
	j, err := s.exports.Status(r.Context(), c, job)
	if err != nil {
		return err
	}
	switch j.State {
	case store.ExportRunning:
		w.Header().Set("X-Progress", j.Progress)
		w.Header().Set("Retry-After", "2")
		w.WriteHeader(http.StatusAccepted)
		return nil
	case store.ExportFailed:
		x.detail = "export-failed"
		w.Header().Set("Content-Type", fhirJSON)
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write(fhir.Outcome(issue("exception", "export job "+job+" failed; start a new one"))) // #nosec G705 -- a FHIR JSON OperationOutcome (application/fhir+json, nosniff, CSP default-src 'none'); the job id is one the caller owns
		return nil
	}
	w.Header().Set("Expires", j.Expires.UTC().Format(http.TimeFormat))
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(s.manifest(j))
	return nil
}

// manifest is the Bulk Data manifest of a completed job.
func (s *Server) manifest(j bulk.Job) []byte {
	type output struct {
		Type  string `json:"type"`
		URL   string `json:"url"`
		Count int    `json:"count"`
	}
	m := struct {
		TransactionTime     string   `json:"transactionTime"`
		Request             string   `json:"request"`
		RequiresAccessToken bool     `json:"requiresAccessToken"`
		Output              []output `json:"output"`
		Error               []output `json:"error"`
	}{TransactionTime: j.Created.UTC().Format(time.RFC3339Nano), Request: j.Request, RequiresAccessToken: true,
		Output: []output{}, Error: []output{}}
	for _, f := range j.Output {
		m.Output = append(m.Output, output{Type: f.Type, URL: s.fhirBase() + "/" + exportFilePath + "/" + j.ID + "/" + strconv.Itoa(f.N), Count: f.Count})
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(m)
	return buf.Bytes()
}

// exportFile serves one file of a completed job. It is checked whole
// before the status line (bulk.Manager.Open); a file changed on disk
// while it is sent aborts the connection, so the client never takes a
// cut file for a whole one.
func (s *Server) exportFile(w http.ResponseWriter, r *http.Request, c records.Caller, job, n string) error {
	x := exchangeOf(r)
	x.action, x.typ, x.id = "export-file", "", job
	if s.exports == nil {
		return errNotFound
	}
	if r.Method != http.MethodGet {
		return errMethod
	}
	if !acceptsNDJSON(r) {
		return errNotAcceptable
	}
	num, err := strconv.Atoi(n)
	if err != nil || num < 0 || strconv.Itoa(num) != n {
		return errNotFound
	}
	x.detail = "export-file=" + n
	rc, f, err := s.exports.Open(r.Context(), c, job, num)
	if err != nil {
		return err
	}
	defer rc.Close()
	x.detail += " type=" + f.Type + " count=" + strconv.Itoa(f.Count)
	w.Header().Set("Content-Type", ndjson)
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, rc); err != nil {
		s.writeError(nopWriter{}, r, err) // log it
		panic(http.ErrAbortHandler)
	}
	return nil
}

// acceptsNDJSON reports whether the Accept header admits NDJSON.
func acceptsNDJSON(r *http.Request) bool {
	accept := strings.Join(r.Header.Values("Accept"), ",")
	if strings.TrimSpace(accept) == "" {
		return true
	}
	for _, part := range strings.Split(accept, ",") {
		mt, _, _ := strings.Cut(strings.TrimSpace(part), ";")
		switch strings.ToLower(strings.TrimSpace(mt)) {
		case ndjson, "application/ndjson", "application/*", "*/*":
			return true
		}
	}
	return false
}
