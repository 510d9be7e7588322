package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"io"
)

// Secret is a client secret in the clear. It exists only between its
// creation and the moment it is shown to the operator once. It does not
// print: String, GoString and every fmt verb redact it.
type Secret struct{ v string }

// Reveal returns the secret itself, to show it once.
func (s Secret) Reveal() string { return s.v }

// Equal reports whether s and o are the same secret, in constant time.
func (s Secret) Equal(o Secret) bool {
	return subtle.ConstantTimeCompare([]byte(s.v), []byte(o.v)) == 1
}

// String redacts the secret.
func (s Secret) String() string { return "auth.Secret(redacted)" }

// GoString redacts the secret.
func (s Secret) GoString() string { return s.String() }

// Format redacts the secret under every verb.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, s.String()) }

const (
	secretBytes = 32
	saltBytes   = 16
	hashLen     = saltBytes + sha256.Size
)

// hashSecret returns salt || SHA-256(salt || secret).
func hashSecret(salt []byte, secret string) []byte {
	h := sha256.New()
	h.Write(salt)
	_, _ = io.WriteString(h, secret)
	return h.Sum(append(make([]byte, 0, hashLen), salt...))
}

// checkSecret compares secret against a stored hash in constant time. A
// stored hash of the wrong length never matches, after the same work.
func checkSecret(stored []byte, secret string) bool {
	var salt [saltBytes]byte
	copy(salt[:], stored)
	got := hashSecret(salt[:], secret)
	return subtle.ConstantTimeCompare(got, stored) == 1
}
