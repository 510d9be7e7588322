package federation

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// maxTokenLen bounds a token: external IdPs put more in their tokens than
// Ward does (group lists), but not this much.
const maxTokenLen = 16 << 10

// rawToken is a compact JWS split and decoded, not yet verified.
type rawToken struct {
	alg, kid, typ string
	claims        claimSet
}

// allowedHeader are the only protected header members accepted: x5t and
// x5t#S256 are thumbprints some IdPs add beside kid; Ward ignores them.
// Everything else (jku, x5u, jwk, x5c, crit, cty, b64, zip, nonce, ...) is
// refused, so no key or URL named by a token can play any part.
var allowedHeader = map[string]bool{"alg": true, "kid": true, "typ": true, "x5t": true, "x5t#S256": true}

// knownHeader are registered JOSE header names, refused by name in errors;
// another name is the sender's text and stays out of errors and logs.
var knownHeader = map[string]bool{"jku": true, "jwk": true, "x5u": true, "x5c": true, "crit": true, "cty": true,
	"b64": true, "zip": true, "enc": true, "nonce": true, "url": true, "epk": true, "apu": true, "apv": true, "iv": true, "tag": true}

// splitToken checks a token's shape and decodes its header and claims.
func splitToken(token string) (rawToken, error) {
	if len(token) == 0 || len(token) > maxTokenLen {
		return rawToken{}, errors.New("token empty or too long")
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return rawToken{}, errors.New("not a compact JWS")
	}
	for _, p := range parts {
		if !canonicalBase64(p) {
			return rawToken{}, errors.New("non-canonical base64url")
		}
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return rawToken{}, errors.New("header is not base64url")
	}
	var t rawToken
	if t.alg, t.kid, t.typ, err = parseHeader(hb); err != nil {
		return rawToken{}, err
	}
	pb, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return rawToken{}, errors.New("claims are not base64url")
	}
	if t.claims, err = parseClaims(pb); err != nil {
		return rawToken{}, err
	}
	return t, nil
}

// parseHeader reads a protected header: only allowedHeader members, alg
// required, every member a string.
func parseHeader(b []byte) (alg, kid, typ string, err error) {
	if err := checkJSON(b); err != nil {
		return "", "", "", fmt.Errorf("header: %w", err)
	}
	var h map[string]json.RawMessage
	if err := json.Unmarshal(b, &h); err != nil {
		return "", "", "", errors.New("header: malformed JSON")
	}
	for k, v := range h {
		if !allowedHeader[k] {
			if knownHeader[k] {
				return "", "", "", fmt.Errorf("header: member %q refused", k)
			}
			return "", "", "", errors.New("header: unknown member refused")
		}
		var s string
		if len(v) == 0 || v[0] != '"' || json.Unmarshal(v, &s) != nil {
			return "", "", "", fmt.Errorf("header: member %q is not a string", k)
		}
		switch k {
		case "alg":
			alg = s
		case "kid":
			kid = s
		case "typ":
			typ = s
		}
	}
	if alg == "" {
		return "", "", "", errors.New("header: no alg")
	}
	if _, ok := h["kid"]; ok && !printable(kid, 256) {
		return "", "", "", errors.New("header: kid empty, too long or not printable")
	}
	return alg, kid, typ, nil
}

// typeMatches compares typ header values (RFC 7515 section 4.1.9): case
// insensitive, with the "application/" prefix optional.
func typeMatches(got, want string) bool {
	norm := func(s string) string {
		s = strings.ToLower(s)
		return strings.TrimPrefix(s, "application/")
	}
	return norm(got) == norm(want)
}

// canonicalBase64 reports whether s is non-empty unpadded base64url, in
// the URL alphabet only (the decoder would skip newlines), whose unused
// trailing bits are zero: so that a token has exactly one encoding.
func canonicalBase64(s string) bool {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	if len(s) == 0 || len(s)%4 == 1 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(alphabet, s[i]) < 0 {
			return false
		}
	}
	last := strings.IndexByte(alphabet, s[len(s)-1])
	switch len(s) % 4 {
	case 2:
		return last&0x0f == 0
	case 3:
		return last&0x03 == 0
	}
	return true
}
