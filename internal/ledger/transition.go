package ledger

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Key transitions. A log's checkpoint key rotates by a transition: a
// signed note, signed by the key in force, that names the next key and
// the tree size from which it signs:
//
//	ward-ledger-key-transition/v1
//	<origin>
//	<tree size>
//	<verifier key of the next key, "<origin>+<hash>+<base64 key>">
//
// The first line keeps a transition from ever parsing as a checkpoint
// (whose second line is a size) and a checkpoint from parsing as a
// transition; [Signer.Sign] refuses to sign one, [Signer.SignTransition]
// signs nothing else. A [KeyChain] follows the transitions from the log's
// first key: each must be signed by the key before it and move forward in
// tree size, and a checkpoint verifies only under the key in force at its
// size. A transition is recorded in the ledger itself, as the entry just
// below its tree size ([TransitionAction]), so that the checkpoints
// covering it vouch for it.

// transitionTag is the first line of every transition note.
const transitionTag = "ward-ledger-key-transition/v1"

// TransitionAction is the action of the ledger entry that records a key
// transition; its detail is the next key's verifier key.
const TransitionAction = "ledger-key-transition"

// Transition says that from tree size From, the checkpoints of Origin
// are signed by the key NextKey (a note verifier key).
type Transition struct {
	Origin  string
	From    int64
	NextKey string
}

// Marshal returns the transition's note text.
func (t Transition) Marshal() ([]byte, error) {
	if !validOrigin(t.Origin) {
		return nil, errors.New("ledger: transition: bad origin")
	}
	if t.From < 1 {
		return nil, errors.New("ledger: transition: tree size must be at least 1")
	}
	v, err := note.NewVerifier(t.NextKey)
	if err != nil {
		return nil, fmt.Errorf("ledger: transition: next key: %w", err)
	}
	if v.Name() != t.Origin {
		return nil, fmt.Errorf("ledger: transition: next key is named %q, not the origin %q", v.Name(), t.Origin)
	}
	return fmt.Appendf(nil, "%s\n%s\n%d\n%s\n", transitionTag, t.Origin, t.From, t.NextKey), nil
}

func parseTransition(text string) (Transition, error) {
	fail := func(what string) (Transition, error) {
		return Transition{}, fmt.Errorf("ledger: malformed key transition: %s", what)
	}
	lines := strings.Split(text, "\n")
	if len(lines) != 5 || lines[4] != "" || lines[0] != transitionTag {
		return fail("not four lines under the transition tag")
	}
	from, err := strconv.ParseInt(lines[2], 10, 64)
	if err != nil || from < 1 || strconv.FormatInt(from, 10) != lines[2] {
		return fail("bad tree size")
	}
	t := Transition{Origin: lines[1], From: from, NextKey: lines[3]}
	if canon, err := t.Marshal(); err != nil || string(canon) != text {
		return fail("not canonical")
	}
	return t, nil
}

// SignTransition signs a transition from this signer's key to the next
// one. It refuses a transition for another origin, or to its own key.
func (s *Signer) SignTransition(t Transition) ([]byte, error) {
	if t.Origin != s.name {
		return nil, fmt.Errorf("ledger: signer %q cannot sign a transition of %q", s.name, t.Origin)
	}
	if t.NextKey == s.vkey {
		return nil, errors.New("ledger: a transition must name another key")
	}
	text, err := t.Marshal()
	if err != nil {
		return nil, err
	}
	sig, err := s.sign(text)
	if err != nil {
		return nil, err
	}
	// note.Sign would call Sign, which signs checkpoints only: the
	// signature line is written here, in note's format.
	var hash [4]byte
	binary.BigEndian.PutUint32(hash[:], s.hash)
	line := base64.StdEncoding.EncodeToString(append(hash[:], sig...))
	return fmt.Appendf(text, "\n\u2014 %s %s\n", s.name, line), nil
}

// OpenTransition verifies a transition note signed by the key v (the key
// in force before it) and parses it. A note signed by any other key, or
// altered, is refused.
func OpenTransition(msg []byte, v note.Verifier) (Transition, error) {
	if len(msg) > maxCheckpoint {
		return Transition{}, errors.New("ledger: key transition too large")
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return Transition{}, fmt.Errorf("ledger: open key transition: %w", err)
	}
	signed := false
	for _, sig := range n.Sigs {
		if _, err := base64.StdEncoding.Strict().DecodeString(sig.Base64); err != nil {
			return Transition{}, errors.New("ledger: key transition signature is not canonical base64")
		}
		signed = signed || sig.Name == v.Name() && sig.Hash == v.KeyHash()
	}
	if !signed {
		return Transition{}, errors.New("ledger: key transition not signed by the key in force")
	}
	t, err := parseTransition(n.Text)
	if err != nil {
		return Transition{}, err
	}
	if t.Origin != v.Name() {
		return Transition{}, fmt.Errorf("ledger: key transition of %q, signed by the key of %q", t.Origin, v.Name())
	}
	return t, nil
}

// KeyChain is a log's checkpoint keys in order, each with the tree size
// from which it signs, followed from the first key through verified
// transitions.
type KeyChain struct {
	origin string
	keys   []chainKey
	trans  []Transition
	first  string   // the first key's verifier key, when known
	notes  []string // the transition notes, when first is known
}

type chainKey struct {
	from int64
	v    note.Verifier
}

// NewKeyChain follows transitions from the log's first key: each must be
// signed by the key in force before it and name a tree size above the
// previous transition's. Any transition that does not verify stops it
// with an error: a forged or altered transition is never followed.
func NewKeyChain(first note.Verifier, transitions [][]byte) (*KeyChain, error) {
	if first == nil || !validOrigin(first.Name()) {
		return nil, errors.New("ledger: key chain needs the log's first key")
	}
	c := &KeyChain{origin: first.Name(), keys: []chainKey{{0, first}}}
	for i, msg := range transitions {
		last := c.keys[len(c.keys)-1]
		t, err := OpenTransition(msg, last.v)
		if err != nil {
			return nil, fmt.Errorf("ledger: key transition %d: %w", i, err)
		}
		if t.From <= last.from {
			return nil, fmt.Errorf("ledger: key transition %d goes back to tree size %d", i, t.From)
		}
		v, err := note.NewVerifier(t.NextKey)
		if err != nil {
			return nil, fmt.Errorf("ledger: key transition %d: %w", i, err)
		}
		for _, k := range c.keys {
			if k.v.KeyHash() == v.KeyHash() {
				return nil, fmt.Errorf("ledger: key transition %d returns to an earlier key", i)
			}
		}
		c.keys = append(c.keys, chainKey{t.From, v})
		c.trans = append(c.trans, t)
	}
	return c, nil
}

// Origin is the log's name.
func (c *KeyChain) Origin() string { return c.origin }

// Transitions returns the transitions followed, in order.
func (c *KeyChain) Transitions() []Transition { return append([]Transition(nil), c.trans...) }

// At returns the key in force at tree size size.
func (c *KeyChain) At(size int64) note.Verifier {
	v := c.keys[0].v
	for _, k := range c.keys[1:] {
		if size >= k.from {
			v = k.v
		}
	}
	return v
}

// Current returns the latest key.
func (c *KeyChain) Current() note.Verifier { return c.keys[len(c.keys)-1].v }

// OpenCheckpoint verifies a checkpoint under the key in force at its
// size: a checkpoint signed by an earlier key for a size at or past the
// transition, or by a later key for a size below it, is refused.
func (c *KeyChain) OpenCheckpoint(msg []byte) (Checkpoint, error) {
	if len(msg) > maxCheckpoint {
		return Checkpoint{}, fmt.Errorf("ledger: checkpoint of %d bytes is too large", len(msg))
	}
	// The size is read before the signature is checked, to pick the key;
	// the body is then verified under that key alone.
	text, _, ok := strings.Cut(string(msg), "\n\n")
	if !ok {
		return Checkpoint{}, errors.New("ledger: malformed checkpoint note")
	}
	cp, _, err := parseCheckpoint([]byte(text + "\n"))
	if err != nil {
		return Checkpoint{}, err
	}
	return OpenCheckpoint(msg, c.origin, note.VerifierList(c.At(cp.Size)))
}

// CheckEntry checks the ledger entry at index against the transitions:
// the entry just below a transition's tree size must record it
// ([TransitionAction], the next key as its detail). It returns nil for
// every other index.
func (c *KeyChain) CheckEntry(index int64, e Entry) error {
	for _, t := range c.trans {
		if t.From-1 != index {
			continue
		}
		if e.Action != TransitionAction || e.Detail != t.NextKey {
			return fmt.Errorf("ledger: entry %d does not record the key transition at tree size %d", index, t.From)
		}
	}
	return nil
}

// LedgerKeys returns a chain of this signer's key alone, and the signer:
// a log whose key never rotated. It lets a Signer stand where a source of
// the current keys is asked for.
func (s *Signer) LedgerKeys() (*KeyChain, *Signer, error) {
	c, err := OpenKeyChain(s.vkey, nil)
	return c, s, err
}

// OpenKeyChain is [NewKeyChain] from the first key's verifier key (note
// format); the chain keeps that key and the transition notes, so that it
// can be published ([KeyChain.Document]).
func OpenKeyChain(firstKey string, transitions [][]byte) (*KeyChain, error) {
	v, err := note.NewVerifier(firstKey)
	if err != nil {
		return nil, fmt.Errorf("ledger: key chain: first key: %w", err)
	}
	c, err := NewKeyChain(v, transitions)
	if err != nil {
		return nil, err
	}
	c.first = firstKey
	for _, t := range transitions {
		c.notes = append(c.notes, string(t))
	}
	return c, nil
}

// keyChainFormat names the published key chain document.
const keyChainFormat = "ward-ledger-key-chain/v1"

// maxKeyChain bounds a key chain document: far more transitions than a
// log makes in its life.
const maxKeyChain = 1 << 20

// keyChainDoc is the published form of a key chain: the log's first key
// and its transition notes in order. Nothing in it is trusted until
// [ParseKeyChain] has followed every transition from the first key, and
// the first key is only as good as where the verifier got it from.
type keyChainDoc struct {
	Format      string   `json:"format"`
	Origin      string   `json:"origin"`
	First       string   `json:"first_key"`
	Current     string   `json:"current_key"`
	Transitions []string `json:"transitions"`
}

// Document returns the chain as a JSON document for outside verifiers
// (ward audit verify --key-chain, witnesses, esign verify): the first
// key, the current key and every transition note. It needs a chain made
// by [OpenKeyChain] or [ParseKeyChain].
func (c *KeyChain) Document() ([]byte, error) {
	if c.first == "" {
		return nil, errors.New("ledger: key chain: the first key's verifier key is not known")
	}
	notes := c.notes
	if notes == nil {
		notes = []string{}
	}
	return json.MarshalIndent(keyChainDoc{Format: keyChainFormat, Origin: c.origin, First: c.first, Current: c.currentKey(), Transitions: notes}, "", "  ")
}

// ParseKeyChain reads a key chain document and follows its transitions
// from its first key. When first is not empty, the document's first key
// must be it: a verifier that holds the log's original key trusts no
// other. The current key it names must be where the transitions lead.
func ParseKeyChain(doc []byte, first string) (*KeyChain, error) {
	if len(doc) > maxKeyChain {
		return nil, errors.New("ledger: key chain document too large")
	}
	var d keyChainDoc
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("ledger: key chain document: %w", err)
	}
	if dec.More() {
		return nil, errors.New("ledger: key chain document: trailing data")
	}
	if d.Format != keyChainFormat {
		return nil, fmt.Errorf("ledger: key chain document: format %q, want %q", d.Format, keyChainFormat)
	}
	if first != "" && d.First != first {
		return nil, errors.New("ledger: key chain document starts from another first key than the one trusted")
	}
	notes := make([][]byte, len(d.Transitions))
	for i, t := range d.Transitions {
		notes[i] = []byte(t)
	}
	c, err := OpenKeyChain(d.First, notes)
	if err != nil {
		return nil, err
	}
	if c.origin != d.Origin {
		return nil, fmt.Errorf("ledger: key chain document of %q has keys of %q", d.Origin, c.origin)
	}
	if c.currentKey() != d.Current {
		return nil, errors.New("ledger: key chain document: its current key is not where its transitions lead")
	}
	return c, nil
}

// currentKey is the verifier key of the latest key, when the first is
// known.
func (c *KeyChain) currentKey() string {
	if n := len(c.trans); n > 0 {
		return c.trans[n-1].NextKey
	}
	return c.first
}

// FirstKey returns the verifier key of the chain's first key, or "" when
// the chain was made by [NewKeyChain] from a note.Verifier.
func (c *KeyChain) FirstKey() string { return c.first }

// Recorded reports whether the ledger entry at index records one of the
// chain's transitions.
func (c *KeyChain) Recorded(index int64) bool {
	for _, t := range c.trans {
		if t.From-1 == index {
			return true
		}
	}
	return false
}

// Notes returns the transition notes of a chain made by [OpenKeyChain]
// or [ParseKeyChain], in order.
func (c *KeyChain) Notes() [][]byte {
	out := make([][]byte, len(c.notes))
	for i, n := range c.notes {
		out[i] = []byte(n)
	}
	return out
}

// VerifierKeyAt returns the verifier key (note format) of the key in
// force at tree size size, for a chain made by [OpenKeyChain] or
// [ParseKeyChain]; "" otherwise.
func (c *KeyChain) VerifierKeyAt(size int64) string {
	if c.first == "" {
		return ""
	}
	k := c.first
	for _, t := range c.trans {
		if size >= t.From {
			k = t.NextKey
		}
	}
	return k
}
