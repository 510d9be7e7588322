package keys_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/keys/keystest"
)

// TestEraseRegister is the key provider's half of catalogue D6: once a
// compartment is erased, no keyring hands out its data key, whether the
// key is cached, still stored (a database restored from before the
// erasure), asked for by another process sharing the key file, or asked
// for anew; other compartments are untouched, and the register survives
// reopening the file.
func TestEraseRegister(t *testing.T) {
	ctx := context.Background()
	f, path := newLocal(t, []byte("pass"))
	ks := &keystest.MemKeyStore{}
	k := newKeyring(t, f, ks, keys.Config{})
	dataKey(t, k, "p1")
	dataKey(t, k, "p2")
	other, err := keys.OpenLocalFile(path, []byte("pass"))
	if err != nil {
		t.Fatal(err)
	}
	k2 := newKeyring(t, other, ks, keys.Config{})
	dataKey(t, k2, "p1") // cached in the other process's keyring too

	if err := k.Erase(ctx, "p1"); err != nil {
		t.Fatal(err)
	}
	for name, kr := range map[string]*keys.Keyring{"this process": k, "another process": k2} {
		if _, err := kr.DataKey(ctx, "p1"); !errors.Is(err, keys.ErrErased) {
			t.Errorf("%s: DataKey of an erased compartment: %v, want ErrErased", name, err)
		}
		if erased, err := kr.Erased("p1"); err != nil || !erased {
			t.Errorf("%s: Erased = %v, %v", name, erased, err)
		}
		dataKey(t, kr, "p2")
		dataKey(t, kr, "")
	}
	// The wrapped key is still in the store (as in a restored copy): it
	// does not open through any keyring on this key file.
	reopened, err := keys.OpenLocalFile(path, []byte("pass"))
	if err != nil {
		t.Fatal(err)
	}
	k3 := newKeyring(t, reopened, ks, keys.Config{})
	if _, err := k3.DataKey(ctx, "p1"); !errors.Is(err, keys.ErrErased) {
		t.Errorf("after reopening: %v, want ErrErased", err)
	}
	// Nor is a new key made for it when the stored one is gone.
	fresh := newKeyring(t, reopened, &keystest.MemKeyStore{}, keys.Config{})
	if _, err := fresh.DataKey(ctx, "p1"); !errors.Is(err, keys.ErrErased) {
		t.Errorf("a new key for an erased compartment: %v, want ErrErased", err)
	}
	list, err := reopened.Erasures()
	if at, ok := list["p1"]; err != nil || len(list) != 1 || !ok || time.Since(at) > time.Minute {
		t.Errorf("register: %v, %v", list, err)
	}
	// Erasing again keeps the first time; the shared key cannot be erased.
	if err := k.Erase(ctx, "p1"); err != nil {
		t.Error(err)
	}
	if err := k.Erase(ctx, ""); err == nil {
		t.Error("the shared compartment was erased")
	}
}
