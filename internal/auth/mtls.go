package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/wardhealth/ward/internal/store"
)

// CertThumbprint returns a certificate's SHA-256 thumbprint as RFC 8705
// writes it in x5t#S256: unpadded base64url of the hash of its DER. It is
// what a service's certificates are registered as, and what a
// certificate-bound token names.
func CertThumbprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return base64URL(sum[:])
}

// confirmation is an access token's cnf claim (RFC 7800): the certificate
// the token is bound to (RFC 8705 section 3.1).
type confirmation struct {
	X5tS256 string `json:"x5t#S256"`
}

// binding returns the cnf claim for a token requested over a connection
// with cert, or nil without one.
func binding(cert *x509.Certificate) *confirmation {
	if cert == nil {
		return nil
	}
	return &confirmation{X5tS256: CertThumbprint(cert)}
}

// checkBinding checks that a bound token is presented over a connection
// with the certificate it is bound to. An unbound token needs no
// certificate.
func checkBinding(cnf *confirmation, peer *x509.Certificate) error {
	switch {
	case cnf == nil:
		return nil
	case cnf.X5tS256 == "":
		return errors.New("auth: token bound to nothing")
	case peer == nil:
		return errors.New("auth: certificate-bound token presented without a client certificate")
	}
	sum := sha256.Sum256(peer.Raw)
	var got [43]byte // unpadded base64url of 32 bytes
	base64.RawURLEncoding.Encode(got[:], sum[:])
	if subtle.ConstantTimeCompare(got[:], []byte(cnf.X5tS256)) != 1 {
		return errors.New("auth: certificate-bound token presented with another certificate")
	}
	return nil
}

// authenticateCert authenticates a client by the certificate it presented
// in the TLS handshake (RFC 8705 section 2.2, self_signed_tls_client_auth):
// its thumbprint must be one the client registered. The handshake proved
// possession of the certificate's key. Unknown, revoked and unmatched all
// get the same error.
func (s *Server) authenticateCert(ctx context.Context, id string, cert *x509.Certificate) (store.Client, error) {
	fail := invalidClient("client authentication failed")
	if !validClientID(id) {
		return store.Client{}, fail
	}
	c, err := s.clients.Client(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Client{}, fail
	}
	if err != nil {
		return store.Client{}, fmt.Errorf("auth: load client: %w", err)
	}
	if s.cache != nil {
		s.cache.put(c.ID, c.Active(), s.cfg.Now())
	}
	got := []byte(CertThumbprint(cert))
	match := 0
	for _, tp := range c.CertThumbprints {
		match |= subtle.ConstantTimeCompare(got, []byte(tp))
	}
	if match != 1 || !c.Active() {
		return store.Client{}, naming(fail, c.ID)
	}
	return c, nil
}
