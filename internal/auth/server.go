package auth

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/wardhealth/ward/internal/auth/credential"
	"github.com/wardhealth/ward/internal/auth/federation"
	"github.com/wardhealth/ward/internal/store"
)

// Config configures a Server. The zero values of TokenTTL, Now, Rand and
// ClientCacheTTL are safe defaults; Issuer and Audience are required.
type Config struct {
	Issuer         string        // this server's https URL, e.g. https://127.0.0.1:8443; the iss claim
	Audience       string        // the FHIR base URL; the aud claim
	TokenTTL       time.Duration // access token lifetime; 0 means 5 minutes, at most 1 hour
	Now            func() time.Time
	Rand           io.Reader // randomness for ids, secrets, salts and jti; nil means crypto/rand
	ClientCacheTTL time.Duration
	// ClientCacheTTL bounds how long a revoked client's tokens keep
	// working: Verify re-reads a client's status from the store once it is
	// older than this. 0 means 5 seconds; negative means no cache (every
	// Verify reads the store).

	// TokenEndpoint is the token endpoint's URL, the audience a client
	// assertion must name; "" means Issuer + "/oauth2/token".
	TokenEndpoint string

	// SecretThrottle throttles client-secret guessing per client id (the
	// zero value means credential.DefaultThrottle: 5 free failures, then
	// 1 s doubling to 15 minutes). The count is kept in the client store,
	// shared by every process using it.
	SecretThrottle credential.Throttle
}

// MaxTokenTTL is the longest lifetime of any token Ward signs (access
// tokens of services and people, id tokens): a retired signing key need
// not verify anything older.
const MaxTokenTTL = maxTokenTTL

const (
	defaultTokenTTL = 5 * time.Minute
	maxTokenTTL     = time.Hour
	defaultCacheTTL = 5 * time.Second
	clientCacheSize = 4096
	clockSkew       = 30 * time.Second
	maxTokenLen     = 8 << 10
	tokenType       = "at+jwt"
)

// Server issues and verifies access tokens and manages OAuth2 clients. It
// is safe for concurrent use.
type Server struct {
	cfg     Config
	clients store.Clients
	// keys are the signing key and the keys tokens are accepted under,
	// swapped whole by SetKeys when the token key rotates.
	keys      atomic.Pointer[keySet]
	source    KeySource
	lastAsk   atomic.Int64 // unix nanoseconds of the last KeySource call for an unknown key
	people    store.Identity
	fed       *federation.Verifier // external OpenID providers; nil when none
	dummy     []byte               // hash compared against when a client is unknown
	cache     *clientCache
	tokens    *tokenCache
	lastPurge atomic.Int64 // unix nanoseconds of the last deletion of expired assertion ids
	// lastAttemptPurge is the unix nanoseconds of the last deletion of
	// old client-secret attempt counts.
	lastAttemptPurge atomic.Int64
	keySets          keySetCache
}

// NewServer returns a Server that stores clients in clients and signs tokens
// with signer, an Ed25519 key that may live in an HSM (package keys gives
// one out only as a crypto.Signer). The key id is the RFC 7638 thumbprint
// of the public key.
func NewServer(cfg Config, clients store.Clients, signer crypto.Signer) (*Server, error) {
	if err := checkURL(cfg.Issuer); err != nil {
		return nil, fmt.Errorf("auth: issuer: %w", err)
	}
	if err := checkURL(cfg.Audience); err != nil {
		return nil, fmt.Errorf("auth: audience: %w", err)
	}
	if cfg.TokenEndpoint == "" {
		cfg.TokenEndpoint = strings.TrimSuffix(cfg.Issuer, "/") + "/oauth2/token"
	}
	if err := checkURL(cfg.TokenEndpoint); err != nil {
		return nil, fmt.Errorf("auth: token endpoint: %w", err)
	}
	switch {
	case cfg.TokenTTL == 0:
		cfg.TokenTTL = defaultTokenTTL
	case cfg.TokenTTL < time.Second || cfg.TokenTTL > maxTokenTTL:
		return nil, fmt.Errorf("auth: token lifetime %v outside 1s..%v", cfg.TokenTTL, maxTokenTTL)
	}
	if cfg.ClientCacheTTL == 0 {
		cfg.ClientCacheTTL = defaultCacheTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.SecretThrottle == (credential.Throttle{}) {
		cfg.SecretThrottle = credential.DefaultThrottle
	}
	if clients == nil {
		return nil, errors.New("auth: no client store")
	}
	s := &Server{cfg: cfg, clients: clients, tokens: newTokenCache()}
	if err := s.SetKeys(signer); err != nil {
		return nil, err
	}

	s.dummy = make([]byte, hashLen)
	if _, err := io.ReadFull(cfg.Rand, s.dummy); err != nil {
		return nil, fmt.Errorf("auth: random: %w", err)
	}
	if cfg.ClientCacheTTL > 0 {
		s.cache = newClientCache(cfg.ClientCacheTTL, clientCacheSize)
	}
	return s, nil
}

func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("parse url: %w", err)
	}
	if u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return errors.New("want an https URL without user, query or fragment")
	}
	return nil
}

// JWKS returns the public key set, {"keys":[...]}, for
// /.well-known/jwks.json: the signing key first, then the earlier keys
// whose tokens are still accepted. The caller may keep and modify the
// returned slice.
func (s *Server) JWKS() []byte { return append([]byte(nil), s.keys.Load().jwks...) }

func (s *Server) sign(payload []byte) (string, error) {
	jws, err := s.keys.Load().signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("auth: sign token: %w", err)
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		return "", fmt.Errorf("auth: serialize token: %w", err)
	}
	return tok, nil
}

// Ed25519Public returns signer's public key if it is an Ed25519 key.
func Ed25519Public(signer crypto.Signer) (ed25519.PublicKey, error) {
	if signer == nil {
		return nil, errors.New("auth: no signing key")
	}
	if k, ok := signer.(ed25519.PrivateKey); ok && len(k) != ed25519.PrivateKeySize {
		return nil, errors.New("auth: signing key is not an Ed25519 private key")
	}
	pub, ok := signer.Public().(ed25519.PublicKey)
	if !ok || len(pub) != ed25519.PublicKeySize {
		return nil, errors.New("auth: signing key is not an Ed25519 key")
	}
	return pub, nil
}
