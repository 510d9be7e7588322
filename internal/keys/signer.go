package keys

import (
	"crypto"
	"crypto/ed25519"
	"io"
)

// ed25519Signer is a crypto.Signer over an Ed25519 key that does not give
// the key out: callers sign through it and read its public key, and
// nothing else (a type assertion finds no ed25519.PrivateKey). This is
// the shape a key in an HSM has, so the packages that sign (auth, signin,
// ledger) work the same with either.
type ed25519Signer struct {
	purpose string
	key     ed25519.PrivateKey
}

func newEd25519Signer(purpose string, seed []byte) *ed25519Signer {
	return &ed25519Signer{purpose: purpose, key: ed25519.NewKeyFromSeed(seed)}
}

// Public returns the ed25519.PublicKey.
func (s *ed25519Signer) Public() crypto.PublicKey { return s.key.Public() }

// Sign signs msg itself (opts.HashFunc() must be 0), as Ed25519 does.
func (s *ed25519Signer) Sign(rand io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	return s.key.Sign(rand, msg, opts)
}

// String redacts the key.
func (s *ed25519Signer) String() string { return "keys.Signer(" + s.purpose + ", Ed25519, redacted)" }

// GoString redacts the key.
func (s *ed25519Signer) GoString() string { return s.String() }
