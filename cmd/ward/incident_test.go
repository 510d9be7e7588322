package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/incident"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/sqlite"
)

// TestIncidentScope: ward incident scope lists what one user read or
// changed in a window, proven against a checkpoint it signs first (or,
// given only --vkey, the latest one, listing later entries unproven); the
// patients CSV names the affected patients by id; ward incident verify
// accepts the report with the public key alone and rejects it edited or
// under another key (catalogue case G5).
func TestIncidentScope(t *testing.T) {
	data := t.TempDir()
	ctx := context.Background()
	if code, _, stderr := ward(t, "keys", "init", "--data", data); code != 0 {
		t.Fatalf("keys init: exit %d: %s", code, stderr)
	}
	kf, err := keys.OpenLocalFile(filepath.Join(data, "keys.json"), nil)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ledger.NewSigner("ward.test/ledger", kf.LedgerSigner())
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(ctx, filepath.Join(data, "ward.db"))
	if err != nil {
		t.Fatal(err)
	}
	at := func(m int) time.Time { return time.Date(2025, 6, 1, 9, m, 0, 0, time.UTC) }
	search := ledger.Entry{Time: at(2), Actor: "mallory", Client: "ehr", Action: "search", ResourceType: "Observation", Outcome: "success"}
	search.SetPatients([]string{"pat-2", "pat-1"})
	appendEntries := func(entries ...ledger.Entry) {
		var recs []audit.Record
		for _, e := range entries {
			rec, err := audit.NewRecord(e)
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, rec)
		}
		if err := store.ReadWrite(ctx, db, func(tx store.Tx) error { return audit.AppendInTx(ctx, tx, recs) }); err != nil {
			t.Fatal(err)
		}
	}
	appendEntries(
		ledger.Entry{Time: at(1), Actor: "mallory", Client: "ehr", Action: "read", ResourceType: "Condition", ResourceID: "c1", Patient: "pat-1", Outcome: "success"},
		search,
		ledger.Entry{Time: at(3), Actor: "alice", Client: "ehr", Action: "read", ResourceType: "Patient", ResourceID: "pat-9", Patient: "pat-9", Outcome: "success"},
		ledger.Entry{Time: at(4), Actor: "mallory", Client: "ehr", Action: "read", ResourceType: "Patient", ResourceID: "pat-4", Patient: "pat-4", Outcome: "denied"},
	)
	if _, _, err := audit.Checkpoint(ctx, db, signer); err != nil {
		t.Fatal(err)
	}
	appendEntries(ledger.Entry{Time: at(5), Actor: "mallory", Client: "ehr", Action: "update", ResourceType: "MedicationRequest", ResourceID: "m1", Version: "2", Patient: "pat-3", Outcome: "success"})
	db.Close()

	window := []string{"incident", "scope", "--data", data, "--actor", "mallory", "--from", "2025-06-01", "--to", "2025-06-02T00:00:00Z", "--discovered", "2025-06-03T12:00:00Z"}
	read := func(path string) *incident.Report {
		t.Helper()
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		r, err := incident.ReadReport(f)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	// With --vkey only: the latest checkpoint, the update after it unproven.
	latest := filepath.Join(t.TempDir(), "latest.json")
	code, out, stderr := ward(t, append(window, "--vkey", signer.VerifierKey(), "--json", "--out", latest)...)
	if code != 0 || out != "" || stderr != "" {
		t.Fatalf("scope --vkey --json: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	if r := read(latest); r.Uncovered != 1 || r.CheckpointSize != 4 || len(r.Disclosures) != 3 {
		t.Fatalf("scope --vkey: uncovered %d, checkpoint %d, %d disclosures", r.Uncovered, r.CheckpointSize, len(r.Disclosures))
	}
	if fi, err := os.Stat(latest); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("report file mode: %v, %v", fi.Mode(), err)
	}

	// With the key file: a fresh checkpoint first, every entry proven.
	full := filepath.Join(t.TempDir(), "report.json")
	if code, _, stderr := ward(t, append(window, "--out", full)...); code != 0 || !strings.Contains(stderr, "3 disclosures affecting 3 patients, 1 refused or failed attempts") ||
		!strings.Contains(stderr, "GDPR supervisory authority 2025-06-06T12:00:00Z") {
		t.Fatalf("scope: exit %d, stderr %s", code, stderr)
	}
	r := read(full)
	if r.Uncovered != 0 || r.CheckpointSize != 5 {
		t.Fatalf("scope with the key file: uncovered %d, checkpoint %d", r.Uncovered, r.CheckpointSize)
	}
	var ids []string
	for _, p := range r.Patients {
		ids = append(ids, p.ID)
	}
	if !slices.Equal(ids, []string{"pat-1", "pat-2", "pat-3"}) {
		t.Errorf("affected patients %v, want pat-1..3 (not pat-4, refused; not pat-9, alice's)", ids)
	}

	code, out, stderr = ward(t, "incident", "verify", "--data", data, "--report", full)
	if code != 0 || !strings.Contains(out, "report verified: 4 entries, 4 proven in the signed checkpoint of 5 entries") {
		t.Fatalf("verify: exit %d, %s %s", code, out, stderr)
	}
	code, out, _ = ward(t, "incident", "verify", "--report", latest, "--vkey", signer.VerifierKey())
	if code != 0 || !strings.Contains(out, "4 entries, 3 proven") || !strings.Contains(out, "1 after it, unproven") {
		t.Fatalf("verify --vkey of the report with an unproven entry: exit %d, %s", code, out)
	}
	_, otherKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, err := ledger.NewSigner("ward.test/ledger", otherKey)
	if err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := ward(t, "incident", "verify", "--report", full, "--vkey", other.VerifierKey()); code != 1 || !strings.Contains(stderr, "NOT verified") {
		t.Errorf("verify under another key: exit %d, %s", code, stderr)
	}
	// A patient dropped from the report to spare a notice.
	r.Patients = r.Patients[1:]
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	edited := filepath.Join(t.TempDir(), "edited.json")
	if err := os.WriteFile(edited, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := ward(t, "incident", "verify", "--data", data, "--report", edited); code != 1 || !strings.Contains(stderr, "NOT verified") {
		t.Errorf("verify of an edited report: exit %d, %s", code, stderr)
	}

	// The patients CSV: ids, dates, categories, counts.
	code, out, stderr = ward(t, append(window, "--format", "csv")...)
	if code != 0 {
		t.Fatalf("scope --format csv: exit %d, %s", code, stderr)
	}
	lines, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 4 || !slices.Equal(lines[1], []string{"pat-1", "2025-06-01T09:01:00Z", "2025-06-01T09:02:00Z",
		"conditions and diagnoses; observations and lab results", "read; search", "2"}) {
		t.Errorf("patients CSV:\n%s", out)
	}
	// By client.
	code, out, _ = ward(t, "incident", "scope", "--data", data, "--client", "ehr", "--from", "2025-06-01", "--to", "2025-06-02", "--format", "accesses-csv")
	if code != 0 || strings.Count(out, "\n") != 6 || !strings.Contains(out, "disclosure,2,2025-06-01T09:03:00Z,read,success,Patient,pat-9") {
		t.Errorf("scope --client: exit %d\n%s", code, out)
	}

	for _, bad := range [][]string{
		{"--from", "2025-06-01", "--to", "2025-06-02"},
		{"--actor", "a", "--client", "b", "--from", "2025-06-01", "--to", "2025-06-02"},
		{"--actor", "a", "--from", "yesterday", "--to", "2025-06-02"},
		{"--actor", "a", "--from", "2025-06-02", "--to", "2025-06-01"},
		{"--actor", "a", "--from", "2025-06-01", "--to", "2025-06-02", "--format", "xml"},
	} {
		if code, _, stderr := ward(t, append([]string{"incident", "scope", "--data", data}, bad...)...); code != 2 {
			t.Errorf("%v: exit %d, want 2: %s", bad, code, stderr)
		}
	}
	if code, _, _ := ward(t, "incident", "verify", "--data", data); code != 2 {
		t.Errorf("verify without --report: exit %d, want 2", code)
	}
}
