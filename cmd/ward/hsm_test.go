//go:build pkcs11

package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/keys/pkcs11"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/store/sqlite"
)

// softHSMToken makes a SoftHSM2 token "ward" with PIN file and returns the
// flags that name it. It skips visibly without SoftHSM2, and fails with
// WARD_REQUIRE_SOFTHSM=1.
func softHSMToken(t *testing.T) []string {
	t.Helper()
	module := "/usr/lib/softhsm/libsofthsm2.so"
	util, err := exec.LookPath("softhsm2-util")
	if _, serr := os.Stat(module); err != nil || serr != nil {
		if os.Getenv("WARD_REQUIRE_SOFTHSM") == "1" {
			t.Fatal("WARD_REQUIRE_SOFTHSM=1 but SoftHSM2 is not installed")
		}
		t.Skip("SoftHSM2 is not installed (apt-get install softhsm2)")
	}
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	os.Mkdir(tokens, 0o700)
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+tokens+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	if out, err := exec.Command(util, "--init-token", "--free", "--label", "ward", "--pin", "5678-cli", "--so-pin", "so-5678-cli").CombinedOutput(); err != nil {
		t.Fatalf("softhsm2-util: %v\n%s", err, out)
	}
	pin := filepath.Join(dir, "pin")
	if err := os.WriteFile(pin, []byte("5678-cli\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"--key-provider", "pkcs11", "--pkcs11-module", module, "--pkcs11-token", "ward", "--pkcs11-pin-file", pin}
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
