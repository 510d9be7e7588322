package ledger

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// cosignatureAlg is the C2SP signed-note signature type of an Ed25519
// cosignature/v1 (tlog-cosignature).
const cosignatureAlg = 0x04

// cosignatureSize is the length of a timestamped Ed25519 cosignature: a
// big-endian uint64 POSIX timestamp followed by the signature.
const cosignatureSize = 8 + ed25519.SignatureSize

// cosignatureKeyHash is the key ID of an Ed25519 cosigner:
// SHA-256(name || "\n" || 0x04 || public key)[:4].
func cosignatureKeyHash(name string, pub ed25519.PublicKey) uint32 {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{'\n', cosignatureAlg})
	h.Write(pub)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

// cosignedMessage is the message an Ed25519 cosignature/v1 signs: a header
// line, a timestamp line, then the whole checkpoint note body.
func cosignedMessage(ts uint64, body []byte) []byte {
	msg := fmt.Appendf(nil, "cosignature/v1\ntime %d\n", ts)
	return append(msg, body...)
}

// Cosigner makes C2SP tlog-cosignature Ed25519 cosignatures (cosignature/v1,
// timestamped) with a witness's key. It implements note.Signer, so
// note.Sign adds its cosignature to a checkpoint; its Sign method refuses
// anything that is not a checkpoint body, so it is not a general signing
// oracle. The private key is held in a closure and never printed.
type Cosigner struct {
	name     string
	hash     uint32
	vkey     string
	verifier *CosignatureVerifier
	now      func() time.Time
	sign     func([]byte) ([]byte, error)
}

// NewCosigner returns a cosigner named name (a schema-less URL identifying
// the witness, by convention) with key, an Ed25519 signer. now is the
// clock for timestamps; nil means time.Now.
func NewCosigner(name string, key crypto.Signer, now func() time.Time) (*Cosigner, error) {
	pub, err := ed25519Public(key)
	if err != nil {
		return nil, err
	}
	if !validOrigin(name) {
		return nil, errors.New("ledger: bad cosigner name: want non-empty UTF-8 without spaces or '+'")
	}
	if now == nil {
		now = time.Now
	}
	v := &CosignatureVerifier{name: name, hash: cosignatureKeyHash(name, pub), pub: bytes.Clone(pub)}
	vkey := fmt.Sprintf("%s+%08x+%s", name, v.hash, base64.StdEncoding.EncodeToString(append([]byte{cosignatureAlg}, pub...)))
	return &Cosigner{
		name: name, hash: v.hash, vkey: vkey, verifier: v, now: now,
		sign: ed25519Sign(key, pub),
	}, nil
}

// Name returns the cosigner's key name.
func (c *Cosigner) Name() string { return c.name }

// KeyHash returns the cosigner's key ID.
func (c *Cosigner) KeyHash() uint32 { return c.hash }

// Sign returns a timestamped cosignature of msg, which must be a
// checkpoint body (extension lines allowed: they are covered by the
// signature, as tlog-cosignature requires).
func (c *Cosigner) Sign(msg []byte) ([]byte, error) {
	if _, _, err := parseCheckpoint(msg); err != nil {
		return nil, fmt.Errorf("ledger: refusing to cosign: %w", err)
	}
	t := c.now().Unix()
	if t < 0 {
		return nil, errors.New("ledger: refusing to cosign: clock before 1970")
	}
	ts := uint64(t)
	sig := binary.BigEndian.AppendUint64(make([]byte, 0, cosignatureSize), ts)
	s, err := c.sign(cosignedMessage(ts, msg))
	if err != nil {
		return nil, err
	}
	return append(sig, s...), nil
}

// VerifierKey returns the public verifier key "<name>+<hash>+<base64(0x04
// || key)>" that logs and clients configure to check cosignatures.
func (c *Cosigner) VerifierKey() string { return c.vkey }

// Verifier returns the verifier of this cosigner's cosignatures.
func (c *Cosigner) Verifier() *CosignatureVerifier { return c.verifier }

// String describes the cosigner without its key.
func (c *Cosigner) String() string { return fmt.Sprintf("ledger.Cosigner(%s+%08x)", c.name, c.hash) }

// CosignatureVerifier checks Ed25519 cosignature/v1 signatures of one
// witness. It implements note.Verifier, so note.Open verifies cosigned
// checkpoints with it.
type CosignatureVerifier struct {
	name string
	hash uint32
	pub  ed25519.PublicKey
}

// NewCosignatureVerifier parses a cosigner verifier key
// "<name>+<hash>+<base64(0x04 || 32-byte Ed25519 key)>".
func NewCosignatureVerifier(vkey string) (*CosignatureVerifier, error) {
	name, rest, ok1 := strings.Cut(vkey, "+")
	hashText, keyText, ok2 := strings.Cut(rest, "+")
	if !ok1 || !ok2 || !validOrigin(name) || len(hashText) != 8 {
		return nil, errors.New("ledger: malformed cosigner verifier key")
	}
	hash, err := strconv.ParseUint(hashText, 16, 32)
	if err != nil || fmt.Sprintf("%08x", hash) != hashText {
		return nil, errors.New("ledger: malformed cosigner verifier key hash")
	}
	key, err := base64.StdEncoding.Strict().DecodeString(keyText)
	if err != nil || len(key) != 1+ed25519.PublicKeySize || key[0] != cosignatureAlg {
		return nil, errors.New("ledger: cosigner verifier key is not an Ed25519 cosignature/v1 key")
	}
	pub := ed25519.PublicKey(key[1:])
	if cosignatureKeyHash(name, pub) != uint32(hash) {
		return nil, errors.New("ledger: cosigner verifier key hash does not match the key")
	}
	return &CosignatureVerifier{name: name, hash: uint32(hash), pub: pub}, nil
}

// Name returns the cosigner's key name.
func (v *CosignatureVerifier) Name() string { return v.name }

// KeyHash returns the cosigner's key ID.
func (v *CosignatureVerifier) KeyHash() uint32 { return v.hash }

// Verify reports whether sig is this cosigner's timestamped cosignature of
// the note body msg.
func (v *CosignatureVerifier) Verify(msg, sig []byte) bool {
	if len(sig) != cosignatureSize {
		return false
	}
	ts := binary.BigEndian.Uint64(sig)
	if ts > 1<<63-1 {
		return false
	}
	return ed25519.Verify(v.pub, cosignedMessage(ts, msg), sig[8:])
}

// Timestamp returns the time a cosignature line by this verifier's key in
// the signed note msg claims, checking the signature. It fails if msg
// carries no valid cosignature by this key.
func (v *CosignatureVerifier) Timestamp(msg []byte) (time.Time, error) {
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return time.Time{}, fmt.Errorf("ledger: cosignature of %s: %w", v.name, err)
	}
	for _, s := range n.Sigs {
		raw, err := base64.StdEncoding.DecodeString(s.Base64)
		if err == nil && len(raw) == 4+cosignatureSize {
			return time.Unix(int64(binary.BigEndian.Uint64(raw[4:])), 0).UTC(), nil // #nosec G115 -- a cosignature timestamp, seconds since 1970; a hostile value only gives a wrong time, never a crash
		}
	}
	return time.Time{}, fmt.Errorf("ledger: no cosignature of %s", v.name)
}

var (
	_ note.Signer   = (*Cosigner)(nil)
	_ note.Verifier = (*CosignatureVerifier)(nil)
)
