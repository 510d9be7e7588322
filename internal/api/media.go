package api

import (
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// bodyMediaType returns the media type of a request's body. A charset
// other than UTF-8 is refused (415): Ward reads every body as UTF-8, and
// a body in ISO-8859-1 read so would be stored as other text than was
// sent. "utf-8" is matched without regard to case; no alias is taken.
func bodyMediaType(r *http.Request) (string, error) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return "", errMediaType
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return "", errMediaType
	}
	return mt, nil
}

// acceptable reports whether the client accepts FHIR JSON, which is all
// Ward answers: by _format when given, else by the Accept header's
// quality for it (fhirJSONQuality). No Accept header accepts anything.
func acceptable(r *http.Request, q url.Values) bool {
	if f := q.Get("_format"); f != "" {
		return f == "json" || f == "application/json" || f == "application/fhir+json"
	}
	accept := strings.Join(r.Header.Values("Accept"), ",")
	if strings.TrimSpace(accept) == "" {
		return true
	}
	return fhirJSONQuality(accept) > 0
}

// fhirJSONQuality returns the quality an Accept header gives
// application/fhir+json (RFC 9110, section 12.5.1): that of the most
// specific range matching it (application/fhir+json, then application/*,
// then */*), or 0 when none does; q=0 means "not acceptable". A client
// that names application/json or FHIR's older application/json+fhir, and
// not application/fhir+json itself, is taken to ask for FHIR JSON too,
// with the best quality it gives them. A range with a malformed q is
// ignored.
func fhirJSONQuality(accept string) float64 {
	exact, typeWild, anyWild, alias := -1.0, -1.0, -1.0, -1.0
	lowest := func(cur, q float64) float64 {
		if cur < 0 || q < cur {
			return q // a range given twice counts with its lower quality
		}
		return cur
	}
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			if q, ok = qvalue(v); !ok {
				continue
			}
		}
		switch mt {
		case "application/fhir+json":
			exact = lowest(exact, q)
		case "application/*":
			typeWild = lowest(typeWild, q)
		case "*/*":
			anyWild = lowest(anyWild, q)
		case "application/json", "application/json+fhir":
			alias = max(alias, q)
		}
	}
	if exact >= 0 {
		return exact
	}
	best := anyWild
	if typeWild >= 0 {
		best = typeWild
	}
	return max(best, alias, 0)
}

// qvalue parses an RFC 9110 weight: 0 to 1 with at most three decimals.
func qvalue(s string) (float64, bool) {
	if s == "" || len(s) > 5 || (s[0] != '0' && s[0] != '1') {
		return 0, false
	}
	if len(s) > 1 && s[1] != '.' {
		return 0, false
	}
	v := float64(s[0] - '0')
	scale := 0.1
	for i := 2; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' || s[0] == '1' && c != '0' {
			return 0, false
		}
		v += float64(c-'0') * scale
		scale /= 10
	}
	return v, true
}
