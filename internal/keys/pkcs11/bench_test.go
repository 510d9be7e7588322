//go:build pkcs11

package pkcs11_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"testing"

	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/keys/pkcs11"
)

// The cost of a wrap, an unwrap and a signature in SoftHSM2 against the
// key file, in one run:
//
//	go test -tags pkcs11 -run '^$' -bench . ./internal/keys/pkcs11/
func BenchmarkKeyProviders(b *testing.B) {
	h := newSoftHSM(b)
	hsm := h.open(b)
	ctx := context.Background()
	if _, err := hsm.CreateSigningKey(ctx, "bench", pkcs11.Ed25519); err != nil {
		b.Fatal(err)
	}
	hsmSigner, err := hsm.Signer(ctx, "bench")
	if err != nil {
		b.Fatal(err)
	}
	kf := newKeyFile(b)
	for _, p := range []struct {
		name   string
		kek    keys.KEKProvider
		signer crypto.Signer
	}{
		{"file", kf, kf.TokenSigner()},
		{"softhsm2", hsm, hsmSigner},
	} {
		dek := make([]byte, 32)
		aad := []byte("patient-compartment")
		b.Run("wrap/"+p.name, func(b *testing.B) {
			for b.Loop() {
				if _, _, err := p.kek.Wrap(ctx, dek, aad); err != nil {
					b.Fatal(err)
				}
			}
		})
		w, id, err := p.kek.Wrap(ctx, dek, aad)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("unwrap/"+p.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := p.kek.Unwrap(ctx, w, id, aad); err != nil {
					b.Fatal(err)
				}
			}
		})
		msg := make([]byte, 200) // about a checkpoint or a token's signing input
		b.Run("sign-ed25519/"+p.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := p.signer.Sign(rand.Reader, msg, crypto.Hash(0)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
