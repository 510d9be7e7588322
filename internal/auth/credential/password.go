package credential

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Params are argon2id cost parameters (RFC 9106 section 3.1).
type Params struct {
	Memory  uint32 // memory in KiB
	Time    uint32 // number of passes
	Threads uint8  // degree of parallelism (lanes)
}

// DefaultParams returns OWASP's recommended argon2id parameters: 19 MiB
// (19456 KiB), 2 passes, 1 lane.
func DefaultParams() Params { return Params{Memory: 19 * 1024, Time: 2, Threads: 1} }

// Bounds on parameters, for hashes read back from storage: a corrupted or
// hostile hash must not make a check allocate gigabytes or run for hours.
const (
	saltLen    = 16
	keyLen     = 32
	maxMemory  = 1 << 20 // 1 GiB in KiB
	maxTime    = 64
	minSaltLen = 8
	maxSaltLen = 64
	minKeyLen  = 16
	maxKeyLen  = 64
)

func (p Params) validate() error {
	if p.Time < 1 || p.Time > maxTime || p.Threads < 1 || p.Memory < 8*uint32(p.Threads) || p.Memory > maxMemory {
		return fmt.Errorf("credential: argon2id parameters m=%d,t=%d,p=%d out of range", p.Memory, p.Time, p.Threads)
	}
	return nil
}

// A Hasher hashes and checks passwords with fixed parameters. The zero
// Hasher uses DefaultParams and crypto/rand; tests use cheaper Params.
type Hasher struct {
	Params Params    // zero means DefaultParams()
	Rand   io.Reader // salt source; nil means crypto/rand
}

func (h *Hasher) params() Params {
	if h.Params == (Params{}) {
		return DefaultParams()
	}
	return h.Params
}

// HashPassword hashes pw with the default parameters. It does not check the
// policy: call CheckPolicy first when a password is chosen.
func HashPassword(pw string) ([]byte, error) { return new(Hasher).Hash(pw) }

// CheckPassword reports whether pw matches the encoded hash, in constant
// time, and whether the hash should be replaced by a new HashPassword(pw)
// because its parameters differ from the defaults. err is set only when the
// encoded hash is malformed; a wrong password is ok == false, err == nil.
func CheckPassword(encoded []byte, pw string) (ok, needsRehash bool, err error) {
	return new(Hasher).Check(encoded, pw)
}

// DummyCheck spends the work of CheckPassword with the default parameters
// on a dummy hash and discards the result. Call it for an unknown or
// locked account so that the answer takes as long as for a wrong password.
func DummyCheck(pw string) { new(Hasher).DummyCheck(pw) }

// Hash returns the PHC-encoded argon2id hash of pw under a new random salt.
func (h *Hasher) Hash(pw string) ([]byte, error) {
	p := h.params()
	if err := p.validate(); err != nil {
		return nil, err
	}
	salt := make([]byte, saltLen)
	r := h.Rand
	if r == nil {
		r = rand.Reader
	}
	if _, err := io.ReadFull(r, salt); err != nil {
		return nil, fmt.Errorf("credential: salt: %w", err)
	}
	key := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, keyLen)
	return encodeHash(p, salt, key), nil
}

// Check reports whether pw matches encoded and whether encoded should be
// rehashed because its parameters, salt or key length differ from h's.
func (h *Hasher) Check(encoded []byte, pw string) (ok, needsRehash bool, err error) {
	p, salt, key, err := decodeHash(encoded)
	if err != nil {
		return false, false, err
	}
	got := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, uint32(len(key))) // #nosec G115 -- the key length comes from a parsed argon2id hash, at most 1 KiB
	ok = subtle.ConstantTimeCompare(got, key) == 1
	needsRehash = p != h.params() || len(salt) != saltLen || len(key) != keyLen
	return ok, needsRehash, nil
}

// DummyCheck runs Check with h's parameters on a hash that no password
// matches, and discards the result.
func (h *Hasher) DummyCheck(pw string) {
	p := h.params()
	if p.validate() != nil {
		p = DefaultParams()
	}
	dummy := encodeHash(p, make([]byte, saltLen), make([]byte, keyLen))
	_, _, _ = h.Check(dummy, pw)
}

var b64 = base64.RawStdEncoding.Strict()

const phcPrefix = "$argon2id$v=19$"

// encodeHash returns $argon2id$v=19$m=M,t=T,p=P$salt$key.
func encodeHash(p Params, salt, key []byte) []byte {
	return fmt.Appendf(nil, "%sm=%d,t=%d,p=%d$%s$%s", phcPrefix, p.Memory, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key))
}

var errMalformedHash = errors.New("credential: malformed password hash")

// decodeHash parses what encodeHash writes, and only that: the fields in
// that order, decimal numbers without sign or leading zeros, canonical
// unpadded base64, parameters within bounds. So one hash has one encoding.
func decodeHash(encoded []byte) (p Params, salt, key []byte, err error) {
	s, ok := strings.CutPrefix(string(encoded), phcPrefix)
	if !ok {
		return p, nil, nil, errMalformedHash
	}
	fields := strings.Split(s, "$")
	if len(fields) != 3 {
		return p, nil, nil, errMalformedHash
	}
	var m, t, par uint64
	kv := strings.Split(fields[0], ",")
	if len(kv) != 3 {
		return p, nil, nil, errMalformedHash
	}
	for i, name := range []string{"m=", "t=", "p="} {
		v, ok := strings.CutPrefix(kv[i], name)
		if !ok {
			return p, nil, nil, errMalformedHash
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || strconv.FormatUint(n, 10) != v {
			return p, nil, nil, errMalformedHash
		}
		switch i {
		case 0:
			m = n
		case 1:
			t = n
		case 2:
			par = n
		}
	}
	if par > 255 {
		return p, nil, nil, errMalformedHash
	}
	p = Params{Memory: uint32(m), Time: uint32(t), Threads: uint8(par)}
	if err := p.validate(); err != nil {
		return p, nil, nil, fmt.Errorf("%w: %w", errMalformedHash, err)
	}
	salt, err1 := b64.DecodeString(fields[1])
	key, err2 := b64.DecodeString(fields[2])
	// The decoder skips newlines: require the canonical encoding.
	if err1 != nil || err2 != nil || b64.EncodeToString(salt) != fields[1] || b64.EncodeToString(key) != fields[2] ||
		len(salt) < minSaltLen || len(salt) > maxSaltLen || len(key) < minKeyLen || len(key) > maxKeyLen {
		return p, nil, nil, errMalformedHash
	}
	return p, salt, key, nil
}
