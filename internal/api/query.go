package api

import (
	"net/http"
	"net/url"
	"slices"

	"github.com/wardhealth/ward/internal/fhir/search"
)

// fixedParams reads the query of a route that is not a FHIR search (the
// ledger, the admin API, break-the-glass) as strictly as a search's
// (search.ParseParams), and refuses any parameter outside allowed, and
// any allowed one given twice: such routes take a fixed set of
// parameters, and one they ignored would answer more than was asked.
func fixedParams(r *http.Request, allowed ...string) (url.Values, error) {
	q, err := search.ParseParams(r.URL.RawQuery)
	if err != nil {
		return nil, err
	}
	for k, vs := range q {
		switch {
		case !slices.Contains(allowed, k):
			return nil, &search.QueryError{Param: k, Reason: "not supported here"}
		case len(vs) > 1:
			return nil, &search.QueryError{Param: k, Reason: "may appear only once"}
		}
	}
	return q, nil
}
