//go:build pkcs11

package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/keys/pkcs11"
	"github.com/wardhealth/ward/internal/keys/pkcs11/pkcs11test"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/store/sqlite"
)

// softHSMToken makes a SoftHSM2 token and returns the flags that name it.
func softHSMToken(t *testing.T) []string {
	tok := pkcs11test.NewToken(t)
	return []string{"--key-provider", "pkcs11", "--pkcs11-module", tok.Module, "--pkcs11-token", tok.Label, "--pkcs11-pin-file", tok.PINFile}
}

// TestKeysMoveToHSM is the documented move from the key file to an HSM,
// through the CLI: ward keys init --key-provider pkcs11 on an existing data
// directory, then ward keys rotate --key-provider pkcs11. Every data key
// is then wrapped by the HSM, every patient's body still opens, the key
// file's KEK wraps nothing, and without the HSM nothing opens.
func TestKeysMoveToHSM(t *testing.T) {
	hsmFlags := softHSMToken(t)
	data := t.TempDir()
	ctx := context.Background()
	if code, _, stderr := ward(t, "keys", "init", "--data", data); code != 0 {
		t.Fatalf("keys init: exit %d: %s", code, stderr)
	}
	kf, err := keys.OpenLocalFile(filepath.Join(data, "keys.json"), nil)
	if err != nil {
		t.Fatal(err)
	}
	fileKEK := kf.CurrentKEK()
	db, err := sqlite.Open(ctx, filepath.Join(data, "ward.db"))
	if err != nil {
		t.Fatal(err)
	}
	kr, err := keys.NewKeyring(kf, records.KeyStore(db), keys.Config{})
	if err != nil {
		t.Fatal(err)
	}
	type body struct {
		aad          keys.AAD
		sealed, want []byte
	}
	var bodies []body
	for i := range 5 {
		aad := keys.AAD{Type: "Patient", ID: fmt.Sprint("p", i), Version: 1, Compartment: fmt.Sprint("p", i)}
		dk, err := kr.DataKey(ctx, aad.Compartment)
		if err != nil {
			t.Fatal(err)
		}
		want := []byte(fmt.Sprintf(`{"resourceType":"Patient","id":"p%d"}`, i))
		sealed, err := dk.Seal(aad, want)
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, body{aad, sealed, want})
	}
	db.Close()

	code, out, stderr := ward(t, append([]string{"keys", "init", "--data", data}, hsmFlags...)...)
	if code != 0 || !strings.Contains(out, "hsm."+pkcs11.DefaultKEKLabel) || strings.Contains(out, "created "+data) {
		t.Fatalf("keys init --key-provider pkcs11: exit %d:\n%s%s", code, out, stderr)
	}
	code, out, stderr = ward(t, append([]string{"keys", "rotate", "--data", data}, hsmFlags...)...)
	if code != 0 || !strings.Contains(out, "rewrapped data keys: 5") {
		t.Fatalf("keys rotate --key-provider pkcs11: exit %d:\n%s%s", code, out, stderr)
	}

	db, err = sqlite.Open(ctx, filepath.Join(data, "ward.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = records.KeyStore(db).ListKeys(ctx, func(wk keys.WrappedKey) error {
		if wk.KEKID != "hsm."+pkcs11.DefaultKEKLabel {
			return fmt.Errorf("%s is wrapped by %s", wk.Compartment, wk.KEKID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The key file alone opens nothing now.
	fileOnly, err := keys.NewKeyring(kf, records.KeyStore(db), keys.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fileOnly.DataKey(ctx, "p0"); err == nil {
		t.Fatalf("the key file still unwraps a data key after the move (its KEK %s)", fileKEK)
	}
	// The HSM opens every body.
	var st storage
	st.hsm = hsmFlagsFrom(t, hsmFlags)
	hkr, _, release, err := st.hsm.keyring(ctx, kf, db)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	for _, b := range bodies {
		dk, err := hkr.DataKey(ctx, b.aad.Compartment)
		if err != nil {
			t.Fatal(err)
		}
		got, err := dk.Open(b.aad, b.sealed)
		if err != nil || !bytes.Equal(got, b.want) {
			t.Fatalf("%s does not open after the move: %v", b.aad.ID, err)
		}
	}
}

func hsmFlagsFrom(t *testing.T, args []string) hsmFlags {
	t.Helper()
	var h hsmFlags
	fs := newFlagSet("test", "")
	h.register(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return h
}
