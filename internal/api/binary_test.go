package api_test

import (
	"bytes"
	"encoding/base64"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/policy"
)

func TestBinary(t *testing.T) { testBinary(t, newStack(t)) }

func TestBinaryPostgres(t *testing.T) {
	testBinary(t, newStackWith(t, stackOptions{openStore: postgresStore}))
}

// testBinary: a Binary is written and read in its own content type as
// well as in FHIR JSON; raw content that a browser could run is served as
// an attachment, never sniffed; the securityContext puts it in a
// patient's compartment, so another patient's read answers as an unknown
// id (A1).
func testBinary(t *testing.T, s *stack) {
	pa := idFrom(t, must(t, s.do("POST", "/fhir/Patient", patient("Achebe", "Ngozi")), http.StatusCreated))
	pb := idFrom(t, must(t, s.do("POST", "/fhir/Patient", patient("Balogun", "Sade")), http.StatusCreated))
	const text = "discharge letter: Ngozi Achebe, room 12"
	created := must(t, s.do("POST", "/fhir/Binary", text, "Content-Type", "text/plain; charset=utf-8", "X-Security-Context", "Patient/"+pa), http.StatusCreated)
	bin := idFrom(t, created)
	if b := created.json(t); b["contentType"] != "text/plain; charset=utf-8" || b["data"] != base64.StdEncoding.EncodeToString([]byte(text)) {
		t.Fatalf("created %s", created.body)
	}

	raw := must(t, s.do("GET", "/fhir/Binary/"+bin, nil, "Accept", "text/plain"), http.StatusOK)
	if string(raw.body) != text || raw.header.Get("Content-Type") != "text/plain; charset=utf-8" ||
		raw.header.Get("X-Content-Type-Options") != "nosniff" || raw.header.Get("Content-Disposition") != "" || raw.header.Get("ETag") != `W/"1"` {
		t.Fatalf("raw read: %q %v", raw.body, raw.header)
	}
	must(t, s.do("GET", "/fhir/Binary/"+bin, nil, "Accept", "text/*"), http.StatusOK)
	for _, accept := range []string{"application/fhir+json", "", "*/*", "text/plain, application/fhir+json"} {
		if r := must(t, s.do("GET", "/fhir/Binary/"+bin, nil, "Accept", accept), http.StatusOK); r.json(t)["resourceType"] != "Binary" {
			t.Errorf("Accept %q: %s", accept, r.body)
		}
	}
	must(t, s.do("GET", "/fhir/Binary/"+bin, nil, "Accept", "image/png"), http.StatusNotAcceptable)
	must(t, s.do("GET", "/fhir/Binary/"+bin, nil, "Accept", "text/plain;q=0"), http.StatusNotAcceptable)

	// An update in the Binary's own type, and a vread of the first version.
	must(t, s.do("PUT", "/fhir/Binary/"+bin, "v2", "Content-Type", "text/plain", "X-Security-Context", "Patient/"+pa, "If-Match", `W/"1"`), http.StatusOK)
	if r := must(t, s.do("GET", "/fhir/Binary/"+bin+"/_history/1", nil, "Accept", "text/plain"), http.StatusOK); string(r.body) != text {
		t.Errorf("vread 1: %q", r.body)
	}
	if r := must(t, s.do("GET", "/fhir/Binary/"+bin, nil, "Accept", "text/plain"), http.StatusOK); string(r.body) != "v2" {
		t.Errorf("read 2: %q", r.body)
	}
	must(t, s.do("PUT", "/fhir/Binary/bad_id", "x", "Content-Type", "text/plain"), http.StatusBadRequest)
	must(t, s.do("POST", "/fhir/Binary", strings.Repeat("x", 800<<10), "Content-Type", "application/octet-stream"), http.StatusRequestEntityTooLarge)

	// Active content is an attachment, in its declared type.
	for _, ct := range []string{"text/html", "image/svg+xml", "application/pdf", "application/octet-stream"} {
		id := idFrom(t, must(t, s.do("POST", "/fhir/Binary", "<svg onload=alert(1)>", "Content-Type", ct), http.StatusCreated))
		r := must(t, s.do("GET", "/fhir/Binary/"+id, nil, "Accept", ct), http.StatusOK)
		if r.header.Get("Content-Disposition") != "attachment" || r.header.Get("Content-Type") != ct || r.header.Get("X-Content-Type-Options") != "nosniff" ||
			!strings.Contains(r.header.Get("Content-Security-Policy"), "default-src 'none'") {
			t.Errorf("%s served with %v", ct, r.header)
		}
	}

	// A1: patient B's token reads A's Binary as an unknown one, raw or as
	// FHIR JSON; A reads it. A Binary whose securityContext is A's
	// DocumentReference is A's too.
	tokA := s.personToken(t, "ngozi.binary", policy.RolePatient, "Patient/"+pa, "user/*.rs")
	tokB := s.personToken(t, "sade.binary", policy.RolePatient, "Patient/"+pb, "user/*.rs")
	doc := idFrom(t, must(t, s.do("POST", "/fhir/DocumentReference", map[string]any{"resourceType": "DocumentReference", "status": "current",
		"subject": map[string]any{"reference": "Patient/" + pa}, "content": []any{map[string]any{"attachment": map[string]any{"contentType": "text/plain"}}}}), http.StatusCreated))
	viaDoc := idFrom(t, must(t, s.do("POST", "/fhir/Binary", "scan", "Content-Type", "text/plain", "X-Security-Context", "DocumentReference/"+doc), http.StatusCreated))
	for _, id := range []string{bin, viaDoc} {
		for _, accept := range []string{"text/plain", "application/fhir+json"} {
			must(t, s.do("GET", "/fhir/Binary/"+id, nil, "Accept", accept, "Authorization", bearer(tokA)), http.StatusOK)
			got := s.do("GET", "/fhir/Binary/"+id, nil, "Accept", accept, "Authorization", bearer(tokB))
			unknown := s.do("GET", "/fhir/Binary/no-such-binary", nil, "Accept", accept, "Authorization", bearer(tokB))
			if got.status != http.StatusNotFound || !bytes.Equal(got.body, unknown.body) {
				t.Errorf("A1: B reads A's Binary %s (%s): %d %s; unknown: %d %s", id, accept, got.status, got.body, unknown.status, unknown.body)
			}
		}
	}

	// D3: the content is sealed at rest (SQLite: the data directory).
	if s.dir != "" {
		_ = filepath.WalkDir(s.dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, form := range [][]byte{[]byte("Ngozi Achebe"), []byte(base64.StdEncoding.EncodeToString([]byte(text)))} {
				if bytes.Contains(data, form) {
					t.Errorf("D3: Binary content in plaintext in %s", filepath.Base(path))
				}
			}
			return nil
		})
	}
}
