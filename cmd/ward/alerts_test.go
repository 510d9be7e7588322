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
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/sqlite"
)

// TestAlertsList: ward alerts list prints the stored alerts newest first,
// by filter, as a table or as JSON for scripts.
func TestAlertsList(t *testing.T) {
	data := t.TempDir()
	ctx := context.Background()
	if err := keys.CreateLocalFile(filepath.Join(data, "keys.json"), keys.LocalParams{}, rand.Reader); err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(ctx, filepath.Join(data, "ward.db"))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 5, 1, 3, 0, 0, 0, time.UTC)
	if err := db.SaveAlerts(ctx, []store.Alert{
		{ID: "a1", Key: "k1", Rule: "vip", Severity: "high", Actor: "u-7", Summary: "a VIP's record read", Evidence: []int64{1, 2, 3, 4, 5, 6}, Count: 6, First: at, Last: at, Raised: at},
		{ID: "a2", Key: "k2", Rule: "denial-burst", Severity: "medium", Actor: "u-8", Summary: "40 denials in 1m", Evidence: []int64{9}, Count: 40, First: at, Last: at, Raised: at.Add(time.Hour)},
	}, 10); err != nil {
		t.Fatal(err)
	}
	db.Close()

	code, out, stderr := ward(t, "alerts", "list", "--data", data, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got struct {
		Alerts []struct {
			ID, Rule, Status string
			Evidence         []int64
		} `json:"alerts"`
		More bool `json:"more"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got.Alerts) != 2 || got.Alerts[0].ID != "a2" || got.Alerts[1].Status != "open" ||
		len(got.Alerts[1].Evidence) != 6 || got.More {
		t.Fatalf("json: %v\n%s", err, out)
	}
	code, out, _ = ward(t, "alerts", "list", "--data", data, "--rule", "vip")
	if code != 0 || !strings.Contains(out, "a1") || strings.Contains(out, "a2") || !strings.Contains(out, "1,2,3,4,5,...") {
		t.Fatalf("table of one rule: exit %d\n%s", code, out)
	}
	code, out, _ = ward(t, "alerts", "list", "--data", data, "--limit", "1")
	if code != 0 || !strings.Contains(out, "a2") || !strings.Contains(out, "(more") {
		t.Fatalf("limit: exit %d\n%s", code, out)
	}
	if code, _, _ := ward(t, "alerts", "list", "--data", data, "--status", "gone"); code != 1 {
		t.Errorf("unknown status: exit %d, want 1", code)
	}
	if code, _, _ := ward(t, "alerts", "list", "--data", data, "--limit", "0"); code != 2 {
		t.Errorf("--limit 0: exit %d, want 2", code)
	}
}
