//go:build pkcs11

package pkcs11_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	p11 "github.com/miekg/pkcs11"

	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/keys/keystest"
)

func newKeyFile(t testing.TB) *keys.LocalFile {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keys.json")
	if err := keys.CreateLocalFile(path, keys.LocalParams{}, rand.Reader); err != nil {
		t.Fatal(err)
	}
	kf, err := keys.OpenLocalFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return kf
}

// TestMoveFromKeyFile is the rotation from the key file to the HSM (D5):
// every patient's data sealed under file-wrapped data keys is still
// readable after Rewrap through keys.Moving, every data key is then
// wrapped by the HSM, the file's KEK is no longer in use and can be
// retired, and a keyring over the HSM alone reads everything.
func TestMoveFromKeyFile(t *testing.T) {
	h := newSoftHSM(t)
	hsm := h.open(t)
	kf := newKeyFile(t)
	ctx := context.Background()
	store := new(keystest.MemKeyStore)

	const patients = 20
	type sealed struct {
		aad  keys.AAD
		body []byte
		want []byte
	}
	var bodies []sealed
	before, err := keys.NewKeyring(kf, store, keys.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range patients {
		comp := fmt.Sprintf("patient-%02d", i)
		dk, err := before.DataKey(ctx, comp)
		if err != nil {
			t.Fatal(err)
		}
		aad := keys.AAD{Type: "Observation", ID: fmt.Sprint("obs-", i), Version: 1, Compartment: comp}
		want := []byte(fmt.Sprintf(`{"resourceType":"Observation","id":"obs-%d"}`, i))
		body, err := dk.Seal(aad, want)
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, sealed{aad, body, want})
	}
	fileKEK := kf.CurrentKEK()

	moving, err := keys.Moving(hsm, kf)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := keys.NewKeyring(moving, store, keys.Config{Register: kf})
	if err != nil {
		t.Fatal(err)
	}
	n, err := kr.Rewrap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != patients {
		t.Fatalf("rewrapped %d data keys, want %d", n, patients)
	}
	inUse, err := kr.KEKsInUse(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(inUse) != 1 || !inUse[hsm.CurrentKEK()] || inUse[fileKEK] {
		t.Fatalf("KEKs in use after the move: %v; want only %s", inUse, hsm.CurrentKEK())
	}
	err = store.ListKeys(ctx, func(wk keys.WrappedKey) error {
		if !hsm.OwnsKEK(wk.KEKID) {
			return fmt.Errorf("%s still wrapped by %s", wk.Compartment, wk.KEKID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// Only the HSM now: every body opens.
	after, err := keys.NewKeyring(hsm, store, keys.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bodies {
		dk, err := after.DataKey(ctx, b.aad.Compartment)
		if err != nil {
			t.Fatal(err)
		}
		got, err := dk.Open(b.aad, b.body)
		if err != nil || !bytes.Equal(got, b.want) {
			t.Fatalf("%s: body does not open after the move: %v", b.aad.Compartment, err)
		}
	}
	// A second Rewrap has nothing left to do.
	if n, err := kr.Rewrap(ctx); err != nil || n != 0 {
		t.Fatalf("second Rewrap: %d, %v", n, err)
	}
}

// TestMovingNeverFallsBack: while the HSM is away, the moving provider
// neither wraps new keys under the key file nor hands HSM-wrapped keys
// to it; keys still wrapped by the file stay readable from it.
func TestMovingNeverFallsBack(t *testing.T) {
	h := newSoftHSM(t)
	hsm := h.open(t)
	kf := newKeyFile(t)
	ctx := context.Background()
	m, err := keys.Moving(hsm, kf)
	if err != nil {
		t.Fatal(err)
	}
	fw, fid, err := kf.Wrap(ctx, bytes.Repeat([]byte{1}, 32), nil)
	if err != nil {
		t.Fatal(err)
	}
	hw, hid, err := m.Wrap(ctx, bytes.Repeat([]byte{2}, 32), nil)
	if err != nil || hid != hsm.CurrentKEK() {
		t.Fatalf("Wrap: %s, %v", hid, err)
	}
	lib := p11.New(h.module)
	defer lib.Destroy()
	lib.Finalize()
	if err := os.Rename(h.tokenDir, h.tokenDir+".gone"); err != nil {
		t.Fatal(err)
	}
	if w, id, err := m.Wrap(ctx, bytes.Repeat([]byte{3}, 32), nil); !errors.Is(err, keys.ErrUnavailable) || w != nil || id != "" {
		t.Fatalf("Wrap with the HSM away: %q, %v; want ErrUnavailable", id, err)
	}
	if out, err := m.Unwrap(ctx, hw, hid, nil); !errors.Is(err, keys.ErrUnavailable) || out != nil {
		t.Fatalf("Unwrap of an HSM key with the HSM away: %v; want ErrUnavailable", err)
	}
	if out, err := m.Unwrap(ctx, fw, fid, nil); err != nil || !bytes.Equal(out, bytes.Repeat([]byte{1}, 32)) {
		t.Fatalf("Unwrap of a key the file still wraps: %v", err)
	}
}
