package main

import (
	"bytes"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
)

// TestMain clears WARD_* settings inherited from the environment, so that a
// developer's WARD_DB or WARD_KEY_PASSPHRASE cannot change what the tests
// see. The tests' own settings (WARD_TEST_*, WARD_REQUIRE_POSTGRES) stay.
func TestMain(m *testing.M) {
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "WARD_") && !strings.HasPrefix(k, "WARD_TEST_") && k != "WARD_REQUIRE_POSTGRES" {
			os.Unsetenv(k)
		}
	}
	m.Run()
}

// syncBuffer is a bytes.Buffer safe for a server goroutine writing while the
// test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// ward runs the command line in process and returns its exit code and output.
func ward(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut syncBuffer
	code = run(t.Context(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestUsage(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		code       int
		stdout     []string // substrings expected on standard output
		stderr     []string // substrings expected on standard error
		anyOutput  []string // substrings expected on either
		noOutputOn string   // "stdout" or "stderr": must stay empty
	}{
		{name: "version", args: []string{"version"}, code: 0, stdout: []string{"ward " + version}, noOutputOn: "stderr"},
		{name: "help", args: []string{"--help"}, code: 0, stdout: []string{"Usage: ward <command>", "serve", "client", "keys", "load", "version"}, noOutputOn: "stderr"},
		{name: "help short", args: []string{"-h"}, code: 0, stdout: []string{"Commands:"}},
		{name: "help word", args: []string{"help"}, code: 0, stdout: []string{"Commands:"}},
		{name: "no arguments", args: nil, code: 2, stdout: []string{"Usage: ward <command>"}},
		{name: "unknown command", args: []string{"frobnicate"}, code: 2, stderr: []string{`unknown command "frobnicate"`, "Commands:"}, noOutputOn: "stdout"},
		{name: "serve help", args: []string{"serve", "--help"}, code: 0, anyOutput: []string{"Usage: ward serve", "-addr", "-tls-cert", "-tls-key", "-dev", "-data", "-db", "-config"}},
		{name: "serve unknown flag", args: []string{"serve", "--no-such-flag"}, code: 2, stderr: []string{"no-such-flag", "ward serve --help"}},
		{name: "serve stray argument", args: []string{"serve", "extra"}, code: 2, stderr: []string{`unexpected argument "extra"`}},
		{name: "serve bad log level", args: []string{"serve", "--log-level", "loud", "--dev", "--data", "unused"}, code: 2, stderr: []string{"--log-level"}},
		{name: "serve bad duration", args: []string{"serve", "--token-ttl", "soon"}, code: 2, stderr: []string{"token-ttl"}},
		{name: "serve negative verify pace", args: []string{"serve", "--ledger-verify-pace", "-1"}, code: 2, stderr: []string{"--ledger-verify-pace must be 0 (off) or more"}},
		{name: "serve zero verify pause", args: []string{"serve", "--ledger-verify-pause", "0s"}, code: 2, stderr: []string{"--ledger-verify-pause must be positive"}},
		{name: "keys without subcommand", args: []string{"keys"}, code: 2, stderr: []string{"ward keys <init|rotate|add-esign>"}},
		{name: "keys unknown subcommand", args: []string{"keys", "burn"}, code: 2, stderr: []string{`unknown subcommand "burn"`}},
		{name: "client without subcommand", args: []string{"client"}, code: 2, stderr: []string{"ward client <create|list|revoke>"}},
		{name: "client unknown flag", args: []string{"client", "list", "--secret"}, code: 2, stderr: []string{"secret"}},
		{name: "load without dir", args: []string{"load"}, code: 2, stderr: []string{"--dir is required"}},
		{name: "keys help", args: []string{"keys", "--help"}, code: 0, stdout: []string{"ward keys <init|rotate|add-esign>"}, noOutputOn: "stderr"},
		{name: "client help", args: []string{"client", "-h"}, code: 0, stdout: []string{"ward client <create|list|revoke>"}, noOutputOn: "stderr"},
		{name: "load help", args: []string{"load", "--help"}, code: 0, anyOutput: []string{"-dir", "-concurrency"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Chdir(t.TempDir()) // nothing may land in the working directory
			code, stdout, stderr := ward(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout, stderr)
			}
			check := func(where, got string, want []string) {
				for _, w := range want {
					if !strings.Contains(got, w) {
						t.Errorf("%s lacks %q:\n%s", where, w, got)
					}
				}
			}
			check("stdout", stdout, tt.stdout)
			check("stderr", stderr, tt.stderr)
			check("output", stdout+stderr, tt.anyOutput)
			switch {
			case tt.noOutputOn == "stdout" && stdout != "":
				t.Errorf("unexpected stdout: %s", stdout)
			case tt.noOutputOn == "stderr" && stderr != "":
				t.Errorf("unexpected stderr: %s", stderr)
			}
			if entries, _ := os.ReadDir("."); len(entries) != 0 {
				t.Errorf("%v created %d entries in the working directory, e.g. %s", tt.args, len(entries), entries[0].Name())
			}
		})
	}
}
