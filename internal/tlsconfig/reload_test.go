package tlsconfig

import (
	"bytes"
	"crypto/tls"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A renewed certificate is served after Reload, without a restart; a
// broken renewal leaves the served certificate as it was.
func TestReloader(t *testing.T) {
	a, _, err := EnsureDev(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := EnsureDev(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	install := func(f DevFiles) {
		t.Helper()
		for src, dst := range map[string]string{f.Cert: cert, f.Key: key} {
			data, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	install(a)
	r, err := NewReloader(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", r.Config())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _ = c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	served := func() []byte {
		t.Helper()
		conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true}) // the test compares the raw certificate
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Raw
	}
	leaf := func(f DevFiles) []byte {
		t.Helper()
		c, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			t.Fatal(err)
		}
		return c.Certificate[0]
	}
	if !bytes.Equal(served(), leaf(a)) {
		t.Fatal("not serving the first certificate")
	}
	install(b)
	if !bytes.Equal(served(), leaf(a)) {
		t.Fatal("the certificate changed before Reload")
	}
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(served(), leaf(b)) {
		t.Fatal("not serving the renewed certificate after Reload")
	}
	// A broken renewal: the key of another certificate, then a key file
	// others may read. Both refused; b still served.
	data, _ := os.ReadFile(a.Key)
	if err := os.WriteFile(key, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(); err == nil {
		t.Fatal("a mismatched key was loaded")
	}
	install(b)
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(); err == nil {
		t.Fatal("a key file others may read was loaded")
	}
	if !bytes.Equal(served(), leaf(b)) {
		t.Fatal("a failed Reload changed the served certificate")
	}
}
