package main

import (
	"database/sql"
	"encoding/json"
	"net/http"
	"path/filepath"
	"testing"
	"time"
)

// TestServeDetects is catalogue G1-G3 against a live server: a service
// refused again and again raises a denial-burst alert that `ward alerts
// list --json` shows within 10 seconds of the last refused request, and,
// with the rule in --detect-auto-suspend, the service is suspended (its
// token stops) and the suspension is in the ledger.
func TestServeDetects(t *testing.T) {
	dir := t.TempDir()
	s := startServe(t, "--dev", "--data", dir, "--detect-auto-suspend", "denial-burst")
	dev := dial(t, dir)
	code, stdout, stderr := ward(t, "client", "create", "--data", dir, "--name", "prober", "--scope", "system/Patient.rs")
	if code != 0 {
		t.Fatalf("client create: exit %d: %s", code, stderr)
	}
	id, secret := parseCreated(t, stdout)
	st, tok := requestToken(t, dev.http, dev.creds.TokenURL, id, secret)
	if st != http.StatusOK {
		t.Fatalf("token: %d", st)
	}
	prober := &fhirClient{t: t, creds: dev.creds, http: dev.http, token: tok}
	if st, _ := prober.do("GET", "/Patient", nil); st != http.StatusOK {
		t.Fatalf("the prober's own scope: %d", st)
	}
	for range 25 {
		if st, _ := prober.do("GET", "/Observation", nil); st != http.StatusForbidden {
			t.Fatalf("outside its scope: %d, want 403", st)
		}
	}
	last := time.Now()

	type listed struct {
		Alerts []struct {
			Rule, Actor, Client, Summary string
			Evidence                     []int64
			Count                        int64
		} `json:"alerts"`
	}
	var found listed
	for {
		code, out, stderr := ward(t, "alerts", "list", "--data", dir, "--rule", "denial-burst", "--json")
		if code != 0 {
			t.Fatalf("alerts list: exit %d: %s", code, stderr)
		}
		if err := json.Unmarshal([]byte(out), &found); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if len(found.Alerts) > 0 {
			break
		}
		if time.Since(last) > 10*time.Second {
			t.Fatalf("no denial-burst alert 10 s after the last refused request; log:\n%s", s.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("alert listable %v after the last triggering request", time.Since(last).Round(10*time.Millisecond))
	a := found.Alerts[0]
	if a.Actor != id || a.Count < 20 || len(a.Evidence) == 0 {
		t.Fatalf("alert %+v", a)
	}
	// Suspended: its token stops within the verifier's cache bound.
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, _ := prober.do("GET", "/Patient", nil)
		if st == http.StatusUnauthorized {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the prober's token after automatic suspension: %d, want 401", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st, _ := dev.do("GET", "/Patient", nil); st != http.StatusOK {
		t.Fatalf("another client after the suspension: %d", st)
	}
	s.stopOK()
	code, out, _ := ward(t, "audit", "verify", "--data", dir)
	if code != 0 {
		t.Fatalf("audit verify: exit %d: %s", code, out)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "ward.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM ledger_entries WHERE instr(CAST(entry AS TEXT), '"actor":"ward-detector"') > 0
		AND instr(CAST(entry AS TEXT), '"action":"contain"') > 0 AND instr(CAST(entry AS TEXT), ?) > 0`, `"resourceId":"`+id+`"`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("the automatic suspension's ledger entries: %d, %v", n, err)
	}
}
