package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/esign"
)

// TestESignKeyRotate: ward keys rotate --kind esign makes a new
// e-signature key current while the server runs; ward esign key lists
// every key with its id, the earlier one still (retired, verifying), and
// --json prints a verifier's key file that ward esign verify reads with
// both keys. (Signing before and after a rotation, verified online and
// offline, is internal/api's TestESignKeyRotation.)
func TestESignKeyRotate(t *testing.T) {
	dir := t.TempDir()
	startServe(t, "--dev", "--data", dir)
	dial(t, dir) // the server has signed a checkpoint: the ledger has its name
	trust := func() (esign.Keys, string) {
		t.Helper()
		code, stdout, stderr := ward(t, "esign", "key", "--json", "--data", dir)
		if code != 0 {
			t.Fatalf("esign key --json: exit %d: %s", code, stderr)
		}
		ks, _, err := esign.ParseTrust([]byte(stdout))
		if err != nil {
			t.Fatalf("esign key --json does not parse: %v\n%s", err, stdout)
		}
		return ks, stdout
	}
	before, _ := trust()
	if len(before) != 1 {
		t.Fatalf("a new key file lists %d e-signature keys", len(before))
	}
	code, stdout, stderr := ward(t, "keys", "rotate", "--kind", "esign", "--data", dir)
	if code != 0 || !strings.Contains(stdout, "esign-2") {
		t.Fatalf("keys rotate --kind esign: exit %d: %s %s", code, stdout, stderr)
	}
	after, raw := trust()
	if len(after) != 2 {
		t.Fatalf("after rotation esign key lists %d keys, want 2", len(after))
	}
	for kid := range before {
		if _, ok := after[kid]; !ok {
			t.Fatal("the rotation dropped the earlier e-signature key")
		}
	}
	code, stdout, stderr = ward(t, "esign", "key", "--data", dir)
	if code != 0 || !strings.Contains(stdout, "esign-1") || !strings.Contains(stdout, "esign-2") || !strings.Contains(stdout, "retired") {
		t.Fatalf("esign key: exit %d: %s %s", code, stdout, stderr)
	}
	for kid := range after {
		if !strings.Contains(stdout, kid) {
			t.Errorf("esign key does not show key id %s", kid)
		}
	}
	for _, row := range status(t, dir).Keys {
		if row.Kind == "esign" && (row.ID != "esign-2" || row.Generations != 2) {
			t.Errorf("keys status after the rotation: %+v", row)
		}
	}
	// The verifier's key file is what ward esign verify reads; a record
	// that is not one is refused.
	kp := filepath.Join(dir, "trust.json")
	bad := filepath.Join(dir, "record.json")
	if err := os.WriteFile(kp, []byte(raw), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte(`{"format":"something else"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := ward(t, "esign", "verify", "--keys", kp, bad); code == 0 || !strings.Contains(stderr, "record") {
		t.Fatalf("esign verify of a non-record: exit %d: %s", code, stderr)
	}
}
