package main

import (
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/store/sqlite"
)

// TestUserCommands covers catalogue case B6 through the CLI: password
// length and breached-list rules, a 64-character password accepted, no
// default account, and the account lifecycle.
func TestUserCommands(t *testing.T) {
	data := t.TempDir()
	if code, _, stderr := ward(t, "keys", "init", "--data", data); code != 0 {
		t.Fatalf("keys init: exit %d: %s", code, stderr)
	}
	withStdin := func(stdin string, args ...string) (string, error) {
		var out, errOut syncBuffer
		err := runUserWith(t.Context(), append(args, "--data", data), strings.NewReader(stdin), &out, &errOut)
		return out.String() + errOut.String(), err
	}

	// No account exists until someone creates one.
	code, out, _ := ward(t, "user", "list", "--data", data)
	if code != 0 || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Fatalf("fresh user list: exit %d:\n%s", code, out)
	}

	for i, tc := range []struct {
		name, password string
		length         int // 0: not a length case
		ok             bool
	}{
		{"too short", "abcdefghijk", 11, false},
		{"shortest", "tzq8-vbn3-mx", 12, true},
		{"64 characters", strings.Repeat("kq7v-Zp2x ", 6) + "abcd", 64, true},
		{"longest", strings.Repeat("Qz9-", 32), 128, true},
		{"too long", strings.Repeat("Qz9-", 32) + "x", 129, false},
		{"breached", "iloveyouforever", 0, false},
	} {
		if n := len([]rune(tc.password)); tc.length != 0 && n != tc.length {
			t.Fatalf("%s: test password has %d characters, want %d", tc.name, n, tc.length)
		}
		out, err := withStdin(tc.password+"\n", "create", "--username", "person"+strconv.Itoa(i), "--role", "practitioner", "--password-stdin")
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok=%v\n%s", tc.name, err, tc.ok, out)
		}
		if strings.Contains(out, tc.password) || (err != nil && strings.Contains(err.Error(), tc.password)) {
			t.Errorf("%s: the password was echoed", tc.name)
		}
	}

	code, out, stderr := ward(t, "user", "create", "--data", data, "--username", "Admin.One", "--role", "admin")
	if code != 0 || !strings.Contains(out, "password:") || !strings.Contains(out, "second factor") {
		t.Fatalf("create admin: exit %d\n%s%s", code, out, stderr)
	}
	id := field(out, "id:")
	if code, _, stderr := ward(t, "user", "create", "--data", data, "--username", "admin.one", "--role", "patient"); code == 0 || !strings.Contains(stderr, "taken") {
		t.Fatalf("duplicate username (case-insensitive): exit %d %s", code, stderr)
	}
	if code, _, stderr := ward(t, "user", "create", "--data", data, "--username", "x", "--role", "patient", "--fhir-user", "Observation/1"); code == 0 || !strings.Contains(stderr, "fhirUser") {
		t.Fatalf("bad fhir-user: exit %d %s", code, stderr)
	}
	if code, out, _ := ward(t, "user", "disable", "--data", data, "--id", id); code != 0 || !strings.Contains(out, "disabled") {
		t.Fatalf("disable: %d %s", code, out)
	}
	code, out, _ = ward(t, "user", "list", "--data", data)
	if code != 0 || !strings.Contains(out, "admin.one") || !strings.Contains(out, "disabled") {
		t.Fatalf("list: %d\n%s", code, out)
	}
	if _, err := withStdin("short\n", "set-password", "--id", id, "--password-stdin"); err == nil {
		t.Fatal("set-password accepted a short password")
	}
	if code, _, stderr := ward(t, "user", "disable", "--data", data, "--id", "nosuchuser"); code == 0 || !strings.Contains(stderr, "no user") {
		t.Fatalf("unknown id: %d %s", code, stderr)
	}
	// Every change is in the ledger; refused ones change nothing and are not.
	want := []string{"user-create:User", "user-create:User", "user-create:User", "user-create:User", "user-disable:User"}
	var got []string
	for _, e := range ledgerOf(t, data) {
		if !strings.HasPrefix(e.Actor, "local") || e.Client != "ward-cli" {
			t.Errorf("admin entry actor %q client %q", e.Actor, e.Client)
		}
		got = append(got, e.Action+":"+e.ResourceType)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("ledger actions %v, want %v", got, want)
	}
}

func field(out, name string) string {
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, name); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// TestAppCreate registers a public and a confidential app: only the
// confidential one gets a secret, and both list as apps with their exact
// redirect URIs.
func TestAppCreate(t *testing.T) {
	data := t.TempDir()
	if code, _, stderr := ward(t, "keys", "init", "--data", data); code != 0 {
		t.Fatalf("keys init: exit %d: %s", code, stderr)
	}
	code, out, stderr := ward(t, "client", "create", "--data", data, "--name", "Phone app", "--public", "--redirect-uri", "http://127.0.0.1:7777/cb")
	if code != 0 || strings.Contains(out, "client_secret") || field(out, "scope:") != "openid fhirUser patient/*.rs" {
		t.Fatalf("public app: exit %d\n%s%s", code, out, stderr)
	}
	code, out, stderr = ward(t, "client", "create", "--data", data, "--name", "Web app", "--redirect-uri", "https://app.example/cb",
		"--redirect-uri", "https://app.example/cb2", "--scope", "openid launch/patient patient/Observation.rs offline_access")
	if code != 0 || field(out, "client_secret:") == "" || field(out, "redirect_uri:") != "https://app.example/cb https://app.example/cb2" {
		t.Fatalf("confidential app: exit %d\n%s%s", code, out, stderr)
	}
	code, out, _ = ward(t, "client", "list", "--data", data)
	if code != 0 || len(regexp.MustCompile(`\sapp\s+\d{4}-`).FindAllString(out, -1)) != 2 || !strings.Contains(out, "http://127.0.0.1:7777/cb") {
		t.Fatalf("client list:\n%s", out)
	}
}

// ledgerOf returns every entry of a data directory's ledger, in order.
func ledgerOf(t *testing.T, data string) []ledger.Entry {
	t.Helper()
	db, err := sqlite.Open(t.Context(), filepath.Join(data, "ward.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n, err := db.LedgerSize(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	es, err := db.LedgerEntries(t.Context(), 0, n)
	if err != nil {
		t.Fatal(err)
	}
	var out []ledger.Entry
	for _, raw := range es {
		e, err := ledger.DecodeEntry(raw.Entry)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}
