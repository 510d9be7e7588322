package main

import (
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestConfigPrecedence checks the documented order: command line, then
// environment (WARD_<FLAG>), then the --config file (or WARD_CONFIG), then
// the default. It calls parseFlags on a flag set like serve's, since
// starting a server per case would be slow.
func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	file := write("ward.json", `{"addr": "file:1", "token-ttl": "2m", "dev": true, "workers": 7}`)
	other := write("other.json", `{"addr": "other:1"}`)

	type result struct {
		addr    string
		ttl     time.Duration
		dev     bool
		workers int
	}
	def := result{"127.0.0.1:8443", 5 * time.Minute, false, 4}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want result
	}{
		{"defaults", nil, nil, def},
		{"file", nil, []string{"--config", file}, result{"file:1", 2 * time.Minute, true, 7}},
		{"file from WARD_CONFIG", map[string]string{"WARD_CONFIG": file}, nil, result{"file:1", 2 * time.Minute, true, 7}},
		{"--config wins over WARD_CONFIG", map[string]string{"WARD_CONFIG": other}, []string{"--config", file}, result{"file:1", 2 * time.Minute, true, 7}},
		{"environment over file", map[string]string{"WARD_ADDR": "env:1", "WARD_TOKEN_TTL": "3m"}, []string{"--config", file}, result{"env:1", 3 * time.Minute, true, 7}},
		{"flag over environment over file", map[string]string{"WARD_ADDR": "env:1"}, []string{"--config", file, "--addr", "flag:1"}, result{"flag:1", 2 * time.Minute, true, 7}},
		{"flag over file", nil, []string{"--addr", "flag:1", "--config", file, "--dev=false"}, result{"flag:1", 2 * time.Minute, false, 7}},
		{"environment without file", map[string]string{"WARD_ADDR": "env:1", "WARD_DEV": "true"}, nil, result{"env:1", 5 * time.Minute, true, 4}},
		{"empty environment value is a value", map[string]string{"WARD_ADDR": ""}, []string{"--config", file}, result{"", 2 * time.Minute, true, 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			fs, got := serveLikeFlags()
			if err := parseFlags(fs, tt.args, io.Discard); err != nil {
				t.Fatalf("parseFlags: %v", err)
			}
			if r := (result{*got.addr, *got.ttl, *got.dev, *got.workers}); r != tt.want {
				t.Errorf("got %+v, want %+v", r, tt.want)
			}
		})
	}
}

type serveLike struct {
	addr    *string
	ttl     *time.Duration
	dev     *bool
	workers *int
}

func serveLikeFlags() (*flag.FlagSet, serveLike) {
	fs := newFlagSet("test", "")
	return fs, serveLike{
		addr:    fs.String("addr", "127.0.0.1:8443", ""),
		ttl:     fs.Duration("token-ttl", 5*time.Minute, ""),
		dev:     fs.Bool("dev", false, ""),
		workers: fs.Int("workers", 4, ""),
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content string // written to the config file; "" means no file
		env     map[string]string
		want    string // substring of the error
		usage   bool   // a usageError (exit 2)
	}{
		{"unknown key", `{"addr": "a:1", "adress": "b:2"}`, nil, `unknown setting "adress"`, false},
		{"not JSON", `addr = "a:1"`, nil, "config", false},
		{"not an object", `["addr"]`, nil, "JSON object", false},
		{"duplicate key", `{"addr": "a:1", "addr": "b:2"}`, nil, "duplicate", false},
		{"trailing data", `{"addr": "a:1"} {"addr": "b:2"}`, nil, "after the JSON object", false},
		{"nested value", `{"addr": {"host": "a"}}`, nil, "want a string, number or boolean", false},
		{"null value", `{"addr": null}`, nil, "want a string, number or boolean", false},
		{"bad boolean", `{"dev": "maybe"}`, nil, "dev", false},
		{"bad duration", `{"token-ttl": 5}`, nil, "token-ttl", false},
		{"bad environment value", "", map[string]string{"WARD_WORKERS": "many"}, "WARD_WORKERS", false},
		{"missing file", "", map[string]string{"WARD_CONFIG": filepath.Join(dir, "absent.json")}, "config", false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var args []string
			if tt.content != "" {
				p := filepath.Join(dir, "c"+string(rune('a'+i))+".json")
				if err := os.WriteFile(p, []byte(tt.content), 0o600); err != nil {
					t.Fatal(err)
				}
				args = []string{"--config", p}
			}
			fs, _ := serveLikeFlags()
			err := parseFlags(fs, args, io.Discard)
			if err == nil {
				t.Fatalf("parseFlags accepted it")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q lacks %q", err, tt.want)
			}
			var ue usageError
			if got := errors.As(err, &ue); got != tt.usage {
				t.Errorf("usage error = %v, want %v", got, tt.usage)
			}
		})
	}
}

// TestConfigCommand checks that a config file reaches a real command: the
// data directory comes from the file, and an unknown setting fails the
// command.
func TestConfigCommand(t *testing.T) {
	data := filepath.Join(t.TempDir(), "from-config")
	cfg := filepath.Join(t.TempDir(), "ward.json")
	b, _ := json.Marshal(map[string]string{"data": data})
	os.WriteFile(cfg, b, 0o600)
	if code, _, stderr := ward(t, "keys", "init", "--config", cfg); code != 0 {
		t.Fatalf("keys init --config: exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(data, "keys.json")); err != nil {
		t.Fatalf("keys init did not use the data directory from the config file: %v", err)
	}
	t.Setenv("WARD_CONFIG", cfg)
	if code, stdout, stderr := ward(t, "client", "list"); code != 0 || !strings.HasPrefix(stdout, "ID") {
		t.Fatalf("client list with WARD_CONFIG: exit %d: %s", code, stderr)
	}
	os.WriteFile(cfg, []byte(`{"data": "x", "colour": "blue"}`), 0o600)
	code, _, stderr := ward(t, "client", "list")
	if code != 1 || !strings.Contains(stderr, `unknown setting "colour"`) {
		t.Errorf("unknown setting: exit %d, stderr %q; want 1 naming it", code, stderr)
	}
}

// FuzzReadConfig checks that readConfig never panics and accepts only what
// a lenient JSON decoder also reads as an object with the same names.
func FuzzReadConfig(f *testing.F) {
	for _, s := range []string{`{}`, `{"addr":"a:1","dev":true,"workers":4}`, `{"a":1,"a":2}`, `{"a":{}}`, `[]`, `{"a":"\u00e9"} x`, `{"a":-1.5e3}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := readConfig(data)
		if err != nil {
			return
		}
		var loose map[string]any
		if err := json.Unmarshal(data, &loose); err != nil {
			t.Fatalf("readConfig accepted what encoding/json rejects: %v", err)
		}
		if len(loose) != len(got) {
			t.Fatalf("readConfig found %d names, encoding/json %d", len(got), len(loose))
		}
		for k, v := range loose {
			g, ok := got[k]
			if !ok {
				t.Fatalf("name %q missing", k)
			}
			if s, isString := v.(string); isString && s != g {
				t.Fatalf("value of %q: %q, encoding/json %q", k, g, s)
			}
		}
	})
}
