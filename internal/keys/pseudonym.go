package keys

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
)

// pseudonymInfo is the HKDF info string of the ledger pseudonym key. It
// differs from every blind-index key's (blindInfo + type + "|" + param),
// so a pseudonym never equals a blind index of the same value.
const pseudonymInfo = "ward ledger pseudonym v1"

// PseudonymPrefix starts every pseudonym, so that a reader of the ledger
// tells one from an id.
const PseudonymPrefix = "hmac:"

// Pseudonyms computes the keyed hashes that stand in the audit ledger for
// values an unproven caller chose: a client id nobody proved, a user name
// no account has. The ledger cannot be erased, so such values must not go
// into it as given (they could be personal data, or text meant to forge
// entries); a keyed hash still lets an auditor who holds the key file see
// that two attempts named the same value, and check whether a given value
// was tried. It is safe for concurrent use.
type Pseudonyms struct {
	key [32]byte
}

// NewPseudonyms returns the pseudonyms under a key derived from the
// blind-index root key: HKDF-SHA256(root, info = "ward ledger pseudonym
// v1").
func NewPseudonyms(root IndexKey) *Pseudonyms {
	k, err := hkdf.Key(sha256.New, root.b[:], nil, pseudonymInfo, 32)
	if err != nil {
		// HKDF-SHA256 fails only for outputs longer than 255*32 bytes.
		panic("keys: hkdf: " + err.Error())
	}
	p := &Pseudonyms{}
	copy(p.key[:], k)
	return p
}

// String redacts the key.
func (*Pseudonyms) String() string { return "keys.Pseudonyms(redacted)" }

// GoString redacts the key.
func (p *Pseudonyms) GoString() string { return p.String() }

// Sum returns PseudonymPrefix + hex(HMAC-SHA256(k, kind + 0x00 + value))
// truncated to 32 hex characters (128 bits). kind names what value is
// ("client", "username", ...), so equal values of different kinds get
// different pseudonyms; it must not contain a NUL byte. Callers normalise
// value first where equal values have several spellings.
func (p *Pseudonyms) Sum(kind, value string) string {
	m := hmac.New(sha256.New, p.key[:])
	m.Write([]byte(kind))
	m.Write([]byte{0})
	m.Write([]byte(value))
	var sum [sha256.Size]byte
	return PseudonymPrefix + hex.EncodeToString(m.Sum(sum[:0])[:BlindSize/2])
}
