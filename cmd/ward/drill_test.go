package main

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/incident"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/sqlite"
)

// drillServer starts ward serve --dev with the detector configured by
// detectJSON, and returns the data directory and the config file.
func drillServer(t *testing.T, detectJSON string) (*server, string, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	cfg := filepath.Join(t.TempDir(), "detect.json")
	if err := os.WriteFile(cfg, []byte(detectJSON), 0o600); err != nil {
		t.Fatal(err)
	}
	return startServe(t, "--dev", "--data", dir, "--detect-config", cfg), dir, cfg
}

func decodeDrill(t *testing.T, out string) drillReport {
	t.Helper()
	var rep drillReport
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("drill report: %v\n%s", err, out)
	}
	return rep
}

// TestDrill runs each scenario against a running Ward with its detector
// on (the service-volume ceiling lowered so that the burst is small) and
// checks that the report's alerts are the store's, naming the drill's
// throw-away accounts; that each incident asked for its rule's runbook
// and was closed as a drill; and that the accounts, clients and
// synthetic patients are gone when the drill ends.
func TestDrill(t *testing.T) {
	srv, dir, cfg := drillServer(t, `{"serviceVolume": {"ceiling": 20}}`)
	target := "https://" + srv.addr
	db, err := sqlite.Open(context.Background(), filepath.Join(dir, "ward.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	incidents, err := incident.New(incident.Config{Store: db})
	if err != nil {
		t.Fatal(err)
	}
	dev := dial(t, dir)

	for _, tc := range []struct {
		scenario string
		rules    []string
		runbook  string // the first step's title starts so
	}{
		{"snooping", []string{"many-patients", "unrelated-patient", "search-snooping", "vip"}, "Triage: confirm the alerts"},
		{"credential-stuffing", []string{"credential-stuffing"}, "Triage: list the accounts tried"},
		{"exfiltration", []string{"service-volume"}, "Triage: compare the service's reads"},
		{"stolen-token", []string{"token-two-sources"}, "Triage: confirm the token's uses"},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			code, out, stderr := ward(t, "drill", tc.scenario, "--target", target, "--data", dir, "--detect-config", cfg, "--timeout", "20s", "--json")
			if code != 0 {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr)
			}
			rep := decodeDrill(t, out)
			if !rep.OK || len(rep.Scenarios) != 1 || rep.Scenarios[0].Error != "" {
				t.Fatalf("report: %+v", rep)
			}
			s := rep.Scenarios[0]
			var got []string
			var ids []string
			for _, a := range s.Alerts {
				got = append(got, a.Rule)
				if !a.Fired || a.Alert == "" || a.Count < 1 || a.Evidence < 1 || !a.WithinBound {
					t.Errorf("%s: %+v", a.Rule, a)
				}
				stored, err := db.Alert(context.Background(), a.Alert)
				if err != nil || stored.Rule != a.Rule || stored.Status != store.AlertClosed || s.Incident == nil || stored.Incident != s.Incident.ID {
					t.Errorf("%s: stored alert %+v, %v", a.Rule, stored, err)
				}
				// The alert names the drill's own account or client, or
				// for credential stuffing the drill's source.
				if a.Rule == "credential-stuffing" {
					if stored.Source != "127.0.0.1" {
						t.Errorf("credential-stuffing alert names source %q", stored.Source)
					}
				} else if u, err := db.User(context.Background(), stored.Actor); err == nil {
					if !strings.HasPrefix(u.Username, "drill-"+rep.Run+"-") || !u.Disabled {
						t.Errorf("%s alert names user %s (disabled %v)", a.Rule, u.Username, u.Disabled)
					}
				} else if c, err := db.Client(context.Background(), stored.Actor); err != nil || !strings.HasPrefix(c.ID, "drill-"+rep.Run+"-") || !c.Revoked {
					t.Errorf("%s alert names %q, not a drill account: %+v %v", a.Rule, stored.Actor, c, err)
				}
				ids = append(ids, a.Alert)
			}
			if !slices.Equal(got, tc.rules) {
				t.Errorf("rules %v, want %v", got, tc.rules)
			}
			inc, err := incidents.Get(context.Background(), s.Incident.ID)
			if err != nil {
				t.Fatal(err)
			}
			drilled := slices.ContainsFunc(inc.Timeline, func(e incident.Event) bool { return e.What == "drill" && e.Ref == rep.Run })
			if inc.Status != incident.StatusClosed || !drilled || !slices.Equal(inc.Alerts, ids) || !s.Incident.Closed {
				t.Errorf("incident %+v", inc)
			}
			if len(s.Incident.Runbook) == 0 || !strings.HasPrefix(s.Incident.Runbook[0].Title, tc.runbook) || len(s.Incident.Deadlines) != 2 {
				t.Errorf("incident in the report: %+v", s.Incident)
			}
			// Nothing the drill made stays usable.
			users, err := db.ListUsers(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, u := range users {
				if strings.HasPrefix(u.Username, "drill-") && !u.Disabled {
					t.Errorf("user %s still enabled", u.Username)
				}
			}
			if rep.Cleanup.Error != "" || rep.Cleanup.UsersDisabled+rep.Cleanup.ClientsRevoked == 0 {
				t.Errorf("clean-up %+v", rep.Cleanup)
			}
			tag := url.QueryEscape(drillTagSystem + "|drill-" + rep.Run + "-" + tc.scenario)
			if left := dev.searchIDs("Patient?_tag=" + tag); len(left) != 0 {
				t.Errorf("%d synthetic patients left", len(left))
			}
		})
	}

	// The table a person reads says the same.
	code, out, stderr := ward(t, "drill", "stolen-token", "--target", target, "--data", dir, "--timeout", "20s")
	if code != 0 || !strings.Contains(out, "token-two-sources") || !strings.Contains(out, "PASSED") || !strings.Contains(out, "closed as a drill") ||
		!strings.Contains(stderr, "used from 127.0.1.1") {
		t.Fatalf("table: exit %d\n%s\n%s", code, out, stderr)
	}
}

// TestDrillMissingAlert: a drill whose rule is disabled in the server's
// detector fails with exit 1, naming the missing rule, and still cleans
// up after itself.
func TestDrillMissingAlert(t *testing.T) {
	srv, dir, cfg := drillServer(t, `{"tokenTwoSources": {"disabled": true}}`)
	code, out, stderr := ward(t, "drill", "stolen-token", "--target", "https://"+srv.addr, "--data", dir, "--detect-config", cfg, "--timeout", "3s", "--json")
	if code != 1 || !strings.Contains(stderr, "stolen-token: token-two-sources") {
		t.Fatalf("exit %d, want 1 naming the rule\n%s\n%s", code, out, stderr)
	}
	rep := decodeDrill(t, out)
	a := rep.Scenarios[0].Alerts
	if rep.OK || len(a) != 1 || a[0].Fired || a[0].Note != "disabled in --detect-config" || rep.Scenarios[0].Incident != nil ||
		rep.Cleanup.UsersDisabled != 1 || rep.Cleanup.ClientsRevoked != 1 {
		t.Fatalf("report: %+v", rep)
	}
}

func TestDrillUsage(t *testing.T) {
	for _, args := range [][]string{
		{"drill"},
		{"drill", "phishing", "--target", "https://127.0.0.1:1"},
		{"drill", "snooping"},
		{"drill", "snooping", "--target", "http://127.0.0.1:1"},
		{"drill", "stolen-token", "--target", "https://ward.example:443"},
		{"drill", "all", "--target", "https://127.0.0.1:1", "--sources", "127.0.0.1"},
	} {
		if code, _, stderr := ward(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2: %s", args, code, stderr)
		}
	}
}
