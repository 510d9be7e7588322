package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/fhir/search"
	"github.com/wardhealth/ward/internal/records"
)

// bundleWriter assembles a Bundle around resource bodies that are already
// JSON, without decoding them again.
type bundleWriter struct {
	buf     bytes.Buffer
	entries int
}

func newBundle(typ string, total int, hasTotal bool, links [][2]string) *bundleWriter {
	b := &bundleWriter{}
	b.buf.WriteString(`{"resourceType":"Bundle","type":`)
	writeString(&b.buf, typ)
	b.buf.WriteString(`,"timestamp":`)
	writeString(&b.buf, time.Now().UTC().Format(time.RFC3339))
	if hasTotal {
		b.buf.WriteString(`,"total":` + strconv.Itoa(total))
	}
	if len(links) > 0 {
		b.buf.WriteString(`,"link":[`)
		for i, l := range links {
			if i > 0 {
				b.buf.WriteByte(',')
			}
			b.buf.WriteString(`{"relation":`)
			writeString(&b.buf, l[0])
			b.buf.WriteString(`,"url":`)
			writeString(&b.buf, l[1])
			b.buf.WriteByte('}')
		}
		b.buf.WriteByte(']')
	}
	b.buf.WriteString(`,"entry":[`)
	return b
}

// entry appends one entry; fields holds the entry's members after the
// resource, already encoded (e.g. `"search":{"mode":"match"}`).
func (b *bundleWriter) entry(fullURL string, resource []byte, fields string) {
	if b.entries > 0 {
		b.buf.WriteByte(',')
	}
	b.entries++
	b.buf.WriteByte('{')
	sep := ""
	if fullURL != "" {
		b.buf.WriteString(`"fullUrl":`)
		writeString(&b.buf, fullURL)
		sep = ","
	}
	if resource != nil {
		b.buf.WriteString(sep + `"resource":`)
		b.buf.Write(resource)
		sep = ","
	}
	if fields != "" {
		b.buf.WriteString(sep + fields)
	}
	b.buf.WriteByte('}')
}

func (b *bundleWriter) bytes() []byte {
	b.buf.WriteString("]}")
	return b.buf.Bytes()
}

func writeString(buf *bytes.Buffer, s string) {
	enc, _ := json.Marshal(s)
	buf.Write(enc)
}

func (s *Server) fullURL(e records.Entry) string {
	return s.fhirBase() + "/" + e.Type + "/" + e.ID
}

func (s *Server) writeSearch(w http.ResponseWriter, r *http.Request, c records.Caller, path string, q url.Values, res records.SearchResult) error {
	if _, ok := q["_count"]; ok {
		// Links state the page size actually used, which may be capped.
		q = cloneValues(q)
		q.Set("_count", strconv.Itoa(res.Count))
	}
	links := [][2]string{{"self", s.link(path, q, res.Offset, c)}}
	if res.More && res.Count > 0 { // a _count=0 page has no next page: it would be itself
		links = append(links, [2]string{"next", s.link(path, q, res.Offset+res.Count, c)})
	}
	if res.Offset > 0 {
		links = append(links, [2]string{"previous", s.link(path, q, max(0, res.Offset-res.Count), c)})
	}
	writeJSON(w, http.StatusOK, s.searchset(&res, links))
	return nil
}

func (s *Server) writeHistory(w http.ResponseWriter, r *http.Request, c records.Caller, q url.Values, page records.HistoryPage, offset int) error {
	links := [][2]string{{"self", s.link(r.URL.Path, q, offset, c)}}
	if page.More && page.Next > offset {
		links = append(links, [2]string{"next", s.link(r.URL.Path, q, page.Next, c)})
	}
	b := newBundle("history", page.Total, page.HasTotal, links)
	for _, e := range page.Entries {
		method, status := "PUT", "200 OK"
		switch {
		case e.Deleted:
			method, status = "DELETE", "204 No Content"
		case e.Version == 1:
			method, status = "POST", "201 Created"
		}
		reqURL := e.Type + "/" + e.ID
		if method == "POST" {
			reqURL = e.Type
		}
		fields := `"request":{"method":"` + method + `","url":` + jsonString(reqURL) + `},"response":{"status":"` + status +
			`","etag":` + jsonString(etag(e.Version)) + `,"lastModified":` + jsonString(e.LastUpdated.Format(time.RFC3339Nano)) + `}`
		var body []byte
		if !e.Deleted {
			body = e.Body
		}
		b.entry(s.fullURL(e), body, fields)
	}
	writeJSON(w, http.StatusOK, b.bytes())
	return nil
}

func jsonString(s string) string {
	enc, _ := json.Marshal(s)
	return string(enc)
}

// writeBundleResponse answers a transaction or batch. Entries carry status,
// location, etag and lastModified; failed batch entries an OperationOutcome.
func (s *Server) writeBundleResponse(w http.ResponseWriter, r *http.Request, c records.Caller, typ string, results []records.EntryResult) error {
	b := newBundle(typ, 0, false, nil)
	for _, res := range results {
		if res.Err != nil {
			code, issues := status(res.Err)
			if code >= 500 {
				issues = []fhir.Issue{issue("exception", "request "+requestID(r.Context())+" failed")}
			}
			b.entry("", nil, `"response":{"status":"`+strconv.Itoa(code)+` `+http.StatusText(code)+`","outcome":`+string(fhir.Outcome(issues...))+`}`)
			continue
		}
		resp := `"response":{"status":"` + strconv.Itoa(res.Status) + ` ` + http.StatusText(res.Status) + `"`
		if res.Search != nil {
			b.entry("", s.searchset(res.Search, nil), resp+`}`)
			continue
		}
		e := res.Entry
		if e.ID != "" {
			resp += `,"location":` + jsonString(e.Location()) + `,"etag":` + jsonString(etag(e.Version)) +
				`,"lastModified":` + jsonString(e.LastUpdated.Format(time.RFC3339Nano))
		}
		var body []byte
		if res.Status == http.StatusOK && e.Body != nil && preferReturn(r) == "representation" && isRead(res) {
			body = e.Body
		}
		fu := ""
		if e.ID != "" {
			fu = s.fullURL(e)
		}
		b.entry(fu, body, resp+`}`)
	}
	writeJSON(w, http.StatusOK, b.bytes())
	return nil
}

// isRead tells a read entry (which returns its resource) from a write
// (which returns only its response, as Prefer: return=minimal would).
func isRead(res records.EntryResult) bool {
	return !res.Wrote && res.Entry.Version > 0
}

// searchset renders a page of search results as a Bundle.
func (s *Server) searchset(res *records.SearchResult, links [][2]string) []byte {
	b := newBundle("searchset", res.Total, res.HasTotal, links)
	for _, e := range res.Matches {
		b.entry(s.fullURL(e), e.Body, `"search":{"mode":"match"}`)
	}
	for _, e := range res.Included {
		b.entry(s.fullURL(e), e.Body, `"search":{"mode":"include"}`)
	}
	return b.bytes()
}

// everything streams Patient/{id}/$everything. Entries are flushed as they
// are produced, so memory stays bounded. A failure after the first byte
// aborts the connection: the client sees a truncated response, never a
// complete-looking partial Bundle.
func (s *Server) everything(w http.ResponseWriter, r *http.Request, c records.Caller, id string, q url.Values) error {
	for k := range q {
		if k != "_format" && k != "_pretty" {
			return &search.QueryError{Param: k, Reason: "not supported by $everything"}
		}
	}
	flusher, _ := w.(http.Flusher)
	started := false
	n := 0
	var buf bytes.Buffer
	err := s.records.Everything(r.Context(), c, id, func(e records.Entry) error {
		if !started {
			w.Header().Set("Content-Type", fhirJSON)
			w.WriteHeader(http.StatusOK)
			buf.WriteString(`{"resourceType":"Bundle","type":"searchset","entry":[`)
			started = true
		}
		if n > 0 {
			buf.WriteByte(',')
		}
		n++
		buf.WriteString(`{"fullUrl":` + jsonString(s.fullURL(e)) + `,"resource":`)
		buf.Write(e.Body)
		buf.WriteString(`,"search":{"mode":"match"}}`)
		if buf.Len() > 64<<10 {
			if _, err := w.Write(buf.Bytes()); err != nil {
				return err
			}
			buf.Reset()
			if flusher != nil {
				flusher.Flush()
			}
		}
		return nil
	})
	if err != nil {
		if !started {
			return err
		}
		s.writeError(nopWriter{}, r, err) // log it
		panic(http.ErrAbortHandler)
	}
	buf.WriteString(`],"total":` + strconv.Itoa(n) + `}`)
	_, _ = w.Write(buf.Bytes())
	return nil
}

func badRequestf(msg string) error {
	return &badRequest{msg}
}

type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }
func (e *badRequest) Unwrap() error { return errBadRequest }

// nopWriter lets writeError log a failure whose answer can no longer be sent.
type nopWriter struct{}

func (nopWriter) Header() http.Header         { return http.Header{} }
func (nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (nopWriter) WriteHeader(int)             {}
