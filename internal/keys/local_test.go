package keys_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/keys/keystest"
)

func TestLocalFileProvider(t *testing.T) {
	t.Run("unsealed", func(t *testing.T) {
		f, _ := newLocal(t, nil)
		keystest.TestProvider(t, f)
	})
	t.Run("sealed", func(t *testing.T) {
		f, _ := newLocal(t, []byte("correct horse battery staple"))
		keystest.TestProvider(t, f)
	})
}

func TestLocalFilePermissions(t *testing.T) {
	_, path := newLocal(t, nil)
	tests := []struct {
		mode os.FileMode
		ok   bool
	}{
		{0o600, true},
		{0o400, true},
		{0o700, true},
		{0o640, false},
		{0o604, false},
		{0o660, false},
		{0o644, false},
		{0o602, false},
		{0o666, false},
	}
	for _, tt := range tests {
		if err := os.Chmod(path, tt.mode); err != nil {
			t.Fatal(err)
		}
		_, err := keys.OpenLocalFile(path, nil)
		if tt.ok != (err == nil) {
			t.Errorf("mode %04o: OpenLocalFile error %v, want ok=%v", tt.mode, err, tt.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "chmod 600 "+path) {
			t.Errorf("mode %04o: error %q does not say how to fix it", tt.mode, err)
		}
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("created key file mode %v, %v", st.Mode(), err)
	}
}

func TestLocalFilePassphrase(t *testing.T) {
	pass := []byte("correct horse battery staple")
	f, path := newLocal(t, pass)
	_, plainPath := newLocal(t, nil)
	tests := []struct {
		name       string
		path       string
		passphrase []byte
		wantPass   bool // errors.Is(err, ErrPassphrase)
		ok         bool
	}{
		{"right passphrase", path, pass, false, true},
		{"wrong passphrase", path, []byte("correct horse battery stapler"), true, false},
		{"missing passphrase", path, nil, true, false},
		{"empty passphrase", path, []byte{}, true, false},
		{"passphrase for an unsealed file", plainPath, pass, false, false},
		{"unsealed without passphrase", plainPath, nil, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := keys.OpenLocalFile(tt.path, tt.passphrase)
			if tt.ok != (err == nil) || tt.wantPass != errors.Is(err, keys.ErrPassphrase) {
				t.Fatalf("OpenLocalFile: %v", err)
			}
			if err != nil && bytes.Contains([]byte(err.Error()), tt.passphrase) && len(tt.passphrase) > 0 {
				t.Fatalf("error reveals the passphrase: %v", err)
			}
			if tt.ok && tt.path == path && !g.IndexKey().Equal(f.IndexKey()) {
				t.Fatal("reopened file has other keys")
			}
		})
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(raw, &probe); err != nil {
		t.Fatal(err)
	}
	if _, ok := probe["secrets"]; ok || probe["sealed"] == nil || probe["kdf"] == nil {
		t.Fatalf("sealed file shows fields %v", probe)
	}
}

// Every flipped bit of a sealed key file is detected.
func TestLocalFileTamper(t *testing.T) {
	pass := []byte("pw")
	_, path := newLocal(t, pass)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var kf map[string]json.RawMessage
	if err := json.Unmarshal(raw, &kf); err != nil {
		t.Fatal(err)
	}
	var sealed, nonce []byte
	json.Unmarshal(kf["sealed"], &sealed)
	json.Unmarshal(kf["nonce"], &nonce)
	write := func(field string, v []byte) {
		m := map[string]json.RawMessage{}
		for k, x := range kf {
			m[k] = x
		}
		m[field], _ = json.Marshal(v)
		data, _ := json.Marshal(m)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, field := range []struct {
		name string
		b    []byte
	}{{"sealed", sealed}, {"nonce", nonce}} {
		for i := range len(field.b) * 8 {
			b := bytes.Clone(field.b)
			b[i/8] ^= 1 << (i % 8)
			write(field.name, b)
			if _, err := keys.OpenLocalFile(path, pass); !errors.Is(err, keys.ErrPassphrase) {
				t.Fatalf("%s bit %d flipped: %v; want ErrPassphrase", field.name, i, err)
			}
		}
	}
	// The KDF parameters are bound too: changing them fails.
	var kdf map[string]any
	json.Unmarshal(kf["kdf"], &kdf)
	kdf["time"] = 2.0
	kf["kdf"], _ = json.Marshal(kdf)
	write("sealed", sealed)
	if _, err := keys.OpenLocalFile(path, pass); err == nil {
		t.Fatal("changed KDF parameters accepted")
	}
}

func TestCreateLocalFile(t *testing.T) {
	_, path := newLocal(t, nil)
	before, _ := os.ReadFile(path)
	if err := keys.CreateLocalFile(path, keys.LocalParams{}, nil); err == nil {
		t.Fatal("CreateLocalFile overwrote an existing file")
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatal("existing key file changed")
	}
	if err := keys.CreateLocalFile(filepath.Join(t.TempDir(), "k"), keys.LocalParams{Passphrase: []byte{}}, nil); err == nil {
		t.Fatal("CreateLocalFile accepted an empty passphrase")
	}
	if err := keys.CreateLocalFile(filepath.Join(t.TempDir(), "k"), keys.LocalParams{}, bytes.NewReader(make([]byte, 10))); err == nil {
		t.Fatal("CreateLocalFile succeeded with a failing random source")
	}
	if _, err := keys.OpenLocalFile(filepath.Join(t.TempDir(), "missing"), nil); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("OpenLocalFile of a missing file: %v, want fs.ErrNotExist", err)
	}
}

func TestLocalFileKeys(t *testing.T) {
	a, _ := newLocal(t, nil)
	b, _ := newLocal(t, nil)
	if a.IndexKey().Equal(b.IndexKey()) || a.PageKey().Equal(b.PageKey()) {
		t.Fatal("two key files share a key")
	}
	pub := func(s crypto.Signer) ed25519.PublicKey { return s.Public().(ed25519.PublicKey) }
	if pub(a.TokenSigner()).Equal(pub(a.LedgerSigner())) || pub(a.TokenSigner()).Equal(pub(b.TokenSigner())) {
		t.Fatal("signing keys are shared")
	}
	msg := []byte("checkpoint")
	sig, err := a.LedgerSigner().Sign(nil, msg, crypto.Hash(0))
	if err != nil || !ed25519.Verify(pub(a.LedgerSigner()), msg, sig) {
		t.Fatalf("ledger signer does not verify: %v", err)
	}
	// No private key leaves the package: the signers are not Ed25519
	// private keys, and do not print one.
	for _, s := range []crypto.Signer{a.TokenSigner(), a.LedgerSigner()} {
		if _, ok := s.(ed25519.PrivateKey); ok {
			t.Fatal("a signer is a raw private key")
		}
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			if out := fmt.Sprintf(verb, s); !strings.Contains(out, "redacted") {
				t.Errorf("%s of a signer: %s", verb, out)
			}
		}
	}
	if s := a.String(); strings.Contains(s, "kek-") {
		t.Fatalf("String reveals key ids: %s", s)
	}
}

// Rotation by one process is seen by another on its next unknown KEK id;
// rotations by two processes do not lose each other's KEKs.
func TestLocalFileRotateTwoProcesses(t *testing.T) {
	ctx := context.Background()
	a, path := newLocal(t, []byte("pw"))
	b, err := keys.OpenLocalFile(path, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	dek := bytes.Repeat([]byte{7}, 32)
	w0, k0, err := a.Wrap(ctx, dek, nil)
	if err != nil {
		t.Fatal(err)
	}
	ka, err := a.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wa, _, err := a.Wrap(ctx, dek, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, id, err := b.Wrap(ctx, dek, nil); err != nil || id != ka {
		t.Fatalf("b wrapped under %q after a rotated to %q: %v", id, ka, err)
	}
	kb, err := b.Rotate(ctx) // b must keep a's KEK
	if err != nil {
		t.Fatal(err)
	}
	wb, _, err := b.Wrap(ctx, dek, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*keys.LocalFile{a, b} {
		for _, w := range []struct {
			id      string
			wrapped []byte
		}{{k0, w0}, {ka, wa}, {kb, wb}} {
			if got, err := p.Unwrap(ctx, w.wrapped, w.id, nil); err != nil || !bytes.Equal(got, dek) {
				t.Fatalf("%v cannot unwrap under KEK %s: %v", p, w.id, err)
			}
		}
	}
	if a.CurrentKEK() != kb || b.CurrentKEK() != kb {
		t.Fatalf("current KEKs %s, %s; want %s", a.CurrentKEK(), b.CurrentKEK(), kb)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Rotate(ctx); err == nil {
		t.Fatal("Rotate accepted a key file readable by others")
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Fatalf("temporary file left behind: %s", e.Name())
		}
	}
}

// D4 for the local file: a key file that disappeared makes Wrap fail with
// ErrUnavailable rather than wrap under a stale key.
func TestLocalFileGone(t *testing.T) {
	f, path := newLocal(t, nil)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.Wrap(context.Background(), make([]byte, 32), nil); !errors.Is(err, keys.ErrUnavailable) {
		t.Fatalf("Wrap with the key file gone: %v, want ErrUnavailable", err)
	}
	if _, err := f.Unwrap(context.Background(), make([]byte, 60), "kek-unknown", nil); !errors.Is(err, keys.ErrUnavailable) {
		t.Fatalf("Unwrap of an unknown KEK with the key file gone: %v, want ErrUnavailable", err)
	}
}

// A key file made before e-signatures (the frozen one) has no e-signature
// key: it refuses to sign until AddESignKey adds one, in place, under the
// same passphrase, keeping every other key; a second call changes
// nothing. A new file has its own, distinct from every other signer's.
func TestESignKey(t *testing.T) {
	ctx := context.Background()
	raw, err := os.ReadFile("testdata/frozen-keys.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Passphrase string `json:"passphrase"`
	}
	vraw, err := os.ReadFile("testdata/frozen-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(vraw, &v); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	old, err := keys.OpenLocalFile(path, []byte(v.Passphrase))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.ESignSigner(); !errors.Is(err, keys.ErrNoESignKey) {
		t.Fatalf("an old key file signs: %v", err)
	}
	ledgerBefore := old.LedgerSigner().Public().(ed25519.PublicKey)
	added, err := old.AddESignKey(ctx)
	if err != nil || !added {
		t.Fatalf("AddESignKey: %v %v", added, err)
	}
	s1, err := old.ESignSigner()
	if err != nil {
		t.Fatal(err)
	}
	// Another process opening the file sees the same key; adding again
	// changes nothing.
	again, err := keys.OpenLocalFile(path, []byte(v.Passphrase))
	if err != nil {
		t.Fatal(err)
	}
	if added, err := again.AddESignKey(ctx); err != nil || added {
		t.Fatalf("second AddESignKey: %v %v", added, err)
	}
	s2, err := again.ESignSigner()
	if err != nil {
		t.Fatal(err)
	}
	pub := func(s crypto.Signer) ed25519.PublicKey { return s.Public().(ed25519.PublicKey) }
	if !pub(s1).Equal(pub(s2)) {
		t.Fatal("the e-signature key changed when added twice")
	}
	if !pub(again.LedgerSigner()).Equal(ledgerBefore) {
		t.Fatal("adding the e-signature key changed the ledger key")
	}
	for _, other := range []crypto.Signer{again.LedgerSigner(), again.TokenSigner(), again.CertificateSigner()} {
		if pub(other).Equal(pub(s1)) {
			t.Fatal("the e-signature key is another signer's")
		}
	}
	if out := fmt.Sprintf("%#v %v", s1, s1); !strings.Contains(out, "redacted") {
		t.Fatalf("the e-signature signer prints: %s", out)
	}
	fresh, _ := newLocal(t, nil)
	s3, err := fresh.ESignSigner()
	if err != nil {
		t.Fatalf("a new key file has no e-signature key: %v", err)
	}
	if pub(s3).Equal(pub(s1)) {
		t.Fatal("two key files share an e-signature key")
	}
}
