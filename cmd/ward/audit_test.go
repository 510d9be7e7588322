package main

import (
	"database/sql"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"
)

// ward audit: checkpoint, verify (also against a saved checkpoint) and
// prove work on a served ledger; verify names the first bad index of an
// altered entry and exits 1; a rollback below a saved checkpoint is caught.
func TestAuditCommands(t *testing.T) {
	dir := t.TempDir()
	srv := startServe(t, "--dev", "--data", dir)
	c := dial(t, dir)
	for i := 0; i < 3; i++ {
		c.create(patient(family(t), "Early"))
	}
	code, early, stderr := ward(t, "audit", "checkpoint", "--data", dir)
	if code != 0 {
		t.Fatalf("audit checkpoint: %d %s", code, stderr)
	}
	for i := 0; i < 3; i++ {
		c.create(patient(family(t), "Audit"))
	}
	// A search over the three: its entry names them all (format version 2).
	if ids := c.searchIDs("Patient?name=audit"); len(ids) != 3 {
		t.Fatalf("search found %d patients, want 3", len(ids))
	}
	code, saved, stderr := ward(t, "audit", "checkpoint", "--data", dir)
	if code != 0 || !strings.HasSuffix(strings.SplitN(saved, "\n", 2)[0], "/ledger") {
		t.Fatalf("audit checkpoint: %d %q %s", code, saved, stderr)
	}
	savedFile := filepath.Join(t.TempDir(), "saved.cp")
	if err := os.WriteFile(savedFile, []byte(saved), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		c.create(patient(family(t), "Later"))
	}
	srv.stopOK()
	if code, _, stderr := ward(t, "audit", "checkpoint", "--data", dir); code != 0 {
		t.Fatalf("final checkpoint: %s", stderr)
	}

	code, out, stderr := ward(t, "audit", "verify", "--data", dir, "--checkpoint", savedFile)
	if code != 0 || !strings.Contains(out, "ledger intact") || !strings.Contains(out, "extends 1 saved checkpoint") {
		t.Fatalf("verify of an intact ledger: %d %s %s", code, out, stderr)
	}
	code, out, _ = ward(t, "audit", "prove", "--data", dir, "--index", "2")
	if code != 0 || !strings.Contains(out, `"proof"`) || !strings.Contains(out, `"leaf_hash"`) {
		t.Fatalf("prove: %d %s", code, out)
	}
	if code, _, _ := ward(t, "audit", "prove", "--data", dir); code != 2 {
		t.Fatalf("prove without --index: exit %d, want 2", code)
	}

	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "ward.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var several, indexed int
	if err := db.QueryRow(`SELECT COUNT(*) FROM ledger_entries WHERE instr(CAST(entry AS TEXT), '"patients":["') > 0`).Scan(&several); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT COUNT(*) FROM ledger_patients`).Scan(&indexed); err != nil {
		t.Fatal(err)
	}
	if several != 1 || indexed != 3 {
		t.Fatalf("the verified ledger has %d entries naming several patients and %d patient index rows, want 1 and 3", several, indexed)
	}
	var entry []byte
	if err := db.QueryRow(`SELECT entry FROM ledger_entries WHERE idx = 3`).Scan(&entry); err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(entry), `"outcome":"success"`, `"outcome":"denied"`, 1)
	if edited == string(entry) {
		t.Fatalf("entry 3 has no success outcome to edit: %s", entry)
	}
	if _, err := db.Exec(`UPDATE ledger_entries SET entry = ? WHERE idx = 3`, []byte(edited)); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = ward(t, "audit", "verify", "--data", dir)
	if code != 1 || !strings.Contains(stderr, "first bad index 3") {
		t.Fatalf("verify of an edited entry: exit %d, %s", code, stderr)
	}
	if _, err := db.Exec(`UPDATE ledger_entries SET entry = ? WHERE idx = 3`, entry); err != nil {
		t.Fatal(err)
	}

	// Roll back the ledger and its checkpoints to the early checkpoint, as
	// a database administrator could: what remains is consistent and
	// verifies on its own, but not against the checkpoint saved outside.
	cut := strings.SplitN(early, "\n", 3)[1]
	for _, q := range []string{
		`DELETE FROM ledger_entries WHERE idx >= ` + cut,
		`DELETE FROM ledger_checkpoints WHERE size > ` + cut,
		`UPDATE ledger_head SET size = ` + cut,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	// The patient index still files the search's entry under its
	// patients: the rollback shows until it is cleared too.
	if code, _, stderr := ward(t, "audit", "verify", "--data", dir); code != 1 || !strings.Contains(stderr, "holds no such entry") {
		t.Fatalf("a rollback that left the patient index: exit %d, %s", code, stderr)
	}
	if _, err := db.Exec(`DELETE FROM ledger_patients WHERE idx >= ` + cut); err != nil {
		t.Fatal(err)
	}
	if code, out, stderr := ward(t, "audit", "verify", "--data", dir); code != 0 {
		t.Fatalf("the rolled back ledger should verify on its own (it is consistent): %s %s", out, stderr)
	}
	code, _, stderr = ward(t, "audit", "verify", "--data", dir, "--checkpoint", savedFile)
	if code != 1 || !strings.Contains(stderr, "NOT intact") {
		t.Fatalf("a rolled back ledger verified against the saved checkpoint: exit %d %s", code, stderr)
	}
}

// The ledger keeps its name across restarts on other addresses, so its
// checkpoints verify as one log; a conflicting --ledger-origin is refused.
func TestLedgerNameStable(t *testing.T) {
	dir := t.TempDir()
	for i := 0; i < 2; i++ {
		srv := startServe(t, "--dev", "--data", dir)
		c := dial(t, dir)
		c.create(patient(family(t), "Stable"))
		if code, _, stderr := ward(t, "audit", "checkpoint", "--data", dir); code != 0 {
			t.Fatalf("checkpoint: %s", stderr)
		}
		srv.stopOK()
	}
	if code, out, stderr := ward(t, "audit", "verify", "--data", dir); code != 0 {
		t.Fatalf("verify after a restart on another port: %s %s", out, stderr)
	}
	code, _, stderr := ward(t, "serve", "--dev", "--data", dir, "--addr", freeAddr(t), "--ledger-origin", "other.example/ledger")
	if code != 2 || !strings.Contains(stderr, "differs from") {
		t.Fatalf("a conflicting --ledger-origin: exit %d %s", code, stderr)
	}
}

// A clean stop signs a last checkpoint: no entry is left unsigned.
func TestStopSignsLastCheckpoint(t *testing.T) {
	dir := t.TempDir()
	srv := startServe(t, "--dev", "--data", dir)
	c := dial(t, dir)
	c.create(patient(family(t), "Last"))
	srv.stopOK()
	code, out, stderr := ward(t, "audit", "verify", "--data", dir)
	if code != 0 || strings.Contains(out, "not yet signed") {
		t.Fatalf("after a clean stop: exit %d, %s %s", code, out, stderr)
	}
}

// ward audit pseudonym prints the keyed hash the ledger records for a
// value an unproven caller sent (E5), so that an auditor can find the
// attempts made with it: here, a token request naming a client id that
// does not exist.
func TestAuditPseudonym(t *testing.T) {
	dir := t.TempDir()
	srv := startServe(t, "--dev", "--data", dir)
	c := dial(t, dir)
	const claimed = "no-such-client-7"
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, "https://"+srv.addr+"/oauth2/token",
		strings.NewReader("grant_type=client_credentials"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(claimed, "wrong")
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("token request for an unknown client: %d", resp.StatusCode)
	}
	srv.stopOK()
	code, out, stderr := ward(t, "audit", "pseudonym", "--data", dir, "--kind", "client", "--value", claimed)
	if code != 0 || !strings.HasPrefix(out, "hmac:") {
		t.Fatalf("audit pseudonym: exit %d %q %s", code, out, stderr)
	}
	found := 0
	for _, e := range ledgerOf(t, dir) {
		if e.Client == strings.TrimSpace(out) && e.Action == "token" {
			found++
		}
		if strings.Contains(e.Client+e.Actor, claimed) {
			t.Fatalf("the client id is in the ledger as sent: %+v", e)
		}
	}
	if found != 1 {
		t.Fatalf("%d token entries name the pseudonym %s, want 1", found, out)
	}
	for _, args := range [][]string{
		{"--kind", "colour", "--value", "x"},
		{"--kind", "client"},
	} {
		if code, _, _ := ward(t, append([]string{"audit", "pseudonym", "--data", dir}, args...)...); code != 2 {
			t.Errorf("audit pseudonym %v: exit %d, want 2", args, code)
		}
	}
}
