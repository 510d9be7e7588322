package esign

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/strictjson"
)

// A signature record is what GET /fhir/{type}/{id}/$signatures answers
// and what ward esign verify checks offline: every version of one
// resource, each with its content and its signatures, each signature with
// its envelope, what it shows (11.50), its status as the server verified
// it, and its signing's ledger entry with an inclusion proof in the
// checkpoint the record carries.

// RecordFormat is Record.Format.
const RecordFormat = "ward-signatures-v1"

// ActionSign is the ledger action of a signing.
const ActionSign = "sign"

// Statuses of a signature in a record.
const (
	StatusValid   = "valid"
	StatusInvalid = "invalid"
)

// Record is a signature record.
type Record struct {
	Format   string    `json:"format"`
	Resource string    `json:"resource"` // "Type/id"
	Versions []Version `json:"versions"` // oldest first
	// Checkpoint is the signed ledger checkpoint the inclusion proofs are
	// in; empty when the ledger had none yet.
	Checkpoint string `json:"checkpoint,omitempty"`
}

// Version is one version of the record's resource.
type Version struct {
	Version     int64           `json:"version"`
	LastUpdated string          `json:"lastUpdated"`
	Deleted     bool            `json:"deleted,omitempty"`
	Resource    json.RawMessage `json:"resource,omitempty"` // the version as stored
	// SHA256 is the hex ContentHash of the version as stored: what a
	// signature of it binds. Empty for a deletion.
	SHA256     string      `json:"sha256,omitempty"`
	Signatures []Signature `json:"signatures"`
}

// Signature is one signature of a version.
type Signature struct {
	Provenance    string     `json:"provenance"` // "Provenance/id"
	Signer        string     `json:"signer"`
	Name          string     `json:"name"`
	Meaning       Meaning    `json:"meaning"`
	When          string     `json:"when"`
	Manifestation string     `json:"manifestation"`
	Status        string     `json:"status"`
	Problem       string     `json:"problem,omitempty"`
	Data          []byte     `json:"data"` // the envelope
	Ledger        *Inclusion `json:"ledger,omitempty"`
}

// Inclusion is the signing's ledger entry and, once a checkpoint covers
// it, its inclusion proof in the record's checkpoint.
type Inclusion struct {
	Index int64    `json:"index"`
	Entry []byte   `json:"entry"`           // the entry as the ledger encodes it
	Proof [][]byte `json:"proof,omitempty"` // tlog.RecordProof; none when not covered yet
}

// Of fills the shown fields of a signature from its verified statement.
func Of(st Statement, provenance string, envelope []byte) Signature {
	m, _ := LookupMeaning(st.Meaning)
	return Signature{
		Provenance: provenance, Signer: st.Signer, Name: st.Name, Meaning: m, When: st.Time,
		Manifestation: st.Manifestation(), Status: StatusValid, Data: envelope,
	}
}

// CheckEntry checks that a decoded ledger entry records the signing of
// env's statement st: a successful "sign" by the signer, of the target
// version, naming the envelope's hash.
func CheckEntry(e ledger.Entry, st Statement, env []byte) error {
	typ, id, version, _ := SplitTarget(st.Target)
	switch {
	case e.Action != ActionSign || e.Outcome != "success":
		return fmt.Errorf("%w: the ledger entry is not a signing", ErrInvalid)
	case e.Actor != st.Signer:
		return fmt.Errorf("%w: the ledger entry names another signer", ErrInvalid)
	case e.ResourceType != typ || e.ResourceID != id || e.Version != fmt.Sprint(version):
		return fmt.Errorf("%w: the ledger entry names another version", ErrInvalid)
	case !strings.Contains(" "+e.Detail+" ", " sig="+SignatureHash(env)+" "):
		return fmt.Errorf("%w: the ledger entry records another signature", ErrInvalid)
	}
	return nil
}

// Trust is what an offline verifier holds: Ward's e-signature public
// keys and the ledger's verifier key. ward esign key prints it.
type Trust struct {
	Format string   `json:"format"` // TrustFormat
	ESign  []string `json:"esign"`  // "kid+base64(public key)"
	Ledger string   `json:"ledger"` // note verifier key of the ledger's checkpoints: its first key
	// LedgerTransitions are the ledger key's transition notes since the
	// first key, in order (ward keys rotate --kind ledger): a verifier
	// follows them from Ledger (ledger.KeyChain).
	LedgerTransitions []string `json:"ledger_transitions,omitempty"`
}

// TrustFormat is Trust.Format.
const TrustFormat = "ward-esign-keys-v1"

// FormatKey writes an e-signature public key as Trust lists it.
func FormatKey(pub ed25519.PublicKey) string {
	return KeyID(pub) + "+" + base64.StdEncoding.EncodeToString(pub)
}

// ParseTrust reads a Trust file strictly and returns its keys.
func ParseTrust(b []byte) (Keys, note.Verifier, error) {
	keys, chain, err := ParseTrustChain(b)
	if err != nil {
		return nil, nil, err
	}
	return keys, chain.At(0), nil
}

// ParseTrustChain reads a key file as ward esign key writes it, with the
// ledger's key chain: its first key followed through its transitions.
func ParseTrustChain(b []byte) (Keys, *ledger.KeyChain, error) {
	var t Trust
	if err := decodeStrict(b, &t); err != nil {
		return nil, nil, fmt.Errorf("esign: key file: %w", err)
	}
	if t.Format != TrustFormat {
		return nil, nil, fmt.Errorf("esign: key file: not %s", TrustFormat)
	}
	keys := Keys{}
	for _, k := range t.ESign {
		kid, b64, ok := strings.Cut(k, "+")
		pub, err := base64.StdEncoding.DecodeString(b64)
		if !ok || err != nil || len(pub) != ed25519.PublicKeySize || KeyID(pub) != kid {
			return nil, nil, fmt.Errorf("esign: key file: malformed e-signature key %q", k)
		}
		keys.Add(pub)
	}
	if len(keys) == 0 {
		return nil, nil, errors.New("esign: key file: no e-signature key")
	}
	notes := make([][]byte, len(t.LedgerTransitions))
	for i, n := range t.LedgerTransitions {
		notes[i] = []byte(n)
	}
	chain, err := ledger.OpenKeyChain(t.Ledger, notes)
	if err != nil {
		return nil, nil, fmt.Errorf("esign: key file: ledger key: %w", err)
	}
	return keys, chain, nil
}

// ParseRecord reads a signature record strictly.
func ParseRecord(b []byte) (*Record, error) {
	if err := strictjson.CheckKeys(b, 64); err != nil {
		return nil, fmt.Errorf("esign: record: %w", err)
	}
	var r Record
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("esign: record: %w", err)
	}
	if r.Format != RecordFormat {
		return nil, fmt.Errorf("esign: record: not %s", RecordFormat)
	}
	return &r, nil
}

// Finding is the verdict on one signature of a record.
type Finding struct {
	Version       int64  `json:"version"`
	Provenance    string `json:"provenance"`
	Manifestation string `json:"manifestation,omitempty"`
	OK            bool   `json:"ok"`
	Problem       string `json:"problem,omitempty"`
	LedgerIndex   int64  `json:"ledgerIndex"`
}

// VerifyRecord checks every signature of a record with only the trusted
// keys and a checkpoint: the record's own, or trusted, a checkpoint the
// verifier holds, which must then be the one the record was proved in.
// Each signature must open under a trusted key; sign its version of the
// record's resource and that version's content as the record carries it;
// show what it signed; and have its signing's ledger entry proven
// included in the checkpoint. progress, when not nil, is called after
// each signature. The error is for a record that cannot be checked at
// all; each signature's verdict is in its Finding.
func VerifyRecord(r *Record, keys Keys, ledgerKey note.Verifier, trusted []byte, progress func(done, total int)) ([]Finding, error) {
	chain, err := ledger.NewKeyChain(ledgerKey, nil)
	if err != nil {
		return nil, fmt.Errorf("esign: ledger key: %w", err)
	}
	return VerifyRecordChain(r, keys, chain, trusted, progress)
}

// VerifyRecordChain is [VerifyRecord] for a ledger whose key rotated:
// each checkpoint must verify under the key the chain puts in force at
// its size.
func VerifyRecordChain(r *Record, keys Keys, chain *ledger.KeyChain, trusted []byte, progress func(done, total int)) ([]Finding, error) {
	cpText := []byte(r.Checkpoint)
	if trusted != nil {
		if r.Checkpoint != "" && !bytes.Equal(bytes.TrimSpace(trusted), bytes.TrimSpace(cpText)) {
			tc, err := chain.OpenCheckpoint(trusted)
			if err != nil {
				return nil, fmt.Errorf("esign: the trusted checkpoint: %w", err)
			}
			rc, err := chain.OpenCheckpoint(cpText)
			if err != nil {
				return nil, fmt.Errorf("esign: the record's checkpoint: %w", err)
			}
			if tc.Size != rc.Size || tc.Root != rc.Root {
				return nil, fmt.Errorf("esign: the record is proved in the ledger at size %d, the trusted checkpoint is of size %d: fetch the record again, or verify with the checkpoint it carries", rc.Size, tc.Size)
			}
		}
		cpText = trusted
	}
	var cp *ledger.Checkpoint
	if len(cpText) > 0 {
		c, err := chain.OpenCheckpoint(cpText)
		if err != nil {
			return nil, fmt.Errorf("esign: checkpoint: %w", err)
		}
		cp = &c
	}
	typ, id, ok := strings.Cut(r.Resource, "/")
	if !ok || typ == "" || id == "" || strings.Contains(id, "/") {
		return nil, fmt.Errorf("esign: record: resource %q is not Type/id", r.Resource)
	}
	total := 0
	for _, v := range r.Versions {
		total += len(v.Signatures)
	}
	var out []Finding
	for _, v := range r.Versions {
		target := Target(typ, id, v.Version)
		for _, s := range v.Signatures {
			f := Finding{Version: v.Version, Provenance: s.Provenance, LedgerIndex: -1}
			if s.Ledger != nil {
				f.LedgerIndex = s.Ledger.Index
			}
			st, err := verifyOne(target, v, s, keys, cp)
			if err != nil {
				f.Problem = strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": ")
			} else {
				f.OK, f.Manifestation = true, st.Manifestation()
			}
			out = append(out, f)
			if progress != nil {
				progress(len(out), total)
			}
		}
	}
	return out, nil
}

func verifyOne(target string, v Version, s Signature, keys Keys, cp *ledger.Checkpoint) (Statement, error) {
	st, err := Open(s.Data, keys)
	if err != nil {
		return Statement{}, err
	}
	if v.Deleted || len(v.Resource) == 0 {
		return Statement{}, fmt.Errorf("%w: the record does not carry the content of version %d", ErrInvalid, v.Version)
	}
	if err := st.Check(target, v.Resource); err != nil {
		return Statement{}, err
	}
	m, _ := LookupMeaning(st.Meaning)
	if s.Signer != st.Signer || s.Name != st.Name || s.Meaning != m || s.When != st.Time || s.Manifestation != st.Manifestation() {
		return Statement{}, fmt.Errorf("%w: the record shows another signer, name, meaning or time than was signed", ErrInvalid)
	}
	if s.Ledger == nil {
		return Statement{}, fmt.Errorf("%w: no ledger entry", ErrInvalid)
	}
	e, err := ledger.DecodeEntry(s.Ledger.Entry)
	if err != nil {
		return Statement{}, fmt.Errorf("%w: ledger entry: %v", ErrInvalid, err)
	}
	if err := CheckEntry(e, st, s.Data); err != nil {
		return Statement{}, err
	}
	if cp == nil || s.Ledger.Index >= cp.Size {
		return Statement{}, fmt.Errorf("%w: the signing's ledger entry %d is not covered by the checkpoint yet: fetch the record again in a few seconds", ErrInvalid, s.Ledger.Index)
	}
	proof := make(tlog.RecordProof, len(s.Ledger.Proof))
	for i, h := range s.Ledger.Proof {
		if len(h) != tlog.HashSize {
			return Statement{}, fmt.Errorf("%w: malformed inclusion proof", ErrInvalid)
		}
		copy(proof[i][:], h)
	}
	if err := ledger.VerifyInclusion(*cp, s.Ledger.Index, ledger.LeafHash(s.Ledger.Entry), proof); err != nil {
		return Statement{}, fmt.Errorf("%w: the signing's ledger entry is not in the checkpoint: %v", ErrInvalid, err)
	}
	return st, nil
}
