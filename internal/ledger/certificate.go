package ledger

import (
	"crypto"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// CertificateHeader is the first line of every certificate a Certifier
// signs.
const CertificateHeader = "ward certificate"

// Certifier signs Ward's certificates (an erasure's, for one) as C2SP
// signed notes, with an Ed25519 key of their own. Its Sign method refuses
// any text whose first line is not CertificateHeader, so it can never sign
// a checkpoint, and the checkpoint Signer never signs a certificate. It
// implements note.Signer.
type Certifier struct {
	name     string
	hash     uint32
	vkey     string
	verifier note.Verifier
	sign     func([]byte) ([]byte, error)
}

// NewCertifier returns a certifier whose key name is name (for example
// "<host:port>/certificates"). key must be an Ed25519 signer; it may live
// in an HSM.
func NewCertifier(name string, key crypto.Signer) (*Certifier, error) {
	pub, err := ed25519Public(key)
	if err != nil {
		return nil, err
	}
	vkey, err := note.NewEd25519VerifierKey(name, pub)
	if err != nil {
		return nil, fmt.Errorf("ledger: certificate verifier key: %w", err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("ledger: certificate verifier key: %w", err)
	}
	return &Certifier{name: name, hash: v.KeyHash(), vkey: vkey, verifier: v, sign: ed25519Sign(key, pub)}, nil
}

// Name returns the key name.
func (c *Certifier) Name() string { return c.name }

// KeyHash returns the note key hash.
func (c *Certifier) KeyHash() uint32 { return c.hash }

// Sign signs msg if it is a certificate's text.
func (c *Certifier) Sign(msg []byte) ([]byte, error) {
	if !strings.HasPrefix(string(msg), CertificateHeader+"\n") {
		return nil, errors.New("ledger: refusing to sign: not a certificate")
	}
	return c.sign(msg)
}

// VerifierKey returns the public verifier key that checks certificates.
func (c *Certifier) VerifierKey() string { return c.vkey }

// Certify signs the certificate whose lines are given (after the header)
// and returns the signed note.
func (c *Certifier) Certify(lines ...string) ([]byte, error) {
	text := CertificateHeader + "\n"
	for _, l := range lines {
		if strings.ContainsAny(l, "\n\r") {
			return nil, errors.New("ledger: a certificate line holds a line break")
		}
		text += l + "\n"
	}
	return note.Sign(&note.Note{Text: text}, c)
}

// OpenCertificate verifies a signed certificate with the verifier key
// vkey and returns its lines after the header.
func OpenCertificate(signed []byte, vkey string) ([]string, error) {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("ledger: certificate verifier key: %w", err)
	}
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		return nil, fmt.Errorf("ledger: certificate: %w", err)
	}
	lines := strings.Split(strings.TrimSuffix(n.Text, "\n"), "\n")
	if len(lines) == 0 || lines[0] != CertificateHeader {
		return nil, errors.New("ledger: not a certificate")
	}
	return lines[1:], nil
}
