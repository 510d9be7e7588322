package ledger

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoint is a log's commitment to its first Size entries: the C2SP
// tlog-checkpoint body "<origin>\n<size>\n<base64 root>\n".
type Checkpoint struct {
	Origin string
	Size   int64
	Root   tlog.Hash
}

// maxCheckpoint bounds a signed checkpoint note accepted by OpenCheckpoint.
const maxCheckpoint = 16 << 10

// Marshal returns the checkpoint body, without extension lines.
func (c Checkpoint) Marshal() ([]byte, error) {
	if !validOrigin(c.Origin) {
		return nil, errors.New("ledger: checkpoint origin must be non-empty UTF-8 without spaces or '+'")
	}
	if c.Size < 0 {
		return nil, fmt.Errorf("ledger: checkpoint size %d is negative", c.Size)
	}
	return fmt.Appendf(nil, "%s\n%d\n%s\n", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.Root[:])), nil
}

// validOrigin applies note's key-name rules, since the origin is also the
// name of the log's key.
func validOrigin(s string) bool {
	return s != "" && utf8.ValidString(s) && !strings.ContainsFunc(s, unicode.IsSpace) &&
		!strings.Contains(s, "+")
}

// parseCheckpoint parses a checkpoint body strictly: canonical decimal size,
// canonical base64 of exactly 32 bytes. It reports whether extension lines
// follow; their content is not interpreted.
func parseCheckpoint(text []byte) (c Checkpoint, extensions bool, err error) {
	fail := func(what string) (Checkpoint, bool, error) {
		return Checkpoint{}, false, fmt.Errorf("ledger: malformed checkpoint: %s", what)
	}
	lines := strings.SplitAfterN(string(text), "\n", 4)
	if len(lines) < 3 {
		return fail("fewer than three lines")
	}
	for _, l := range lines[:3] {
		if !strings.HasSuffix(l, "\n") {
			return fail("unterminated line")
		}
	}
	origin := strings.TrimSuffix(lines[0], "\n")
	if !validOrigin(origin) {
		return fail("bad origin")
	}
	sizeText := strings.TrimSuffix(lines[1], "\n")
	size, err := strconv.ParseInt(sizeText, 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != sizeText {
		return fail("bad tree size")
	}
	rootText := strings.TrimSuffix(lines[2], "\n")
	raw, err := base64.StdEncoding.Strict().DecodeString(rootText)
	if err != nil || len(raw) != tlog.HashSize {
		return fail("bad root hash")
	}
	c = Checkpoint{Origin: origin, Size: size, Root: tlog.Hash(raw)}
	if len(lines) == 4 && lines[3] != "" {
		rest := lines[3]
		if !strings.HasSuffix(rest, "\n") || strings.Contains(rest, "\n\n") || strings.HasPrefix(rest, "\n") {
			return fail("bad extension lines")
		}
		extensions = true
	}
	return c, extensions, nil
}

// SignCheckpoint returns c as a signed note. The signer's key name must be
// the origin, as C2SP tlog-checkpoint asks.
func SignCheckpoint(c Checkpoint, s note.Signer) ([]byte, error) {
	if s.Name() != c.Origin {
		return nil, fmt.Errorf("ledger: signer %q cannot sign for origin %q", s.Name(), c.Origin)
	}
	text, err := c.Marshal()
	if err != nil {
		return nil, err
	}
	msg, err := note.Sign(&note.Note{Text: string(text)}, s)
	if err != nil {
		return nil, fmt.Errorf("ledger: sign checkpoint: %w", err)
	}
	return msg, nil
}

// OpenCheckpoint verifies a signed checkpoint and parses its body. It
// requires a valid signature by a key in v whose name is origin (other
// verified signatures, such as witness cosignatures, are allowed but do not
// count), and a body whose origin line is origin. Extension lines are
// ignored, as C2SP tlog-checkpoint permits; Ward never writes them.
func OpenCheckpoint(msg []byte, origin string, v note.Verifiers) (Checkpoint, error) {
	if len(msg) > maxCheckpoint {
		return Checkpoint{}, fmt.Errorf("ledger: checkpoint of %d bytes is too large", len(msg))
	}
	n, err := note.Open(msg, v)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("ledger: open checkpoint: %w", err)
	}
	signed := false
	for _, sig := range n.Sigs {
		// note decodes base64 leniently; a signature line counts only in
		// its one canonical spelling, so a checkpoint has one encoding.
		if _, err := base64.StdEncoding.Strict().DecodeString(sig.Base64); err != nil {
			return Checkpoint{}, errors.New("ledger: checkpoint signature is not canonical base64")
		}
		signed = signed || sig.Name == origin
	}
	if !signed {
		return Checkpoint{}, fmt.Errorf("ledger: checkpoint not signed by the key of %q", origin)
	}
	c, _, err := parseCheckpoint([]byte(n.Text))
	if err != nil {
		return Checkpoint{}, err
	}
	if c.Origin != origin {
		return Checkpoint{}, fmt.Errorf("ledger: checkpoint origin %q, want %q", c.Origin, origin)
	}
	return c, nil
}

// Signer signs checkpoints with an Ed25519 key and nothing else: its Sign
// method refuses any message that is not a checkpoint body for its own
// origin, so it cannot be used as a general signing oracle. The private key
// is held in a closure; it is neither exported nor printed. It implements
// note.Signer. Key providers whose keys never leave an HSM implement
// note.Signer themselves and pass it to [SignCheckpoint].
type Signer struct {
	name     string
	hash     uint32
	vkey     string
	verifier note.Verifier
	sign     func([]byte) ([]byte, error)
}

// NewSigner returns a checkpoint signer for the log origin, which is also
// the key name. key must be an Ed25519 signer (its Public is an
// ed25519.PublicKey); it may live in an HSM.
func NewSigner(origin string, key crypto.Signer) (*Signer, error) {
	pub, err := ed25519Public(key)
	if err != nil {
		return nil, err
	}
	if !validOrigin(origin) {
		return nil, errors.New("ledger: bad origin for a key name")
	}
	vkey, err := note.NewEd25519VerifierKey(origin, pub)
	if err != nil {
		return nil, fmt.Errorf("ledger: verifier key: %w", err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("ledger: verifier key: %w", err)
	}
	return &Signer{
		name:     origin,
		hash:     v.KeyHash(),
		vkey:     vkey,
		verifier: v,
		sign:     ed25519Sign(key, pub),
	}, nil
}

// ed25519Public returns key's public key if it is an Ed25519 key.
func ed25519Public(key crypto.Signer) (ed25519.PublicKey, error) {
	if key == nil {
		return nil, errors.New("ledger: no signing key")
	}
	if k, ok := key.(ed25519.PrivateKey); ok && len(k) != ed25519.PrivateKeySize {
		return nil, errors.New("ledger: bad Ed25519 private key size") // Public would panic
	}
	pub, ok := key.Public().(ed25519.PublicKey)
	if !ok || len(pub) != ed25519.PublicKeySize {
		return nil, errors.New("ledger: signing key is not an Ed25519 key")
	}
	return bytes.Clone(pub), nil
}

// ed25519Sign signs with key and checks the signature against pub, so
// that a faulty signer (an HSM returning garbage) is caught here rather
// than by whoever verifies later.
func ed25519Sign(key crypto.Signer, pub ed25519.PublicKey) func([]byte) ([]byte, error) {
	return func(msg []byte) ([]byte, error) {
		sig, err := key.Sign(nil, msg, crypto.Hash(0))
		if err != nil {
			return nil, fmt.Errorf("ledger: sign: %w", err)
		}
		if !ed25519.Verify(pub, msg, sig) {
			return nil, errors.New("ledger: sign: the key's signature does not verify")
		}
		return sig, nil
	}
}

// Name returns the key name, the log origin.
func (s *Signer) Name() string { return s.name }

// KeyHash returns the note key hash.
func (s *Signer) KeyHash() uint32 { return s.hash }

// Sign signs msg if it is a checkpoint body, without extension lines, for
// this signer's origin.
func (s *Signer) Sign(msg []byte) ([]byte, error) {
	c, ext, err := parseCheckpoint(msg)
	if err != nil {
		return nil, fmt.Errorf("ledger: refusing to sign: %w", err)
	}
	if ext || c.Origin != s.name {
		return nil, errors.New("ledger: refusing to sign: not a checkpoint of this log")
	}
	return s.sign(msg)
}

// VerifierKey returns the public verifier key, "<origin>+<hash>+<key>",
// that operators and auditors configure to check checkpoints.
func (s *Signer) VerifierKey() string { return s.vkey }

// Verifier returns the note.Verifier for this signer's public key.
func (s *Signer) Verifier() note.Verifier { return s.verifier }

// String describes the signer without its key.
func (s *Signer) String() string {
	return fmt.Sprintf("ledger.Signer(%s+%08x)", s.name, s.hash)
}
