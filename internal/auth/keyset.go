package auth

import (
	"crypto"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/cryptosigner"
)

// keySet is the token signing key and every key tokens are accepted
// under. It is immutable; SetKeys swaps it whole.
type keySet struct {
	key    crypto.Signer
	pub    ed25519.PublicKey
	kid    string
	signer jose.Signer
	header string // the base64url protected header of every token signed now
	// personHdr is the header of people's tokens, which the OpenID
	// provider signs with the same key.
	personHdr string
	// accepted maps each accepted protected header (service and person
	// form, one pair per key) to its key.
	accepted map[string]acceptedKey
	public   []PublicKey // signing key first
	jwks     []byte
}

type acceptedKey struct {
	pub    ed25519.PublicKey
	kid    string
	person bool
}

// PublicKey is a token verification key and its key id.
type PublicKey struct {
	KID string
	Key ed25519.PublicKey
}

// KeySource returns the token signing key and the public keys of earlier
// signing keys whose tokens are still accepted (package keys: the
// generations of the key file, re-read when another process rotated
// them).
type KeySource func() (current crypto.Signer, previous []ed25519.PublicKey, err error)

// keyRefreshEvery bounds how often a token under an unknown key makes
// the server ask its KeySource again.
const keyRefreshEvery = time.Second

// WithKeySource sets where the keys come from when a token names a key
// this server does not know yet (another process rotated the key): the
// source is asked again, at most once a second, before such a token is
// refused. Call SetKeys with the source's answer on a schedule too, so
// that this server signs with the newest key.
func (s *Server) WithKeySource(src KeySource) *Server {
	s.source = src
	return s
}

// SetKeys makes current the token signing key and accepts tokens signed
// by it or by any of previous (earlier keys, until their tokens have
// expired). The key id of each is its RFC 7638 thumbprint. Tokens under
// a key no longer listed stop verifying at once.
func (s *Server) SetKeys(current crypto.Signer, previous ...ed25519.PublicKey) error {
	ks, err := newKeySet(current, previous)
	if err != nil {
		return err
	}
	s.keys.Store(ks)
	return nil
}

// refreshKeys asks the key source again, at most once a second. It
// reports whether the keys changed.
func (s *Server) refreshKeys() bool {
	if s.source == nil {
		return false
	}
	now := time.Now().UnixNano()
	last := s.lastAsk.Load()
	if now-last < int64(keyRefreshEvery) || !s.lastAsk.CompareAndSwap(last, now) {
		return false
	}
	cur, prev, err := s.source()
	if err != nil {
		return false
	}
	old := s.keys.Load()
	ks, err := newKeySet(cur, prev)
	if err != nil || string(ks.jwks) == string(old.jwks) {
		return false
	}
	s.keys.Store(ks)
	return true
}

func newKeySet(current crypto.Signer, previous []ed25519.PublicKey) (*keySet, error) {
	pub, err := Ed25519Public(current)
	if err != nil {
		return nil, err
	}
	ks := &keySet{key: current, pub: pub, accepted: make(map[string]acceptedKey)}
	var set jose.JSONWebKeySet
	for i, p := range append([]ed25519.PublicKey{pub}, previous...) {
		if len(p) != ed25519.PublicKeySize {
			return nil, errors.New("auth: a previous token key is not an Ed25519 public key")
		}
		jwk := jose.JSONWebKey{Key: p, Algorithm: string(jose.EdDSA), Use: "sig"}
		tp, err := jwk.Thumbprint(crypto.SHA256)
		if err != nil {
			return nil, fmt.Errorf("auth: key thumbprint: %w", err)
		}
		jwk.KeyID = base64URL(tp)
		if i > 0 && jwk.KeyID == ks.kid {
			continue // the current key listed again
		}
		if _, dup := ks.accepted[serviceHeader(jwk.KeyID)]; dup {
			continue
		}
		if i == 0 {
			ks.kid = jwk.KeyID
		}
		set.Keys = append(set.Keys, jwk)
		ks.public = append(ks.public, PublicKey{KID: jwk.KeyID, Key: p})
		ks.accepted[serviceHeader(jwk.KeyID)] = acceptedKey{pub: p, kid: jwk.KeyID}
		ks.accepted[personHeaderFor(jwk.KeyID)] = acceptedKey{pub: p, kid: jwk.KeyID, person: true}
	}
	if ks.jwks, err = json.Marshal(set); err != nil {
		return nil, fmt.Errorf("auth: encode key set: %w", err)
	}
	opts := (&jose.SignerOptions{}).WithType(tokenType).WithHeader("kid", ks.kid)
	if ks.signer, err = jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: cryptosigner.Opaque(current)}, opts); err != nil {
		return nil, fmt.Errorf("auth: signer: %w", err)
	}
	// Sign once to check that the header every token will carry is the
	// one Verify expects, and that the key signs.
	jws, err := ks.signer.Sign([]byte("{}"))
	if err != nil {
		return nil, fmt.Errorf("auth: sign token: %w", err)
	}
	probe, err := jws.CompactSerialize()
	if err != nil {
		return nil, fmt.Errorf("auth: serialize token: %w", err)
	}
	ks.header, _, _ = strings.Cut(probe, ".")
	if ks.header != serviceHeader(ks.kid) {
		return nil, errors.New("auth: unexpected token header from the signer")
	}
	if ks.personHdr, err = personHeader(current, ks.kid); err != nil {
		return nil, fmt.Errorf("auth: person token header: %w", err)
	}
	if ks.personHdr != personHeaderFor(ks.kid) {
		return nil, errors.New("auth: unexpected person token header from the signer")
	}
	return ks, nil
}

// serviceHeader is the exact protected header of a service's access
// token under key kid, as go-jose writes it: alg, kid, typ.
func serviceHeader(kid string) string {
	return b64JSON(`{"alg":"EdDSA","kid":` + jsonString(kid) + `,"typ":"` + tokenType + `"}`)
}

// personHeaderFor is the exact protected header of a person's token
// under key kid.
func personHeaderFor(kid string) string {
	return b64JSON(`{"alg":"EdDSA","kid":` + jsonString(kid) + `,"typ":"` + personType + `"}`)
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func b64JSON(s string) string { return base64URL([]byte(s)) }

// KeyID returns the key id of the current token signing key.
func (s *Server) KeyID() string { return s.keys.Load().kid }

// SigningKey returns the current token signing key and its key id: the
// OpenID provider signs people's tokens with it.
func (s *Server) SigningKey() (kid string, key crypto.Signer) {
	ks := s.keys.Load()
	return ks.kid, ks.key
}

// PublicKeys returns the keys tokens are accepted under, the signing key
// first.
func (s *Server) PublicKeys() []PublicKey {
	return append([]PublicKey(nil), s.keys.Load().public...)
}

// acceptedKey returns the key of a token's protected header, asking the
// key source again when the header names a key not known yet.
func (s *Server) keyFor(hdr string) (acceptedKey, bool) {
	k, ok := s.keys.Load().accepted[hdr]
	if !ok && s.refreshKeys() {
		k, ok = s.keys.Load().accepted[hdr]
	}
	return k, ok
}
