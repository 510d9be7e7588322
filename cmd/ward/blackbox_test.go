package main

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/api"
	"github.com/wardhealth/ward/internal/auth"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/store/sqlite"
)

// selfAuthenticating are the routes that authenticate their callers
// themselves (client credentials, sign-in sessions, forms) rather than by
// a bearer token: a request without one is refused or shown a page, but
// not with the bearer challenge. Every other route that is not a public
// document (api.Audited) must answer a request without a valid bearer
// token with 401 and WWW-Authenticate: a new route is held to that unless
// it is added here.
var selfAuthenticating = map[string]bool{
	"/oauth2/token": true, "/oauth2/authorize": true, "/oauth2/authorize/callback": true,
	"/oauth2/revoke": true, "/oauth2/introspect": true, "/oauth2/logout": true,
	"/signin": true, "/signin/": true,
}

// leakMarkers are texts that no answer to a scan may carry: stack traces,
// panics, Go source positions and type names, SQL and driver text, and
// Go's own error strings.
var leakMarkers = []string{
	"goroutine ", "panic", ".go:", "runtime.", "github.com/", "main.", "*errors.", "*fmt.", "*json.", "*url.",
	"json: ", "invalid character", "unexpected end of JSON", "strconv.", "map[string]", "interface {", "struct {",
	"SELECT ", "INSERT ", "UPDATE ", " FROM ", "WHERE ", "SQLSTATE", "sqlite", "SQLite", "pgx", "postgres", "database/sql",
	"/tmp/", "/root/", "/home/", "/usr/", "/var/", "/work/",
}

// scanProbe is one request of the scan.
type scanProbe struct {
	route  string // the route table's pattern it stands for
	method string
	path   string
	kind   string // "bearer", "public", "self" or "unknown"
}

// TestBlackBoxScan scans the built binary from outside, as an attacker
// would: `ward serve --dev` is started, Patient data with canary values
// is written, and every route in the router's route table (which the
// server logs at start) is sent requests with no token, an expired token
// signed by the server's own key, and a token signed by another Ward's
// key, and requests with a valid token but malformed input (bad JSON,
// duplicate keys, bad ids, bad queries, an oversize body, a wrong content
// type, a compressed body).
//
// Every answer must have the right status (401 with a Bearer
// WWW-Authenticate for a route that needs a token; 400, 404, 413 or 415
// for the malformed input; never a 5xx), HSTS, nosniff, Cache-Control
// no-store, and a CSP on HTML; and no body may carry a stack trace, SQL
// or driver text, a file path, a Go type name or error string, or one of
// the canaries. The server's log must not carry the canaries either.
func TestBlackBoxScan(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and scans it; skipped with -short")
	}
	if runtime.GOOS == "windows" {
		t.Skip("the binary is stopped with SIGTERM")
	}
	bin := buildWard(t)
	dir := t.TempDir()
	// The scan is a flood of failed authentications from one address:
	// far above the default limits, which are not what it tests.
	limits := filepath.Join(t.TempDir(), "rate-limits.json")
	if err := os.WriteFile(limits, []byte(`{"principal": {"rate": 1000000, "burst": 10000000}, "address": {"rate": 1000000, "burst": 10000000},
		"auth_failures": {"rate": 1000000, "burst": 10000000}, "signin_attempts": {"rate": 1000000, "burst": 10000000}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startWard(t, bin, dir, "--rate-limits", limits)
	routes := listenedRoutes(t, p.logs.String())
	if len(routes) < 20 || !slices.Contains(routes, "/fhir/") {
		t.Fatalf("the start log names %d routes: %q", len(routes), routes)
	}
	base := "https://" + p.addr
	hc := httpsClient(t, p.creds.CAFile)
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c := p.client(t)

	// Canaries: values that identify a person, written with a valid
	// token before the scan. The scan's malformed requests carry them too,
	// so that an error that echoes its input is caught.
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tag := hex.EncodeToString(rnd[:])
	canaries := []string{"Zanaryfam" + tag, "Zanarygiven" + tag, "+1-555-" + tag[:7], "MRN-" + tag}
	pid := "scan-" + tag
	pat := map[string]any{
		"resourceType": "Patient", "id": pid,
		"name":       []any{map[string]any{"family": canaries[0], "given": []any{canaries[1]}}},
		"telecom":    []any{map[string]any{"system": "phone", "value": canaries[2]}},
		"identifier": []any{map[string]any{"system": "urn:ward-test:mrn", "value": canaries[3]}},
		"birthDate":  "1961-02-03",
	}
	if r, err := c.do(t.Context(), http.MethodPut, "/Patient/"+pid, pat, ""); err != nil || r.status != http.StatusCreated {
		t.Fatalf("planting the canary Patient: %d %v", r.status, err)
	}

	// Tokens: one the server issued, and two minted here in the server's
	// format for the bootstrap client: one with the server's own key but
	// expired an hour ago, one with another Ward's key. A fourth, minted
	// like the expired one but current, must be accepted: it shows that
	// the two others fail for their expiry and their key alone.
	own, err := keys.OpenLocalFile(filepath.Join(dir, "keys.json"), nil)
	if err != nil {
		t.Fatal(err)
	}
	otherFile := filepath.Join(t.TempDir(), "keys.json")
	if err := keys.CreateLocalFile(otherFile, keys.LocalParams{}, rand.Reader); err != nil {
		t.Fatal(err)
	}
	other, err := keys.OpenLocalFile(otherFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	clientID := p.creds.ClientID
	current := mintToken(t, own.TokenSigner(), base, clientID, time.Now())
	expired := mintToken(t, own.TokenSigner(), base, clientID, time.Now().Add(-time.Hour))
	foreign := mintToken(t, other.TokenSigner(), base, clientID, time.Now())
	if r := scanDo(t, hc, http.MethodGet, base+"/fhir/Patient/"+pid, "Bearer "+current, "", nil); r.status != http.StatusOK {
		t.Fatalf("a token minted like the scan's but current and with the server's key: %d, want 200", r.status)
	}

	var probes []scanProbe
	for _, pattern := range routes {
		probes = append(probes, probesFor(pattern, pid)...)
	}
	credentials := []struct{ name, header string }{
		{"no token", ""},
		{"expired token", "Bearer " + expired},
		{"foreign token", "Bearer " + foreign},
	}
	scanned := map[string]int{}
	for _, pr := range probes {
		for _, cred := range credentials {
			var body []byte
			ctype := ""
			if pr.method == http.MethodPost || pr.method == http.MethodPut {
				body, ctype = []byte(`{"resourceType":"Patient"}`), "application/fhir+json"
			}
			r := scanDo(t, hc, pr.method, base+pr.path, cred.header, ctype, body)
			what := fmt.Sprintf("%s %s (%s; route %q)", pr.method, pr.path, cred.name, pr.route)
			scanned[pr.kind]++
			checkScanAnswer(t, what, r, canaries)
			switch pr.kind {
			case "bearer":
				if r.status != http.StatusUnauthorized {
					t.Errorf("%s: %d, want 401", what, r.status)
				} else if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("%s: 401 with WWW-Authenticate %q, want a Bearer challenge", what, r.header.Get("WWW-Authenticate"))
				} else if cred.header != "" && !strings.Contains(r.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
					t.Errorf("%s: WWW-Authenticate %q does not say invalid_token", what, r.header.Get("WWW-Authenticate"))
				}
			case "unknown":
				if r.status != http.StatusNotFound && r.status != http.StatusUnauthorized {
					t.Errorf("%s: %d, want 404 or 401", what, r.status)
				}
			case "public":
				if pr.method == http.MethodGet && r.status != http.StatusOK {
					t.Errorf("%s: a public document answered %d", what, r.status)
				}
			case "self":
				// Signing out without a session signs no one out: the
				// logout endpoint may answer it with its page.
				if r.status >= 200 && r.status < 300 && pr.method != http.MethodGet && pr.path != "/oauth2/logout" {
					t.Errorf("%s: %d without credentials", what, r.status)
				}
			}
			if r.status == http.StatusUnauthorized && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") && pr.kind != "self" {
				t.Errorf("%s: 401 without a Bearer challenge", what)
			}
		}
	}

	// Malformed input with a valid token.
	bearer := "Bearer " + c.token
	badJSON := []byte(`{"resourceType":"Patient","name":[{"family":"` + canaries[0] + `"}],`)
	dupKey := []byte(`{"resourceType":"Patient","name":[{"family":"` + canaries[0] + `","family":"x"}]}`)
	unknownField := []byte(`{"resourceType":"Patient","nickname":"` + canaries[1] + `"}`)
	wrongType := []byte(`{"resourceType":"Patient","birthDate":` + "19610203" + `}`)
	good, _ := json.Marshal(pat)
	oversize := append([]byte(`{"resourceType":"Patient","text":{"status":"generated","div":"`), bytes.Repeat([]byte("a"), 17<<20)...)
	oversize = append(oversize, []byte(`"}}`)...)
	const fj = "application/fhir+json"
	for _, m := range []struct {
		name, method, path, ctype string
		body                      []byte
		header                    []string
		want                      []int
	}{
		{"bad JSON", "POST", "/fhir/Patient", fj, badJSON, nil, []int{400}},
		{"bad JSON in an update", "PUT", "/fhir/Patient/" + pid, fj, badJSON, nil, []int{400}},
		{"bad JSON in a transaction", "POST", "/fhir", fj, badJSON, nil, []int{400}},
		{"duplicate key", "POST", "/fhir/Patient", fj, dupKey, nil, []int{400}},
		{"unknown element", "POST", "/fhir/Patient", fj, unknownField, nil, []int{400}},
		{"wrong JSON type", "POST", "/fhir/Patient", fj, wrongType, nil, []int{400}},
		{"id that differs from the URL", "PUT", "/fhir/Patient/other-" + tag, fj, good, nil, []int{400}},
		{"bad id", "GET", "/fhir/Patient/bad$id%20" + tag, "", nil, nil, []int{400, 404}},
		{"overlong id", "GET", "/fhir/Patient/" + strings.Repeat("a", 65), "", nil, nil, []int{400, 404}},
		{"dot id", "GET", "/fhir/Patient/..", "", nil, nil, []int{400, 404}},
		{"unknown type", "GET", "/fhir/Nonesuch/" + pid, "", nil, nil, []int{400, 404}},
		{"bad version id", "GET", "/fhir/Patient/" + pid + "/_history/x1", "", nil, nil, []int{400, 404}},
		{"bad search modifier", "GET", "/fhir/Patient?family:zz=" + canaries[0], "", nil, nil, []int{400}},
		{"unknown search parameter", "GET", "/fhir/Patient?nickname=" + canaries[1], "", nil, nil, []int{400}},
		{"bad percent encoding", "GET", "/fhir/Patient?family=" + canaries[0] + "%zz", "", nil, nil, []int{400}},
		{"bad _count", "GET", "/fhir/Patient?_count=" + canaries[3], "", nil, nil, []int{400}},
		{"oversize body", "POST", "/fhir/Patient", fj, oversize, nil, []int{413}},
		{"text/plain body", "POST", "/fhir/Patient", "text/plain", good, nil, []int{415}},
		{"XML body", "POST", "/fhir/Patient", "application/fhir+xml", good, nil, []int{415}},
		{"another charset", "POST", "/fhir/Patient", "application/fhir+json; charset=iso-8859-1", good, nil, []int{415}},
		{"compressed body", "POST", "/fhir/Patient", fj, good, []string{"Content-Encoding", "gzip"}, []int{415}},
		{"bad JSON to the ledger", "POST", "/ledger/checkpoint", fj, badJSON, nil, []int{400, 403, 404, 405}},
		{"bad JSON to emergency access", "POST", "/emergency", "application/json", badJSON, nil, []int{400, 403}},
		{"bad JSON to the users API", "POST", "/admin/users", "application/json", badJSON, nil, []int{400, 403}},
		{"bad JSON to the incidents API", "POST", "/admin/incidents", "application/json", badJSON, nil, []int{400, 403}},
		{"bad form to the token endpoint", "POST", "/oauth2/token", "application/x-www-form-urlencoded", []byte("grant_type=client_credentials&%zz"), nil, []int{400, 401}},
		{"JSON to the token endpoint", "POST", "/oauth2/token", fj, badJSON, nil, []int{400, 401, 415}},
	} {
		r := scanDo(t, hc, m.method, base+m.path, bearer, m.ctype, m.body, m.header...)
		what := fmt.Sprintf("%s: %s %s", m.name, m.method, m.path)
		checkScanAnswer(t, what, r, canaries)
		if !slices.Contains(m.want, r.status) {
			t.Errorf("%s answered %d, want one of %v", what, r.status, m.want)
		}
		scanned["malformed"]++
	}

	// Nothing of the above changed the canary Patient, and the server
	// still serves.
	if r := scanDo(t, hc, http.MethodGet, base+"/fhir/Patient/"+pid, bearer, "", nil); r.status != http.StatusOK || r.header.Get("ETag") != `W/"1"` {
		t.Errorf("the canary Patient after the scan: %d, ETag %q; want 200 at version 1", r.status, r.header.Get("ETag"))
	}
	p.stop(t)
	logs := p.logs.String()
	for _, cn := range canaries {
		if strings.Contains(logs, cn) {
			t.Errorf("the server's log holds the canary %q", cn)
		}
	}
	t.Logf("scanned %d routes: %d requests to routes that need a token, %d to public documents, %d to self-authenticating routes, %d to unknown paths, %d malformed",
		len(routes), scanned["bearer"], scanned["public"], scanned["self"], scanned["unknown"], scanned["malformed"])
}

// listenedRoutes reads the route table from the "ward listening" line of
// the server's JSON log.
func listenedRoutes(t *testing.T, logs string) []string {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 0, 1<<20), 1<<20)
	for sc.Scan() {
		var line struct {
			Msg    string   `json:"msg"`
			Routes []string `json:"routes"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "ward listening" {
			return line.Routes
		}
	}
	t.Fatalf("no \"ward listening\" line with routes in the log:\n%s", logs)
	return nil
}

// probesFor turns a route pattern (net/http ServeMux syntax) into the
// requests that stand for it: its method, or GET and POST when it names
// none; a pattern that ends in "/" gets a path below it; "/fhir/" stands
// for the FHIR interactions.
func probesFor(pattern, id string) []scanProbe {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		method, path = "", pattern
	}
	var paths []string
	switch {
	case path == "/":
		paths = []string{"/probe", "/.git/config", "/debug/pprof/"}
	case path == "/fhir/":
		paths = []string{"/fhir/Patient", "/fhir/Patient/" + id, "/fhir/Patient/" + id + "/_history", "/fhir/Patient/" + id + "/_history/1",
			"/fhir/Patient/_search", "/fhir/Patient/" + id + "/$everything", "/fhir/Patient/" + id + "/$access-log", "/fhir/$export",
			"/fhir/Observation?subject=Patient/" + id, "/fhir/AuditEvent", "/fhir/metadata", "/fhir/_history"}
	case strings.HasSuffix(path, "/"):
		paths = []string{path + "probe"}
	default:
		paths = []string{path}
	}
	methods := []string{method}
	if method == "" {
		methods = []string{http.MethodGet, http.MethodPost}
	}
	var out []scanProbe
	for _, pth := range paths {
		plain, _, _ := strings.Cut(pth, "?")
		kind := "bearer"
		switch {
		case path == "/":
			kind = "unknown"
		case !api.Audited(plain):
			kind = "public"
		case selfAuthenticating[path]:
			kind = "self"
		}
		for _, m := range methods {
			if kind == "public" && m != http.MethodGet {
				continue // a public document is read, not posted to
			}
			out = append(out, scanProbe{route: pattern, method: m, path: pth, kind: kind})
		}
		if path == "/fhir/" && plain == "/fhir/Patient/"+id {
			out = append(out, scanProbe{route: pattern, method: http.MethodPut, path: pth, kind: kind},
				scanProbe{route: pattern, method: http.MethodDelete, path: pth, kind: kind})
		}
	}
	return out
}

// scanAnswer is what the scan keeps of a response.
type scanAnswer struct {
	status int
	header http.Header
	body   string
}

// scanDo sends one request; extra holds header name and value pairs.
func scanDo(t *testing.T, hc *http.Client, method, u, authorization, ctype string, body []byte, extra ...string) scanAnswer {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, u, rd)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		req.Header.Set(extra[i], extra[i+1])
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, u, err)
	}
	return scanAnswer{status: resp.StatusCode, header: resp.Header, body: string(data)}
}

// checkScanAnswer checks what every answer of the scan must be: no 5xx,
// the security headers, and no leak in the body or the headers.
func checkScanAnswer(t *testing.T, what string, r scanAnswer, canaries []string) {
	t.Helper()
	if r.status >= 500 {
		t.Errorf("%s: %d", what, r.status)
	}
	h := r.header
	if !strings.HasPrefix(h.Get("Strict-Transport-Security"), "max-age=") {
		t.Errorf("%s: Strict-Transport-Security %q", what, h.Get("Strict-Transport-Security"))
	}
	if h.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("%s: X-Content-Type-Options %q", what, h.Get("X-Content-Type-Options"))
	}
	if !strings.Contains(h.Get("Cache-Control"), "no-store") {
		t.Errorf("%s: Cache-Control %q, want no-store", what, h.Get("Cache-Control"))
	}
	if strings.HasPrefix(h.Get("Content-Type"), "text/html") && !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Errorf("%s: an HTML answer with Content-Security-Policy %q", what, h.Get("Content-Security-Policy"))
	}
	var headers strings.Builder
	for k, vs := range h {
		fmt.Fprintf(&headers, "%s: %s\n", k, strings.Join(vs, ", "))
	}
	for _, text := range []string{r.body, headers.String()} {
		for _, m := range leakMarkers {
			if strings.Contains(text, m) {
				t.Errorf("%s: the answer holds %q:\n%.600s", what, m, text)
			}
		}
		for _, cn := range canaries {
			if strings.Contains(text, cn) {
				t.Errorf("%s: the answer holds the canary %q", what, cn)
			}
		}
	}
}

// mintToken signs an access token for clientID in the format Ward's token
// endpoint issues, at the time now, with signer: an issuer of its own,
// with a client of the same id, does what the server's does.
func mintToken(t *testing.T, signer crypto.Signer, base, clientID string, now time.Time) string {
	t.Helper()
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "mint.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	srv, err := auth.NewServer(auth.Config{Issuer: base, Audience: base + "/fhir", Now: func() time.Time { return now }}, db, signer)
	if err != nil {
		t.Fatal(err)
	}
	_, secret, err := srv.CreateClientWithID(t.Context(), clientID, "scan", []string{"system/*.cruds"})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Token(t.Context(), auth.TokenRequest{GrantType: "client_credentials", ClientID: clientID, ClientSecret: secret.Reveal()})
	if err != nil {
		t.Fatal(err)
	}
	return resp.AccessToken
}
