package api

import (
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/records"
)

// Binary in its own content type (R4 binary.html#rest). A read whose
// Accept does not take FHIR JSON but takes the Binary's contentType is
// answered with the raw bytes in that type; a create or update whose body
// is not FHIR JSON stores the body as a Binary of the body's type, in the
// compartment named by the X-Security-Context header, if any. Either way
// the interaction is the FHIR read, create or update, decided and
// recorded by the records service like any other; the Binary is sealed
// at rest like any resource.
//
// Raw content is served so that a browser never runs it: nosniff (on
// every response), the restrictive CSP, and Content-Disposition:
// attachment for every type but a few that cannot carry script.

// maxBinaryBytes bounds raw Binary content: its base64 is Binary.data,
// which may hold at most fhir.DefaultMaxStringBytes, as when the Binary
// is sent as FHIR JSON.
const maxBinaryBytes = fhir.DefaultMaxStringBytes / 4 * 3

// inlineTypes are the content types served without Content-Disposition:
// attachment: none can carry script.
var inlineTypes = map[string]bool{
	"text/plain": true, "image/png": true, "image/jpeg": true, "image/gif": true, "image/webp": true,
}

// isRawBinaryRead reports whether a GET of seg may be a read of a Binary
// in its own content type, which the Accept check lets through to
// binaryRead.
func isRawBinaryRead(method string, seg []string) bool {
	if method != http.MethodGet && method != http.MethodHead {
		return false
	}
	return len(seg) >= 2 && seg[0] == "Binary" && (len(seg) == 2 || len(seg) == 4 && seg[2] == "_history")
}

// isRawBinaryWrite reports whether a request writes a Binary from a body
// that is not FHIR JSON.
func isRawBinaryWrite(r *http.Request, seg []string) bool {
	if len(seg) == 0 || seg[0] != "Binary" || (r.Method != http.MethodPost && r.Method != http.MethodPut) {
		return false
	}
	mt, err := bodyMediaType(r)
	return err == nil && !isFHIRJSON(mt) && mt != "application/x-www-form-urlencoded"
}

func isFHIRJSON(mt string) bool {
	return mt == "application/fhir+json" || mt == "application/json" || mt == "application/json+fhir"
}

// binaryRead answers a read or vread of a Binary whose caller does not
// accept FHIR JSON: the raw content when Accept takes its contentType,
// else 406. The read is recorded before the content is known to match:
// the caller asked for it.
func (s *Server) binaryRead(w http.ResponseWriter, r *http.Request, c records.Caller, seg []string) error {
	var (
		e   records.Entry
		err error
	)
	if len(seg) == 4 {
		v, ok := records.ParseVersion(seg[3])
		if !ok {
			return errNotFound
		}
		e, err = s.records.VRead(r.Context(), c, "Binary", seg[1], v)
	} else {
		e, err = s.records.Read(r.Context(), c, "Binary", seg[1])
	}
	if err != nil {
		return err
	}
	res, err := fhir.Parse(e.Body, fhir.Limits{MaxBytes: len(e.Body) + 1})
	if err != nil {
		return err
	}
	ct, _ := res.Object["contentType"].(string)
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || !accepts(strings.Join(r.Header.Values("Accept"), ","), mt) {
		return errNotAcceptable
	}
	data, _ := res.Object["data"].(string)
	raw, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		return badRequestf("the Binary's data is not base64")
	}
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("ETag", etag(e.Version))
	h.Set("Last-Modified", e.LastUpdated.UTC().Format(http.TimeFormat))
	if !inlineTypes[mt] {
		h.Set("Content-Disposition", "attachment")
	}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(raw)
	}
	return nil
}

// accepts reports whether an Accept header takes media type mt with a
// quality above 0: by the most specific range that matches it.
func accepts(accept, mt string) bool {
	typ, _, _ := strings.Cut(mt, "/")
	exact, typeWild, anyWild := -1.0, -1.0, -1.0
	for _, part := range strings.Split(accept, ",") {
		rng, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			if q, ok = qvalue(v); !ok {
				continue
			}
		}
		switch rng {
		case mt:
			exact = max(exact, q)
		case typ + "/*":
			typeWild = max(typeWild, q)
		case "*/*":
			anyWild = max(anyWild, q)
		}
	}
	for _, q := range []float64{exact, typeWild, anyWild} {
		if q >= 0 {
			return q > 0
		}
	}
	return false
}

// binaryWrite creates (POST /fhir/Binary) or updates (PUT
// /fhir/Binary/{id}) a Binary from a raw body: Binary.contentType is the
// body's Content-Type, Binary.data its bytes, Binary.securityContext the
// X-Security-Context header (a relative reference, "Patient/123").
func (s *Server) binaryWrite(w http.ResponseWriter, r *http.Request, c records.Caller, seg []string) error {
	if len(seg) > 2 || (r.Method == http.MethodPost) != (len(seg) == 1) {
		return errMethod
	}
	if len(seg) == 2 && !fhir.ValidID(seg[1]) {
		return badRequestf("the id in the URL is not a valid FHIR id")
	}
	if r.URL.RawQuery != "" {
		return badRequestf("a Binary sent in its own content type takes no query")
	}
	body, err := readBody(r, maxBinaryBytes)
	if err != nil {
		return err
	}
	obj := map[string]any{
		"resourceType": "Binary",
		"contentType":  r.Header.Get("Content-Type"),
		"data":         base64.StdEncoding.EncodeToString(body),
	}
	if len(body) == 0 {
		delete(obj, "data")
	}
	if vs := r.Header.Values("X-Security-Context"); len(vs) > 1 {
		return badRequestf("X-Security-Context: give one reference")
	} else if len(vs) == 1 {
		obj["securityContext"] = map[string]any{"reference": vs[0]}
	}
	prov, err := s.provenance(r)
	if err != nil {
		return err
	}
	res := &fhir.Resource{Type: "Binary", Object: obj}
	if r.Method == http.MethodPost {
		e, err := s.records.Create(r.Context(), c, res, prov...)
		if err != nil {
			return err
		}
		return s.writeWrite(w, r, e, true)
	}
	res.SetID(seg[1])
	var ifMatch int64
	if v := r.Header.Get("If-Match"); v != "" {
		if ifMatch, err = records.ParseETag(v); err != nil {
			return badRequestf("If-Match: " + err.Error())
		}
	}
	e, created, err := s.records.Update(r.Context(), c, "Binary", seg[1], res, ifMatch, prov...)
	if err != nil {
		return err
	}
	return s.writeWrite(w, r, e, created)
}

// readBody reads a request body of at most limit bytes: 413 beyond.
func readBody(r *http.Request, limit int) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(limit)+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errTooLarge
		}
		return nil, errBadRequest
	}
	if len(body) > limit {
		return nil, errTooLarge
	}
	return body, nil
}
