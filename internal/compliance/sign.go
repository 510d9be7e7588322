package compliance

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Kind names what a signed document is. It is part of the signed
// message, so a signature over one kind never verifies as another.
type Kind string

// Kinds of signed documents.
const (
	KindCompliance Kind = "compliance-report"
	KindValidation Kind = "validation-report"
)

// SignerName is the key name under which documents are signed, in the
// verifier key (note format) that checks them.
const SignerName = "ward-documents"

// signaturePrefix starts every message a document signature covers. A
// ledger checkpoint's signed text starts with the ledger's origin line, a
// certificate's with "ward certificate\n", an access token's signing input
// with "eyJ": none can start with this NUL-terminated line, so a document
// signature can never pass for one of them, nor one of them for a
// document signature.
const signaturePrefix = "ward signed document v1\x00"

// ErrRejected reports a signature that does not verify: a changed
// document, another kind, another key, or a damaged signature file.
var ErrRejected = errors.New("compliance: signature rejected")

// message is what a signature covers: the prefix, the kind and the exact
// bytes of the document.
func message(kind Kind, doc []byte) []byte {
	m := make([]byte, 0, len(signaturePrefix)+len(kind)+1+len(doc))
	m = append(m, signaturePrefix...)
	m = append(m, kind...)
	m = append(m, 0)
	return append(m, doc...)
}

func validKind(k Kind) bool { return k == KindCompliance || k == KindValidation }

// VerifierKey returns the public verifier key (note format,
// "ward-documents+<hash>+<key>") of an Ed25519 signing key.
func VerifierKey(key crypto.Signer) (string, error) {
	pub, ok := key.Public().(ed25519.PublicKey)
	if !ok {
		return "", errors.New("compliance: the signing key is not Ed25519")
	}
	return note.NewEd25519VerifierKey(SignerName, pub)
}

// Sign signs the exact bytes of a document of a kind with key (Ward's
// certificate key, keys.LocalFile.CertificateSigner: it may live in an
// HSM) and returns the detached signature file's text.
func Sign(key crypto.Signer, kind Kind, doc []byte) ([]byte, error) {
	if !validKind(kind) {
		return nil, fmt.Errorf("compliance: unknown document kind %q", kind)
	}
	vkey, err := VerifierKey(key)
	if err != nil {
		return nil, err
	}
	sig, err := key.Sign(nil, message(kind, doc), crypto.Hash(0))
	if err != nil {
		return nil, fmt.Errorf("compliance: signing: %w", err)
	}
	name, hash, _ := strings.Cut(vkey, "+")
	hash, _, _ = strings.Cut(hash, "+")
	var b bytes.Buffer
	fmt.Fprintf(&b, "ward signature v1\nkind %s\nkey %s+%s\nsignature %s\n", kind, name, hash, base64.StdEncoding.EncodeToString(sig))
	return b.Bytes(), nil
}

// Verify checks a detached signature file against the exact bytes of a
// document with the verifier key vkey, and returns the document's kind.
// Any mismatch is ErrRejected.
func Verify(doc, sigFile []byte, vkey string) (Kind, error) {
	v, err := note.NewVerifier(strings.TrimSpace(vkey))
	if err != nil {
		return "", fmt.Errorf("compliance: verifier key: %w", err)
	}
	lines := strings.Split(string(sigFile), "\n")
	if len(lines) != 5 || lines[0] != "ward signature v1" || lines[4] != "" {
		return "", fmt.Errorf("%w: not a Ward signature file", ErrRejected)
	}
	kind, ok1 := strings.CutPrefix(lines[1], "kind ")
	key, ok2 := strings.CutPrefix(lines[2], "key ")
	sig64, ok3 := strings.CutPrefix(lines[3], "signature ")
	if !ok1 || !ok2 || !ok3 || !validKind(Kind(kind)) {
		return "", fmt.Errorf("%w: not a Ward signature file", ErrRejected)
	}
	if want := fmt.Sprintf("%s+%08x", v.Name(), v.KeyHash()); key != want {
		return "", fmt.Errorf("%w: signed by key %s, not %s", ErrRejected, key, want)
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(sig64)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return "", fmt.Errorf("%w: malformed signature", ErrRejected)
	}
	if !v.Verify(message(Kind(kind), doc), sig) {
		return "", fmt.Errorf("%w: the document or its signature was changed", ErrRejected)
	}
	return Kind(kind), nil
}
