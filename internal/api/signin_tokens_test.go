package api_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/cryptosigner"
)

// TestPersonTokenForgeries is catalogue case B1 for people's tokens: only
// a token exactly as Ward's OpenID provider signs it, for a live grant of
// the same person and app, is accepted; everything else is 401 and audited.
func TestPersonTokenForgeries(t *testing.T) {
	s := newStackWith(t, stackOptions{noAuthCache: true})
	s.newPatientUser("pat.b1")
	other, _ := s.newPatientUser("pat.other")
	a := s.newApp(false, "openid", "patient/*.rs")
	rp := s.relyingParty(a, "openid", "patient/*.rs")
	good := rp.exchange(t, s.signIn(s.newBrowser(), a, rp.authURL("b1"), "pat.b1", testPassword)).AccessToken
	claims := jwtClaims(t, good)

	signer := s.keyFile.TokenSigner()
	key := cryptosigner.Opaque(signer)
	sign := func(c map[string]any, alg jose.SignatureAlgorithm, k any, typ string, extra map[jose.HeaderKey]any) string {
		opts := (&jose.SignerOptions{}).WithType(jose.ContentType(typ))
		for hk, v := range extra {
			opts = opts.WithHeader(hk, v)
		}
		sg, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: &jose.JSONWebKey{Key: k, KeyID: s.auth.KeyID()}}, opts)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(c)
		obj, err := sg.Sign(body)
		if err != nil {
			t.Fatal(err)
		}
		tok, _ := obj.CompactSerialize()
		return tok
	}
	with := func(k string, v any) map[string]any {
		c := map[string]any{}
		for kk, vv := range claims {
			c[kk] = vv
		}
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	now := time.Now().Unix()
	payload := base64.RawURLEncoding.EncodeToString(mustJSON(t, claims))
	forgeries := map[string]string{
		"re-signed unchanged (control)": sign(claims, jose.EdDSA, key, "JWT", nil),
		"alg none":                      base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + payload + ".",
		"HS256 with the public key":     sign(claims, jose.HS256, []byte(signer.Public().(ed25519.PublicKey)), "JWT", nil),
		"service header":                sign(claims, jose.EdDSA, key, "at+jwt", nil),
		"foreign jku":                   sign(claims, jose.EdDSA, key, "JWT", map[jose.HeaderKey]any{"jku": "https://attacker.example/jwks"}),
		"another key":                   sign(claims, jose.EdDSA, otherKey, "JWT", nil),
		"no grant":                      sign(with("ward_grant", nil), jose.EdDSA, key, "JWT", nil),
		"another person's subject":      sign(with("sub", other.ID), jose.EdDSA, key, "JWT", nil),
		"audience is the app only":      sign(with("aud", []string{a.client.ID}), jose.EdDSA, key, "JWT", nil),
		"wrong issuer":                  sign(with("iss", "https://ward.example"), jose.EdDSA, key, "JWT", nil),
		"expired":                       sign(with("exp", now-120), jose.EdDSA, key, "JWT", nil),
		"not yet valid":                 sign(with("nbf", now+600), jose.EdDSA, key, "JWT", nil),
		"lifetime over an hour":         sign(with("exp", now+7200), jose.EdDSA, key, "JWT", nil),
		"system scope":                  sign(with("scope", "openid system/*.cruds"), jose.EdDSA, key, "JWT", nil),
		"id_token claim (nonce)":        sign(with("nonce", "n"), jose.EdDSA, key, "JWT", nil),
		"jti of another grant":          sign(with("jti", "othergrant.x"), jose.EdDSA, key, "JWT", nil),
		"flipped bit":                   good[:len(good)-6] + otherLetter(good[len(good)-6:len(good)-5]) + good[len(good)-5:],
	}
	for name, tok := range forgeries {
		st := s.do("GET", "/fhir/Patient", nil, "Authorization", "Bearer "+tok).status
		want := http.StatusUnauthorized
		if strings.HasPrefix(name, "re-signed") {
			if st == http.StatusUnauthorized {
				t.Errorf("%s: %d; the forgeries below prove nothing if the control fails", name, st)
			}
			continue
		}
		if st != want {
			t.Errorf("%s: status %d, want %d", name, st, want)
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func otherLetter(c string) string {
	if c == "A" {
		return "B"
	}
	return "A"
}
