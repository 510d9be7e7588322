// Package tlsconfig builds Ward's TLS server configuration and, for dev mode,
// a local certificate authority and server certificate.
//
// Guarantees: the server configuration accepts TLS 1.2 and 1.3 only; under
// TLS 1.2 it offers only ECDHE key exchange with AEAD ciphers (AES-GCM,
// ChaCha20-Poly1305). TLS 1.3 suites are fixed by the Go runtime and are all
// AEAD. There is no way to obtain a weaker configuration from this package.
//
// Mutual TLS is optional (WithClientCerts): the server asks for a client
// certificate and never requires one, since people's browsers have none; a
// certificate that is given is one whose key the client proved to hold,
// and, when client CAs are configured, one that chains to them.
//
// The dev CA is for a developer's machine: its key stays in the data
// directory, it is valid only for localhost names and loopback addresses,
// and it is never created outside dev mode.
package tlsconfig

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// cipherSuites are the TLS 1.2 suites Ward offers: forward secret and AEAD.
var cipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// CipherSuites returns the TLS 1.2 cipher suites the server accepts.
func CipherSuites() []uint16 { return append([]uint16(nil), cipherSuites...) }

// Server returns the server configuration for a certificate and key in PEM
// files. The returned value must not be modified after it is used.
func Server(certFile, keyFile string) (*tls.Config, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("tlsconfig: a certificate and a key are both required (--tls-cert, --tls-key)")
	}
	if err := checkKeyFileMode(keyFile); err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tlsconfig: load certificate: %w", err)
	}
	return ServerFor(cert), nil
}

// ServerFor returns the server configuration for a loaded certificate.
func ServerFor(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: CipherSuites(),
		CurvePreferences: []tls.CurveID{
			tls.X25519MLKEM768, tls.X25519, tls.CurveP256, tls.CurveP384,
		},
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"h2", "http/1.1"},
	}
}

// Client returns a client configuration that trusts only the CA certificates
// in caFile (PEM).
func Client(caFile string) (*tls.Config, error) {
	pool, err := CertPool(caFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}, nil
}

// CertPool reads the PEM certificates in file into a pool.
func CertPool(file string) (*x509.CertPool, error) {
	pemBytes, err := os.ReadFile(file) // #nosec G304 -- a CA file the operator names with --client-ca
	if err != nil {
		return nil, fmt.Errorf("tlsconfig: read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("tlsconfig: %s holds no PEM certificate", file)
	}
	return pool, nil
}

// WithClientCerts returns a copy of a server configuration that asks every
// client for a certificate without requiring one (mutual TLS for the
// clients that have one). With clientCAs nil any certificate is accepted
// once the client proves it holds its key: who it belongs to is decided
// after the handshake, by a registered thumbprint. With clientCAs, a
// certificate that is given must chain to one of them and be within its
// validity dates, or the handshake fails. conf is not modified.
func WithClientCerts(conf *tls.Config, clientCAs *x509.CertPool) *tls.Config {
	c := conf.Clone()
	c.ClientAuth = tls.RequestClientCert
	if clientCAs != nil {
		c.ClientAuth = tls.VerifyClientCertIfGiven
		c.ClientCAs = clientCAs
	}
	return c
}

func checkKeyFileMode(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("tlsconfig: key file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("tlsconfig: key file %s is accessible by group or others (mode %v); run: chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	return nil
}

// DevFiles names the dev PKI files inside a directory.
type DevFiles struct {
	CACert, CAKey, Cert, Key string
}

// DevPaths returns the dev PKI file names inside dir.
func DevPaths(dir string) DevFiles {
	return DevFiles{
		CACert: filepath.Join(dir, "ca.pem"),
		CAKey:  filepath.Join(dir, "ca-key.pem"),
		Cert:   filepath.Join(dir, "server.pem"),
		Key:    filepath.Join(dir, "server-key.pem"),
	}
}

// EnsureDev creates, once, a local CA and a server certificate for
// localhost, 127.0.0.1 and ::1 in dir. Existing files are kept. It reports
// whether it created them.
func EnsureDev(dir string, now time.Time) (DevFiles, bool, error) {
	f := DevPaths(dir)
	if _, err := os.Stat(f.Cert); err == nil {
		return f, false, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return f, false, fmt.Errorf("tlsconfig: %w", err)
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return f, false, fmt.Errorf("tlsconfig: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "Ward dev CA", Organization: []string{"Ward (development only)"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(5, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		PermittedDNSDomains:   []string{"localhost"},
		PermittedIPRanges: []*net.IPNet{
			{IP: net.IPv4(127, 0, 0, 0).To4(), Mask: net.CIDRMask(8, 32)},
			{IP: net.IPv6loopback, Mask: net.CIDRMask(128, 128)},
		},
		PermittedDNSDomainsCritical: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return f, false, fmt.Errorf("tlsconfig: create CA: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return f, false, fmt.Errorf("tlsconfig: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return f, false, fmt.Errorf("tlsconfig: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return f, false, fmt.Errorf("tlsconfig: create server certificate: %w", err)
	}
	writes := []struct {
		path, typ string
		der       []byte
		mode      os.FileMode
	}{
		{f.CACert, "CERTIFICATE", caDER, 0o644},
		{f.CAKey, "EC PRIVATE KEY", marshalEC(caKey), 0o600},
		{f.Key, "EC PRIVATE KEY", marshalEC(key), 0o600},
		{f.Cert, "CERTIFICATE", der, 0o644}, // last: its presence marks completion
	}
	for _, w := range writes {
		if w.der == nil {
			return f, false, errors.New("tlsconfig: marshal key")
		}
		data := pem.EncodeToMemory(&pem.Block{Type: w.typ, Bytes: w.der})
		if err := os.WriteFile(w.path, data, w.mode); err != nil {
			return f, false, fmt.Errorf("tlsconfig: %w", err)
		}
	}
	return f, true, nil
}

func marshalEC(k *ecdsa.PrivateKey) []byte {
	b, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil
	}
	return b
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic("tlsconfig: crypto/rand failed: " + err.Error())
	}
	return n
}
