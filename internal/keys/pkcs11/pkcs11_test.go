//go:build pkcs11

package pkcs11_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/cryptosigner"
	p11 "github.com/miekg/pkcs11"

	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/keys/keystest"
	"github.com/wardhealth/ward/internal/keys/pkcs11"
	"github.com/wardhealth/ward/internal/ledger"
)

func TestProviderConformance(t *testing.T) {
	h := newSoftHSM(t)
	keystest.TestProvider(t, h.open(t))
}

func TestWrapTamper(t *testing.T) {
	h := newSoftHSM(t)
	p := h.open(t)
	ctx := context.Background()
	dek := bytes.Repeat([]byte{7}, 32)
	w, id, err := p.Wrap(ctx, dek, []byte("patient-1"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(id, pkcs11.KEKPrefix) || !p.OwnsKEK(id) || p.OwnsKEK("kek-0123456789abcdef") {
		t.Fatalf("kek id %q: not recognised as the HSM's", id)
	}
	for i := range len(w) * 8 {
		c := bytes.Clone(w)
		c[i/8] ^= 1 << (i % 8)
		if _, err := p.Unwrap(ctx, c, id, []byte("patient-1")); !errors.Is(err, keys.ErrDecrypt) {
			t.Fatalf("bit %d flipped: err = %v, want ErrDecrypt", i, err)
		}
	}
	if _, err := p.Unwrap(ctx, w, id, []byte("patient-2")); !errors.Is(err, keys.ErrDecrypt) {
		t.Fatalf("other compartment: err = %v, want ErrDecrypt", err)
	}
	// A tampered key does not break the connection: the next unwrap works.
	got, err := p.Unwrap(ctx, w, id, []byte("patient-1"))
	if err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("Unwrap after tampering: %v", err)
	}
}

// TestKEKNeverLeaves reads the KEK's attributes through the module
// directly: CKA_VALUE is refused, the key is sensitive and not
// extractable, and wrapping it out under another key fails.
func TestKEKNeverLeaves(t *testing.T) {
	h := newSoftHSM(t)
	h.open(t)
	lib := p11.New(h.module)
	if lib == nil {
		t.Fatal("loading the module")
	}
	defer lib.Destroy()
	if err := lib.Initialize(); err != nil && !isCode(err, p11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		t.Fatal(err)
	}
	sh := userSession(t, lib)
	defer lib.CloseSession(sh)
	kek := findOne(t, lib, sh, p11.CKO_SECRET_KEY, pkcs11.DefaultKEKLabel)

	if _, err := lib.GetAttributeValue(sh, kek, []*p11.Attribute{p11.NewAttribute(p11.CKA_VALUE, nil)}); !isCode(err, p11.CKR_ATTRIBUTE_SENSITIVE) {
		t.Fatalf("reading CKA_VALUE: err = %v, want CKR_ATTRIBUTE_SENSITIVE", err)
	}
	attrs, err := lib.GetAttributeValue(sh, kek, []*p11.Attribute{
		p11.NewAttribute(p11.CKA_SENSITIVE, nil), p11.NewAttribute(p11.CKA_EXTRACTABLE, nil),
		p11.NewAttribute(p11.CKA_NEVER_EXTRACTABLE, nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(attrs[0].Value, []byte{1}) || !bytes.Equal(attrs[1].Value, []byte{0}) || !bytes.Equal(attrs[2].Value, []byte{1}) {
		t.Fatalf("sensitive, extractable, never extractable = %v %v %v", attrs[0].Value, attrs[1].Value, attrs[2].Value)
	}
	// A wrapping key made for the purpose cannot take the KEK out.
	wk, err := lib.GenerateKey(sh, []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_KEY_GEN, nil)}, []*p11.Attribute{
		p11.NewAttribute(p11.CKA_TOKEN, false), p11.NewAttribute(p11.CKA_VALUE_LEN, 32), p11.NewAttribute(p11.CKA_WRAP, true),
	})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := lib.WrapKey(sh, []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_KEY_WRAP_PAD, nil)}, wk, kek); err == nil {
		t.Fatalf("C_WrapKey exported the KEK (%d bytes)", len(out))
	}
	// Nor can the KEK be made extractable afterwards.
	if err := lib.SetAttributeValue(sh, kek, []*p11.Attribute{p11.NewAttribute(p11.CKA_EXTRACTABLE, true)}); err == nil {
		t.Fatal("CKA_EXTRACTABLE could be set on the KEK")
	}
}

func TestSigners(t *testing.T) {
	h := newSoftHSM(t)
	p := h.open(t)
	ctx := context.Background()
	msg := []byte("checkpoint body")

	if _, err := p.CreateSigningKey(ctx, "ed", pkcs11.Ed25519); err != nil {
		t.Fatalf("CreateSigningKey Ed25519: %v", err)
	}
	ed, err := p.Signer(ctx, "ed")
	if err != nil {
		t.Fatal(err)
	}
	pub, ok := ed.Public().(ed25519.PublicKey)
	if !ok {
		t.Fatalf("Public() is %T", ed.Public())
	}
	sig, err := ed.Sign(rand.Reader, msg, crypto.Hash(0))
	if err != nil {
		t.Fatal(err)
	}
	if !ed25519.Verify(pub, msg, sig) {
		t.Fatal("Ed25519 signature does not verify")
	}
	sig[0] ^= 1
	if ed25519.Verify(pub, msg, sig) {
		t.Fatal("tampered Ed25519 signature verifies")
	}
	if _, err := ed.Sign(rand.Reader, msg, crypto.SHA512); err == nil {
		t.Fatal("Ed25519ph accepted")
	}
	// Ward's ledger takes the HSM's Ed25519 key as it takes the file's.
	if _, err := ledger.NewSigner("ward.test/ledger", ed); err != nil {
		t.Fatalf("ledger.NewSigner: %v", err)
	}

	// Ward's tokens are EdDSA JWS made through go-jose's opaque signer.
	jws, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: cryptosigner.Opaque(ed)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := jws.Sign(msg)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := obj.Verify(pub); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("EdDSA JWS signed in the HSM does not verify: %v", err)
	}

	if _, err := p.CreateSigningKey(ctx, "ec", pkcs11.ECDSAP256); err != nil {
		t.Fatalf("CreateSigningKey P-256: %v", err)
	}
	ec, err := p.Signer(ctx, "ec")
	if err != nil {
		t.Fatal(err)
	}
	epub, ok := ec.Public().(*ecdsa.PublicKey)
	if !ok {
		t.Fatalf("Public() is %T", ec.Public())
	}
	digest := sha256.Sum256(msg)
	esig, err := ec.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if !ecdsa.VerifyASN1(epub, digest[:], esig) {
		t.Fatal("ECDSA signature does not verify")
	}
	other := sha256.Sum256([]byte("another body"))
	if ecdsa.VerifyASN1(epub, other[:], esig) {
		t.Fatal("ECDSA signature verifies another digest")
	}
	if _, err := ec.Sign(rand.Reader, msg, crypto.SHA256); err == nil {
		t.Fatal("ECDSA signed a message that is not a SHA-256 digest")
	}

	// Creating again keeps the key.
	if created, err := p.CreateSigningKey(ctx, "ed", pkcs11.Ed25519); err != nil || created {
		t.Fatalf("second CreateSigningKey: created=%v, %v", created, err)
	}
	again, err := p.Signer(ctx, "ed")
	if err != nil || !pub.Equal(again.Public()) {
		t.Fatalf("the key changed: %v", err)
	}
	if _, err := p.Signer(ctx, "missing"); !errors.Is(err, keys.ErrUnavailable) {
		t.Fatalf("missing signing key: err = %v, want ErrUnavailable", err)
	}
	if s := fmt.Sprint(ed, p.String()); strings.Contains(s, testPIN) {
		t.Fatal("the PIN is printed")
	}
}

// TestUnavailableAndRecovery takes the HSM away under an open provider
// (the module is finalised and its token directory is gone) and brings it
// back: meanwhile every operation fails with ErrUnavailable and returns no
// key material, a keyring over it refuses data keys, and afterwards the
// same provider works again without being reopened.
func TestUnavailableAndRecovery(t *testing.T) {
	h := newSoftHSM(t)
	p := h.open(t)
	ctx := context.Background()
	if _, err := p.CreateSigningKey(ctx, "ed", pkcs11.Ed25519); err != nil {
		t.Fatal(err)
	}
	signer, err := p.Signer(ctx, "ed")
	if err != nil {
		t.Fatal(err)
	}
	dek := bytes.Repeat([]byte{9}, 32)
	w, id, err := p.Wrap(ctx, dek, []byte("patient-1"))
	if err != nil {
		t.Fatal(err)
	}
	store := new(keystest.MemKeyStore)
	kr, err := keys.NewKeyring(p, store, keys.Config{CacheSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kr.DataKey(ctx, "before"); err != nil {
		t.Fatal(err)
	}

	// The HSM goes away: the module is finalised under the provider and
	// the token's storage disappears.
	lib := p11.New(h.module)
	if lib == nil {
		t.Fatal("loading the module")
	}
	defer lib.Destroy()
	if err := lib.Finalize(); err != nil {
		t.Fatalf("finalising the module: %v", err)
	}
	gone := h.tokenDir + ".gone"
	if err := os.Rename(h.tokenDir, gone); err != nil {
		t.Fatal(err)
	}
	for i := range 2 { // the first call finds the break, the second reconnects and fails
		if out, err := p.Unwrap(ctx, w, id, []byte("patient-1")); !errors.Is(err, keys.ErrUnavailable) || out != nil {
			t.Fatalf("attempt %d: Unwrap = %d bytes, %v; want ErrUnavailable", i, len(out), err)
		}
	}
	if _, _, err := p.Wrap(ctx, dek, nil); !errors.Is(err, keys.ErrUnavailable) {
		t.Fatalf("Wrap: %v, want ErrUnavailable", err)
	}
	if err := p.Ping(ctx); !errors.Is(err, keys.ErrUnavailable) {
		t.Fatalf("Ping: %v, want ErrUnavailable", err)
	}
	if _, err := signer.Sign(rand.Reader, []byte("m"), crypto.Hash(0)); !errors.Is(err, keys.ErrUnavailable) {
		t.Fatalf("Sign: %v, want ErrUnavailable", err)
	}
	if dk, err := kr.DataKey(ctx, "during"); !errors.Is(err, keys.ErrUnavailable) || dk != nil {
		t.Fatalf("Keyring.DataKey: %v, want ErrUnavailable", err)
	}

	// The HSM returns: the same provider answers again.
	if err := os.Rename(gone, h.tokenDir); err != nil {
		t.Fatal(err)
	}
	got, err := p.Unwrap(ctx, w, id, []byte("patient-1"))
	if err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("Unwrap after recovery: %v", err)
	}
	if _, err := kr.DataKey(ctx, "during"); err != nil {
		t.Fatalf("Keyring.DataKey after recovery: %v", err)
	}
	sig, err := signer.Sign(rand.Reader, []byte("m"), crypto.Hash(0))
	if err != nil || !ed25519.Verify(signer.Public().(ed25519.PublicKey), []byte("m"), sig) {
		t.Fatalf("Sign after recovery: %v", err)
	}
}

// TestKeyRemoved: a KEK deleted from the token, or never created, is
// ErrUnavailable (503), not a reason to use another key.
func TestKeyRemoved(t *testing.T) {
	h := newSoftHSM(t)
	p := h.open(t)
	ctx := context.Background()
	w, id, err := p.Wrap(ctx, make([]byte, 32), nil)
	if err != nil {
		t.Fatal(err)
	}
	lib := p11.New(h.module)
	defer lib.Destroy()
	if err := lib.Initialize(); err != nil && !isCode(err, p11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		t.Fatal(err)
	}
	sh := userSession(t, lib)
	if err := lib.DestroyObject(sh, findOne(t, lib, sh, p11.CKO_SECRET_KEY, pkcs11.DefaultKEKLabel)); err != nil {
		t.Fatal(err)
	}
	lib.CloseSession(sh)
	if out, err := p.Unwrap(ctx, w, id, nil); !errors.Is(err, keys.ErrUnavailable) || out != nil {
		t.Fatalf("Unwrap with the KEK removed: %v, want ErrUnavailable", err)
	}
	if _, _, err := p.Wrap(ctx, make([]byte, 32), nil); !errors.Is(err, keys.ErrUnavailable) {
		t.Fatalf("Wrap with the KEK removed: %v, want ErrUnavailable", err)
	}
}

func TestOpenErrors(t *testing.T) {
	h := newSoftHSM(t)
	ctx := context.Background()
	cfg := h.config()
	cfg.TokenLabel = "no-such-token"
	if _, err := pkcs11.Open(ctx, cfg); !errors.Is(err, keys.ErrUnavailable) {
		t.Fatalf("missing token: %v", err)
	}
	cfg = h.config()
	cfg.PIN = []byte("wrong-pin")
	_, err := pkcs11.Open(ctx, cfg)
	if err == nil || strings.Contains(err.Error(), "wrong-pin") {
		t.Fatalf("wrong PIN: %v", err)
	}
	cfg = h.config()
	cfg.Module = "/nonexistent/libpkcs11.so"
	if _, err := pkcs11.Open(ctx, cfg); !errors.Is(err, keys.ErrUnavailable) {
		t.Fatalf("missing module: %v", err)
	}
	if s := fmt.Sprintf("%v %#v", h.config(), h.config()); strings.Contains(s, testPIN) {
		t.Fatalf("Config prints its PIN: %s", s)
	}
}

func userSession(t testing.TB, lib *p11.Ctx) p11.SessionHandle {
	t.Helper()
	slots, err := lib.GetSlotList(true)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range slots {
		ti, err := lib.GetTokenInfo(s)
		if err != nil || strings.TrimRight(ti.Label, " ") != testToken {
			continue
		}
		sh, err := lib.OpenSession(s, p11.CKF_SERIAL_SESSION|p11.CKF_RW_SESSION)
		if err != nil {
			t.Fatal(err)
		}
		if err := lib.Login(sh, p11.CKU_USER, testPIN); err != nil && !isCode(err, p11.CKR_USER_ALREADY_LOGGED_IN) {
			t.Fatal(err)
		}
		return sh
	}
	t.Fatal("token not found")
	return 0
}

func findOne(t testing.TB, lib *p11.Ctx, sh p11.SessionHandle, class uint, label string) p11.ObjectHandle {
	t.Helper()
	if err := lib.FindObjectsInit(sh, []*p11.Attribute{p11.NewAttribute(p11.CKA_CLASS, class), p11.NewAttribute(p11.CKA_LABEL, label)}); err != nil {
		t.Fatal(err)
	}
	hs, _, err := lib.FindObjects(sh, 2)
	lib.FindObjectsFinal(sh)
	if err != nil || len(hs) != 1 {
		t.Fatalf("finding %q: %d objects, %v", label, len(hs), err)
	}
	return hs[0]
}

func isCode(err error, code uint) bool {
	var e p11.Error
	return errors.As(err, &e) && uint(e) == code
}
