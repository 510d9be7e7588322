package compliance_test

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/wardhealth/ward/internal/compliance"
)

func testKey(seed byte) crypto.Signer {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

// TestSignatureTamper: a signature verifies over the exact document, kind
// and key; every flipped bit of the document or the signature, another
// kind, another key, and a signature made over the bare document (as a
// note or checkpoint signer would make it) are rejected.
func TestSignatureTamper(t *testing.T) {
	key := testKey(1)
	vkey, err := compliance.VerifierKey(key)
	if err != nil {
		t.Fatal(err)
	}
	doc := []byte(`{"format":"ward-compliance-report/v1","clauses":[]}` + "\n")
	sig, err := compliance.Sign(key, compliance.KindCompliance, doc)
	if err != nil {
		t.Fatal(err)
	}
	if k, err := compliance.Verify(doc, sig, vkey); err != nil || k != compliance.KindCompliance {
		t.Fatalf("Verify = %q, %v", k, err)
	}
	if _, err := compliance.Verify(doc, sig, vkey+"\n"); err != nil {
		t.Errorf("a verifier key with a newline (read from a file): %v", err)
	}
	reject := func(what string, d, s []byte, vk string) {
		t.Helper()
		if _, err := compliance.Verify(d, s, vk); !errors.Is(err, compliance.ErrRejected) {
			t.Errorf("%s: %v, want ErrRejected", what, err)
		}
	}
	for i := range len(doc) * 8 {
		d := bytes.Clone(doc)
		d[i/8] ^= 1 << (i % 8)
		reject("flipped document bit", d, sig, vkey)
	}
	reject("appended byte", append(bytes.Clone(doc), ' '), sig, vkey)
	lines := strings.Split(string(sig), "\n")
	sigLine := lines[3]
	for i := len("signature "); i < len(sigLine); i++ {
		b := []byte(sigLine)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		lines2 := append([]string(nil), lines...)
		lines2[3] = string(b)
		reject("changed signature character", doc, []byte(strings.Join(lines2, "\n")), vkey)
	}
	other := strings.Replace(string(sig), "kind compliance-report", "kind validation-report", 1)
	reject("another kind", doc, []byte(other), vkey)
	otherKey, _ := compliance.VerifierKey(testKey(2))
	reject("another key", doc, sig, otherKey)
	// The same key over the bare document, as a signer of notes would
	// sign it, is not a document signature.
	raw, _ := testKey(1).Sign(nil, doc, crypto.Hash(0))
	forged := strings.Replace(string(sig), lines[3], "signature "+b64(raw), 1)
	reject("signature without the prefix", doc, []byte(forged), vkey)
	reject("empty file", doc, nil, vkey)
	reject("extra line", doc, append(bytes.Clone(sig), "x\n"...), vkey)

	// A document signature is not a signed note: a note verifier for the
	// same key does not accept the document with the signature.
	v, _ := note.NewVerifier(vkey)
	sigBytes := decodeSig(t, sig)
	if v.Verify(doc, sigBytes) {
		t.Error("the signature verifies over the bare document")
	}
	if _, err := compliance.Sign(key, "checkpoint", doc); err == nil {
		t.Error("signed an unknown kind")
	}
}
