package main

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/store/storetest"
)

// TestServePostgres serves from PostgreSQL (WARD_TEST_POSTGRES) in a fresh
// schema: dev mode with --db creates and reads a Patient, and a restart
// finds it again.
func TestServePostgres(t *testing.T) {
	sc := storetest.FreshSchema(t, "ward_cmd_test_")
	u, admin, schema := sc.URL, sc.Admin, sc.Name

	dir := t.TempDir()
	srv := startServe(t, "--dev", "--data", dir, "--db", u)
	if !strings.Contains(srv.stderr.String(), `"db":"postgres"`) {
		t.Errorf("the start log does not say it serves from PostgreSQL")
	}
	c := dial(t, dir)
	fam := family(t)
	id := c.create(patient(fam, "Pat"))
	c.read("Patient", id)
	if ids := c.searchIDs("Patient?family=" + fam); len(ids) != 1 || ids[0] != id {
		t.Errorf("search by family found %v, want [%s]", ids, id)
	}
	srv.stopOK()
	if _, err := os.Stat(filepath.Join(dir, "ward.db")); err == nil {
		t.Errorf("with --db postgres://, serve still made a SQLite database in the data directory")
	}
	var tables int
	if err := admin.QueryRowContext(t.Context(), "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1", schema).Scan(&tables); err != nil || tables == 0 {
		t.Errorf("no tables in the test schema (%d, %v): the URL's search_path was not used", tables, err)
	}

	srv = startServe(t, "--dev", "--data", dir, "--db", u)
	dial(t, dir).read("Patient", id)
	srv.stopOK()
}

// TestBinary builds the ward binary and checks what only a real process
// shows: exit codes through os.Exit, and a clean shutdown on SIGTERM and
// SIGINT.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary; skipped with -short")
	}
	if runtime.GOOS == "windows" {
		t.Skip("signals are POSIX")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH to build the binary with")
	}
	bin := filepath.Join(t.TempDir(), "ward")
	build := exec.CommandContext(t.Context(), goTool, "build", "-ldflags", "-X main.version=v9.9.9-test", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	for _, tt := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"version"}, 0, "ward v9.9.9-test"},
		{nil, 2, "Usage: ward <command>"},
		{[]string{"nope"}, 2, "unknown command"},
		{[]string{"serve", "--data", t.TempDir(), "--addr", "127.0.0.1:0"}, 2, "--tls-cert"},
		{[]string{"client", "revoke", "--data", t.TempDir(), "--id", "x"}, 1, "ward keys init"},
	} {
		cmd := exec.CommandContext(t.Context(), bin, tt.args...)
		cmd.Env = wardFreeEnv()
		out, err := cmd.CombinedOutput()
		code := 0
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			code = exitErr.ExitCode()
		} else if err != nil {
			t.Fatalf("ward %v: %v", tt.args, err)
		}
		if code != tt.code || !strings.Contains(string(out), tt.out) {
			t.Errorf("ward %v: exit %d, want %d; output lacks %q?\n%s", tt.args, code, tt.code, tt.out, out)
		}
	}

	dir := t.TempDir()
	for _, sig := range []os.Signal{syscall.SIGTERM, os.Interrupt} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.Command(bin, "serve", "--dev", "--data", dir, "--addr", freeAddr(t))
			cmd.Env = wardFreeEnv()
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var logs syncBuffer
			cmd.Stderr = &logs
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			ready := make(chan bool, 1)
			go func() {
				sc := bufio.NewScanner(stdout)
				found := false
				for sc.Scan() {
					if !found && strings.Contains(sc.Text(), "Ward is running in dev mode") {
						found = true
						ready <- true
					}
				}
				if !found {
					ready <- false
				}
			}()
			select {
			case ok := <-ready:
				if !ok {
					cmd.Wait()
					t.Fatalf("ward serve exited before it was ready; log:\n%s", logs.String())
				}
			case <-time.After(20 * time.Second):
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("ward serve not ready after 20s; log:\n%s", logs.String())
			}
			dial(t, dir) // it answers

			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			waited := make(chan error, 1)
			go func() { waited <- cmd.Wait() }()
			select {
			case err := <-waited:
				if err != nil {
					t.Errorf("after %v: %v; log:\n%s", sig, err, logs.String())
				}
			case <-time.After(20 * time.Second):
				cmd.Process.Kill()
				<-waited
				t.Fatalf("ward serve did not exit within 20s of %v", sig)
			}
			if !strings.Contains(logs.String(), `"msg":"shutting down"`) {
				t.Errorf("no shutdown log line after %v", sig)
			}
		})
	}
}

// wardFreeEnv is the test's environment without WARD_* settings.
func wardFreeEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WARD_") {
			env = append(env, kv)
		}
	}
	return env
}
