//go:build !pkcs11

package pkcs11_test

import (
	"context"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/keys/pkcs11"
)

// TestStubSaysHowToBuild: the default, static build has no PKCS#11; Open
// fails and says how to build a ward that has it.
func TestStubSaysHowToBuild(t *testing.T) {
	_, err := pkcs11.Open(context.Background(), pkcs11.Config{Module: "/lib/x.so", TokenLabel: "ward", PIN: []byte("1")})
	if err == nil || !strings.Contains(err.Error(), "-tags pkcs11") {
		t.Fatalf("Open in the default build: %v", err)
	}
	if _, err := pkcs11.Open(context.Background(), pkcs11.Config{}); err == nil || strings.Contains(err.Error(), "-tags") {
		t.Fatalf("Open with no configuration: %v; want the configuration error first", err)
	}
}
