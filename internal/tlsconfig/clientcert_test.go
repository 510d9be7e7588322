package tlsconfig

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// clientCert returns a client certificate for cn signed by parent (self-
// signed when parent is nil), and its key.
func clientCert(t *testing.T, cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, ca bool) (tls.Certificate, *x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if ca {
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, x509.KeyUsageCertSign
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, cert, key
}

// serveClientCerts serves, over conf, the SHA-256 of the client's
// certificate, or "none".
func serveClientCerts(t *testing.T, conf *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", conf)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) == 0 {
			io.WriteString(w, "none")
			return
		}
		sum := sha256.Sum256(r.TLS.PeerCertificates[0].Raw)
		io.WriteString(w, hex.EncodeToString(sum[:]))
	}), ReadHeaderTimeout: time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "https://" + ln.Addr().String()
}

func TestWithClientCerts(t *testing.T) {
	files, _, err := EnsureDev(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	base, err := Server(files.Cert, files.Key)
	if err != nil {
		t.Fatal(err)
	}
	_, caCert, caKey := clientCert(t, "client CA", nil, nil, true)
	caFile := filepath.Join(t.TempDir(), "clients.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caCert.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	pool, err := CertPool(caFile)
	if err != nil {
		t.Fatal(err)
	}
	selfPair, selfCert, _ := clientCert(t, "self", nil, nil, false)
	issuedPair, issuedCert, _ := clientCert(t, "issued", caCert, caKey, false)
	hash := func(c *x509.Certificate) string { s := sha256.Sum256(c.Raw); return hex.EncodeToString(s[:]) }

	anyCert := serveClientCerts(t, WithClientCerts(base, nil))
	caOnly := serveClientCerts(t, WithClientCerts(base, pool))
	if base.ClientAuth != tls.NoClientCert || base.ClientCAs != nil {
		t.Fatal("WithClientCerts modified the configuration it was given")
	}
	cases := []struct {
		name, url string
		cert      *tls.Certificate
		want      string // the server's answer; "" for a failed handshake
	}{
		{"no certificate, no CA", anyCert, nil, "none"},
		{"self-signed, no CA", anyCert, &selfPair, hash(selfCert)},
		{"CA-issued, no CA", anyCert, &issuedPair, hash(issuedCert)},
		{"no certificate, CA", caOnly, nil, "none"},
		{"self-signed, CA", caOnly, &selfPair, ""},
		{"CA-issued, CA", caOnly, &issuedPair, hash(issuedCert)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conf, err := Client(files.CACert)
			if err != nil {
				t.Fatal(err)
			}
			if tc.cert != nil {
				// Always send it: Go's client would withhold a certificate
				// the server's CA list does not name.
				conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return tc.cert, nil }
			}
			c := &http.Client{Transport: &http.Transport{TLSClientConfig: conf}, Timeout: 5 * time.Second}
			resp, err := c.Get(tc.url)
			if tc.want == "" {
				if err == nil {
					resp.Body.Close()
					t.Fatal("the handshake succeeded, want it refused")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if string(body) != tc.want {
				t.Fatalf("server saw %q, want %q", body, tc.want)
			}
		})
	}
	if _, err := CertPool(files.Key); err == nil {
		t.Error("CertPool accepted a file without certificates")
	}
}
