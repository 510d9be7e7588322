package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/metrics"
	"github.com/wardhealth/ward/internal/ratelimit"
)

// labelValues scrapes h and returns every sample's labels.
func labelValues(t *testing.T, h http.Handler) []map[string]string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	var out []map[string]string
	sc := bufio.NewScanner(bytes.NewReader(rec.Body.Bytes()))
	for sc.Scan() {
		line := sc.Text()
		i, j := strings.IndexByte(line, '{'), strings.LastIndexByte(line, '}')
		if strings.HasPrefix(line, "#") || i < 0 || j < i {
			continue
		}
		labels := map[string]string{"__name__": line[:i]}
		for _, kv := range strings.Split(line[i+1:j], `",`) {
			k, v, _ := strings.Cut(kv, "=")
			labels[k] = strings.Trim(v, `"`)
		}
		out = append(out, labels)
	}
	return out
}

// H-series for metrics: requests are counted by the router's pattern,
// never their path, and no label value carries an id the test created
// (patients, clients, request ids, tokens), including refused, invalid
// and rate-limited requests; 429s and validation failures are counted.
func TestMetricsLabelsArePatterns(t *testing.T) {
	m := metrics.New(metrics.Sources{})
	s := newStackWith(t, stackOptions{metrics: m, limits: ratelimit.Config{Principal: ratelimit.Limit{Rate: 0.001, Burst: 40}}})
	ctx := context.Background()
	client, secret, err := s.auth.CreateClient(ctx, "metrics probe", []string{"system/*.cruds"})
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	req, _ := http.NewRequest(http.MethodPost, s.base+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(client.ID), url.QueryEscape(secret.Reveal()))
	resp, err := s.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if tok.AccessToken == "" {
		t.Fatalf("token endpoint: %d", resp.StatusCode)
	}
	s.token = tok.AccessToken

	ids := []string{client.ID, tok.AccessToken}
	var rids []string
	keep := func(r response) response { rids = append(rids, r.header.Get("X-Request-Id")); return r }
	p := must(t, keep(s.do("POST", "/fhir/Patient", `{"resourceType":"Patient","name":[{"family":"Quetzalcoatl"}]}`)), http.StatusCreated)
	pid := strings.Split(strings.TrimPrefix(p.header.Get("Location"), s.base+"/fhir/Patient/"), "/")[0]
	if pid == "" {
		t.Fatalf("no id in Location %q", p.header.Get("Location"))
	}
	ids = append(ids, pid)
	must(t, keep(s.do("GET", "/fhir/Patient/"+pid, nil)), http.StatusOK)
	must(t, keep(s.do("GET", "/fhir/Patient/"+pid+"/_history", nil)), http.StatusOK)
	must(t, keep(s.do("GET", "/fhir/Patient?_id="+pid, nil)), http.StatusOK)
	must(t, keep(s.do("GET", "/fhir/Patient/no-such-"+pid, nil)), http.StatusNotFound)
	must(t, keep(s.do("GET", "/fhir/Patient/"+pid, nil, "Authorization", "Bearer not-a-token-"+pid)), http.StatusUnauthorized)
	must(t, keep(s.do("POST", "/fhir/Patient", `{"resourceType":"Patient","birthDate":"not-a-date"}`)), http.StatusBadRequest)
	must(t, keep(s.do("GET", "/secret-"+pid, nil)), http.StatusNotFound)
	must(t, keep(s.do("GET", "/readyz", nil)), http.StatusOK)
	limited := false
	for range 60 {
		if keep(s.do("GET", "/fhir/Patient/"+pid, nil)).status == http.StatusTooManyRequests {
			limited = true
			break
		}
	}
	if !limited {
		t.Fatal("the principal's bucket never emptied")
	}
	ids = append(ids, rids...)

	routes := append(s.api.Routes(), "none")
	samples := labelValues(t, m.Handler())
	seen := map[string]bool{}
	var invalid, throttled bool
	for _, l := range samples {
		for k, v := range l {
			if k == "__name__" {
				continue
			}
			for _, id := range ids {
				if id != "" && strings.Contains(v, id) {
					t.Errorf("%s label %s=%q carries the id %q", l["__name__"], k, v, id)
				}
			}
		}
		if r, ok := l["route"]; ok {
			if !slices.Contains(routes, r) {
				t.Errorf("%s: route label %q is not a pattern of the route table", l["__name__"], r)
			}
			if l["__name__"] == "ward_http_requests_total" {
				seen[r+" "+l["code"]] = true
			}
		}
		invalid = invalid || l["__name__"] == "ward_validation_failures_total"
		throttled = throttled || (l["__name__"] == "ward_rate_limited_total" && l["policy"] == "principal")
	}
	for _, want := range []string{"/fhir/ 200", "/fhir/ 201", "/fhir/ 404", "/fhir/ 401", "/fhir/ 400", "/fhir/ 429", "/ 404", "GET /readyz 200", "POST /oauth2/token 200"} {
		if !seen[want] {
			t.Errorf("no ward_http_requests_total for %q; seen %v", want, seen)
		}
	}
	if !throttled {
		t.Error("no ward_rate_limited_total{policy=\"principal\"}")
	}
	_ = invalid // unlabelled: checked by value below
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(rec.Body.String(), "\nward_validation_failures_total 1\n") {
		t.Errorf("ward_validation_failures_total is not 1:\n%s", grepLines(rec.Body.String(), "ward_validation"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// The cost of the metrics middleware: requests served in process (no
// TLS, no network) by a stack with and without an Observer: /healthz (no
// audit, no database: the middleware's share is largest) and a read by id.
func BenchmarkMetricsMiddleware(b *testing.B) {
	for _, on := range []bool{false, true} {
		t := &testing.T{}
		o := stackOptions{limits: benchLimits}
		name := "off"
		if on {
			o.metrics, name = metrics.New(metrics.Sources{}), "on"
		}
		s := newStackWith(t, o)
		if t.Failed() {
			b.Fatal("stack setup failed")
		}
		r := s.do("POST", "/fhir/Patient", `{"resourceType":"Patient","name":[{"family":"Bench"}]}`)
		pid := strings.Split(strings.TrimPrefix(r.header.Get("Location"), s.base+"/fhir/Patient/"), "/")[0]
		for _, bc := range []struct{ name, path string }{{"healthz", "/healthz"}, {"read", "/fhir/Patient/" + pid}} {
			path := bc.path
			b.Run(name+"/"+bc.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					req := httptest.NewRequest("GET", path, nil)
					req.Header.Set("Authorization", "Bearer "+s.token)
					w := httptest.NewRecorder()
					s.api.ServeHTTP(w, req)
					if w.Code != http.StatusOK {
						b.Fatalf("%s: %d", path, w.Code)
					}
				}
			})
		}
	}
}
