//go:build unix

package main

import (
	"bytes"
	"crypto/tls"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/tlsconfig"
)

// TestServeReloadsCertificateOnHangup: a renewed certificate is served
// after SIGHUP, without a restart (issue: TLS certificates reload).
func TestServeReloadsCertificateOnHangup(t *testing.T) {
	a, _, err := tlsconfig.EnsureDev(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := tlsconfig.EnsureDev(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	install := func(f tlsconfig.DevFiles) {
		t.Helper()
		for src, dst := range map[string]string{f.Cert: cert, f.Key: key} {
			data, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst+".new", data, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(dst+".new", dst); err != nil {
				t.Fatal(err)
			}
		}
	}
	leaf := func(f tlsconfig.DevFiles) []byte {
		c, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			t.Fatal(err)
		}
		return c.Certificate[0]
	}
	install(a)
	s := startServe(t, "--dev", "--data", t.TempDir(), "--tls-cert", cert, "--tls-key", key)
	served := func() []byte {
		conn, err := tls.Dial("tcp", s.addr, &tls.Config{InsecureSkipVerify: true}) // compares the raw certificate
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Raw
	}
	if !bytes.Equal(served(), leaf(a)) {
		t.Fatal("not serving the configured certificate")
	}
	install(b)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !bytes.Equal(served(), leaf(b)) {
		if time.Now().After(deadline) {
			t.Fatalf("the renewed certificate is not served 10 s after SIGHUP; log:\n%s", s.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
