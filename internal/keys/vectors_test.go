package keys

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var updateVectors = flag.Bool("update-vectors", false, "rewrite the frozen stored-format vectors (only when a format changes on purpose, with a migration)")

// vectors are stored formats frozen in testdata: a key file sealed with a
// passphrase, a data key wrapped by it, a body sealed by that data key
// with its associated data, blind index values and a paging MAC. A
// refactor that would leave data already on disk unreadable fails
// TestFrozenVectors.
type vectors struct {
	Passphrase  string      `json:"passphrase"`
	Compartment string      `json:"compartment"`
	KEKID       string      `json:"kek_id"`
	WrappedDEK  string      `json:"wrapped_dek"`
	DEK         string      `json:"dek"`
	AAD         AAD         `json:"aad"`
	Sealed      string      `json:"sealed"`
	Plaintext   string      `json:"plaintext"`
	Blind       []blindCase `json:"blind"`
	MACMessage  string      `json:"mac_message"`
	MAC         string      `json:"mac"`
}

type blindCase struct {
	Type, Param, Value, Sum string
}

const (
	vectorKeyFile = "testdata/frozen-keys.json"
	vectorFile    = "testdata/frozen-vectors.json"
)

func TestFrozenVectors(t *testing.T) {
	ctx := context.Background()
	if *updateVectors {
		writeVectors(t)
	}
	raw, err := os.ReadFile(vectorFile)
	if err != nil {
		t.Fatalf("%v (create with -update-vectors)", err)
	}
	var v vectors
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	// A checkout does not keep the key file's 0600 mode, which
	// OpenLocalFile insists on: open a private copy.
	keyData, err := os.ReadFile(vectorKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	keyCopy := filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(keyCopy, keyData, 0o600); err != nil {
		t.Fatal(err)
	}
	kf, err := OpenLocalFile(keyCopy, []byte(v.Passphrase))
	if err != nil {
		t.Fatalf("the frozen key file does not open: %v", err)
	}
	dek, err := kf.Unwrap(ctx, unhex(t, v.WrappedDEK), v.KEKID, wrapAAD(v.Compartment))
	if err != nil {
		t.Fatalf("the frozen wrapped data key does not unwrap: %v", err)
	}
	if !bytes.Equal(dek, unhex(t, v.DEK)) {
		t.Fatal("the frozen wrapped data key unwraps to another key")
	}
	dk, err := newDataKey(v.Compartment, dek, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := dk.Open(v.AAD, unhex(t, v.Sealed))
	if err != nil || string(pt) != v.Plaintext {
		t.Fatalf("the frozen sealed body does not open to its plaintext: %q, %v", pt, err)
	}
	moved := v.AAD
	moved.Version++
	if _, err := dk.Open(moved, unhex(t, v.Sealed)); err == nil {
		t.Fatal("the frozen sealed body opens under another version's associated data")
	}
	bi := NewBlindIndex(kf.IndexKey())
	for _, c := range v.Blind {
		if got := bi.Sum(c.Type, c.Param, c.Value); got != c.Sum {
			t.Errorf("blind index of %s.%s %q: %s, frozen %s", c.Type, c.Param, c.Value, got, c.Sum)
		}
	}
	if !kf.PageKey().Verify([]byte(v.MACMessage), unhex(t, v.MAC)) {
		t.Error("the frozen paging MAC does not verify")
	}
}

func writeVectors(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	v := vectors{
		Passphrase:  "frozen test vector passphrase",
		Compartment: "01J9ZX5Q7R8S9T0V1W2X3Y4Z5A",
		AAD:         AAD{Type: "Observation", ID: "01J9ZX6B7C8D9E0F1G2H3J4K5M", Version: 3, Compartment: "01J9ZX5Q7R8S9T0V1W2X3Y4Z5A"},
		Plaintext:   `{"resourceType":"Observation","id":"01J9ZX6B7C8D9E0F1G2H3J4K5M","status":"final"}`,
		MACMessage:  "Observation?code=8302-2&_count=10|offset=10|client=c1|exp=1767225600",
	}
	if err := os.MkdirAll(filepath.Dir(vectorKeyFile), 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.Remove(vectorKeyFile)
	if err := CreateLocalFile(vectorKeyFile, LocalParams{Passphrase: []byte(v.Passphrase), ArgonTime: 1, ArgonMemoryKiB: 8 * 1024, ArgonThreads: 1}, rand.Reader); err != nil {
		t.Fatal(err)
	}
	kf, err := OpenLocalFile(vectorKeyFile, []byte(v.Passphrase))
	if err != nil {
		t.Fatal(err)
	}
	dek := make([]byte, dekSize)
	if _, err := rand.Read(dek); err != nil {
		t.Fatal(err)
	}
	wrapped, kekID, err := kf.Wrap(ctx, dek, wrapAAD(v.Compartment))
	if err != nil {
		t.Fatal(err)
	}
	v.KEKID, v.WrappedDEK, v.DEK = kekID, hex.EncodeToString(wrapped), hex.EncodeToString(dek)
	dk, err := newDataKey(v.Compartment, dek, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := dk.Seal(v.AAD, []byte(v.Plaintext))
	if err != nil {
		t.Fatal(err)
	}
	v.Sealed = hex.EncodeToString(sealed)
	bi := NewBlindIndex(kf.IndexKey())
	for _, c := range []blindCase{
		{Type: "Patient", Param: "family", Value: "w:smith"},
		{Type: "Patient", Param: "birthdate", Value: "d:1970-01-01"},
		{Type: "Observation", Param: "value-string", Value: "f:chest pain"},
		{Type: "Observation", Param: "_tag", Value: "s:urn:x|vip"},
	} {
		c.Sum = bi.Sum(c.Type, c.Param, c.Value)
		v.Blind = append(v.Blind, c)
	}
	v.MAC = hex.EncodeToString(kf.PageKey().Sum([]byte(v.MACMessage)))
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(vectorFile, append(out, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
