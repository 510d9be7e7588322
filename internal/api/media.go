package api

import (
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// acceptable reports whether the client accepts FHIR JSON.
func acceptable(r *http.Request, q url.Values) bool {
	if f := q.Get("_format"); f != "" {
		return f == "json" || f == "application/json" || f == "application/fhir+json"
	}
	accept := r.Header.Get("Accept")
	if accept == "" {
		return true
	}
	for _, part := range strings.Split(accept, ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case "application/fhir+json", "application/json", "application/*", "*/*", "application/json+fhir":
			return true
		}
	}
	return false
}
