package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/sqlite"
)

// TestDisclosures: the accounting of disclosures lists every access that
// handed the patient's data to someone else, with its recipient, role,
// purpose and break-the-glass grant, oldest first; not the patient's own
// accesses, not refused attempts, not other patients'.
func TestDisclosures(t *testing.T) {
	data := t.TempDir()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(data, "ward.db"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	for _, u := range []store.User{
		{ID: "u-doc", Username: "dr.who", Role: "practitioner", FHIRUser: "Practitioner/p1", Created: now},
		{ID: "u-pat", Username: "pat", Role: "patient", FHIRUser: "Patient/pat-1", Created: now},
	} {
		if err := db.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	at := func(m int) time.Time { return now.Add(time.Duration(m) * time.Minute) }
	entries := []ledger.Entry{
		{Time: at(-50), Actor: "u-doc", Client: "ehr", Action: "read", ResourceType: "Observation", ResourceID: "o1", Version: "2", Patient: "pat-1", Outcome: "success", Purpose: "TREAT"},
		{Time: at(-40), Actor: "u-pat", Client: "portal", Action: "read", ResourceType: "Patient", ResourceID: "pat-1", Patient: "pat-1", Outcome: "success"},
		{Time: at(-30), Actor: "u-doc", Client: "ehr", Action: "read", ResourceType: "Observation", ResourceID: "o2", Patient: "pat-1", Outcome: "denied"},
		{Time: at(-20), Actor: "svc", Client: "svc", Action: "search", ResourceType: "Observation", Patients: []string{"pat-1", "pat-2"}, Outcome: "success"},
		{Time: at(-10), Actor: "u-doc", Client: "ehr", Action: "read", ResourceType: "Observation", ResourceID: "o3", Patient: "pat-1", Outcome: "success", Purpose: "BTG", Detail: "200 btg-grant=g1"},
		{Time: at(-5), Actor: "u-doc", Client: "ehr", Action: "read", ResourceType: "Observation", ResourceID: "o9", Patient: "pat-2", Outcome: "success"},
	}
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
	db.Close()

	code, out, stderr := ward(t, "disclosures", "--data", data, "--patient", "pat-1", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var list []disclosure
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want := []string{"read Observation/o1/_history/2", "search Observation (an answer about 2 patients)", "read Observation/o3, break-the-glass grant g1"}
	if len(list) != len(want) {
		t.Fatalf("%d disclosures, want %d:\n%s", len(list), len(want), out)
	}
	for i, w := range want {
		if list[i].Description != w {
			t.Errorf("disclosure %d: %q, want %q", i, list[i].Description, w)
		}
	}
	if d := list[0]; d.Recipient != "u-doc" || d.Role != "practitioner" || d.Record != "Practitioner/p1" || d.Client != "ehr" || d.Purpose != "TREAT" || !d.Date.Equal(at(-50)) {
		t.Errorf("first disclosure: %+v", d)
	}
	if list[1].Purpose != "unstated" || list[2].Purpose != "BTG" {
		t.Errorf("purposes: %q, %q", list[1].Purpose, list[2].Purpose)
	}

	code, out, _ = ward(t, "disclosures", "--data", data, "--patient", "pat-1", "--since", at(-15).Format(time.RFC3339), "--format", "csv")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); code != 0 || len(lines) != 2 || !strings.HasPrefix(lines[0], "date,recipient") || !strings.Contains(lines[1], "g1") {
		t.Errorf("csv since: exit %d\n%s", code, out)
	}
	code, out, _ = ward(t, "disclosures", "--data", data, "--patient", "pat-1")
	if code != 0 || !strings.Contains(out, "u-doc (Practitioner/p1)") || !strings.HasSuffix(out, "3 disclosures\n") {
		t.Errorf("text: exit %d\n%s", code, out)
	}
	if code, _, _ = ward(t, "disclosures", "--data", data, "--patient", "../x"); code != 2 {
		t.Errorf("a malformed patient id: exit %d, want 2", code)
	}
}
