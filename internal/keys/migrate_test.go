package keys_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/keys/keystest"
)

// downOwner is a KEKOwner whose ids start with "hsm." and which is down:
// every wrap and unwrap fails with ErrUnavailable.
type downOwner struct{}

func (downOwner) Wrap(context.Context, []byte, []byte) ([]byte, string, error) {
	return nil, "", keys.ErrUnavailable
}
func (downOwner) Unwrap(context.Context, []byte, string, []byte) ([]byte, error) {
	return nil, keys.ErrUnavailable
}
func (downOwner) CurrentKEK() string     { return "hsm.k1" }
func (downOwner) OwnsKEK(id string) bool { return strings.HasPrefix(id, "hsm.") }

// TestMovingRoutesByKEKID: the moving provider unwraps the old provider's
// keys with the old provider, and never lets it wrap or unwrap what the
// new one owns, even while the new one is down (D4).
func TestMovingRoutesByKEKID(t *testing.T) {
	kf, _ := newLocal(t, nil)
	ctx := context.Background()
	m, err := keys.Moving(downOwner{}, kf)
	if err != nil {
		t.Fatal(err)
	}
	if m.CurrentKEK() != "hsm.k1" {
		t.Fatalf("CurrentKEK = %q", m.CurrentKEK())
	}
	dek := bytes.Repeat([]byte{5}, 32)
	w, id, err := kf.Wrap(ctx, dek, []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := m.Unwrap(ctx, w, id, []byte("a")); err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("old provider's key: %v", err)
	}
	if w, id, err := m.Wrap(ctx, dek, []byte("a")); !errors.Is(err, keys.ErrUnavailable) || w != nil || id != "" {
		t.Fatalf("Wrap with the new provider down: %q, %v; want ErrUnavailable, no fallback", id, err)
	}
	if _, err := m.Unwrap(ctx, w, "hsm.k1", []byte("a")); !errors.Is(err, keys.ErrUnavailable) {
		t.Fatalf("Unwrap of the new provider's key: %v; want ErrUnavailable", err)
	}
	kr := newKeyring(t, m, new(keystest.MemKeyStore), keys.Config{Register: kf})
	if _, err := kr.DataKey(ctx, "p1"); !errors.Is(err, keys.ErrUnavailable) {
		t.Fatalf("new data key with the new provider down: %v", err)
	}
	if _, err := keys.Moving(nil, kf); err == nil {
		t.Fatal("Moving without a new provider")
	}
}
