//go:build pkcs11

package pkcs11_test

import (
	"context"
	"testing"

	"github.com/wardhealth/ward/internal/keys/pkcs11"
	"github.com/wardhealth/ward/internal/keys/pkcs11/pkcs11test"
)

const (
	testToken = "ward"
	testPIN   = "1234-ward-test"
)

// softHSM is a SoftHSM2 token made for one test in its own directory.
type softHSM struct {
	*pkcs11test.Token
	module   string
	tokenDir string
}

func newSoftHSM(t testing.TB) *softHSM {
	t.Helper()
	tok := pkcs11test.NewToken(t)
	if tok.Label != testToken || tok.PIN != testPIN {
		t.Fatal("pkcs11test changed its token label or PIN")
	}
	return &softHSM{Token: tok, module: tok.Module, tokenDir: tok.Dir}
}

func (h *softHSM) config() pkcs11.Config {
	return pkcs11.Config{Module: h.module, TokenLabel: testToken, PIN: []byte(testPIN)}
}

// open creates the default KEK and opens a provider on it, closed at the
// end of the test.
func (h *softHSM) open(t testing.TB) *pkcs11.Provider {
	t.Helper()
	ctx := context.Background()
	p, err := pkcs11.Open(ctx, h.config())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	if _, err := p.CreateKEK(ctx, pkcs11.DefaultKEKLabel); err != nil {
		t.Fatalf("CreateKEK: %v", err)
	}
	return p
}
