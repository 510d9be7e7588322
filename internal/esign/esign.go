// Package esign is the format of Ward's electronic signatures (21 CFR
// Part 11): what a signature binds, how it is signed and verified, how it
// sits in a FHIR R4 Provenance, and the signature record that lets anyone
// check a signed record offline.
//
// A signature is a Statement — the signer's user id and printed name, the
// meaning (an R4 Signature type code, system urn:iso-astm:E1762-95:2013),
// the time with its zone, the exact version signed ("Type/id/_history/N")
// and the SHA-256 of that version's canonical content — signed with
// Ed25519 by Ward's e-signature key, a key used for nothing else. The
// signed bytes are a domain tag and the statement's JSON, carried as they
// were signed in an Envelope that names the key by its id, so that a key
// rotated out stays able to verify what it signed.
//
// What it guarantees:
//   - Open accepts an envelope only when its signature verifies under the
//     named key over exactly the statement bytes it carries, and the
//     statement decodes strictly and is complete. Any changed bit of the
//     signature, the statement, or the key id fails (ErrInvalid).
//   - Check fails a verified statement for another target, for content
//     whose canonical hash differs, and, on a Provenance, for shown fields
//     (signer, printed name, meaning, time, target) that differ from what
//     was signed: what a reader sees is what was signed (11.50, 11.70).
//
// What it does not do: authenticate the signer (package auth runs the
// ceremony), decide who may sign (package policy), or store anything.
package esign

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/strictjson"
)

// ErrInvalid is wrapped by every verification failure.
var ErrInvalid = errors.New("esign: signature invalid")

// System is the code system of signature meanings (R4 Signature.type).
const System = "urn:iso-astm:E1762-95:2013"

// Formats of Provenance.signature.
const (
	SigFormat    = "application/vnd.ward.esign.v1+json" // Signature.sigFormat: an Envelope
	TargetFormat = "application/fhir+json"              // Signature.targetFormat
	// signedDomain tags the signed bytes, so that no other Ed25519
	// signature of Ward's can pass for an e-signature.
	signedDomain = "ward e-signature v1\n"
	envelopeFmt  = "ward-esign-v1"
)

// Meaning is the meaning of a signature (11.50(a)(3)): an R4 Signature
// type code.
type Meaning struct {
	Code    string `json:"code"`
	Display string `json:"display"`
}

var meanings = []Meaning{
	{"1.2.840.10065.1.12.1.1", "Author's Signature"},
	{"1.2.840.10065.1.12.1.2", "Coauthor's Signature"},
	{"1.2.840.10065.1.12.1.3", "Co-participant's Signature"},
	{"1.2.840.10065.1.12.1.4", "Transcriptionist/Recorder Signature"},
	{"1.2.840.10065.1.12.1.5", "Verification Signature"},
	{"1.2.840.10065.1.12.1.6", "Validation Signature"},
	{"1.2.840.10065.1.12.1.7", "Consent Signature"},
	{"1.2.840.10065.1.12.1.8", "Signature Witness Signature"},
	{"1.2.840.10065.1.12.1.9", "Event Witness Signature"},
	{"1.2.840.10065.1.12.1.10", "Identity Witness Signature"},
	{"1.2.840.10065.1.12.1.11", "Consent Witness Signature"},
	{"1.2.840.10065.1.12.1.12", "Interpreter Signature"},
	{"1.2.840.10065.1.12.1.13", "Review Signature"},
	{"1.2.840.10065.1.12.1.14", "Source Signature"},
	{"1.2.840.10065.1.12.1.15", "Addendum Signature"},
	{"1.2.840.10065.1.12.1.16", "Modification Signature"},
	{"1.2.840.10065.1.12.1.17", "Administrative (Error/Edit) Signature"},
	{"1.2.840.10065.1.12.1.18", "Timestamp Signature"},
}

// Meanings returns the meanings a signature may have, in code order.
func Meanings() []Meaning { return slices.Clone(meanings) }

// LookupMeaning returns the meaning of code.
func LookupMeaning(code string) (Meaning, bool) {
	for _, m := range meanings {
		if m.Code == code {
			return m, true
		}
	}
	return Meaning{}, false
}

// Statement is what one signature binds.
type Statement struct {
	KeyID   string   `json:"kid"`     // the e-signature key that signs it
	Signer  string   `json:"signer"`  // the signer's Ward user id (never reused)
	Name    string   `json:"name"`    // the signer's printed name when signing
	Meaning string   `json:"meaning"` // a Meaning code
	Time    string   `json:"time"`    // RFC 3339 with the zone it is shown in
	Target  string   `json:"target"`  // "Type/id/_history/N"
	SHA256  string   `json:"sha256"`  // hex SHA-256 of the version's canonical content
	Methods []string `json:"amr"`     // how the signer was authenticated at signing (RFC 8176: pwd, otp)
}

// Limits on a statement's fields.
const (
	maxName     = 200
	maxField    = 256
	maxEnvelope = 8 << 10
)

// validate checks that a statement is complete and well formed.
func (s Statement) validate() error {
	if _, ok := LookupMeaning(s.Meaning); !ok {
		return fmt.Errorf("unknown meaning %q", s.Meaning)
	}
	if _, err := time.Parse(time.RFC3339Nano, s.Time); err != nil {
		return errors.New("time is not RFC 3339")
	}
	if _, _, _, ok := SplitTarget(s.Target); !ok {
		return errors.New("target is not Type/id/_history/N")
	}
	if b, err := hex.DecodeString(s.SHA256); err != nil || len(b) != sha256.Size {
		return errors.New("sha256 is not 64 hex digits")
	}
	switch {
	case s.KeyID == "" || len(s.KeyID) > maxField:
		return errors.New("no key id")
	case s.Signer == "" || len(s.Signer) > maxField:
		return errors.New("no signer")
	case strings.TrimSpace(s.Name) == "" || len(s.Name) > maxName:
		return errors.New("no printed name")
	case len(s.Methods) == 0 || len(s.Methods) > 4:
		return errors.New("no authentication methods")
	}
	return nil
}

// When returns the statement's time.
func (s Statement) When() time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s.Time)
	return t
}

// Manifestation is the line shown with a signed record (11.50): the
// printed name, the date and time with its zone, and the meaning.
func (s Statement) Manifestation() string {
	m, _ := LookupMeaning(s.Meaning)
	return Manifest(s.Name, s.When(), m.Display)
}

// Manifest formats a manifestation line.
func Manifest(name string, when time.Time, meaning string) string {
	zone := "UTC"
	if _, off := when.Zone(); off != 0 {
		zone += when.Format("-07:00")
	}
	return fmt.Sprintf("Signed by %s on %s %s — %s", name, when.Format("2006-01-02 15:04:05"), zone, meaning)
}

// SplitTarget splits "Type/id/_history/N".
func SplitTarget(target string) (typ, id string, version int64, ok bool) {
	p := strings.Split(target, "/")
	if len(p) != 4 || p[0] == "" || p[1] == "" || p[2] != "_history" {
		return "", "", 0, false
	}
	var v int64
	for _, c := range p[3] {
		if c < '0' || c > '9' || v > 1<<40 {
			return "", "", 0, false
		}
		v = v*10 + int64(c-'0')
	}
	if v < 1 || p[3][0] == '0' {
		return "", "", 0, false
	}
	return p[0], p[1], v, true
}

// Target formats "Type/id/_history/N".
func Target(typ, id string, version int64) string {
	return fmt.Sprintf("%s/%s/_history/%d", typ, id, version)
}

// ContentHash returns the hex SHA-256 of a resource version's canonical
// content: its JSON with object keys sorted, no insignificant white
// space, strings re-escaped one way and numbers as written. The version
// as stored, meta.versionId and meta.lastUpdated included, so that the
// hash names one version only.
func ContentHash(body []byte) (string, error) {
	c, err := Canonical(body)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(c)
	return hex.EncodeToString(sum[:]), nil
}

// Canonical returns body's canonical JSON (see ContentHash).
func Canonical(body []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("esign: content: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("esign: content: trailing data")
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("esign: content: %w", err)
	}
	return bytes.TrimSuffix(out.Bytes(), []byte("\n")), nil
}

// Envelope is the signed form of a statement: Provenance.signature.data.
type Envelope struct {
	Format    string `json:"format"`
	KeyID     string `json:"kid"`
	Statement []byte `json:"statement"` // the statement's JSON, exactly as signed
	Signature []byte `json:"sig"`       // Ed25519 over signedDomain + Statement
}

// KeyID names an e-signature public key: a hash of it.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(append([]byte("ward e-signature key\n"), pub...))
	return "esign-" + hex.EncodeToString(sum[:8])
}

// Sign signs st with key (Ward's e-signature key; its public key must be
// Ed25519) and returns the envelope's JSON. It sets st.KeyID.
func Sign(key crypto.Signer, st Statement) ([]byte, Statement, error) {
	pub, ok := key.Public().(ed25519.PublicKey)
	if !ok {
		return nil, st, errors.New("esign: the e-signature key is not Ed25519")
	}
	st.KeyID = KeyID(pub)
	if err := st.validate(); err != nil {
		return nil, st, fmt.Errorf("esign: statement: %w", err)
	}
	msg, err := json.Marshal(st)
	if err != nil {
		return nil, st, fmt.Errorf("esign: statement: %w", err)
	}
	sig, err := key.Sign(nil, append([]byte(signedDomain), msg...), crypto.Hash(0))
	if err != nil {
		return nil, st, fmt.Errorf("esign: signing: %w", err)
	}
	env, err := json.Marshal(Envelope{Format: envelopeFmt, KeyID: st.KeyID, Statement: msg, Signature: sig})
	if err != nil {
		return nil, st, fmt.Errorf("esign: envelope: %w", err)
	}
	return env, st, nil
}

// Keys are the e-signature public keys a verifier trusts, by key id:
// the current key and those rotated out.
type Keys map[string]ed25519.PublicKey

// Add trusts pub.
func (k Keys) Add(pub ed25519.PublicKey) { k[KeyID(pub)] = pub }

// Open verifies an envelope's signature under the key it names and
// returns its statement.
func Open(envelope []byte, keys Keys) (Statement, error) {
	bad := func(format string, args ...any) (Statement, error) {
		return Statement{}, fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
	}
	if len(envelope) > maxEnvelope {
		return bad("envelope too large")
	}
	var env Envelope
	if err := decodeStrict(envelope, &env); err != nil {
		return bad("envelope: %v", err)
	}
	// Only the one encoding Sign writes is accepted (encoding/json would
	// take "Format" for "format"): an envelope is not malleable.
	if re, err := json.Marshal(env); err != nil || !bytes.Equal(re, envelope) {
		return bad("envelope not in its canonical encoding")
	}
	if env.Format != envelopeFmt {
		return bad("unknown envelope format %q", env.Format)
	}
	pub, ok := keys[env.KeyID]
	if !ok {
		return bad("signed by an unknown key %q", env.KeyID)
	}
	if len(env.Signature) != ed25519.SignatureSize || !ed25519.Verify(pub, append([]byte(signedDomain), env.Statement...), env.Signature) {
		return bad("the signature does not verify under key %s", env.KeyID)
	}
	var st Statement
	if err := decodeStrict(env.Statement, &st); err != nil {
		return bad("statement: %v", err)
	}
	if re, err := json.Marshal(st); err != nil || !bytes.Equal(re, env.Statement) {
		return bad("statement not in its canonical encoding")
	}
	if st.KeyID != env.KeyID {
		return bad("the statement names key %q, the envelope %q", st.KeyID, env.KeyID)
	}
	if err := st.validate(); err != nil {
		return bad("statement: %v", err)
	}
	return st, nil
}

// Check fails a statement that does not cover target, or whose hash is
// not that of content (a version's body; nil skips the content check).
func (s Statement) Check(target string, content []byte) error {
	if s.Target != target {
		return fmt.Errorf("%w: it signs %s, not %s", ErrInvalid, s.Target, target)
	}
	if content == nil {
		return nil
	}
	h, err := ContentHash(content)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if h != s.SHA256 {
		return fmt.Errorf("%w: the content of %s is not what was signed", ErrInvalid, target)
	}
	return nil
}

// SignatureHash is what a signing's ledger entry records of its
// signature: the base64url SHA-256 of the envelope.
func SignatureHash(envelope []byte) string {
	sum := sha256.Sum256(envelope)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// decodeStrict decodes one JSON object into v, refusing unknown fields,
// duplicate keys and trailing data.
func decodeStrict(b []byte, v any) error {
	if err := strictjson.CheckKeys(b, 8); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data")
	}
	return nil
}
