package loadgen

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// Bounds on what is read from the server.
const (
	maxTokenBody = 64 << 10 // token endpoint answer
	maxKeepBody  = 64 << 20 // bodies the engine decodes (transaction responses, searchsets)
	maxDiagBytes = 300      // OperationOutcome diagnostics kept per printed error
	fhirJSON     = "application/fhir+json"
	maxErrorBody = 256 << 10 // error bodies decoded for diagnostics
)

// newHTTPClient builds the one client shared by all workers: TLS 1.2+
// verified against caFile (or the system roots), enough idle connections per
// host for every worker, no redirects. With http1, HTTP/2 is not offered,
// so each concurrent request has a connection of its own.
func newHTTPClient(caFile string, conns int, timeout time.Duration, http1 bool) (*http.Client, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pemData, err := os.ReadFile(caFile) // #nosec G304 -- a file the person running ward load names
		if err != nil {
			return nil, fmt.Errorf("loadgen: ca file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemData) {
			return nil, fmt.Errorf("loadgen: ca file %s holds no PEM certificate", caFile)
		}
		tc.RootCAs = pool
	}
	tr := &http.Transport{
		Proxy:                 nil, // the configured host only, never through a proxy
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tc,
		TLSHandshakeTimeout:   10 * time.Second,
		ForceAttemptHTTP2:     !http1,
		MaxIdleConns:          conns + 4,
		MaxIdleConnsPerHost:   conns + 4,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: timeout,
	}
	if http1 {
		tc.NextProtos = []string{"http/1.1"}
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // a redirect is an answer, not an instruction
		},
	}, nil
}

// token is an OAuth2 access token; like Secret it never prints.
type token string

func (token) String() string { return "[redacted]" }

// tokenSource fetches client-credentials tokens, refreshes them before they
// expire and on demand after a 401. Concurrent callers share one fetch.
type tokenSource struct {
	hc       *http.Client
	url      string
	clientID string
	secret   Secret
	scope    string
	now      func() time.Time

	mu      sync.Mutex
	tok     token
	refresh time.Time // when to fetch a new token
	fetches int       // number of successful fetches, for the report and tests
}

type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope"`
}

// get returns a valid token, fetching one when none is held or the held
// one is close to expiry.
func (ts *tokenSource) get(ctx context.Context) (token, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.tok != "" && ts.now().Before(ts.refresh) {
		return ts.tok, nil
	}
	return ts.fetchLocked(ctx)
}

// invalidate drops stale if it is still the held token, so that the next get
// fetches a new one; a token already replaced by another worker is kept.
func (ts *tokenSource) invalidate(stale token) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.tok == stale {
		ts.tok = ""
	}
}

func (ts *tokenSource) fetchLocked(ctx context.Context) (token, error) {
	form := url.Values{"grant_type": {"client_credentials"}}
	if ts.scope != "" {
		form.Set("scope", ts.scope)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ts.url, strings.NewReader(form.Encode()))
	if err != nil {
		return "", fmt.Errorf("loadgen: token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// RFC 6749 2.3.1: form-encode each part before Basic encoding.
	req.SetBasicAuth(url.QueryEscape(ts.clientID), url.QueryEscape(string(ts.secret)))
	issued := ts.now()
	resp, err := ts.hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("loadgen: token request: %w", err)
	}
	defer drainClose(resp.Body)
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenBody+1))
	if err != nil {
		return "", fmt.Errorf("loadgen: token response: %w", err)
	}
	if len(body) > maxTokenBody {
		return "", errors.New("loadgen: token response too large")
	}
	if resp.StatusCode != http.StatusOK {
		var oe struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(body, &oe)
		return "", fmt.Errorf("loadgen: token endpoint answered %d %s", resp.StatusCode, clip(oe.Error, 64))
	}
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		return "", fmt.Errorf("loadgen: token response: %w", jsonErrNoValue(err))
	}
	if tr.AccessToken == "" || !strings.EqualFold(tr.TokenType, "bearer") {
		return "", errors.New("loadgen: token response lacks a bearer access_token")
	}
	life := time.Duration(tr.ExpiresIn) * time.Second
	if tr.ExpiresIn <= 0 {
		life = 300 * time.Second
	}
	// Refresh when four fifths of the lifetime have passed, at most 30 s early.
	margin := min(life/5, 30*time.Second)
	ts.tok = token(tr.AccessToken)
	ts.refresh = issued.Add(life - margin)
	ts.fetches++
	return ts.tok, nil
}

// client sends authenticated FHIR requests.
type client struct {
	hc     *http.Client
	tokens *tokenSource
}

// result is one completed exchange. body is kept only when asked for and the
// status is 2xx; diag holds the OperationOutcome diagnostics of an error.
type result struct {
	status  int
	body    []byte
	diag    string
	latency time.Duration
}

// do sends one request, retrying once with a fresh token after a 401. The
// latency covers every attempt. The body is always drained and closed so the
// connection is reused.
func (c *client) do(ctx context.Context, method, u string, body []byte, keep bool) (result, error) {
	start := time.Now()
	for attempt := 0; ; attempt++ {
		tok, err := c.tokens.get(ctx)
		if err != nil {
			return result{latency: time.Since(start)}, err
		}
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, u, rd)
		if err != nil {
			return result{}, fmt.Errorf("loadgen: request: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+string(tok))
		req.Header.Set("Accept", fhirJSON)
		if body != nil {
			req.Header.Set("Content-Type", fhirJSON)
		}
		resp, err := c.hc.Do(req)
		if err != nil {
			return result{latency: time.Since(start)}, fmt.Errorf("loadgen: %s: %w", method, redactURLError(err))
		}
		if resp.StatusCode == http.StatusUnauthorized && attempt == 0 {
			drainClose(resp.Body)
			c.tokens.invalidate(tok)
			continue
		}
		r := result{status: resp.StatusCode}
		ok := resp.StatusCode/100 == 2
		switch {
		case ok && keep:
			r.body, err = io.ReadAll(io.LimitReader(resp.Body, maxKeepBody+1))
			if err == nil && len(r.body) > maxKeepBody {
				err = errors.New("response body too large")
			}
		case !ok:
			var b []byte
			b, err = io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
			r.diag = diagnostics(b)
		}
		drainClose(resp.Body)
		r.latency = time.Since(start)
		if err != nil {
			return r, fmt.Errorf("loadgen: %s response: %w", method, err)
		}
		return r, nil
	}
}

// redactURLError drops the URL from a *url.Error: search URLs carry PHI.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func drainClose(rc io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(rc, maxKeepBody))
	_ = rc.Close()
}

// diagnostics extracts issue codes and diagnostics from an OperationOutcome
// body; anything else yields "". Ward keeps PHI out of OperationOutcomes; the
// text is still clipped.
func diagnostics(body []byte) string {
	var oo struct {
		ResourceType string `json:"resourceType"`
		Issue        []struct {
			Severity    string `json:"severity"`
			Code        string `json:"code"`
			Diagnostics string `json:"diagnostics"`
		} `json:"issue"`
	}
	if json.Unmarshal(body, &oo) != nil || oo.ResourceType != "OperationOutcome" {
		return ""
	}
	var parts []string
	for _, is := range oo.Issue {
		p := is.Severity + " " + is.Code
		if is.Diagnostics != "" {
			p += ": " + is.Diagnostics
		}
		parts = append(parts, strings.TrimSpace(p))
	}
	return clip(strings.Join(parts, "; "), maxDiagBytes)
}

// clip shortens s to at most n bytes on a rune boundary and removes control
// characters so a server cannot forge output lines.
func clip(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n] + "..."
}
