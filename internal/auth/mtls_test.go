package auth

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
	"errors"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"
)

// selfSigned returns a fresh self-signed client certificate.
func selfSigned(t testing.TB, cn string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestCertThumbprint(t *testing.T) {
	c := selfSigned(t, "a")
	sum := sha256.Sum256(c.Raw)
	if got, want := CertThumbprint(c), base64.RawURLEncoding.EncodeToString(sum[:]); got != want || len(got) != 43 {
		t.Fatalf("CertThumbprint = %q, want %q", got, want)
	}
}

func TestParseTokenRequestCarriesCertificate(t *testing.T) {
	c := selfSigned(t, "a")
	r := tokenHTTP("POST", "application/x-www-form-urlencoded", "grant_type=client_credentials&client_id=ward-a", nil)
	r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c, selfSigned(t, "issuer")}}
	got, err := ParseTokenRequest(r)
	if err != nil || got.ClientCert != c {
		t.Fatalf("ParseTokenRequest = %+v, %v; want the leaf certificate", got, err)
	}
	r = tokenHTTP("POST", "application/x-www-form-urlencoded", "grant_type=client_credentials", nil)
	r.TLS = &tls.ConnectionState{}
	if got, err := ParseTokenRequest(r); err != nil || got.ClientCert != nil {
		t.Fatalf("without a certificate: %+v, %v", got, err)
	}
}

// A service registered by certificate authenticates by presenting it;
// its token is bound to it and works only with it.
func TestCertificateClient(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	a, a2, b := selfSigned(t, "a"), selfSigned(t, "a-next"), selfSigned(t, "b")
	svc, secret, err := f.srv.CreateService(ctx, ServiceSpec{Name: "tls svc", Scopes: []string{"system/*.rs"}, Certs: []*x509.Certificate{a, a2, a}})
	if err != nil {
		t.Fatal(err)
	}
	if secret.Reveal() != "" || svc.SecretHash != nil || len(svc.CertThumbprints) != 2 || svc.CertThumbprints[0] != CertThumbprint(a) || svc.CertThumbprints[1] != CertThumbprint(a2) {
		t.Fatalf("service %+v secret %v; want two thumbprints and no secret", svc, secret.Reveal() != "")
	}
	req := TokenRequest{GrantType: "client_credentials", ClientID: svc.ID, ClientCert: a}
	resp, err := f.srv.Token(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.srv.VerifyFor(ctx, resp.AccessToken, a)
	if err != nil || p.ClientID != svc.ID || p.CertThumbprint != CertThumbprint(a) {
		t.Fatalf("VerifyFor(cert a) = %+v, %v", p, err)
	}
	for name, peer := range map[string]*x509.Certificate{"cert b": b, "no cert": nil, "the other registered cert": a2} {
		if _, err := f.srv.VerifyFor(ctx, resp.AccessToken, peer); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("VerifyFor(%s) = %v, want ErrInvalidToken", name, err)
		}
	}
	if _, err := f.srv.Verify(ctx, resp.AccessToken); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("Verify of a bound token without a certificate = %v, want ErrInvalidToken", err)
	}
	// The second registered certificate works too (rollover).
	if _, err := f.srv.Token(ctx, TokenRequest{GrantType: "client_credentials", ClientID: svc.ID, ClientCert: a2}); err != nil {
		t.Errorf("second registered certificate: %v", err)
	}

	if err := f.srv.RevokeClient(ctx, "ward-nobody"); err == nil {
		t.Fatal("revoked an unknown client")
	}
	revoked, _, _ := f.srv.CreateService(ctx, ServiceSpec{Name: "gone", Scopes: []string{"system/*.rs"}, Certs: []*x509.Certificate{b}})
	if err := f.srv.RevokeClient(ctx, revoked.ID); err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		name string
		req  TokenRequest
	}{
		{"other certificate", TokenRequest{ClientID: svc.ID, ClientCert: b}},
		{"no client_id", TokenRequest{ClientCert: a}},
		{"unknown client", TokenRequest{ClientID: "ward-nobody", ClientCert: a}},
		{"revoked client", TokenRequest{ClientID: revoked.ID, ClientCert: b}},
		{"secret client with its cert-less secret missing", TokenRequest{ClientID: f.id, ClientCert: a}},
		{"no certificate", TokenRequest{ClientID: svc.ID}},
		{"a secret instead", TokenRequest{ClientID: svc.ID, ClientSecret: "x", ClientCert: a}},
	}
	for _, tt := range bad {
		tt.req.GrantType = "client_credentials"
		_, err := f.srv.Token(ctx, tt.req)
		var oe *OAuthError
		if !errors.As(err, &oe) || oe.Code != "invalid_client" || oe.Status != http.StatusUnauthorized || oe.Description != "client authentication failed" {
			t.Errorf("%s: %v, want invalid_client, client authentication failed", tt.name, err)
			continue
		}
		// A registered client is named for the audit entry; an unknown
		// or missing one is not.
		if want := map[string]string{"other certificate": svc.ID, "revoked client": revoked.ID,
			"secret client with its cert-less secret missing": f.id, "a secret instead": svc.ID}[tt.name]; oe.Client != want {
			t.Errorf("%s: names client %q, want %q", tt.name, oe.Client, want)
		}
	}
}

// A secret or assertion client that presents a certificate gets a token
// bound to it; without one, an unbound token that works either way.
func TestCertificateBindsAnyClient(t *testing.T) {
	f := newAssertionFixture(t)
	ctx := t.Context()
	a, b := selfSigned(t, "a"), selfSigned(t, "b")
	for name, req := range map[string]TokenRequest{
		"secret":    {GrantType: "client_credentials", ClientID: f.id, ClientSecret: f.secret.Reveal(), ClientCert: a},
		"assertion": {GrantType: "client_credentials", ClientAssertionType: AssertionType, ClientAssertion: f.rsaAssertion(t, nil), ClientCert: a},
	} {
		resp, err := f.srv.Token(ctx, req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := f.srv.VerifyFor(ctx, resp.AccessToken, a); err != nil {
			t.Errorf("%s: bound token with its certificate: %v", name, err)
		}
		if _, err := f.srv.VerifyFor(ctx, resp.AccessToken, b); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: bound token with another certificate: %v", name, err)
		}
		if _, err := f.srv.VerifyFor(ctx, resp.AccessToken, nil); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: bound token without a certificate: %v", name, err)
		}
	}
	// f.token was issued without a certificate: it is not bound.
	for name, peer := range map[string]*x509.Certificate{"none": nil, "a": a} {
		p, err := f.srv.VerifyFor(ctx, f.token, peer)
		if err != nil || p.CertThumbprint != "" {
			t.Errorf("unbound token with certificate %s: %+v, %v", name, p, err)
		}
	}
	var c map[string]any
	_ = json.Unmarshal(must(base64.RawURLEncoding.DecodeString(strings.Split(f.token, ".")[1])), &c)
	if _, ok := c["cnf"]; ok {
		t.Error("a token requested without a certificate carries cnf")
	}
}

// The cnf claim is checked strictly even though only this server can sign
// it: an empty or extended confirmation is refused.
func TestCertificateBindingClaimStrict(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	a := selfSigned(t, "a")
	base := f.claims(nil)
	for name, cnf := range map[string]string{
		"empty thumbprint": `{"x5t#S256":""}`,
		"other member":     `{"x5t#S256":"` + CertThumbprint(a) + `","jkt":"x"}`,
		"not an object":    `"` + CertThumbprint(a) + `"`,
	} {
		body, _ := json.Marshal(base)
		body = append(body[:len(body)-1], `,"cnf":`+cnf+`}`...)
		tok, err := f.srv.sign(body)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.srv.VerifyFor(ctx, tok, a); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("cnf %s: %v, want ErrInvalidToken", name, err)
		}
	}
}
