package loadgen

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseCredentials(t *testing.T) {
	full := `{"base_url":"https://127.0.0.1:8443/fhir","token_url":"https://127.0.0.1:8443/oauth2/token",` +
		`"ca_file":"ca.pem","client_id":"cli","client_secret":"topsecret"}`
	for _, tc := range []struct {
		name    string
		doc     string
		wantErr string // substring; "" means success
	}{
		{"complete", full, ""},
		{"with scope", strings.TrimSuffix(full, "}") + `,"scope":"system/*.rs"}`, ""},
		{"missing secret", `{"base_url":"https://h/fhir","token_url":"https://h/t","ca_file":"c","client_id":"x"}`, "missing required field(s): client_secret"},
		{"missing several", `{"client_id":"x","client_secret":"topsecret"}`, "missing required field(s): base_url, token_url, ca_file"},
		{"blank id", strings.Replace(full, `"cli"`, `"  "`, 1), "missing required field(s): client_id"},
		{"unknown field", strings.TrimSuffix(full, "}") + `,"password":"topsecret"}`, "unknown field"},
		{"wrong type", strings.Replace(full, `"topsecret"`, `42`, 1), "wrong type"},
		{"trailing data", full + `{}`, "data after the object"},
		{"not json", `base_url=https://h`, "syntax error"},
		{"empty", ``, "invalid JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseCredentials([]byte(tc.doc))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if cfg.ClientID != "cli" || !cfg.ClientSecret.Equal("topsecret") || cfg.CAFile != "ca.pem" ||
					cfg.BaseURL != "https://127.0.0.1:8443/fhir" || cfg.TokenURL != "https://127.0.0.1:8443/oauth2/token" {
					t.Errorf("parsed %+v", cfg)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "topsecret") {
				t.Errorf("error reveals the secret: %v", err)
			}
		})
	}
}

func TestLoadCredentials(t *testing.T) {
	dir := t.TempDir()
	doc := `{"base_url":"https://h:1/fhir","token_url":"https://h:1/oauth2/token","ca_file":"dev-ca.pem","client_id":"c","client_secret":"s"}`
	write := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(doc), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg, err := LoadCredentials(write("ok.json", 0o600))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "dev-ca.pem"); cfg.CAFile != want {
		t.Errorf("relative ca_file resolved to %q, want %q", cfg.CAFile, want)
	}
	if _, err := LoadCredentials(write("open.json", 0o644)); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("group-readable credentials: error = %v, want a chmod 600 hint", err)
	}
	if _, err := LoadCredentials(filepath.Join(dir, "absent.json")); err == nil {
		t.Error("missing file accepted")
	}
}

func TestSecretDoesNotPrint(t *testing.T) {
	cfg := Config{ClientID: "c", ClientSecret: "hunter2-secret"}
	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg),
		//lint:ignore S1025 the point is to format the secret with %s
		fmt.Sprintf("%s", cfg.ClientSecret),
		fmt.Sprintf("%q", cfg.ClientSecret), string(js), token("tok-value-1").String(),
	} {
		if strings.Contains(s, "hunter2") || strings.Contains(s, "tok-value") {
			t.Errorf("secret printed: %s", s)
		}
	}
	if !cfg.ClientSecret.Equal("hunter2-secret") || cfg.ClientSecret.Equal("hunter2-secreT") || cfg.ClientSecret.Equal("") {
		t.Error("Secret.Equal wrong")
	}
}

func TestValidate(t *testing.T) {
	good := Config{BaseURL: "https://ward.example:8443/fhir", TokenURL: "https://ward.example:8443/oauth2/token",
		ClientID: "c", ClientSecret: "s", Dir: "d"}
	for _, tc := range []struct {
		name    string
		edit    func(*Config)
		wantErr string
	}{
		{"defaults", func(*Config) {}, ""},
		{"other token host", func(c *Config) { c.TokenURL = "https://evil.example:8443/oauth2/token" }, "refusing to contact another host"},
		{"other token port", func(c *Config) { c.TokenURL = "https://ward.example:9443/oauth2/token" }, "refusing to contact another host"},
		{"plain http base", func(c *Config) { c.BaseURL = "http://ward.example:8443/fhir" }, "must use https"},
		{"plain http token", func(c *Config) { c.TokenURL = "http://ward.example:8443/t" }, "must use https"},
		{"userinfo", func(c *Config) { c.BaseURL = "https://u:p@ward.example:8443/fhir" }, "without credentials"},
		{"no host", func(c *Config) { c.BaseURL = "https:///fhir" }, "without credentials"},
		{"no secret", func(c *Config) { c.ClientSecret = "" }, "client secret"},
		{"no dir", func(c *Config) { c.Dir = "" }, "directory"},
		{"negative concurrency", func(c *Config) { c.Concurrency = -1 }, "concurrency must not be negative"},
		{"negative timeout", func(c *Config) { c.Timeout = -1 }, "timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.edit(&c)
			s, err := validate(c)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Concurrency != DefaultConcurrency || s.ReadConcurrency != DefaultReadConcurrency ||
				s.Reads != DefaultReads || s.Searches != DefaultSearches || s.Timeout != DefaultTimeout || s.Out == nil {
				t.Errorf("defaults not applied: %+v", s.Config)
			}
		})
	}
}

func FuzzParseCredentials(f *testing.F) {
	f.Add([]byte(`{"base_url":"https://h/fhir","token_url":"https://h/t","ca_file":"c","client_id":"x","client_secret":"y"}`))
	f.Add([]byte(`{"client_id":"x"}`))
	f.Add([]byte(`{"client_secret":12}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := parseCredentials(data)
		if err != nil {
			return
		}
		if cfg.BaseURL == "" || cfg.TokenURL == "" || cfg.CAFile == "" || cfg.ClientID == "" || cfg.ClientSecret == "" {
			t.Fatalf("accepted credentials with an empty required field")
		}
	})
}
