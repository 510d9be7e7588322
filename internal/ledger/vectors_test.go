package ledger

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

var updateVectors = flag.Bool("update-vectors", false, "rewrite the frozen stored-format vectors (only when a format changes on purpose, with a migration)")

// frozenEntries are ledger entries as stored (version 1 with one patient,
// version 2 with several), their leaf hashes, the root of the tree they
// make and a checkpoint signed over it: a change to the encoding, the
// hashing or the note format fails TestFrozenLedgerVectors instead of
// silently making every stored ledger fail verification.
type frozenEntries struct {
	Entries    []string `json:"entries"`
	LeafHashes []string `json:"leaf_hashes"`
	Root       string   `json:"root"`
	Checkpoint string   `json:"checkpoint"`
}

const frozenLedgerFile = "testdata/frozen-ledger.json"

// frozenSeed is the test-only Ed25519 seed of the checkpoint signer.
var frozenSeed = bytes.Repeat([]byte{0x5a}, ed25519.SeedSize)

func frozenInputs() []Entry {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 678901000, time.UTC)
	one := Entry{Time: t0, Actor: "user:01J9ZX7N8P9Q0R1S2T3V4W5X6Y", Client: "app-1", Source: "192.0.2.10",
		Action: "read", ResourceType: "Observation", ResourceID: "01J9ZX6B7C8D9E0F1G2H3J4K5M", Version: "3",
		Patient: "01J9ZX5Q7R8S9T0V1W2X3Y4Z5A", Outcome: "success", Purpose: "TREAT", RequestID: "r-1"}
	many := Entry{Time: t0.Add(time.Second), Actor: "svc-1", Client: "svc-1", Source: "192.0.2.11",
		Action: "search", ResourceType: "Observation", Outcome: "success", RequestID: "r-2",
		Query: []string{"code", "patient"}, Detail: "total=2"}
	many.SetPatients([]string{"01J9ZX5Q7R8S9T0V1W2X3Y4Z5A", "01J9ZX8A9B0C1D2E3F4G5H6J7K"})
	return []Entry{one, many}
}

func TestFrozenLedgerVectors(t *testing.T) {
	var got frozenEntries
	var hashes []tlog.Hash
	for _, e := range frozenInputs() {
		enc, err := e.Encode()
		if err != nil {
			t.Fatal(err)
		}
		h := tlog.RecordHash(enc)
		hashes = append(hashes, h)
		got.Entries = append(got.Entries, string(enc))
		got.LeafHashes = append(got.LeafHashes, hex.EncodeToString(h[:]))
	}
	root := tlog.NodeHash(hashes[0], hashes[1])
	got.Root = hex.EncodeToString(root[:])
	signer, err := NewSigner("ward.example/ledger", ed25519.NewKeyFromSeed(frozenSeed))
	if err != nil {
		t.Fatal(err)
	}
	cp, err := SignCheckpoint(Checkpoint{Origin: "ward.example/ledger", Size: 2, Root: root}, signer)
	if err != nil {
		t.Fatal(err)
	}
	got.Checkpoint = string(cp)
	if *updateVectors {
		out, err := json.MarshalIndent(got, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(frozenLedgerFile, append(out, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(frozenLedgerFile)
	if err != nil {
		t.Fatalf("%v (create with -update-vectors)", err)
	}
	var want frozenEntries
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	for i := range want.Entries {
		if i >= len(got.Entries) || got.Entries[i] != want.Entries[i] || got.LeafHashes[i] != want.LeafHashes[i] {
			t.Errorf("entry %d is encoded or hashed differently from its frozen form:\n got %s\nwant %s", i, got.Entries[i], want.Entries[i])
		}
	}
	if got.Root != want.Root {
		t.Errorf("root %s, frozen %s", got.Root, want.Root)
	}
	// The frozen checkpoint still opens with the verifier, and says what
	// it said.
	c, err := OpenCheckpoint([]byte(want.Checkpoint), "ward.example/ledger", note.VerifierList(signer.Verifier()))
	if err != nil {
		t.Fatalf("the frozen checkpoint does not verify: %v", err)
	}
	if c.Size != 2 || hex.EncodeToString(c.Root[:]) != want.Root {
		t.Errorf("the frozen checkpoint says size %d root %x", c.Size, c.Root)
	}
	if got.Checkpoint != want.Checkpoint {
		t.Error("a checkpoint signed now differs from the frozen one")
	}
}
