// Package pkcs11test makes SoftHSM2 tokens for tests of the PKCS#11 key
// provider: each in a directory of its own, named by a SoftHSM2
// configuration that SOFTHSM2_CONF points to for the rest of the test.
//
// It is for tests only. Without SoftHSM2 the test is skipped, saying
// why; with WARD_REQUIRE_SOFTHSM=1 (as in CI) it fails instead.
package pkcs11test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Token is a SoftHSM2 token made for one test.
type Token struct {
	Module  string // the PKCS#11 library
	Dir     string // the token directory; rename it away to take the HSM down
	Label   string
	PIN     string
	PINFile string // holds PIN, mode 0600
}

// modulePaths are where Debian and others install SoftHSM2's library.
var modulePaths = []string{
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/local/lib/softhsm/libsofthsm2.so",
}

// NewToken initialises a token labelled "ward" in a fresh directory and
// points SOFTHSM2_CONF at its configuration (so the test must not run in
// parallel with another that uses SoftHSM2).
func NewToken(t testing.TB) *Token {
	t.Helper()
	util, err := exec.LookPath("softhsm2-util")
	if err != nil {
		skip(t, "softhsm2-util is not on PATH")
	}
	var module string
	for _, p := range modulePaths {
		if _, err := os.Stat(p); err == nil {
			module = p
			break
		}
	}
	if module == "" {
		skip(t, "libsofthsm2.so not found")
	}
	dir := t.TempDir()
	tok := &Token{Module: module, Dir: filepath.Join(dir, "tokens"), Label: "ward", PIN: "1234-ward-test", PINFile: filepath.Join(dir, "pin")}
	if err := os.Mkdir(tok.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	body := "directories.tokendir = " + tok.Dir + "\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tok.PINFile, []byte(tok.PIN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	out, err := exec.Command(util, "--init-token", "--free", "--label", tok.Label, "--pin", tok.PIN, "--so-pin", "so-"+tok.PIN).CombinedOutput() // #nosec G204 -- test kit: runs softhsm2-util with test token values
	if err != nil {
		t.Fatalf("softhsm2-util --init-token: %v\n%s", err, out)
	}
	return tok
}

// TakeAway renames the token directory, so that the module, once
// initialised again, finds no token; it returns the function that
// brings it back.
func (tok *Token) TakeAway(t testing.TB) (bringBack func()) {
	t.Helper()
	gone := tok.Dir + ".gone"
	if err := os.Rename(tok.Dir, gone); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		if err := os.Rename(gone, tok.Dir); err != nil {
			t.Fatal(err)
		}
	}
}

func skip(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("WARD_REQUIRE_SOFTHSM") == "1" {
		t.Fatalf("WARD_REQUIRE_SOFTHSM=1 but %s", why)
	}
	t.Skipf("SoftHSM2 is not usable (%s); install the softhsm2 package to run this test", why)
}
