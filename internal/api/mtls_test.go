package api_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/wardhealth/ward/internal/auth"
)

// clientCert is a fresh self-signed TLS client certificate.
func clientCert(t *testing.T, cn string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// withCert returns an HTTP client of the stack that presents cert (none
// when nil) on its own connections.
func (s *stack) withCert(cert *tls.Certificate) *http.Client {
	conf := s.http.Transport.(*http.Transport).TLSClientConfig.Clone()
	if cert != nil {
		conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: conf}, Timeout: 30 * time.Second}
}

// tokenRequest posts a token request form with c and returns the status
// and the decoded body.
func (s *stack) tokenRequest(c *http.Client, form url.Values) (int, map[string]any) {
	s.t.Helper()
	resp, err := c.PostForm(s.base+"/oauth2/token", form)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		s.t.Fatalf("token response (status %d) is not JSON: %v", resp.StatusCode, err)
	}
	return resp.StatusCode, body
}

// get sends GET path with a bearer token over c and returns the status.
func (s *stack) get(c *http.Client, path, token string) int {
	s.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func thumbprint(c tls.Certificate) string {
	sum := sha256.Sum256(c.Certificate[0])
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// cnfOf returns the x5t#S256 a token is bound to, or "".
func cnfOf(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Cnf struct {
			X5t string `json:"x5t#S256"`
		} `json:"cnf"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	return c.Cnf.X5t
}

// RFC 8705 end to end over real TLS: a service registered with certificate
// A authenticates by presenting it and gets a token bound to A, which works
// with A and is refused with B or without a certificate; a token obtained
// without a certificate keeps working with or without one.
func TestMutualTLSBoundTokens(t *testing.T) {
	s := newStackWith(t, stackOptions{mtls: true})
	a, b := clientCert(t, "service a"), clientCert(t, "service b")
	withA, withB, without := s.withCert(&a), s.withCert(&b), s.withCert(nil)
	svc, _, err := s.auth.CreateService(t.Context(), auth.ServiceSpec{Name: "tls service", Scopes: []string{"system/*.rs"}, Certs: []*x509.Certificate{a.Leaf}})
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {svc.ID}}

	before := ledgerSize(t, s)
	status, body := s.tokenRequest(withA, form)
	if status != http.StatusOK {
		t.Fatalf("token with certificate A: %d %v", status, body)
	}
	if e := ledgerEntries(t, s, before); len(e) != 1 || e[0].Action != "token" || e[0].Outcome != "success" || e[0].Client != svc.ID {
		t.Errorf("token entry %+v, want a success naming %s", e, svc.ID)
	}
	bound, _ := body["access_token"].(string)
	if got := cnfOf(t, bound); got != thumbprint(a) {
		t.Fatalf("token cnf x5t#S256 %q, want the thumbprint of A %q", got, thumbprint(a))
	}
	if got := s.get(withA, "/fhir/Patient", bound); got != http.StatusOK {
		t.Errorf("bound token with certificate A: %d, want 200", got)
	}
	if got := s.get(withB, "/fhir/Patient", bound); got != http.StatusUnauthorized {
		t.Errorf("bound token with certificate B: %d, want 401", got)
	}
	if got := s.get(without, "/fhir/Patient", bound); got != http.StatusUnauthorized {
		t.Errorf("bound token without a certificate: %d, want 401", got)
	}
	// The stack's token was requested without a certificate: not bound.
	if cnfOf(t, s.token) != "" {
		t.Fatal("a token requested without a certificate is bound")
	}
	for name, c := range map[string]*http.Client{"A": withA, "B": withB, "no certificate": without} {
		if got := s.get(c, "/fhir/Patient", s.token); got != http.StatusOK {
			t.Errorf("unbound token with %s: %d, want 200", name, got)
		}
	}
	// Certificate authentication needs the registered certificate.
	for name, c := range map[string]*http.Client{"B": withB, "no certificate": without} {
		if status, body := s.tokenRequest(c, form); status != http.StatusUnauthorized || body["error"] != "invalid_client" {
			t.Errorf("token for the service with %s: %d %v, want 401 invalid_client", name, status, body)
		}
	}
}

// SMART Backend Services end to end: a service registered with a key set
// gets a token with a signed assertion, once; presented with a client
// certificate, the assertion's token is bound to it.
func TestBackendServiceAssertion(t *testing.T) {
	s := newStackWith(t, stackOptions{mtls: true})
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES384", Use: "sig"}}})
	svc, _, err := s.auth.CreateService(t.Context(), auth.ServiceSpec{Name: "backend", Scopes: []string{"system/*.rs"}, JWKS: jwks})
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES384, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	assertion := func() string {
		n++
		claims, _ := json.Marshal(map[string]any{"iss": svc.ID, "sub": svc.ID, "aud": s.base + "/oauth2/token",
			"exp": time.Now().Add(4 * time.Minute).Unix(), "jti": fmt.Sprint("jti-", n)})
		obj, err := signer.Sign(claims)
		if err != nil {
			t.Fatal(err)
		}
		return must2(obj.CompactSerialize())
	}
	form := func(a string) url.Values {
		return url.Values{"grant_type": {"client_credentials"}, "scope": {"system/Patient.rs"},
			"client_assertion_type": {auth.AssertionType}, "client_assertion": {a}}
	}
	without := s.withCert(nil)
	a1 := assertion()
	before := ledgerSize(t, s)
	status, body := s.tokenRequest(without, form(a1))
	if status != http.StatusOK || body["scope"] != "system/Patient.rs" {
		t.Fatalf("token with an assertion: %d %v", status, body)
	}
	if e := ledgerEntries(t, s, before); len(e) != 1 || e[0].Client != svc.ID {
		t.Errorf("token entry %+v, want one naming %s (the request had no client_id)", e, svc.ID)
	}
	tok, _ := body["access_token"].(string)
	if got := s.get(without, "/fhir/Patient", tok); got != http.StatusOK {
		t.Errorf("the service's token: %d, want 200", got)
	}
	if status, body := s.tokenRequest(without, form(a1)); status != http.StatusUnauthorized || body["error"] != "invalid_client" {
		t.Errorf("replayed assertion: %d %v, want 401 invalid_client", status, body)
	}

	c := clientCert(t, "any certificate")
	withC := s.withCert(&c)
	status, body = s.tokenRequest(withC, form(assertion()))
	if status != http.StatusOK {
		t.Fatalf("token with an assertion and a certificate: %d %v", status, body)
	}
	tok, _ = body["access_token"].(string)
	if cnfOf(t, tok) != thumbprint(c) {
		t.Fatal("a token requested with a certificate is not bound to it")
	}
	if got := s.get(without, "/fhir/Patient", tok); got != http.StatusUnauthorized {
		t.Errorf("bound token without its certificate: %d, want 401", got)
	}
	if got := s.get(withC, "/fhir/Patient", tok); got != http.StatusOK {
		t.Errorf("bound token with its certificate: %d, want 200", got)
	}
}

func must2[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// Discovery names the asymmetric methods always, and certificate
// authentication and bound tokens only when the listener asks for
// certificates.
func TestDiscoveryClientAuthentication(t *testing.T) {
	for _, mtls := range []bool{false, true} {
		s := newStackWith(t, stackOptions{mtls: mtls})
		var doc struct {
			Methods []string `json:"token_endpoint_auth_methods_supported"`
			Algs    []string `json:"token_endpoint_auth_signing_alg_values_supported"`
			Bound   *bool    `json:"tls_client_certificate_bound_access_tokens"`
			Caps    []string `json:"capabilities"`
		}
		if err := json.Unmarshal(must(t, s.do("GET", "/.well-known/smart-configuration", nil), 200).body, &doc); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(doc.Methods, "private_key_jwt") || !slices.Contains(doc.Caps, "client-confidential-asymmetric") ||
			!slices.Contains(doc.Algs, "RS384") || !slices.Contains(doc.Algs, "ES384") || slices.Contains(doc.Algs, "none") || slices.Contains(doc.Algs, "HS256") {
			t.Errorf("mtls=%v: discovery %+v lacks private_key_jwt, its algorithms or the asymmetric capability", mtls, doc)
		}
		if got := slices.Contains(doc.Methods, "self_signed_tls_client_auth"); got != mtls {
			t.Errorf("mtls=%v: self_signed_tls_client_auth advertised: %v", mtls, got)
		}
		if got := doc.Bound != nil && *doc.Bound; got != mtls {
			t.Errorf("mtls=%v: tls_client_certificate_bound_access_tokens: %v", mtls, got)
		}
	}
}
