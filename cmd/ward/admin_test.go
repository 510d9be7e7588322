package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/store/sqlite"
	"github.com/wardhealth/ward/internal/tlsconfig"
)

// TestServeRefuses checks that serve without --dev starts only with a TLS
// certificate and key, a private TLS key and an existing key file, and says
// what is missing.
func TestServeRefuses(t *testing.T) {
	certs, _, err := tlsconfig.EnsureDev(filepath.Join(t.TempDir(), "tls"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	openKey := filepath.Join(t.TempDir(), "open-key.pem")
	pem, err := os.ReadFile(certs.Key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(openKey, pem, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(openKey, 0o644); err != nil { // whatever the umask
		t.Fatal(err)
	}
	badLimits := filepath.Join(t.TempDir(), "limits.json")
	if err := os.WriteFile(badLimits, []byte(`{"clients": {"ward-etl": {"rate": 10, "burst": 0}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	withKeys := t.TempDir()
	if code, _, stderr := ward(t, "keys", "init", "--data", withKeys); code != 0 {
		t.Fatalf("keys init: exit %d: %s", code, stderr)
	}
	type refusal struct {
		name string
		args []string
		code int
		want []string // substrings of stderr
	}
	tests := []refusal{
		{"no TLS files", []string{"--data", t.TempDir()}, 2, []string{"--tls-cert", "--tls-key", "--dev"}},
		{"certificate without key", []string{"--data", t.TempDir(), "--tls-cert", certs.Cert}, 2, []string{"--tls-key"}},
		{"no key file", []string{"--data", t.TempDir(), "--tls-cert", certs.Cert, "--tls-key", certs.Key}, 1, []string{"no key file", "ward keys init"}},
		{"world-readable TLS key", []string{"--data", withKeys, "--tls-cert", certs.Cert, "--tls-key", openKey}, 1, []string{"chmod 600 " + openKey}},
		{"missing certificate file", []string{"--data", withKeys, "--tls-cert", filepath.Join(t.TempDir(), "absent.pem"), "--tls-key", certs.Key}, 1, []string{"certificate"}},
		{"sqlite URL", []string{"--data", withKeys, "--tls-cert", certs.Cert, "--tls-key", certs.Key, "--db", "mysql://x"}, 2, []string{"--db"}},
		{"bad roles file", []string{"--data", withKeys, "--tls-cert", certs.Cert, "--tls-key", certs.Key, "--roles", openKey}, 1, []string{"--roles"}},
		{"missing federation file", []string{"--data", withKeys, "--tls-cert", certs.Cert, "--tls-key", certs.Key, "--federation", filepath.Join(t.TempDir(), "absent.json")}, 1, []string{"--federation"}},
		{"missing rate limits file", []string{"--data", withKeys, "--tls-cert", certs.Cert, "--tls-key", certs.Key, "--rate-limits", filepath.Join(t.TempDir(), "absent.json")}, 2, []string{"--rate-limits"}},
		{"bad rate limits file", []string{"--data", withKeys, "--tls-cert", certs.Cert, "--tls-key", certs.Key, "--rate-limits", badLimits}, 2, []string{"--rate-limits", "burst 0"}},
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tests = append(tests, refusal{"address in use", []string{"--data", withKeys, "--tls-cert", certs.Cert, "--tls-key", certs.Key, "--addr", busy.Addr().String()}, 1, []string{"address already in use"}})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"serve", "--addr", freeAddr(t)}, tt.args...)
			code, stdout, stderr := ward(t, args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tt.code, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			if stdout != "" {
				t.Errorf("stdout not empty: %q", stdout)
			}
		})
	}
}

// keyFileJSON is the structure internal/keys writes to keys.json.
type keyFileJSON struct {
	Format  string          `json:"format"`
	Version int             `json:"version"`
	KDF     json.RawMessage `json:"kdf"`
	Sealed  []byte          `json:"sealed"`
	Secrets *struct {
		KEKs    map[string][]byte `json:"keks"`
		Current string            `json:"current"`
	} `json:"secrets"`
}

func readKeyFileJSON(t *testing.T, dir string) keyFileJSON {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	var kf keyFileJSON
	if err := json.Unmarshal(data, &kf); err != nil {
		t.Fatalf("keys.json: %v", err)
	}
	if kf.Format != "ward-keyfile" || kf.Version != 2 {
		t.Fatalf("keys.json: format %q version %d", kf.Format, kf.Version)
	}
	return kf
}

func TestKeysInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	code, stdout, stderr := ward(t, "keys", "init", "--data", dir)
	if code != 0 {
		t.Fatalf("keys init: exit %d: %s", code, stderr)
	}
	path := filepath.Join(dir, "keys.json")
	if !strings.Contains(stdout, "created "+path) {
		t.Errorf("stdout %q does not name %s", stdout, path)
	}
	if m := fileMode(t, path); m != 0o600 {
		t.Errorf("keys.json mode %v, want 0600", m)
	}
	kf := readKeyFileJSON(t, dir)
	if kf.Secrets == nil || len(kf.Secrets.KEKs) != 1 || kf.Secrets.KEKs[kf.Secrets.Current] == nil {
		t.Fatalf("a new unsealed key file should hold exactly its current KEK")
	}
	before, _ := os.ReadFile(path)

	code, _, stderr = ward(t, "keys", "init", "--data", dir)
	if code != 1 || !strings.Contains(stderr, "already exists") {
		t.Errorf("second keys init: exit %d, stderr %q; want 1 and 'already exists'", code, stderr)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Errorf("second keys init changed keys.json")
	}
}

// TestKeysPassphrase seals the key file and checks that every command that
// opens it needs the passphrase, from the environment or from a file.
func TestKeysPassphrase(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("WARD_KEY_PASSPHRASE", "correct horse battery staple")
	if code, _, stderr := ward(t, "keys", "init", "--data", dir); code != 0 {
		t.Fatalf("keys init: exit %d: %s", code, stderr)
	}
	kf := readKeyFileJSON(t, dir)
	if kf.Secrets != nil || len(kf.Sealed) == 0 || len(kf.KDF) == 0 {
		t.Fatalf("with WARD_KEY_PASSPHRASE, keys.json is not sealed")
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "keys.json"))
	if bytes.Contains(raw, []byte(`"keks"`)) {
		t.Fatalf("a sealed keys.json shows its KEKs")
	}
	passFile := filepath.Join(t.TempDir(), "pass")
	os.WriteFile(passFile, []byte("correct horse battery staple\n"), 0o600)
	wrongFile := filepath.Join(t.TempDir(), "wrong")
	os.WriteFile(wrongFile, []byte("incorrect horse\n"), 0o600)

	tests := []struct {
		name string
		env  *string // WARD_KEY_PASSPHRASE; nil unsets it
		args []string
		code int
		want string
	}{
		{"right passphrase", ptr("correct horse battery staple"), []string{"client", "list"}, 0, ""},
		{"right passphrase file", nil, []string{"client", "list", "--key-passphrase-file", passFile}, 0, ""},
		{"wrong passphrase", ptr("incorrect horse"), []string{"client", "list"}, 1, "does not open it"},
		{"wrong passphrase file", nil, []string{"client", "list", "--key-passphrase-file", wrongFile}, 1, "does not open it"},
		{"missing passphrase", nil, []string{"client", "list"}, 1, "is sealed: give its passphrase with --key-passphrase-file or WARD_KEY_PASSPHRASE"},
		{"missing passphrase file", nil, []string{"client", "list", "--key-passphrase-file", filepath.Join(dir, "absent")}, 1, "key passphrase"},
		{"serve, wrong passphrase", ptr("incorrect horse"), []string{"serve", "--dev", "--addr", "127.0.0.1:0"}, 1, "does not open it"},
		{"serve, missing passphrase", nil, []string{"serve", "--dev", "--addr", "127.0.0.1:0"}, 1, "is sealed"},
		{"rotate, missing passphrase", nil, []string{"keys", "rotate"}, 1, "is sealed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env == nil {
				os.Unsetenv("WARD_KEY_PASSPHRASE") // the parent's t.Setenv restores it
			} else {
				t.Setenv("WARD_KEY_PASSPHRASE", *tt.env)
			}
			code, stdout, stderr := ward(t, append(tt.args, "--data", dir)...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tt.code, stderr)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr lacks %q:\n%s", tt.want, stderr)
			}
			if code == 0 && !strings.Contains(stdout, "dev bootstrap client") && !strings.Contains(stdout, "ID") {
				t.Errorf("client list printed no table")
			}
			if strings.Contains(stderr, "horse") || strings.Contains(stdout, "horse") {
				t.Errorf("output shows the passphrase")
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "dev-credentials.json")); err == nil {
		t.Errorf("serve with a bad passphrase still wrote dev credentials")
	}

	// With the right passphrase the sealed file serves, and rotation keeps
	// it sealed.
	t.Setenv("WARD_KEY_PASSPHRASE", "correct horse battery staple")
	srv := startServe(t, "--dev", "--data", dir)
	c := dial(t, dir)
	id := c.create(patient(family(t), "Sealed"))
	srv.stopOK()
	if code, _, stderr := ward(t, "keys", "rotate", "--data", dir); code != 0 {
		t.Fatalf("keys rotate on a sealed file: exit %d: %s", code, stderr)
	}
	if kf := readKeyFileJSON(t, dir); kf.Secrets != nil || len(kf.Sealed) == 0 {
		t.Fatalf("keys rotate unsealed the key file")
	}
	srv = startServe(t, "--dev", "--data", dir)
	dial(t, dir).read("Patient", id)
	srv.stopOK()
}

func ptr[T any](v T) *T { return &v }

func TestClientCommands(t *testing.T) {
	dir := t.TempDir()
	if code, _, stderr := ward(t, "keys", "init", "--data", dir); code != 0 {
		t.Fatalf("keys init: exit %d: %s", code, stderr)
	}
	code, stdout, stderr := ward(t, "client", "create", "--data", dir, "--name", "billing", "--scope", "system/Patient.rs")
	if code != 0 {
		t.Fatalf("client create: exit %d: %s", code, stderr)
	}
	id, secret := parseCreated(t, stdout)
	if !strings.Contains(stdout, "scope:") || !strings.Contains(stdout, "system/Patient.rs") {
		t.Errorf("client create does not show the granted scope")
	}
	if !strings.Contains(stdout, "shown only now") {
		t.Errorf("client create does not say the secret is shown once")
	}

	// What list must never show: the secret and its stored hash.
	db, err := sqlite.Open(t.Context(), filepath.Join(dir, "ward.db"))
	if err != nil {
		t.Fatal(err)
	}
	stored, err := db.Client(t.Context(), id)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	forbidden := []string{secret, hex.EncodeToString(stored.SecretHash), base64.StdEncoding.EncodeToString(stored.SecretHash),
		base64.RawURLEncoding.EncodeToString(stored.SecretHash)}

	listed := func() map[string][]string {
		t.Helper()
		code, stdout, stderr := ward(t, "client", "list", "--data", dir)
		if code != 0 {
			t.Fatalf("client list: exit %d: %s", code, stderr)
		}
		for _, f := range forbidden {
			if strings.Contains(stdout, f) {
				t.Fatalf("client list shows a secret or its hash")
			}
		}
		lines := strings.Split(strings.TrimSpace(stdout), "\n")
		if got := strings.Fields(lines[0]); !slices.Equal(got, []string{"ID", "NAME", "KIND", "CREATED", "STATUS", "SCOPE", "REDIRECT", "URIS"}) {
			t.Fatalf("client list header %q", lines[0])
		}
		rows := map[string][]string{}
		for _, l := range lines[1:] {
			f := strings.Fields(l)
			rows[f[0]] = f[1:]
		}
		return rows
	}
	rows := listed()
	if row := rows[id]; len(row) != 5 || row[0] != "billing" || row[1] != "service" || row[3] != "active" || row[4] != "system/Patient.rs" {
		t.Errorf("client list row for the new client: %q", row)
	}
	if len(rows) != 1 {
		t.Errorf("client list shows %d clients, want 1", len(rows))
	}

	code, stdout, stderr = ward(t, "client", "revoke", "--data", dir, "--id", id)
	if code != 0 || !strings.Contains(stdout, "revoked "+id) {
		t.Fatalf("client revoke: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if row := listed()[id]; len(row) < 4 || row[3] != "revoked" {
		t.Errorf("after revoke, client list row %q, want status revoked", row)
	}

	empty := t.TempDir()
	tests := []struct {
		name string
		args []string
		code []int // accepted exit codes
		want string
	}{
		{"revoke unknown id", []string{"revoke", "--data", dir, "--id", "ward-nosuchclient"}, []int{1}, `no client with id "ward-nosuchclient"`},
		{"revoke without id", []string{"revoke", "--data", dir}, []int{2}, "--id is required"},
		{"create without name", []string{"create", "--data", dir}, []int{2}, "--name is required"},
		{"public service", []string{"create", "--data", dir, "--name", "x", "--public"}, []int{2}, "--public needs --redirect-uri"},
		{"app on plain http", []string{"create", "--data", dir, "--name", "x", "--redirect-uri", "http://app.example/cb"}, []int{1}, "want https, or http on a loopback address"},
		{"app with a system scope", []string{"create", "--data", dir, "--name", "x", "--redirect-uri", "https://app.example/cb", "--scope", "system/*.rs"}, []int{1}, "cannot hold system scopes"},
		{"create without name, no key file yet", []string{"create", "--data", empty}, []int{2}, "--name is required"},
		{"create with an invalid scope", []string{"create", "--data", dir, "--name", "x", "--scope", "system/Patient.fly"}, []int{1, 2}, "scope"},
		{"create with a non-SMART scope", []string{"create", "--data", dir, "--name", "x", "--scope", "admin"}, []int{1, 2}, "scope"},
		{"create with no scope", []string{"create", "--data", dir, "--name", "x", "--scope", " "}, []int{1, 2}, "scope"},
		{"list without key file", []string{"list", "--data", empty}, []int{1}, "ward keys init"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := ward(t, append([]string{"client"}, tt.args...)...)
			if !slices.Contains(tt.code, code) {
				t.Fatalf("exit %d, want one of %v; stderr:\n%s", code, tt.code, stderr)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr lacks %q:\n%s", tt.want, stderr)
			}
			if strings.Contains(stdout, "client_secret") {
				t.Errorf("a failed command printed a secret")
			}
		})
	}
	if rows := listed(); len(rows) != 1 {
		t.Errorf("failed creates left %d clients, want 1", len(rows))
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Errorf("failed commands on an empty data directory created %s", entries[0].Name())
	}
}

// TestKeysRotate writes data through a server, rotates the KEK offline,
// and reads everything back through a new server: every record stays
// readable and the old KEK is gone from keys.json.
func TestKeysRotate(t *testing.T) {
	dir := t.TempDir()
	srv := startServe(t, "--dev", "--data", dir)
	c := dial(t, dir)
	fam := family(t)
	var patients []string
	for _, given := range []string{"Ada", "Grace", "Alan"} {
		patients = append(patients, c.create(patient(fam, given)))
	}
	obs := c.create(map[string]any{
		"resourceType": "Observation", "status": "final",
		"code":    map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "8867-4"}}},
		"subject": map[string]any{"reference": "Patient/" + patients[0]},
	})
	org := c.create(map[string]any{"resourceType": "Organization", "name": "Rotation Test Clinic"})
	srv.stopOK()

	before := readKeyFileJSON(t, dir)
	oldKEK := before.Secrets.Current

	code, stdout, stderr := ward(t, "keys", "rotate", "--data", dir)
	if code != 0 {
		t.Fatalf("keys rotate: exit %d: %s", code, stderr)
	}
	after := readKeyFileJSON(t, dir)
	newKEK := after.Secrets.Current
	switch {
	case newKEK == oldKEK:
		t.Fatalf("keys rotate left the current KEK %s", oldKEK)
	case after.Secrets.KEKs[oldKEK] != nil:
		t.Errorf("keys.json still lists the old KEK %s after rotate", oldKEK)
	case len(after.Secrets.KEKs) != 1 || after.Secrets.KEKs[newKEK] == nil:
		t.Errorf("keys.json lists %d KEKs, want only the new one", len(after.Secrets.KEKs))
	}
	for _, want := range []string{"current key-encryption key: " + newKEK, "retired: " + oldKEK} {
		if !strings.Contains(stdout, want) {
			t.Errorf("keys rotate output lacks %q:\n%s", want, stdout)
		}
	}
	// Four patient compartments' or shared data keys were made; each was
	// rewrapped (a count of zero would mean nothing was rotated).
	if strings.Contains(stdout, "rewrapped data keys: 0\n") {
		t.Errorf("keys rotate rewrapped no data keys:\n%s", stdout)
	}
	if m := fileMode(t, filepath.Join(dir, "keys.json")); m != 0o600 {
		t.Errorf("after rotate keys.json has mode %v", m)
	}

	srv = startServe(t, "--dev", "--data", dir)
	c = dial(t, dir)
	for _, id := range patients {
		c.read("Patient", id)
	}
	c.read("Observation", obs)
	c.read("Organization", org)
	if ids := c.searchIDs("Patient?family=" + fam); len(ids) != len(patients) {
		t.Errorf("after rotate, search by family found %d, want %d", len(ids), len(patients))
	}
	if ids := c.searchIDs("Observation?subject=Patient/" + patients[0]); len(ids) != 1 || ids[0] != obs {
		t.Errorf("after rotate, Observation search found %v, want [%s]", ids, obs)
	}
	// New writes after rotation work and read back.
	c.read("Patient", c.create(patient(fam, "Barbara")))
	srv.stopOK()

	// A second rotation retires the first rotation's key in turn.
	if code, _, stderr := ward(t, "keys", "rotate", "--data", dir); code != 0 {
		t.Fatalf("second keys rotate: exit %d: %s", code, stderr)
	}
	if again := readKeyFileJSON(t, dir); again.Secrets.KEKs[newKEK] != nil || len(again.Secrets.KEKs) != 1 {
		t.Errorf("second rotate kept the previous KEK")
	}
	srv = startServe(t, "--dev", "--data", dir)
	c = dial(t, dir)
	for _, id := range patients {
		c.read("Patient", id)
	}
	if status, _ := c.do(http.MethodGet, "/Organization/"+org, nil); status != http.StatusOK {
		t.Errorf("after a second rotate, Organization read: status %d", status)
	}
	srv.stopOK()
}
