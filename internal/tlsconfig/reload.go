package tlsconfig

import (
	"crypto/tls"
	"errors"
	"fmt"
	"sync/atomic"
)

// Reloader serves a certificate and key from PEM files and loads them
// again on Reload, so that a renewed certificate is used without a
// restart: connections made after a Reload present the new one,
// connections already open keep theirs. A Reload that fails (a file
// missing, unreadable, mismatched, or a key file others may read) leaves
// the certificate in use unchanged.
type Reloader struct {
	certFile, keyFile string
	cert              atomic.Pointer[tls.Certificate]
}

// NewReloader loads the certificate and key once; it fails as Server does.
func NewReloader(certFile, keyFile string) (*Reloader, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("tlsconfig: a certificate and a key are both required (--tls-cert, --tls-key)")
	}
	r := &Reloader{certFile: certFile, keyFile: keyFile}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload loads the files again and, when they hold a valid pair, serves
// them from the next handshake on.
func (r *Reloader) Reload() error {
	if err := checkKeyFileMode(r.keyFile); err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("tlsconfig: load certificate: %w", err)
	}
	r.cert.Store(&cert)
	return nil
}

// Certificate returns the certificate being served.
func (r *Reloader) Certificate() *tls.Certificate { return r.cert.Load() }

// Config returns the server configuration (as ServerFor) that presents
// the current certificate at each handshake.
func (r *Reloader) Config() *tls.Config {
	c := ServerFor(tls.Certificate{})
	c.Certificates = nil
	c.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return r.cert.Load(), nil }
	return c
}
