package tlsconfig

import (
	"bufio"
	"crypto/tls"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// serve starts a TLS listener with Ward's server configuration over a dev
// certificate and answers HTTP requests with 200.
func serve(t *testing.T) (addr string, files DevFiles) {
	t.Helper()
	files, created, err := EnsureDev(t.TempDir(), time.Now())
	if err != nil || !created {
		t.Fatalf("EnsureDev: created=%v err=%v", created, err)
	}
	conf, err := Server(files.Cert, files.Key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", conf)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("secret"))
	}), ReadHeaderTimeout: time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String(), files
}

// D7: TLS 1.0/1.1, non-AEAD or non-forward-secret suites and plain HTTP are
// refused; TLS 1.2 with ECDHE+AEAD and TLS 1.3 are accepted.
func TestProtocolFloor(t *testing.T) {
	addr, files := serve(t)
	client, err := Client(files.CACert)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		min, max uint16
		suites   []uint16
		ok       bool
	}{
		{"tls1.0", tls.VersionTLS10, tls.VersionTLS10, nil, false},
		{"tls1.1", tls.VersionTLS11, tls.VersionTLS11, nil, false},
		{"tls1.2 cbc", tls.VersionTLS12, tls.VersionTLS12, []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256}, false},
		{"tls1.2 rsa kx", tls.VersionTLS12, tls.VersionTLS12, []uint16{
			tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_GCM_SHA384}, false},
		{"tls1.2 ecdhe aead", tls.VersionTLS12, tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}, true},
		{"tls1.3", tls.VersionTLS13, tls.VersionTLS13, nil, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conf := client.Clone()
			conf.MinVersion, conf.MaxVersion, conf.CipherSuites = c.min, c.max, c.suites
			conf.ServerName = "localhost"
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, conf)
			if c.ok != (err == nil) {
				t.Fatalf("handshake error = %v, want success %v", err, c.ok)
			}
			if err == nil {
				conn.Close()
			}
		})
	}
}

func TestPlainHTTPRefused(t *testing.T) {
	addr, _ := serve(t)
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err == nil {
		defer resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Fatalf("plain HTTP got status %d", resp.StatusCode)
		}
	}
}

func TestDevCertificate(t *testing.T) {
	dir := t.TempDir()
	files, created, err := EnsureDev(dir, time.Now())
	if err != nil || !created {
		t.Fatal(created, err)
	}
	for _, p := range []string{files.CAKey, files.Key} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", filepath.Base(p), fi.Mode().Perm())
		}
	}
	// A second call keeps what exists.
	before, _ := os.ReadFile(files.Cert)
	if _, created, err := EnsureDev(dir, time.Now()); err != nil || created {
		t.Fatalf("second EnsureDev: created=%v err=%v", created, err)
	}
	after, _ := os.ReadFile(files.Cert)
	if string(before) != string(after) {
		t.Error("EnsureDev replaced an existing certificate")
	}
	// The certificate verifies for every loopback name under the dev CA.
	addr, files2 := serve(t)
	client, err := Client(files2.CACert)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"localhost", "127.0.0.1"} {
		conf := client.Clone()
		conf.ServerName = name
		conn, err := tls.Dial("tcp", addr, conf)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		conn.Close()
	}
}

func TestKeyFileModeChecked(t *testing.T) {
	files, _, err := EnsureDev(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(files.Key, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Server(files.Cert, files.Key); err == nil {
		t.Fatal("a world-readable key file was accepted")
	}
	if _, err := Server("", ""); err == nil {
		t.Fatal("missing certificate accepted")
	}
}
