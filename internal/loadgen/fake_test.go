package loadgen

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	fakeClientID = "load:client é"
	fakeSecret   = "s3cr+t/%&=secret"
)

// fakeWard implements the part of Ward's API the load engine uses: the
// token endpoint, transactions, reads and four searches. Knobs make it
// misbehave in the ways the tests check.
type fakeWard struct {
	srv *httptest.Server

	// knobs, set before use
	expiresIn       int           // token lifetime; 0: 300
	revokeAfterTx   bool          // drop every token after each transaction
	reverseResponse bool          // answer transaction entries in reverse order
	failReadEvery   int           // every n-th read answers 500
	redirectReadsTo string        // reads answer 307 to this URL
	readDelay       time.Duration // added to every read

	mu           sync.Mutex
	tokens       map[string]bool
	tokenIssued  int
	unauthorized int
	txs, reads   int
	searches     int
	zeroHits     int
	nextID       int
	res          map[string]map[string]fakeRes // type -> id -> resource
}

type fakeRes struct {
	patient string // compartment patient id
	family  []string
	codes   []string // system|code
}

func newFakeWard(t testing.TB) *fakeWard {
	f := &fakeWard{tokens: map[string]bool{}, res: map[string]map[string]fakeRes{}}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes cut by Close
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}

// config returns a Config for the fake with its CA written to a file.
func (f *fakeWard) config(t testing.TB, dir string) Config {
	t.Helper()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	pemData := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw})
	if err := os.WriteFile(ca, pemData, 0o600); err != nil {
		t.Fatal(err)
	}
	return Config{
		BaseURL: f.srv.URL + "/fhir", TokenURL: f.srv.URL + "/oauth2/token",
		ClientID: fakeClientID, ClientSecret: fakeSecret, CAFile: ca,
		Dir: dir, Concurrency: 2, ReadConcurrency: 4, Reads: 50, Searches: 20,
		Timeout: 10 * time.Second,
	}
}

func (f *fakeWard) counts() (tokens, unauthorized, txs, reads, searches, zeroHits int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tokenIssued, f.unauthorized, f.txs, f.reads, f.searches, f.zeroHits
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/fhir+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func outcomeDoc(code, diag string) map[string]any {
	return map[string]any{"resourceType": "OperationOutcome", "issue": []any{
		map[string]any{"severity": "error", "code": code, "diagnostics": diag}}}
}

func (f *fakeWard) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/oauth2/token" {
		f.token(w, r)
		return
	}
	path, ok := strings.CutPrefix(r.URL.Path, "/fhir")
	if !ok {
		writeJSON(w, 404, outcomeDoc("not-found", "no such endpoint"))
		return
	}
	f.mu.Lock()
	authorized := f.tokens[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
	if !authorized {
		f.unauthorized++
	}
	f.mu.Unlock()
	if !authorized {
		writeJSON(w, 401, outcomeDoc("login", "invalid or expired token"))
		return
	}
	segs := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case r.Method == http.MethodPost && path == "":
		f.transaction(w, r)
	case r.Method == http.MethodGet && len(segs) == 2:
		f.read(w, segs[0], segs[1])
	case r.Method == http.MethodGet && len(segs) == 1:
		f.search(w, segs[0], r.URL.Query())
	default:
		writeJSON(w, 405, outcomeDoc("not-supported", "method not allowed"))
	}
}

func (f *fakeWard) token(w http.ResponseWriter, r *http.Request) {
	id, secret, ok := r.BasicAuth()
	if ok {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	}
	if err := r.ParseForm(); err != nil || !ok || id != fakeClientID || secret != fakeSecret ||
		r.PostForm.Get("grant_type") != "client_credentials" {
		writeJSON(w, 401, map[string]string{"error": "invalid_client"})
		return
	}
	f.mu.Lock()
	f.tokenIssued++
	tok := fmt.Sprintf("tok-%d", f.tokenIssued)
	f.tokens[tok] = true
	exp := f.expiresIn
	f.mu.Unlock()
	if exp == 0 {
		exp = 300
	}
	writeJSON(w, 200, map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": exp})
}

type fakeEntry struct {
	FullURL  string `json:"fullUrl"`
	Resource struct {
		ResourceType string `json:"resourceType"`
		Name         []struct {
			Family string `json:"family"`
		} `json:"name"`
		Subject struct {
			Reference string `json:"reference"`
		} `json:"subject"`
		Code struct {
			Coding []struct{ System, Code string } `json:"coding"`
		} `json:"code"`
	} `json:"resource"`
}

func (f *fakeWard) transaction(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Content-Type") != "application/fhir+json" {
		writeJSON(w, 415, outcomeDoc("not-supported", "content type"))
		return
	}
	var b struct {
		ResourceType, Type string
		Entry              []json.RawMessage
	}
	if err := json.NewDecoder(r.Body).Decode(&b); err != nil || b.ResourceType != "Bundle" || b.Type != "transaction" {
		writeJSON(w, 400, outcomeDoc("invalid", "not a transaction bundle"))
		return
	}
	entries := make([]fakeEntry, len(b.Entry))
	for i, raw := range b.Entry {
		// Organization.name is a string: decode leniently, field by field.
		_ = json.Unmarshal(raw, &entries[i])
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.txs++
	ids := map[string]string{} // fullUrl -> id
	out := make([]any, len(entries))
	for i, e := range entries {
		f.nextID++
		id := "id" + strconv.Itoa(f.nextID)
		ids[e.FullURL] = id
		out[i] = map[string]any{"response": map[string]any{
			"status": "201 Created", "location": e.Resource.ResourceType + "/" + id + "/_history/1"}}
	}
	for _, e := range entries {
		rt := e.Resource.ResourceType
		fr := fakeRes{}
		if rt == "Patient" {
			fr.patient = ids[e.FullURL]
			for _, n := range e.Resource.Name {
				fr.family = append(fr.family, n.Family)
			}
		} else {
			fr.patient = ids[e.Resource.Subject.Reference]
		}
		for _, c := range e.Resource.Code.Coding {
			fr.codes = append(fr.codes, c.System+"|"+c.Code)
		}
		if f.res[rt] == nil {
			f.res[rt] = map[string]fakeRes{}
		}
		f.res[rt][ids[e.FullURL]] = fr
	}
	if f.reverseResponse {
		slices.Reverse(out)
	}
	if f.revokeAfterTx {
		clear(f.tokens)
	}
	writeJSON(w, 200, map[string]any{"resourceType": "Bundle", "type": "transaction-response", "entry": out})
}

func (f *fakeWard) read(w http.ResponseWriter, typ, id string) {
	f.mu.Lock()
	f.reads++
	n := f.reads
	_, found := f.res[typ][id]
	f.mu.Unlock()
	time.Sleep(f.readDelay)
	switch {
	case f.redirectReadsTo != "":
		w.Header().Set("Location", f.redirectReadsTo)
		w.WriteHeader(http.StatusTemporaryRedirect)
	case f.failReadEvery > 0 && n%f.failReadEvery == 0:
		writeJSON(w, 500, outcomeDoc("exception", "simulated storage failure"))
	case !found:
		writeJSON(w, 404, outcomeDoc("not-found", "resource not found"))
	default:
		writeJSON(w, 200, map[string]any{"resourceType": typ, "id": id})
	}
}

func (f *fakeWard) search(w http.ResponseWriter, typ string, q url.Values) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.searches++
	match := func(fr fakeRes) bool {
		for k, vs := range q {
			v := vs[0]
			switch k {
			case "_count":
			case "family":
				if !slices.Contains(fr.family, v) {
					return false
				}
			case "code":
				if !slices.Contains(fr.codes, v) {
					return false
				}
			case "subject":
				if "Patient/"+fr.patient != v {
					return false
				}
			case "patient":
				if fr.patient != v {
					return false
				}
			default:
				return false
			}
		}
		return true
	}
	limit := 100
	if c, err := strconv.Atoi(q.Get("_count")); err == nil {
		limit = c
	}
	var entries []any
	for id, fr := range f.res[typ] {
		if match(fr) && len(entries) < limit {
			entries = append(entries, map[string]any{"resource": map[string]any{"resourceType": typ, "id": id}})
		}
	}
	if len(entries) == 0 {
		f.zeroHits++
	}
	writeJSON(w, 200, map[string]any{"resourceType": "Bundle", "type": "searchset", "entry": entries})
}

// writeTestBundles writes n small transaction Bundles into a new directory:
// each has one Patient (family "Family<i>"), obs Observations with LOINC
// codes, one Encounter and an Organization (whose name is a string).
func writeTestBundles(t testing.TB, n, obs int) (dir string, resources int) {
	t.Helper()
	dir = t.TempDir()
	for i := range n {
		pat := fmt.Sprintf("urn:uuid:00000000-0000-0000-0000-%012d", i)
		entries := []any{
			entry(pat, map[string]any{"resourceType": "Patient", "name": []any{map[string]any{"family": fmt.Sprintf("Family%d", i)}}}),
			entry(fmt.Sprintf("urn:uuid:org-%d", i), map[string]any{"resourceType": "Organization", "name": "Clinic"}),
			entry(fmt.Sprintf("urn:uuid:enc-%d", i), map[string]any{"resourceType": "Encounter", "subject": map[string]any{"reference": pat}}),
		}
		for j := range obs {
			entries = append(entries, entry(fmt.Sprintf("urn:uuid:obs-%d-%d", i, j), map[string]any{
				"resourceType": "Observation", "subject": map[string]any{"reference": pat},
				"code": map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": fmt.Sprintf("%d-%d", 1000+j%3, j%3)}}}}))
		}
		b, err := json.Marshal(map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": entries})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("p%03d.json", i)), b, 0o600); err != nil {
			t.Fatal(err)
		}
		resources += len(entries)
	}
	return dir, resources
}

func entry(fullURL string, res map[string]any) map[string]any {
	return map[string]any{"fullUrl": fullURL, "resource": res,
		"request": map[string]any{"method": "POST", "url": res["resourceType"]}}
}
