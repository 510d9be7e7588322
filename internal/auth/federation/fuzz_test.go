package federation

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

func TestCheckJSON(t *testing.T) {
	for doc, ok := range map[string]bool{
		`{}`: true,
		`{"a":1,"b":{"a":2},"c":[{"a":1},{"a":1}]}`: true,
		`{"a":1,"a":2}`:         false,
		`{"a":{"b":1,"b":1}}`:   false,
		`{"a":[{"b":1,"b":1}]}`: false,
		`{"a":1}{}`:             false,
		`{"a":1} x`:             false,
		`[]`:                    false,
		`"x"`:                   false,
		`{"a":`:                 false,
		`{"a":"\xff"}`:          false,
		``:                      false,
		strings.Repeat(`{"a":`, 17) + `1` + strings.Repeat(`}`, 17): false,
		strings.Repeat(`{"a":`, 15) + `1` + strings.Repeat(`}`, 15): true,
	} {
		if got := checkJSON([]byte(doc)) == nil; got != ok {
			t.Errorf("checkJSON(%.40q) ok=%v, want %v", doc, got, ok)
		}
	}
}

// FuzzCheckJSON: whatever checkJSON accepts is one valid JSON object that
// encoding/json decodes to the same keys.
func FuzzCheckJSON(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1,"a":2}`, `{"a":[1,{"b":null}]}`, `{"a":"\u0000"}`, `{"a":1}{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if checkJSON(b) != nil {
			return
		}
		if !json.Valid(b) {
			t.Fatalf("accepted invalid JSON %q", b)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("accepted %q, which is not an object: %v", b, err)
		}
	})
}

// FuzzSplitToken: no input panics, and an accepted token has three
// canonical parts and an alg.
func FuzzSplitToken(f *testing.F) {
	hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"ES256","kid":"k","typ":"at+jwt"}`))
	body := base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"https://idp.example","sub":"x","exp":1}`))
	f.Add(hdr + "." + body + ".c2ln")
	f.Add("..")
	f.Add(hdr + ".e30.")
	f.Fuzz(func(t *testing.T, tok string) {
		rt, err := splitToken(tok)
		if err != nil {
			return
		}
		parts := strings.Split(tok, ".")
		if len(parts) != 3 || rt.alg == "" || rt.claims == nil {
			t.Fatalf("accepted %q as %+v", tok, rt)
		}
		for _, p := range parts {
			if _, err := base64.RawURLEncoding.Strict().DecodeString(p); err != nil || strings.ContainsAny(p, "\r\n=") {
				t.Fatalf("accepted non-canonical part %q", p)
			}
		}
	})
}

// FuzzParseKeySet: no input panics, and an accepted set holds only public
// keys of the expected types.
func FuzzParseKeySet(f *testing.F) {
	f.Add([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"k"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","d":"jpsQnnGQmL-YBIffH1136cLSG7-Gk6fzfaGqvpDFeDg"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ks, err := parseKeySet(b, supportedAlgorithms, 50)
		if err != nil {
			return
		}
		if len(ks.keys) == 0 || len(ks.keys) > 50 {
			t.Fatalf("accepted a set of %d keys", len(ks.keys))
		}
		for _, k := range ks.keys {
			switch k.key.(type) {
			case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
			default:
				t.Fatalf("accepted a %T", k.key)
			}
			if len(k.algs) == 0 {
				t.Fatal("accepted a key usable with no algorithm")
			}
		}
	})
}
