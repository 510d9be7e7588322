//go:build pkcs11

package pkcs11_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/wardhealth/ward/internal/keys/pkcs11"
)

const (
	testToken = "ward"
	testPIN   = "1234-ward-test"
)

// softHSM is a SoftHSM2 token made for one test in its own directory.
type softHSM struct {
	module   string
	tokenDir string
}

// modulePaths are where Debian and others install SoftHSM2's library.
var modulePaths = []string{
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/local/lib/softhsm/libsofthsm2.so",
}

// newSoftHSM makes a token labelled testToken with PIN testPIN, in a
// configuration that SOFTHSM2_CONF points to for the rest of the test. It
// skips, saying why, when SoftHSM2 is not installed, and fails instead when
// WARD_REQUIRE_SOFTHSM=1.
func newSoftHSM(t testing.TB) *softHSM {
	t.Helper()
	skip := func(why string) {
		t.Helper()
		if os.Getenv("WARD_REQUIRE_SOFTHSM") == "1" {
			t.Fatalf("WARD_REQUIRE_SOFTHSM=1 but %s", why)
		}
		t.Skipf("SoftHSM2 is not usable (%s); install the softhsm2 package to run this test", why)
	}
	util, err := exec.LookPath("softhsm2-util")
	if err != nil {
		skip("softhsm2-util is not on PATH")
	}
	var module string
	for _, p := range modulePaths {
		if _, err := os.Stat(p); err == nil {
			module = p
			break
		}
	}
	if module == "" {
		skip("libsofthsm2.so not found")
	}
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	body := "directories.tokendir = " + tokens + "\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	out, err := exec.Command(util, "--init-token", "--free", "--label", testToken, "--pin", testPIN, "--so-pin", "so-"+testPIN).CombinedOutput()
	if err != nil {
		t.Fatalf("softhsm2-util --init-token: %v\n%s", err, out)
	}
	return &softHSM{module: module, tokenDir: tokens}
}

func (h *softHSM) config() pkcs11.Config {
	return pkcs11.Config{Module: h.module, TokenLabel: testToken, PIN: []byte(testPIN)}
}

// open creates the default KEK and opens a provider on it, closed at the
// end of the test.
func (h *softHSM) open(t testing.TB) *pkcs11.Provider {
	t.Helper()
	ctx := context.Background()
	cfg := h.config()
	p, err := pkcs11.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	if _, err := p.CreateKEK(ctx, pkcs11.DefaultKEKLabel); err != nil {
		t.Fatalf("CreateKEK: %v", err)
	}
	return p
}
