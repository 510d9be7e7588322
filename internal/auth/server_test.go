package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/store"
)

func TestNewServerConfig(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	ok := Config{Issuer: testIssuer, Audience: testAudience}
	tests := []struct {
		name    string
		mutate  func(*Config)
		clients store.Clients
		key     ed25519.PrivateKey
		wantErr bool
	}{
		{"defaults", func(*Config) {}, newMemClients(), key, false},
		{"ttl one hour", func(c *Config) { c.TokenTTL = time.Hour }, newMemClients(), key, false},
		{"ttl above one hour", func(c *Config) { c.TokenTTL = time.Hour + time.Second }, newMemClients(), key, true},
		{"negative ttl", func(c *Config) { c.TokenTTL = -time.Minute }, newMemClients(), key, true},
		{"no issuer", func(c *Config) { c.Issuer = "" }, newMemClients(), key, true},
		{"http issuer", func(c *Config) { c.Issuer = "http://127.0.0.1:8080" }, newMemClients(), key, true},
		{"issuer with query", func(c *Config) { c.Issuer = testIssuer + "?x=1" }, newMemClients(), key, true},
		{"relative audience", func(c *Config) { c.Audience = "/fhir" }, newMemClients(), key, true},
		{"no store", func(*Config) {}, nil, key, true},
		{"no key", func(*Config) {}, newMemClients(), nil, true},
		{"short key", func(*Config) {}, newMemClients(), key[:32], true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.mutate(&cfg)
			var clients store.Clients
			if tt.clients != nil {
				clients = tt.clients
			}
			s, err := NewServer(cfg, clients, tt.key)
			if (err != nil) != tt.wantErr {
				t.Fatalf("NewServer error = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "auth: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if err == nil && tt.name == "defaults" {
				if s.cfg.TokenTTL != 5*time.Minute || s.cfg.ClientCacheTTL != 5*time.Second || s.cache == nil {
					t.Fatalf("defaults not applied: %+v", s.cfg)
				}
			}
		})
	}
}

// TestJWKS checks the key set and that kid is the RFC 7638 thumbprint,
// computed here independently of go-jose.
func TestJWKS(t *testing.T) {
	f := newFixture(t)
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(f.srv.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 1 {
		t.Fatalf("want one key, got %d", len(set.Keys))
	}
	k := set.Keys[0]
	x := base64.RawURLEncoding.EncodeToString(f.key.Public().(ed25519.PublicKey))
	sum := sha256.Sum256([]byte(`{"crv":"Ed25519","kty":"OKP","x":"` + x + `"}`))
	want := map[string]string{"kty": "OKP", "crv": "Ed25519", "x": x, "alg": "EdDSA", "use": "sig",
		"kid": base64.RawURLEncoding.EncodeToString(sum[:])}
	for name, v := range want {
		if k[name] != v {
			t.Errorf("jwk %s = %q, want %q", name, k[name], v)
		}
	}
	if _, ok := k["d"]; ok || len(k) != len(want) {
		t.Fatalf("jwk has unexpected members: %v", k)
	}
	b := f.srv.JWKS()
	b[0] = 'X'
	if f.srv.JWKS()[0] != '{' {
		t.Fatal("JWKS returned its internal buffer")
	}
}

func TestSecretRedacts(t *testing.T) {
	f := newFixture(t)
	raw := f.secret.Reveal()
	if len(raw) != 43 {
		t.Fatalf("secret has %d characters, want 43 (32 bytes base64url)", len(raw))
	}
	if b, err := base64.RawURLEncoding.DecodeString(raw); err != nil || len(b) != 32 {
		t.Fatalf("secret is not 32 bytes of base64url: %v", err)
	}
	wrapped := struct{ S Secret }{f.secret}
	for _, format := range []string{"%v", "%s", "%+v", "%#v", "%q", "%x", "%X", "%d", "%10.3s"} {
		for _, v := range []any{f.secret, &f.secret, wrapped} {
			if out := fmt.Sprintf(format, v); strings.Contains(out, raw) || strings.Contains(out, raw[:8]) ||
				strings.Contains(out, fmt.Sprintf("%x", raw[:8])) {
				t.Fatalf("%s printed the secret: %s", format, out)
			}
		}
	}
	req := TokenRequest{ClientID: "x", ClientSecret: raw, ClientAssertion: "assertion-value"}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		if out := fmt.Sprintf(format, req); strings.Contains(out, raw) || strings.Contains(out, "assertion-value") {
			t.Fatalf("TokenRequest %s printed a credential: %s", format, out)
		}
	}
	if !f.secret.Equal(Secret{v: raw}) || f.secret.Equal(Secret{v: otherChar(raw)}) || f.secret.Equal(Secret{}) {
		t.Fatal("Secret.Equal is wrong")
	}
}

func TestCreateListRevokeClient(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	if !regexp.MustCompile(`^ward-[a-z2-7]{16}$`).MatchString(f.id) {
		t.Fatalf("client id %q does not match ward- + 16 base32", f.id)
	}
	stored, err := f.store.Client(ctx, f.id)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored.SecretHash) != 48 {
		t.Fatalf("stored hash has %d bytes, want 48", len(stored.SecretHash))
	}
	sum := sha256.Sum256(append(stored.SecretHash[:16:16], f.secret.Reveal()...))
	if string(stored.SecretHash[16:]) != string(sum[:]) {
		t.Fatal("stored hash is not salt || SHA-256(salt || secret)")
	}
	if got := strings.Join(stored.Scopes, " "); got != "system/Patient.rs system/Observation.cruds" {
		t.Fatalf("stored scopes %q, want canonical v2", got)
	}
	if !stored.Created.Equal(f.clock.Now()) || stored.Revoked || stored.Name != "lab feed" {
		t.Fatalf("stored client %+v", stored)
	}

	// A second client with the same secret space gets a different id, salt and secret.
	c2, s2, err := f.srv.CreateClientWithID(ctx, "ward-dev-bootstrap", "dev", []string{"system/*.*", "system/*.cruds"})
	if err != nil {
		t.Fatal(err)
	}
	if c2.SecretHash != nil || s2.Equal(f.secret) || len(c2.Scopes) != 1 {
		t.Fatalf("second client: %+v", c2)
	}
	if _, _, err := f.srv.CreateClientWithID(ctx, "ward-dev-bootstrap", "again", []string{"system/*.rs"}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate id: %v, want ErrConflict", err)
	}

	list, err := f.srv.ListClients(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("ListClients = %v, %v", list, err)
	}
	for _, c := range list {
		if c.SecretHash != nil {
			t.Fatalf("ListClients leaked the hash of %s", c.ID)
		}
	}

	if err := f.srv.RevokeClient(ctx, f.id); err != nil {
		t.Fatal(err)
	}
	if c, _ := f.store.Client(ctx, f.id); !c.Revoked {
		t.Fatal("client not revoked in the store")
	}
	if err := f.srv.RevokeClient(ctx, "ward-unknown"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoke unknown: %v, want ErrNotFound", err)
	}

	f.store.fail = fmt.Errorf("disk gone: %w", store.ErrUnavailable)
	if _, err := f.srv.ListClients(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("ListClients with a failing store: %v", err)
	}
}

func TestCreateClientRejects(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name, id, cname string
		scopes          []string
	}{
		{"no scopes", "ok", "n", nil},
		{"malformed scope", "ok", "n", []string{"system/Patient.rx"}},
		{"query scope", "ok", "n", []string{"system/Observation.rs?category=laboratory"}},
		{"non-resource scope", "ok", "n", []string{"openid"}},
		{"too many scopes", "ok", "n", strings.Fields(strings.Repeat("system/*.rs ", 65))},
		{"empty name", "ok", "", []string{"system/*.rs"}},
		{"control char in name", "ok", "a\nb", []string{"system/*.rs"}},
		{"long name", "ok", strings.Repeat("n", 201), []string{"system/*.rs"}},
		{"empty id", "", "n", []string{"system/*.rs"}},
		{"id with slash", "a/b", "n", []string{"system/*.rs"}},
		{"long id", strings.Repeat("a", 65), "n", []string{"system/*.rs"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := f.srv.CreateClientWithID(context.Background(), tt.id, tt.cname, tt.scopes); err == nil {
				t.Fatal("accepted")
			}
			if _, err := f.store.Client(context.Background(), tt.id); !errors.Is(err, store.ErrNotFound) {
				t.Fatal("a rejected client was stored")
			}
		})
	}
}
