package credential

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
)

// Recovery codes are 16 characters of the RFC 4648 base32 alphabet (80
// random bits), shown as four dash-separated groups: "ABCD-EFGH-IJKL-MNOP".
//
// They are stored as SHA-256(salt || code), not with a password hash: a
// slow hash protects guessable secrets, and these are not guessable. With
// 2^80 candidates, an attacker holding a stored set of ten who computes
// 10^12 SHA-256 a second (a large GPU cluster) needs on average about 1,900
// years to find one of its codes, so argon2 would add cost at every use and
// no security. The per-set random salt keeps sets unlinkable and
// precomputation useless.
//
// The encoding is one version byte (1), the 16-byte salt, then one 32-byte
// hash per unused code.
const (
	recoveryChars   = 16
	recoveryGroup   = 4
	recoveryVersion = 1
	recoverySaltLen = 16
	recoveryHeader  = 1 + recoverySaltLen
	maxRecoveryIn   = 64 // longest input worth normalising
)

// ErrRecoveryCodeWrong is returned by UseRecoveryCode for a code that is
// malformed, wrong or already used.
var ErrRecoveryCodeWrong = errors.New("credential: wrong or used recovery code")

var errMalformedRecovery = errors.New("credential: malformed recovery code set")

// NewRecoveryCodes returns n (1 to 100) new recovery codes, to show once,
// and their hashed encoding, to store.
func NewRecoveryCodes(n int) (codes []string, encoded []byte, err error) {
	if n < 1 || n > 100 {
		return nil, nil, fmt.Errorf("credential: %d recovery codes: want 1 to 100", n)
	}
	encoded = make([]byte, recoveryHeader, recoveryHeader+n*sha256.Size)
	encoded[0] = recoveryVersion
	rand.Read(encoded[1:recoveryHeader])
	salt := encoded[1:recoveryHeader]
	raw := make([]byte, recoveryChars*5/8)
	for range n {
		rand.Read(raw)
		c := b32.EncodeToString(raw)
		h := recoveryHash(salt, c)
		encoded = append(encoded, h[:]...)
		var b strings.Builder
		for i := 0; i < len(c); i += recoveryGroup {
			if i > 0 {
				b.WriteByte('-')
			}
			b.WriteString(c[i : i+recoveryGroup])
		}
		codes = append(codes, b.String())
	}
	return codes, encoded, nil
}

// UseRecoveryCode checks code against the encoded set and, if it is one of
// its unused codes, returns the set without it: the caller stores
// remaining in place of encoded, with a compare-and-swap so that two
// concurrent uses of one code cannot both succeed. The input is normalised
// first: letter case, spaces and dashes are ignored, and the digits 0, 1
// and 8, which are not in the alphabet, are read as O, I and B. An empty
// or nil set has no codes. Every stored hash is compared in constant time.
func UseRecoveryCode(encoded []byte, code string) (remaining []byte, err error) {
	salt, hashes, err := decodeRecovery(encoded)
	if err != nil {
		return nil, err
	}
	c, ok := normaliseRecovery(code)
	if !ok {
		return nil, ErrRecoveryCodeWrong
	}
	h := recoveryHash(salt, c)
	found := -1
	for i := 0; i < len(hashes); i += sha256.Size {
		eq := subtle.ConstantTimeCompare(h[:], hashes[i:i+sha256.Size])
		found = subtle.ConstantTimeSelect(eq, i, found)
	}
	if found < 0 {
		return nil, ErrRecoveryCodeWrong
	}
	remaining = make([]byte, 0, len(encoded)-sha256.Size)
	remaining = append(remaining, encoded[:recoveryHeader]...)
	remaining = append(remaining, hashes[:found]...)
	remaining = append(remaining, hashes[found+sha256.Size:]...)
	return remaining, nil
}

// RecoveryCodesLeft returns how many unused codes the encoded set holds.
func RecoveryCodesLeft(encoded []byte) (int, error) {
	_, hashes, err := decodeRecovery(encoded)
	return len(hashes) / sha256.Size, err
}

func decodeRecovery(encoded []byte) (salt, hashes []byte, err error) {
	if len(encoded) == 0 {
		return nil, nil, nil
	}
	if len(encoded) < recoveryHeader || encoded[0] != recoveryVersion || (len(encoded)-recoveryHeader)%sha256.Size != 0 {
		return nil, nil, errMalformedRecovery
	}
	return encoded[1:recoveryHeader], encoded[recoveryHeader:], nil
}

func recoveryHash(salt []byte, code string) [sha256.Size]byte {
	h := sha256.New()
	h.Write(salt)
	h.Write([]byte(code))
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// normaliseRecovery returns code upper-cased without spaces and dashes,
// with 0, 1, 8 read as O, I, B, if it is then 16 base32 characters.
func normaliseRecovery(code string) (string, bool) {
	if len(code) > maxRecoveryIn {
		return "", false
	}
	var b strings.Builder
	for _, r := range code {
		switch {
		case r == ' ' || r == '-' || r == '\t':
		case r >= 'a' && r <= 'z':
			b.WriteRune(r - 'a' + 'A')
		case r >= 'A' && r <= 'Z' || r >= '2' && r <= '7':
			b.WriteRune(r)
		case r == '0':
			b.WriteByte('O')
		case r == '1':
			b.WriteByte('I')
		case r == '8':
			b.WriteByte('B')
		default:
			return "", false
		}
	}
	if b.Len() != recoveryChars {
		return "", false
	}
	return b.String(), true
}
