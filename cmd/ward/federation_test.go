package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFederationClientSecretFile: --federation reads each issuer's
// client_secret_file (relative to the federation file, first line only),
// so that sign-ins authenticate Ward at the provider without the secret
// being in the configuration; a missing or empty file stops the start.
func TestFederationClientSecretFile(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "federation.json")
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	config := func(secretFile string) {
		write("federation.json", `{"issuers": [{"name": "Hospital", "issuer": "https://idp.hospital.example", "client_id": "ward",
			"client_secret_file": "`+secretFile+`", "roles": [{"role": "practitioner"}]}]}`)
	}
	f := &serveFlags{federation: conf}

	write("hospital.secret", "s3cret-value\nignored second line\n")
	config("hospital.secret")
	v, err := f.federationVerifier("https://ward.example")
	if err != nil {
		t.Fatal(err)
	}
	got := v.SignInIssuers()
	if len(got) != 1 || got[0].Name != "Hospital" || got[0].ClientSecret.Reveal() != "s3cret-value" {
		t.Fatalf("sign-in issuers %+v", got)
	}

	for name, c := range map[string]struct{ file, content string }{
		"missing file": {"absent.secret", ""},
		"empty file":   {"empty.secret", "\n"},
	} {
		if c.content != "" {
			write(c.file, c.content)
		}
		config(c.file)
		if _, err := f.federationVerifier("https://ward.example"); err == nil || !strings.Contains(err.Error(), "client_secret_file") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
