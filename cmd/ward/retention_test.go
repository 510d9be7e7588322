package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/sqlite"
)

// TestRetentionReport: patients past "kept N years after the last
// encounter" are listed, with their legal hold; recent ones, erased ones
// and shared resources are not; without an encounter the last change
// counts.
func TestRetentionReport(t *testing.T) {
	data := t.TempDir()
	ctx := context.Background()
	if err := keys.CreateLocalFile(filepath.Join(data, "keys.json"), keys.LocalParams{}, rand.Reader); err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(ctx, filepath.Join(data, "ward.db"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	years := func(n int) time.Time { return now.AddDate(-n, 0, 0) }
	put := func(typ, id, compartment string, updated time.Time, index []store.IndexEntry) {
		t.Helper()
		r := store.Resource{Type: typ, ID: id, Version: 1, Compartment: compartment, LastUpdated: updated, Body: []byte("sealed")}
		if err := store.ReadWrite(ctx, db, func(tx store.Tx) error { return tx.PutVersion(ctx, r, index) }); err != nil {
			t.Fatal(err)
		}
	}
	encounter := func(end time.Time) []store.IndexEntry {
		return []store.IndexEntry{{Param: "date", Kind: store.KindDate, Lo: float64(end.Unix() - 3600), Hi: float64(end.Unix())}}
	}
	// old: last encounter 12 years ago, though its record changed lately.
	put("Patient", "old", "old", years(1), nil)
	put("Encounter", "e-old", "old", years(12), encounter(years(12)))
	// recent: an encounter two years ago.
	put("Patient", "recent", "recent", years(15), nil)
	put("Encounter", "e-recent", "recent", years(2), encounter(years(2)))
	// quiet: no encounter, unchanged for 11 years.
	put("Patient", "quiet", "quiet", years(11), nil)
	// held: like old, under a legal hold.
	put("Patient", "held", "held", years(20), nil)
	// gone: erased.
	put("Patient", "gone", "gone", years(20), nil)
	put("Organization", "org", "", years(30), nil)
	if err := records.SetLegalHold(ctx, db, now, "held", "litigation", "cli", false); err != nil {
		t.Fatal(err)
	}
	db.Close()
	kf, err := keys.OpenLocalFile(filepath.Join(data, "keys.json"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := kf.Erase(ctx, "gone", now); err != nil {
		t.Fatal(err)
	}

	code, out, stderr := ward(t, "retention", "report", "--data", data, "--keep-years", "10", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var list []overdue
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	got := map[string]overdue{}
	for _, o := range list {
		got[o.Patient] = o
	}
	if len(got) != 3 || got["old"].LastEncounter == nil || got["quiet"].LastEncounter != nil || got["held"].LegalHold != "litigation" {
		t.Fatalf("overdue: %s", out)
	}
	// Counted from the last change, the old patient's recent change keeps it.
	code, out, _ = ward(t, "retention", "report", "--data", data, "--keep-years", "10", "--after", "update")
	if code != 0 || strings.Contains(out, "old ") || !strings.Contains(out, "quiet") || !strings.Contains(out, "2 patient(s) past 10 years after their last change") {
		t.Errorf("after update: exit %d\n%s", code, out)
	}
	if code, _, _ := ward(t, "retention", "report", "--data", data); code != 2 {
		t.Errorf("without --keep-years: exit %d, want 2", code)
	}
}
