package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/wardhealth/ward/internal/esign"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/store/sqlite"
)

// ward serve gives a key file without an e-signature key one at start;
// ward esign key prints it with the ledger's verifier key; ward user
// signing grants (a printed name required) and withdraws the right, each
// in the ledger.
func TestESignKeyAndRight(t *testing.T) {
	dir := t.TempDir()
	srv := startServe(t, "--dev", "--data", dir)
	code, out, stderr := ward(t, "esign", "key", "--data", dir)
	if code != 0 {
		t.Fatalf("esign key: %d %s", code, stderr)
	}
	keysOut, ledgerKey, err := esign.ParseTrust([]byte(out))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	kf, err := keys.OpenLocalFile(filepath.Join(dir, "keys.json"), nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := kf.ESignSigner()
	if err != nil {
		t.Fatalf("ward serve left the key file without an e-signature key: %v", err)
	}
	if _, ok := keysOut[esign.KeyID(s.Public().(ed25519.PublicKey))]; !ok || len(keysOut) != 1 || ledgerKey == nil {
		t.Fatalf("esign key printed %v", out)
	}
	srv.stop()

	code, out, _ = ward(t, "user", "create", "--data", dir, "--username", "dr.sign", "--role", "practitioner")
	if code != 0 {
		t.Fatal(out)
	}
	id := strings.TrimSpace(strings.TrimPrefix(strings.Split(out, "\n")[0], "id:"))
	if code, _, stderr := ward(t, "user", "signing", "grant", "--data", dir, "--id", id); code == 0 || !strings.Contains(stderr, "printed name") {
		t.Fatalf("grant without a printed name: %d %s", code, stderr)
	}
	if code, out, stderr := ward(t, "user", "signing", "grant", "--data", dir, "--id", id, "--name", "Dr Zoë O'Brien"); code != 0 || !strings.Contains(out, "granted") {
		t.Fatalf("grant: %d %s %s", code, out, stderr)
	}
	if _, out, _ := ward(t, "user", "list", "--data", dir); !strings.Contains(out, "yes") {
		t.Fatalf("list does not show the right: %s", out)
	}
	if code, out, _ := ward(t, "user", "signing", "revoke", "--data", dir, "--id", id); code != 0 || !strings.Contains(out, "withdrawn") {
		t.Fatalf("revoke: %d %s", code, out)
	}
	db, err := sqlite.Open(t.Context(), filepath.Join(dir, "ward.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	u, err := db.User(t.Context(), id)
	if err != nil || u.Signing || u.DisplayName != "Dr Zoë O'Brien" {
		t.Fatalf("after revoke: %+v %v", u, err)
	}
	n, _ := db.LedgerSize(t.Context())
	rows, err := db.LedgerEntries(t.Context(), 0, n)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, r := range rows {
		e, _ := ledger.DecodeEntry(r.Entry)
		if strings.HasPrefix(e.Action, "user-signing-") && e.ResourceID == id {
			actions = append(actions, e.Action)
		}
	}
	if strings.Join(actions, ",") != "user-signing-grant,user-signing-revoke" {
		t.Fatalf("ledger entries of the right: %v", actions)
	}
}

// ward esign verify: exit 0 for an intact record, with each signature's
// manifestation; non-zero naming the failure for a tampered one, an
// unknown key, or a record without signatures; --json for scripts.
func TestESignVerifyCommand(t *testing.T) {
	dir := t.TempDir()
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32))
	ledgerSigner, err := ledger.NewSigner("ward.example/ledger", ed25519.NewKeyFromSeed(bytes.Repeat([]byte{4}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"resourceType":"Observation","id":"o1","meta":{"versionId":"1","lastUpdated":"2026-05-01T10:00:00.000Z"},"status":"final"}`)
	sum, _ := esign.ContentHash(body)
	env, st, err := esign.Sign(key, esign.Statement{Signer: "u1", Name: "Dr Zoë O'Brien", Meaning: "1.2.840.10065.1.12.1.1",
		Time: esign.FormatTime(time.Date(2026, 5, 1, 10, 0, 1, 0, time.UTC)), Target: "Observation/o1/_history/1", SHA256: sum, Methods: []string{"pwd", "otp"}})
	if err != nil {
		t.Fatal(err)
	}
	entry, err := ledger.Entry{Time: time.Unix(5, 0), Actor: "u1", Action: "sign", ResourceType: "Observation", ResourceID: "o1", Version: "1",
		Outcome: "success", Detail: "sig=" + esign.SignatureHash(env)}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	// A ledger of one entry: its leaf is the root.
	cp, err := ledger.SignCheckpoint(ledger.Checkpoint{Origin: "ward.example/ledger", Size: 1, Root: tlog.RecordHash(entry)}, ledgerSigner)
	if err != nil {
		t.Fatal(err)
	}
	sig := esign.Of(st, "Provenance/p1", env)
	sig.Ledger = &esign.Inclusion{Index: 0, Entry: entry}
	rec := esign.Record{Format: esign.RecordFormat, Resource: "Observation/o1", Checkpoint: string(cp),
		Versions: []esign.Version{{Version: 1, LastUpdated: "2026-05-01T10:00:00Z", Resource: body, Signatures: []esign.Signature{sig}}}}
	write := func(name string, v any) string {
		b, _ := json.Marshal(v)
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	trust := write("keys.json", esign.Trust{Format: esign.TrustFormat, ESign: []string{esign.FormatKey(key.Public().(ed25519.PublicKey))}, Ledger: ledgerSigner.VerifierKey()})
	good := write("record.json", rec)
	code, out, stderr := ward(t, "esign", "verify", good, "--key", trust)
	if code != 0 || !strings.Contains(out, "OK") || !strings.Contains(out, "Dr Zoë O'Brien") || !strings.Contains(out, "Author's Signature") || !strings.Contains(out, "UTC") {
		t.Fatalf("an intact record: %d\n%s%s", code, out, stderr)
	}
	code, out, _ = ward(t, "esign", "verify", good, "--key", trust, "--json")
	var js struct {
		OK       bool `json:"ok"`
		Failed   int  `json:"failed"`
		Findings []esign.Finding
	}
	if code != 0 || json.Unmarshal([]byte(out), &js) != nil || !js.OK || len(js.Findings) != 1 {
		t.Fatalf("--json: %d %s", code, out)
	}
	cpFile := filepath.Join(dir, "cp")
	if err := os.WriteFile(cpFile, cp, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, stderr := ward(t, "esign", "verify", good, "--key", trust, "--checkpoint", cpFile); code != 0 {
		t.Fatalf("with the trusted checkpoint: %d %s %s", code, out, stderr)
	}

	tampered := rec
	tampered.Versions = []esign.Version{rec.Versions[0]}
	tampered.Versions[0].Resource = bytes.Replace(body, []byte("final"), []byte("amended"), 1)
	if code, out, _ := ward(t, "esign", "verify", write("bad.json", tampered), "--key", trust); code == 0 || !strings.Contains(out, "FAIL") {
		t.Fatalf("a tampered record: %d %s", code, out)
	}
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{5}, 32))
	wrongKey := write("other.json", esign.Trust{Format: esign.TrustFormat, ESign: []string{esign.FormatKey(other.Public().(ed25519.PublicKey))}, Ledger: ledgerSigner.VerifierKey()})
	if code, _, _ := ward(t, "esign", "verify", good, "--key", wrongKey); code == 0 {
		t.Fatal("a record verified under another key")
	}
	empty := rec
	empty.Versions = []esign.Version{{Version: 1, Resource: body, Signatures: []esign.Signature{}}}
	if code, _, stderr := ward(t, "esign", "verify", write("empty.json", empty), "--key", trust); code == 0 || !strings.Contains(stderr, "no signature") {
		t.Fatalf("a record without signatures: %d %s", code, stderr)
	}
	if code, _, _ := ward(t, "esign", "verify", good); code == 0 {
		t.Fatal("verify without --key succeeded")
	}
}
