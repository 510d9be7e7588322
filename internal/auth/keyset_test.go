package auth

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func jwksKids(t *testing.T, s *Server) []string {
	t.Helper()
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(s.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range set.Keys {
		out = append(out, k.Kid)
	}
	return out
}

// TestTokenKeyRotation (catalogue J2, token signing): after a rotation
// the new key signs, the old key's tokens keep verifying (by kid) while
// it is listed, the JWKS publishes both, and once the old key is retired
// its tokens are refused. A token under a key this server has not heard
// of yet makes it ask its key source once before refusing.
func TestTokenKeyRotation(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	oldTok, oldKid := f.token, f.srv.KeyID()
	if _, err := f.srv.Verify(ctx, oldTok); err != nil {
		t.Fatal(err)
	}
	next := newKey(t)
	if err := f.srv.SetKeys(next, f.key.Public().(ed25519.PublicKey)); err != nil {
		t.Fatal(err)
	}
	newKid := f.srv.KeyID()
	if newKid == oldKid {
		t.Fatal("the key id did not change with the key")
	}
	if kids := jwksKids(t, f.srv); len(kids) != 2 || kids[0] != newKid || kids[1] != oldKid {
		t.Errorf("JWKS kids %v, want [%s %s]", kids, newKid, oldKid)
	}
	f.srv.tokens = newTokenCache() // verify afresh, not from the cache
	if _, err := f.srv.Verify(ctx, oldTok); err != nil {
		t.Errorf("a token of the previous key is refused during its lifetime: %v", err)
	}
	resp, err := f.srv.Token(ctx, TokenRequest{GrantType: "client_credentials", ClientID: f.id, ClientSecret: f.secret.Reveal()})
	if err != nil {
		t.Fatal(err)
	}
	hdr, err := parseHeaderKid(resp.AccessToken)
	if err != nil || hdr != newKid {
		t.Errorf("a new token names kid %q, want the new key's %q", hdr, newKid)
	}
	// The old key retires.
	if err := f.srv.SetKeys(next); err != nil {
		t.Fatal(err)
	}
	f.srv.tokens = newTokenCache()
	if _, err := f.srv.Verify(ctx, oldTok); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("a token of a retired key: %v, want ErrInvalidToken", err)
	}
	if _, err := f.srv.Verify(ctx, resp.AccessToken); err != nil {
		t.Errorf("a token of the current key: %v", err)
	}

	// Another process rotated: a token under its new key is accepted
	// once the source is asked.
	third := newKey(t)
	other, err := NewServer(Config{Issuer: testIssuer, Audience: testAudience, Now: f.clock.Now}, f.store, third)
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := other.Token(ctx, TokenRequest{GrantType: "client_credentials", ClientID: f.id, ClientSecret: f.secret.Reveal()})
	if err != nil {
		t.Fatal(err)
	}
	f.srv.tokens = newTokenCache()
	if _, err := f.srv.Verify(ctx, theirs.AccessToken); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("a token under an unknown key without a source: %v", err)
	}
	asked := 0
	f.srv.WithKeySource(func() (crypto.Signer, []ed25519.PublicKey, error) {
		asked++
		return third, []ed25519.PublicKey{next.Public().(ed25519.PublicKey)}, nil
	})
	f.srv.lastAsk.Store(0)
	if _, err := f.srv.Verify(ctx, theirs.AccessToken); err != nil {
		t.Errorf("a token under the rotated key after asking the source: %v", err)
	}
	if asked != 1 || f.srv.KeyID() != other.KeyID() {
		t.Errorf("source asked %d times, signing kid %s; want 1 and the rotated key", asked, f.srv.KeyID())
	}
	// Unknown keys do not make the server ask more than once a second.
	forged := f.forge(t, forgery{alg: "EdDSA", key: newKey(t), kid: "x", typ: tokenType, payload: f.claims(nil)})
	for range 5 {
		f.srv.Verify(ctx, forged)
	}
	if asked > 2 {
		t.Errorf("the key source was asked %d times for forged tokens within a second", asked)
	}
}

func parseHeaderKid(tok string) (string, error) {
	hdr, _, _ := strings.Cut(tok, ".")
	raw, err := base64.RawURLEncoding.DecodeString(hdr)
	if err != nil {
		return "", err
	}
	var h struct {
		Kid string `json:"kid"`
	}
	err = json.Unmarshal(raw, &h)
	return h.Kid, err
}
