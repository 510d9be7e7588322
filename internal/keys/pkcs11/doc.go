// Package pkcs11 is a key provider for Ward whose keys live in an HSM
// reached through PKCS#11 (a hardware HSM, SoftHSM2, or a cloud HSM or KMS
// through its PKCS#11 library).
//
// What it guarantees:
//
//   - Key-encryption keys are AES-256 secret keys created inside the token
//     with CKA_SENSITIVE true and CKA_EXTRACTABLE false: their value never
//     leaves the HSM. Data keys are wrapped and unwrapped in the HSM with
//     CKM_AES_GCM (C_Encrypt/C_Decrypt), bound to the caller's associated
//     data and to the KEK id, as the key file binds them.
//   - Signing keys are private keys created inside the token (sensitive,
//     not extractable); Signer signs through the HSM (CKM_EDDSA for Ed25519,
//     CKM_ECDSA for P-256) and gives out the public key only.
//   - A failure of the HSM, its module or a session, and a key missing from
//     the token, are errors wrapping keys.ErrUnavailable, which Ward answers
//     with 503. Nothing falls back to a key outside the HSM or to plaintext.
//     A tampered or misplaced wrapped key is keys.ErrDecrypt.
//   - After such a failure the connection is dropped and, on the next
//     operation, the module is initialised again, the token found by its
//     label and the user logged in again: the provider recovers when the
//     HSM returns, without a restart.
//
// What it does not do: it keeps no erasure register (the key file does),
// and it does not rotate KEKs inside the HSM by itself (create a KEK with a
// new label and name it in the configuration). It needs cgo and is built
// only with the build tag pkcs11; the default, static build has a stub whose
// Open says how to build with it.
package pkcs11

import (
	"errors"
	"strings"
)

// KEKPrefix begins the id of every KEK this provider holds: "hsm." and
// the key's CKA_LABEL. The key file's ids never contain a dot after
// "kek-", so the two never collide.
const KEKPrefix = "hsm."

// Default key labels.
const (
	DefaultKEKLabel   = "ward-kek-1"
	DefaultTokenLabel = "ward-token-signing"
	// DefaultESignLabel names the key that signs electronic signatures
	// (21 CFR Part 11) and nothing else.
	DefaultESignLabel = "ward-esign"
)

// Config configures a Provider. PIN is a secret: Config's String does not
// print it.
type Config struct {
	// Module is the path of the PKCS#11 library (for SoftHSM2,
	// /usr/lib/softhsm/libsofthsm2.so).
	Module string
	// TokenLabel names the token (CKA_LABEL of the token info).
	TokenLabel string
	// PIN is the user PIN.
	PIN []byte
	// KEKLabel is the label of the current KEK; default DefaultKEKLabel.
	KEKLabel string
	// Sessions bounds the sessions open at once; default 4.
	Sessions int
}

// String names the module and token but not the PIN.
func (c Config) String() string {
	return "pkcs11.Config(module=" + c.Module + ", token=" + c.TokenLabel + ", kek=" + c.KEKLabel + ", pin redacted)"
}

// GoString redacts the PIN too.
func (c Config) GoString() string { return c.String() }

// withDefaults validates c and fills in the defaults.
func (c Config) withDefaults() (Config, error) {
	switch {
	case c.Module == "":
		return c, errors.New("pkcs11: no module (the PKCS#11 library's path)")
	case c.TokenLabel == "":
		return c, errors.New("pkcs11: no token label")
	case len(c.PIN) == 0:
		return c, errors.New("pkcs11: no PIN")
	case c.Sessions < 0:
		return c, errors.New("pkcs11: negative session count")
	}
	if c.KEKLabel == "" {
		c.KEKLabel = DefaultKEKLabel
	}
	if !validLabel(c.KEKLabel) {
		return c, errors.New("pkcs11: invalid kek label")
	}
	if c.Sessions == 0 {
		c.Sessions = 4
	}
	return c, nil
}

// validLabel admits the labels Ward creates and names: letters, digits,
// '-', '_' and '.', at most 32 bytes (the token label's size).
func validLabel(l string) bool {
	if l == "" || len(l) > 32 {
		return false
	}
	return strings.Trim(l, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == ""
}

// KeyType is the algorithm of a signing key.
type KeyType int

const (
	// Ed25519 keys sign with CKM_EDDSA. Ward's token, ledger and
	// certificate signatures are Ed25519, so these are the keys that can
	// replace the key file's; not every HSM has them.
	Ed25519 KeyType = iota + 1
	// ECDSAP256 keys sign SHA-256 digests with CKM_ECDSA; every HSM has them.
	ECDSAP256
)

func (t KeyType) String() string {
	switch t {
	case Ed25519:
		return "Ed25519"
	case ECDSAP256:
		return "ECDSA P-256"
	}
	return "unknown"
}

func ownsKEK(kekID string) bool { return strings.HasPrefix(kekID, KEKPrefix) }
