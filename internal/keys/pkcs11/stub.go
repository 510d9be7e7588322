//go:build !pkcs11

package pkcs11

import (
	"context"
	"crypto"
	"errors"
	"io"
)

// errNotBuilt is what every entry point of this build returns.
var errNotBuilt = errors.New("pkcs11: this ward was built without PKCS#11 support; build it with cgo and the tag: CGO_ENABLED=1 go build -tags pkcs11 ./cmd/ward")

// Provider is not available in this build: Open fails.
type Provider struct{}

// Open fails in this build, saying how to build with PKCS#11 (after
// checking cfg, so that a wrong configuration is found either way).
func Open(_ context.Context, cfg Config) (*Provider, error) {
	if _, err := cfg.withDefaults(); err != nil {
		return nil, err
	}
	return nil, errNotBuilt
}

// Wrap fails in this build.
func (*Provider) Wrap(context.Context, []byte, []byte) ([]byte, string, error) {
	return nil, "", errNotBuilt
}

// Unwrap fails in this build.
func (*Provider) Unwrap(context.Context, []byte, string, []byte) ([]byte, error) {
	return nil, errNotBuilt
}

// CurrentKEK names no key in this build.
func (*Provider) CurrentKEK() string { return "" }

// OwnsKEK reports whether kekID is an HSM key's id.
func (*Provider) OwnsKEK(kekID string) bool { return ownsKEK(kekID) }

// Signer fails in this build.
func (*Provider) Signer(context.Context, string) (crypto.Signer, error) { return nil, errNotBuilt }

// CreateKEK fails in this build.
func (*Provider) CreateKEK(context.Context, string) (bool, error) { return false, errNotBuilt }

// CreateSigningKey fails in this build.
func (*Provider) CreateSigningKey(context.Context, string, KeyType) (bool, error) {
	return false, errNotBuilt
}

// Ping fails in this build.
func (*Provider) Ping(context.Context) error { return errNotBuilt }

// Close does nothing in this build.
func (*Provider) Close() error { return nil }

var _ io.Closer = (*Provider)(nil)
