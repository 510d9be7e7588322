package main

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
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/wardhealth/ward/internal/store/sqlite"
)

// writeClientCert writes a self-signed client certificate (PEM) to dir and
// returns the path, the TLS certificate and its SHA-256 thumbprint.
func writeClientCert(t *testing.T, dir, cn string) (string, tls.Certificate, string) {
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
	path := filepath.Join(dir, cn+".pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return path, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, base64.RawURLEncoding.EncodeToString(sum[:])
}

func TestClientCreateWithKeys(t *testing.T) {
	dir := t.TempDir()
	files := t.TempDir()
	if code, _, stderr := ward(t, "keys", "init", "--data", dir); code != 0 {
		t.Fatalf("keys init: exit %d: %s", code, stderr)
	}
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(files, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	jwks := write("jwks.json", jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1"}}})
	private := write("private.json", jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key, KeyID: "k1"}}})
	certPath, _, thumb := writeClientCert(t, files, "svc")
	keyPEM := filepath.Join(files, "key.pem")
	der, _ := x509.MarshalECPrivateKey(key)
	if err := os.WriteFile(keyPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}

	code, stdout, stderr := ward(t, "client", "create", "--data", dir, "--name", "backend", "--scope", "system/*.rs", "--jwks", jwks)
	if code != 0 {
		t.Fatalf("client create --jwks: exit %d: %s", code, stderr)
	}
	jwtID := field(stdout, "client_id:")
	if jwtID == "" || field(stdout, "auth:") != "private_key_jwt" || strings.Contains(stdout, "client_secret:") {
		t.Fatalf("client create --jwks printed:\n%s", stdout)
	}
	code, stdout, stderr = ward(t, "client", "create", "--data", dir, "--name", "tls", "--tls-cert", certPath)
	if code != 0 {
		t.Fatalf("client create --tls-cert: exit %d: %s", code, stderr)
	}
	tlsID := field(stdout, "client_id:")
	if tlsID == "" || field(stdout, "auth:") != "self_signed_tls_client_auth" || field(stdout, "cert_sha256:") != thumb || strings.Contains(stdout, "client_secret:") {
		t.Fatalf("client create --tls-cert printed:\n%s", stdout)
	}

	db, err := sqlite.Open(t.Context(), filepath.Join(dir, "ward.db"))
	if err != nil {
		t.Fatal(err)
	}
	jc, err1 := db.Client(t.Context(), jwtID)
	tc, err2 := db.Client(t.Context(), tlsID)
	db.Close()
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if jc.JWKS == nil || jc.SecretHash != nil || !strings.Contains(string(jc.JWKS), `"kid":"k1"`) || !strings.Contains(string(jc.JWKS), `"alg":"ES384"`) {
		t.Errorf("stored key service: secret %v, key set %s", jc.SecretHash != nil, jc.JWKS)
	}
	if !slices.Equal(tc.CertThumbprints, []string{thumb}) || tc.SecretHash != nil || tc.JWKS != nil {
		t.Errorf("stored certificate service: %+v", tc)
	}

	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"both", []string{"--jwks", jwks, "--tls-cert", certPath}, 2, "not both"},
		{"app with keys", []string{"--jwks", jwks, "--redirect-uri", "https://app.example/cb"}, 2, "apps (--redirect-uri)"},
		{"private key set", []string{"--jwks", private}, 1, "not a public key"},
		{"key instead of certificate", []string{"--tls-cert", keyPEM}, 1, "never a private key"},
		{"key set as certificate", []string{"--tls-cert", jwks}, 1, "no PEM certificate"},
		{"missing file", []string{"--jwks", filepath.Join(files, "absent.json")}, 1, "--jwks"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := ward(t, append([]string{"client", "create", "--data", dir, "--name", "x"}, tt.args...)...)
			if code != tt.code || !strings.Contains(stderr, tt.want) {
				t.Fatalf("exit %d, want %d; stderr lacks %q:\n%s", code, tt.code, tt.want, stderr)
			}
			if strings.Contains(stdout, "client_id") {
				t.Errorf("a failed create printed a client id")
			}
		})
	}
	if code, stdout, _ := ward(t, "client", "list", "--data", dir); code != 0 || strings.Count(stdout, "ward-") != 2 {
		t.Errorf("after failed creates the list holds:\n%s", stdout)
	}
}

// `ward serve --mtls`: a service registered with `--tls-cert` gets a token
// with its certificate alone; the token is bound to that certificate.
func TestServeMutualTLS(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	srv := startServe(t, "--dev", "--mtls", "--data", dir)
	creds := readCreds(t, dir)
	certPath, cert, thumb := writeClientCert(t, t.TempDir(), "svc")
	code, stdout, stderr := ward(t, "client", "create", "--data", dir, "--name", "tls svc", "--tls-cert", certPath)
	if code != 0 {
		t.Fatalf("client create --tls-cert: exit %d: %s", code, stderr)
	}
	id := field(stdout, "client_id:")

	plain := httpsClient(t, creds.CAFile)
	withCert := httpsClient(t, creds.CAFile)
	withCert.Transport.(*http.Transport).TLSClientConfig.Certificates = []tls.Certificate{cert}

	var doc map[string]any
	resp, err := plain.Get("https://" + srv.addr + "/.well-known/smart-configuration")
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	if err != nil || doc["tls_client_certificate_bound_access_tokens"] != true {
		t.Fatalf("discovery with --mtls: %v, %v", doc, err)
	}

	resp, err = withCert.PostForm(creds.TokenURL, url.Values{"grant_type": {"client_credentials"}, "client_id": {id}})
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || err != nil {
		t.Fatalf("token with the registered certificate: %d, %v", resp.StatusCode, err)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok.AccessToken, ".")[1])
	if !strings.Contains(string(payload), fmt.Sprintf(`"cnf":{"x5t#S256":%q}`, thumb)) {
		t.Fatalf("token claims %s are not bound to %s", payload, thumb)
	}
	for name, c := range map[string]*http.Client{"with its certificate": withCert, "without": plain} {
		req, _ := http.NewRequest(http.MethodGet, creds.BaseURL+"/Patient", nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := map[bool]int{true: 200, false: 401}[c == withCert]; resp.StatusCode != want {
			t.Errorf("bound token %s: %d, want %d", name, resp.StatusCode, want)
		}
	}
	srv.stopOK()
}

func TestServeClientCAUnreadable(t *testing.T) {
	dir := t.TempDir()
	code, _, stderr := ward(t, "serve", "--dev", "--data", dir, "--addr", freeAddr(t), "--client-ca", filepath.Join(dir, "absent.pem"))
	if code != 2 || !strings.Contains(stderr, "--client-ca") {
		t.Fatalf("exit %d, want 2 naming --client-ca:\n%s", code, stderr)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("a refused start created %s in the data directory", entries[0].Name())
	}
}
