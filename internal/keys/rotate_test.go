package keys_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/keys"
)

// frozenV1 copies the frozen version 1 key file to a private path.
func frozenV1(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("testdata/frozen-keys.json")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const frozenPass = "frozen test vector passphrase"

func fileVersion(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var head struct{ Version int }
	if err := json.Unmarshal(data, &head); err != nil {
		t.Fatal(err)
	}
	return head.Version
}

// TestUpgradeV1KeyFile: a version 1 key file (testdata, sealed) opens,
// is rewritten as version 2 once, and keys exactly what it keyed: the
// same KEK, blind indexes (TestFrozenVectors), pseudonym root, token and
// ledger keys; every key has a creation time, marked estimated, and the
// backup key has a generation of its own.
func TestUpgradeV1KeyFile(t *testing.T) {
	path := frozenV1(t)
	if v := fileVersion(t, path); v != 1 {
		t.Fatalf("testdata key file is version %d, want 1", v)
	}
	f, err := keys.OpenLocalFile(path, []byte(frozenPass))
	if err != nil {
		t.Fatal(err)
	}
	if v := fileVersion(t, path); v != 2 {
		t.Fatalf("after open the file is version %d, want 2", v)
	}
	upgraded, _ := os.ReadFile(path)
	g, err := keys.OpenLocalFile(path, []byte(frozenPass))
	if err != nil {
		t.Fatal(err)
	}
	again, _ := os.ReadFile(path)
	if !bytes.Equal(upgraded, again) {
		t.Error("opening an upgraded file rewrote it")
	}
	if !f.IndexKey().Equal(g.IndexKey()) || f.CurrentKEK() != g.CurrentKEK() {
		t.Error("the upgraded file keys differently from the version 1 file")
	}
	tf, tg := f.TokenSigner().Public().(ed25519.PublicKey), g.TokenSigner().Public().(ed25519.PublicKey)
	lf, lg := f.LedgerSigner().Public().(ed25519.PublicKey), g.LedgerSigner().Public().(ed25519.PublicKey)
	if !tf.Equal(tg) || !lf.Equal(lg) || tf.Equal(lf) {
		t.Error("token and ledger keys changed across the upgrade, or are one key")
	}
	ages := g.Ages(time.Now(), nil, "")
	if len(ages) != 5 {
		t.Fatalf("ages of %d kinds, want kek, index, token, ledger, backup: %+v", len(ages), ages)
	}
	for _, a := range ages {
		if a.Created.IsZero() || a.ID == "" {
			t.Errorf("%s: no creation time or id", a.Kind)
		}
		if a.Kind != keys.KindBackup && !a.Estimated {
			t.Errorf("%s: a version 1 key's creation time is not marked estimated", a.Kind)
		}
	}
	// A version 1 file in memory only (a read-only directory) still opens.
	ro := frozenV1(t)
	if err := os.Chmod(filepath.Dir(ro), 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(filepath.Dir(ro), 0o700) })
	if os.Getuid() != 0 {
		if _, err := keys.OpenLocalFile(ro, []byte(frozenPass)); err != nil {
			t.Fatalf("a version 1 file in a read-only directory does not open: %v", err)
		}
		if v := fileVersion(t, ro); v != 1 {
			t.Errorf("read-only file became version %d", v)
		}
	}
}

// TestKeyAges: each kind reports its key in force, its age on the
// injected clock and whether it is over its maximum; a rotation resets
// the kind's age.
func TestKeyAges(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	path := filepath.Join(t.TempDir(), "keys.json")
	if err := keys.CreateLocalFile(path, keys.LocalParams{Now: t0}, nil); err != nil {
		t.Fatal(err)
	}
	f, err := keys.OpenLocalFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := t0.Add(400 * 24 * time.Hour)
	keys.SetClock(f, func() time.Time { return now })
	byKind := func(max keys.MaxAges) map[keys.Kind]keys.KeyAge {
		out := map[keys.Kind]keys.KeyAge{}
		for _, a := range f.Ages(now, max, "") {
			out[a.Kind] = a
		}
		return out
	}
	ages := byKind(keys.MaxAges{keys.KindLedger: 500 * 24 * time.Hour, keys.KindBackup: 0})
	for _, k := range []keys.Kind{keys.KindKEK, keys.KindIndex, keys.KindToken, keys.KindESign} {
		if a := ages[k]; a.Age != 400*24*time.Hour || !a.Over || a.MaxAge != keys.DefaultMaxAge {
			t.Errorf("%s: age %v max %v over %v; want 400 days, over the default", k, a.Age, a.MaxAge, a.Over)
		}
	}
	if ages[keys.KindLedger].Over || ages[keys.KindBackup].Over {
		t.Error("a key under its kind's maximum (or with none) is reported over it")
	}
	if _, err := f.RotateSigning(ctx, keys.KindToken, keys.SigningKey{}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	ages = byKind(nil)
	if a := ages[keys.KindToken]; a.Age != 0 || a.Over || a.ID != "token-2" || a.Generations != 2 {
		t.Errorf("token after rotation: %+v", a)
	}
	if a := ages[keys.KindKEK]; a.Age != 0 || a.Over {
		t.Errorf("kek after rotation: %+v", a)
	}
}

// TestRotateTokenKey: a token key rotation keeps the old public key, and
// drops its private key: the old generation signs nothing any more. A
// generation retired longer ago than forget is dropped at the next
// rotation. Another process sharing the file sees the rotation.
func TestRotateTokenKey(t *testing.T) {
	ctx := context.Background()
	f, path := newLocal(t, nil)
	now := time.Now()
	keys.SetClock(f, func() time.Time { return now })
	old := f.TokenSigner().Public().(ed25519.PublicKey)
	other, err := keys.OpenLocalFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := f.RotateSigning(ctx, keys.KindToken, keys.SigningKey{}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if f.Signer(keys.KindToken, "token-1") != nil {
		t.Error("the retired token key can still sign")
	}
	if err := other.Refresh(); err != nil {
		t.Fatal(err)
	}
	acc := other.TokenKeys(now, time.Hour)
	if len(acc) != 2 || !acc[0].Public.Equal(old) || acc[1].ID != g.ID {
		t.Fatalf("the other process accepts %+v", acc)
	}
	if got := other.TokenSigner().Public().(ed25519.PublicKey); got.Equal(old) || !got.Equal(g.Public) {
		t.Error("the other process does not sign with the new key")
	}
	if acc := other.TokenKeys(now.Add(time.Hour+time.Second), time.Hour); len(acc) != 1 {
		t.Errorf("after the keep time %d keys are accepted, want 1", len(acc))
	}
	now = now.Add(2 * time.Hour)
	if _, err := f.RotateSigning(ctx, keys.KindToken, keys.SigningKey{}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if gs := f.Generations(keys.KindToken); len(gs) != 2 || gs[0].ID != "token-2" {
		t.Errorf("after a second rotation, generations %+v; want token-2 and token-3", gs)
	}
	if _, err := f.RotateSigning(ctx, keys.KindLedger, keys.SigningKey{}, 0); err == nil {
		t.Error("the ledger key rotated without a recorded transition")
	}
}

// TestBackupKeyRotation: backups name their root in their header; after
// a backup key rotation, the old backup still opens, a new one is sealed
// under the new root, and a key file that lacks a backup's root refuses
// it as ErrBackup.
func TestBackupKeyRotation(t *testing.T) {
	ctx := context.Background()
	f, path := newLocal(t, nil)
	seal := func(plain []byte) []byte {
		var b bytes.Buffer
		w, _, err := f.NewBackupWriter(&b)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(plain)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	open := func(f *keys.LocalFile, b []byte) ([]byte, error) {
		r, _, err := f.NewBackupReader(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		return io.ReadAll(r)
	}
	first := seal([]byte("first backup"))
	if root, err := keys.BackupRoot(bytes.NewReader(first)); err != nil || root != "backup-1" {
		t.Fatalf("first backup's root %q, %v", root, err)
	}
	// A copy of the key file from before the rotation.
	before, _ := os.ReadFile(path)
	if _, err := f.RotateBackup(ctx); err != nil {
		t.Fatal(err)
	}
	second := seal([]byte("second backup"))
	if root, _ := keys.BackupRoot(bytes.NewReader(second)); root != "backup-2" {
		t.Fatalf("second backup's root %q, want backup-2", root)
	}
	for name, b := range map[string][]byte{"first": first, "second": second} {
		if _, err := open(f, b); err != nil {
			t.Errorf("%s backup does not open after the rotation: %v", name, err)
		}
	}
	oldPath := filepath.Join(t.TempDir(), "old.keys")
	os.WriteFile(oldPath, before, 0o600)
	old, err := keys.OpenLocalFile(oldPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := open(old, second); !errors.Is(err, keys.ErrBackup) {
		t.Errorf("a key file without the backup's root: %v, want ErrBackup", err)
	}
	// The index root rotating does not change the backup key: the
	// first backup's root is its own.
	if bytes.Contains(first, []byte("index")) {
		t.Error("a backup names an index key")
	}
}
