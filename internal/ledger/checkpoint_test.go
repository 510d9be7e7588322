package ledger

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const testOrigin = "ward.test/log"

// testKey derives a deterministic Ed25519 key from a label.
func testKey(label string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte(label))
	return ed25519.NewKeyFromSeed(seed[:])
}

func testSigner(t testing.TB, origin, label string) *Signer {
	t.Helper()
	s, err := NewSigner(origin, testKey(label))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rawSigner returns a note signer that signs anything, to build malformed
// checkpoints that Ward's Signer refuses to sign.
func rawSigner(t testing.TB, origin, label string) note.Signer {
	t.Helper()
	key := testKey(label)
	vkey, err := note.NewEd25519VerifierKey(origin, key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	skey := fmt.Sprintf("PRIVATE+KEY+%s+%08x+%s", origin, v.KeyHash(),
		base64.StdEncoding.EncodeToString(append([]byte{1}, key.Seed()...)))
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sampleCheckpoint() Checkpoint {
	return Checkpoint{Origin: testOrigin, Size: 1234, Root: tlog.Hash(sha256.Sum256([]byte("root")))}
}

func TestCheckpointSignOpen(t *testing.T) {
	s := testSigner(t, testOrigin, "log")
	c := sampleCheckpoint()
	msg, err := SignCheckpoint(c, s)
	if err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf("%s\n1234\n%s\n\n", testOrigin, base64.StdEncoding.EncodeToString(c.Root[:]))
	if !bytes.HasPrefix(msg, []byte(body+"\u2014 "+testOrigin+" ")) {
		t.Fatalf("not a C2SP checkpoint:\n%s", msg)
	}
	// Operators configure the verifier key string.
	v, err := note.NewVerifier(s.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	if v.KeyHash() != s.KeyHash() || s.Verifier().KeyHash() != s.KeyHash() {
		t.Fatal("key hashes disagree")
	}
	got, err := OpenCheckpoint(msg, testOrigin, note.VerifierList(v))
	if err != nil {
		t.Fatal(err)
	}
	if got != c {
		t.Fatalf("OpenCheckpoint = %+v, want %+v", got, c)
	}
	// A cosignature by a witness key is allowed alongside the log's.
	witness := testSigner(t, "witness.example", "witness")
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		t.Fatal(err)
	}
	cosigned, err := note.Sign(&note.Note{Text: n.Text, Sigs: n.Sigs}, rawSigner(t, "witness.example", "witness"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenCheckpoint(cosigned, testOrigin, note.VerifierList(v, witness.Verifier())); err != nil {
		t.Fatalf("cosigned checkpoint: %v", err)
	}
	// Empty tree.
	empty := Checkpoint{Origin: testOrigin, Root: emptyRoot()}
	msg, err = SignCheckpoint(empty, s)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := OpenCheckpoint(msg, testOrigin, note.VerifierList(v)); err != nil || got != empty {
		t.Fatalf("empty checkpoint: %+v, %v", got, err)
	}
}

// TestOpenCheckpointTamper flips every bit of a signed checkpoint.
func TestOpenCheckpointTamper(t *testing.T) {
	s := testSigner(t, testOrigin, "log")
	msg, err := SignCheckpoint(sampleCheckpoint(), s)
	if err != nil {
		t.Fatal(err)
	}
	vs := note.VerifierList(s.Verifier())
	rejected := 0
	for i := range len(msg) * 8 {
		bad := bytes.Clone(msg)
		bad[i/8] ^= 1 << (i % 8)
		if _, err := OpenCheckpoint(bad, testOrigin, vs); err == nil {
			t.Errorf("accepted checkpoint with bit %d flipped:\n%s", i, bad)
			continue
		}
		rejected++
	}
	t.Logf("E3 checkpoint: %d/%d bit flips rejected", rejected, len(msg)*8)
}

func TestOpenCheckpointRejects(t *testing.T) {
	logKey := testSigner(t, testOrigin, "log")
	vs := note.VerifierList(logKey.Verifier())
	sc := sampleCheckpoint()
	root := base64.StdEncoding.EncodeToString(sc.Root[:])
	sign := func(text string, s note.Signer) []byte {
		msg, err := note.Sign(&note.Note{Text: text}, s)
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}
	raw := rawSigner(t, testOrigin, "log")
	good := fmt.Sprintf("%s\n5\n%s\n", testOrigin, root)
	if _, err := OpenCheckpoint(sign(good, raw), testOrigin, vs); err != nil {
		t.Fatalf("control case rejected: %v", err)
	}
	// Extension lines are ignored, as C2SP allows.
	if c, err := OpenCheckpoint(sign(good+"ext one\next two\n", raw), testOrigin, vs); err != nil || c.Size != 5 {
		t.Fatalf("extension lines: %+v, %v", c, err)
	}
	otherName := testSigner(t, "other.example/log", "log")
	tests := []struct {
		name   string
		msg    []byte
		origin string
		vs     note.Verifiers
	}{
		{"wrong key, same name", sign(good, rawSigner(t, testOrigin, "attacker")), testOrigin, vs},
		{"only another key's signature", sign(good, rawSigner(t, "other.example/log", "log")), testOrigin, note.VerifierList(logKey.Verifier(), otherName.Verifier())},
		{"other origin asked", sign(good, raw), "other.example/log", vs},
		{"body origin differs from key name", sign(strings.Replace(good, testOrigin, "evil.example/log", 1), raw), testOrigin, vs},
		{"leading zero size", sign(strings.Replace(good, "\n5\n", "\n05\n", 1), raw), testOrigin, vs},
		{"plus size", sign(strings.Replace(good, "\n5\n", "\n+5\n", 1), raw), testOrigin, vs},
		{"negative size", sign(strings.Replace(good, "\n5\n", "\n-5\n", 1), raw), testOrigin, vs},
		{"huge size", sign(strings.Replace(good, "\n5\n", "\n99999999999999999999\n", 1), raw), testOrigin, vs},
		{"short root", sign(fmt.Sprintf("%s\n5\n%s\n", testOrigin, base64.StdEncoding.EncodeToString(make([]byte, 31))), raw), testOrigin, vs},
		{"unpadded root", sign(fmt.Sprintf("%s\n5\n%s\n", testOrigin, strings.TrimRight(root, "=")), raw), testOrigin, vs},
		{"url-safe root", sign(fmt.Sprintf("%s\n5\n%s\n", testOrigin, base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xff}, 32))), raw), testOrigin, vs},
		{"two lines", sign(fmt.Sprintf("%s\n5\n", testOrigin), raw), testOrigin, vs},
		{"no verifiers", sign(good, raw), testOrigin, nil},
		{"oversized", append(sign(good, raw), bytes.Repeat([]byte("x"), maxCheckpoint)...), testOrigin, vs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c, err := OpenCheckpoint(tt.msg, tt.origin, tt.vs); err == nil {
				t.Fatalf("accepted %+v from\n%s", c, tt.msg)
			}
		})
	}
}

func TestSignerRefusesNonCheckpoints(t *testing.T) {
	s := testSigner(t, testOrigin, "log")
	root := base64.StdEncoding.EncodeToString(make([]byte, 32))
	for _, msg := range []string{
		"hello\n",
		"",
		fmt.Sprintf("other.example/log\n1\n%s\n", root),
		fmt.Sprintf("%s\n1\n%s\nextension\n", testOrigin, root),
		fmt.Sprintf("%s\n01\n%s\n", testOrigin, root),
		fmt.Sprintf("%s\n1\n%s", testOrigin, root),
	} {
		if sig, err := s.Sign([]byte(msg)); err == nil {
			t.Errorf("signed %q: %x", msg, sig)
		}
	}
	if _, err := SignCheckpoint(Checkpoint{Origin: "other.example/log", Size: 1}, s); err == nil {
		t.Error("SignCheckpoint signed for another origin")
	}
	for _, c := range []Checkpoint{{Origin: testOrigin, Size: -1}, {Origin: "", Size: 1}} {
		if _, err := c.Marshal(); err == nil {
			t.Errorf("Marshal accepted %+v", c)
		}
	}
	for _, o := range []string{"", "a b", "a+b", "a\nb"} {
		if _, err := NewSigner(o, testKey("log")); err == nil {
			t.Errorf("NewSigner accepted origin %q", o)
		}
	}
	if _, err := NewSigner(testOrigin, testKey("log")[:10]); err == nil {
		t.Error("NewSigner accepted a short key")
	}
}

func TestSignerDoesNotPrintKey(t *testing.T) {
	key := testKey("log")
	s, err := NewSigner(testOrigin, key)
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{
		fmt.Sprintf("%x", key.Seed()[:8]),
		base64.StdEncoding.EncodeToString(key.Seed())[:10],
		strings.Trim(fmt.Sprint([]byte(key.Seed()[:4])), "[]"),
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%d"} {
		for _, val := range []any{s, *s} {
			out := fmt.Sprintf(verb, val)
			for _, secret := range secrets {
				if strings.Contains(out, secret) {
					t.Errorf("%s of the signer shows key material: %s", verb, out)
				}
			}
		}
	}
	// The signer signs through the caller's crypto.Signer (which may be an
	// HSM) and checks each signature against the public key it started
	// with: a key that changed or fails gives an error, never a signature
	// that does not verify.
	msg, _ := sampleCheckpoint().Marshal()
	if _, err := s.Sign(msg); err != nil {
		t.Fatal(err)
	}
	clear(key)
	if sig, err := s.Sign(msg); err == nil {
		t.Fatalf("a signer whose key changed signed: %x", sig)
	}
}

func FuzzOpenCheckpoint(f *testing.F) {
	s := testSigner(f, testOrigin, "log")
	vs := note.VerifierList(s.Verifier())
	good, _ := SignCheckpoint(sampleCheckpoint(), s)
	f.Add(good)
	f.Add([]byte("ward.test/log\n1\nAAAA\n\n\u2014 ward.test/log AAAA\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		c, err := OpenCheckpoint(msg, testOrigin, vs)
		if err != nil {
			return
		}
		// Anything accepted is the one genuine checkpoint, maybe with
		// other signature lines that do not verify or count.
		if c != sampleCheckpoint() {
			t.Fatalf("accepted forged checkpoint %+v", c)
		}
	})
}

func FuzzParseCheckpoint(f *testing.F) {
	body, _ := sampleCheckpoint().Marshal()
	f.Add(body)
	f.Add(append(body, "ext\n"...))
	f.Fuzz(func(t *testing.T, text []byte) {
		c, ext, err := parseCheckpoint(text)
		if err != nil {
			return
		}
		again, err := c.Marshal()
		if err != nil {
			t.Fatalf("parsed %q into unmarshalable %+v: %v", text, c, err)
		}
		if !ext && !bytes.Equal(again, text) {
			t.Fatalf("parse(%q) re-marshals to %q", text, again)
		}
		if ext && !bytes.HasPrefix(text, again) {
			t.Fatalf("parse(%q) body is not %q", text, again)
		}
	})
}
