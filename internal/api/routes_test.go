package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/api"
)

// TestEveryRouteAudited walks the router's own route table: a request to
// every route (a route added later included) leaves a ledger entry that
// names its request id, with a token and without one, unless the route is
// one of the few public documents that api.Audited lists; and a path
// that names no route is audited too.
func TestEveryRouteAudited(t *testing.T) {
	s := newStack(t)
	routes := s.api.Routes()
	if len(routes) < 20 {
		t.Fatalf("the route table has %d routes: %v", len(routes), routes)
	}
	paths := []string{"/.git/config", "/debug/pprof/", "/fhir/../admin/users"}
	methods := map[string]string{}
	for _, pattern := range routes {
		method, path, ok := strings.Cut(pattern, " ")
		if !ok {
			method, path = http.MethodGet, pattern
		}
		if strings.HasSuffix(path, "/") {
			path += "probe"
		}
		paths = append(paths, path)
		methods[path] = method
	}
	unaudited := 0
	for _, path := range paths {
		method := methods[path]
		if method == "" {
			method = http.MethodGet
		}
		for _, withToken := range []bool{true, false} {
			// A window of its own, so that a refusal before
			// authentication gets its own entry (E6).
			if err := s.api.FlushFailures(t.Context()); err != nil {
				t.Fatal(err)
			}
			before := ledgerSize(t, s)
			var r response
			if withToken {
				r = s.do(method, path, nil)
			} else {
				r = s.do(method, path, nil, "Authorization", "")
			}
			rid := r.header.Get("X-Request-Id")
			found := false
			for _, e := range ledgerEntries(t, s, before) {
				found = found || e.RequestID == rid
			}
			switch {
			case api.Audited(path) && !found:
				t.Errorf("%s %s (token %v): answered %d with no ledger entry", method, path, withToken, r.status)
			case !api.Audited(path) && found:
				t.Errorf("%s %s is listed as unaudited but left an entry", method, path)
			}
			if !api.Audited(path) {
				unaudited++
			}
		}
	}
	if unaudited == 0 || unaudited > 2*10 {
		t.Errorf("%d unaudited requests: the list of public documents is not what it should be", unaudited)
	}
}

// The public documents that leave no entry are exactly these.
func TestAuditedList(t *testing.T) {
	for path, want := range map[string]bool{
		"/healthz": false, "/readyz": false, "/fhir/metadata": false, "/.well-known/smart-configuration": false,
		"/fhir/.well-known/smart-configuration": false, "/oauth2/jwks": false, "/.well-known/openid-configuration": false,
		"/fhir/Patient": true, "/fhir": true, "/oauth2/token": true, "/ledger/checkpoint": true, "/admin/users": true,
		"/emergency": true, "/signin": true, "/nothing-here": true, "/fhir/metadata/x": true,
	} {
		if got := api.Audited(path); got != want {
			t.Errorf("Audited(%q) = %v, want %v", path, got, want)
		}
	}
}
