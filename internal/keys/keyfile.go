package keys

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/wardhealth/ward/internal/strictjson"
	"golang.org/x/crypto/argon2"
)

// Key file format, version 1. The file is one JSON object:
//
//	{"format":"ward-keyfile","version":1,"secrets":{...}}             unsealed
//	{"format":"ward-keyfile","version":1,"kdf":{...},"nonce":"..","sealed":".."}
//
// In a sealed file, "sealed" is the AES-256-GCM encryption of the JSON
// secrets object under argon2id(passphrase, kdf.salt), with associated data
// binding the format tag and the KDF parameters.
const (
	keyFileFormat  = "ward-keyfile"
	keyFileVersion = 1
	keyFileDomain  = "ward keyfile v1"
	maxKeyFileSize = 1 << 20
)

// Bounds on KDF parameters read from a file, so that a corrupted file cannot
// make opening it take unbounded memory or time.
const (
	maxArgonTime      = 64
	maxArgonMemoryKiB = 4 << 20 // 4 GiB
	minSaltSize       = 16
	maxKEKIDLen       = 64
)

type keyFile struct {
	Format  string     `json:"format"`
	Version int        `json:"version"`
	KDF     *kdfParams `json:"kdf,omitempty"`
	Nonce   []byte     `json:"nonce,omitempty"`
	Sealed  []byte     `json:"sealed,omitempty"`
	Secrets *secrets   `json:"secrets,omitempty"`
}

type kdfParams struct {
	Alg       string `json:"alg"`
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
	Salt      []byte `json:"salt"`
}

type secrets struct {
	KEKs       map[string][]byte `json:"keks"`
	Current    string            `json:"current"`
	IndexRoot  []byte            `json:"index_root"`
	TokenSeed  []byte            `json:"token_seed"`
	LedgerSeed []byte            `json:"ledger_seed"`
	PageKey    []byte            `json:"page_key"`
	// ESignSeed is the seed of the key that signs electronic signatures
	// (21 CFR Part 11) and nothing else. Key files made before it existed
	// have none: LocalFile.AddESignKey adds one in place.
	ESignSeed []byte `json:"esign_seed,omitempty"`
	// Erased is the erasure register: the compartments whose data keys
	// were destroyed, with when (unix seconds). It lives here, with the
	// KEKs, not in the database, so that restoring a database copy taken
	// before an erasure cannot bring the compartment back (Keyring).
	Erased map[string]int64 `json:"erased,omitempty"`
}

// derived caches the file-sealing key derived from a passphrase for one set
// of KDF parameters, so that re-reading a rotated file does not rerun argon2.
type derived struct {
	params []byte // JSON of the kdfParams
	key    []byte
}

func (p *kdfParams) validate() error {
	switch {
	case p.Alg != "argon2id":
		return fmt.Errorf("keys: key file: unknown kdf %q", p.Alg)
	case p.Time < 1 || p.Time > maxArgonTime:
		return fmt.Errorf("keys: key file: argon2 time %d out of range", p.Time)
	case p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > maxArgonMemoryKiB:
		return fmt.Errorf("keys: key file: argon2 memory %d KiB out of range", p.MemoryKiB)
	case p.Threads < 1:
		return errors.New("keys: key file: argon2 threads must be at least 1")
	case len(p.Salt) < minSaltSize || len(p.Salt) > 64:
		return fmt.Errorf("keys: key file: salt has %d bytes", len(p.Salt))
	}
	return nil
}

func (s *secrets) validate() error {
	if len(s.KEKs) == 0 {
		return errors.New("keys: key file: no key-encryption keys")
	}
	for id, k := range s.KEKs {
		if !validKEKID(id) {
			return fmt.Errorf("keys: key file: invalid kek id %q", id)
		}
		if len(k) != 32 {
			return fmt.Errorf("keys: key file: kek %q has %d bytes, want 32", id, len(k))
		}
	}
	if _, ok := s.KEKs[s.Current]; !ok {
		return fmt.Errorf("keys: key file: current kek %q is not in the file", s.Current)
	}
	for name, b := range map[string][]byte{
		"index_root": s.IndexRoot, "token_seed": s.TokenSeed,
		"ledger_seed": s.LedgerSeed, "page_key": s.PageKey,
	} {
		if len(b) != 32 {
			return fmt.Errorf("keys: key file: %s has %d bytes, want 32", name, len(b))
		}
	}
	if s.ESignSeed != nil && len(s.ESignSeed) != 32 {
		return fmt.Errorf("keys: key file: esign_seed has %d bytes, want 32", len(s.ESignSeed))
	}
	for c := range s.Erased {
		if c == "" || len(c) > 64 {
			return fmt.Errorf("keys: key file: invalid erased compartment %q", c)
		}
	}
	return nil
}

func validKEKID(id string) bool {
	if id == "" || len(id) > maxKEKIDLen {
		return false
	}
	for _, c := range []byte(id) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		if !ok {
			return false
		}
	}
	return true
}

// parseKeyFile decodes and validates a key file. passphrase must be given
// exactly when the file is sealed. cache, if it matches the file's KDF
// parameters, saves rerunning argon2; the key actually used is returned.
func parseKeyFile(data, passphrase []byte, cache *derived) (*secrets, *kdfParams, *derived, error) {
	var kf keyFile
	if err := decodeStrict(data, &kf); err != nil {
		return nil, nil, nil, err
	}
	if kf.Format != keyFileFormat || kf.Version != keyFileVersion {
		return nil, nil, nil, fmt.Errorf("keys: not a version %d ward key file", keyFileVersion)
	}
	if kf.KDF == nil {
		if kf.Secrets == nil || kf.Nonce != nil || kf.Sealed != nil {
			return nil, nil, nil, errors.New("keys: key file: malformed unsealed file")
		}
		if len(passphrase) > 0 {
			return nil, nil, nil, errors.New("keys: key file is not sealed, but a passphrase was given")
		}
		if err := kf.Secrets.validate(); err != nil {
			return nil, nil, nil, err
		}
		return kf.Secrets, nil, nil, nil
	}
	if kf.Secrets != nil || len(kf.Nonce) != nonceSize || len(kf.Sealed) < tagSize {
		return nil, nil, nil, errors.New("keys: key file: malformed sealed file")
	}
	if err := kf.KDF.validate(); err != nil {
		return nil, nil, nil, err
	}
	if len(passphrase) == 0 {
		return nil, nil, nil, fmt.Errorf("keys: key file is sealed and needs its passphrase: %w", ErrPassphrase)
	}
	params, err := json.Marshal(kf.KDF)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("keys: key file: %w", err)
	}
	d := cache
	if d == nil || !bytes.Equal(d.params, params) {
		d = &derived{params: params, key: argonKey(passphrase, kf.KDF)}
	}
	aead, err := fileAEAD(d.key)
	if err != nil {
		return nil, nil, nil, err
	}
	plain, err := aead.Open(nil, kf.Nonce, kf.Sealed, fileAAD(params))
	if err != nil {
		return nil, nil, nil, ErrPassphrase
	}
	defer clear(plain)
	var s secrets
	if err := decodeStrict(plain, &s); err != nil {
		return nil, nil, nil, err
	}
	if err := s.validate(); err != nil {
		return nil, nil, nil, err
	}
	return &s, kf.KDF, d, nil
}

// encodeKeyFile serialises s, sealed under d when kdf is not nil.
func encodeKeyFile(s *secrets, kdf *kdfParams, d *derived, rand io.Reader) ([]byte, error) {
	kf := keyFile{Format: keyFileFormat, Version: keyFileVersion}
	if kdf == nil {
		kf.Secrets = s
		return json.MarshalIndent(kf, "", "  ")
	}
	plain, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("keys: key file: %w", err)
	}
	defer clear(plain)
	aead, err := fileAEAD(d.key)
	if err != nil {
		return nil, err
	}
	kf.KDF = kdf
	kf.Nonce = make([]byte, nonceSize)
	if _, err := io.ReadFull(rand, kf.Nonce); err != nil {
		return nil, fmt.Errorf("keys: key file: reading nonce: %w", err)
	}
	kf.Sealed = aead.Seal(nil, kf.Nonce, plain, fileAAD(d.params))
	return json.MarshalIndent(kf, "", "  ")
}

func argonKey(passphrase []byte, p *kdfParams) []byte {
	return argon2.IDKey(passphrase, p.Salt, p.Time, p.MemoryKiB, p.Threads, 32)
}

func fileAEAD(key []byte) (cipher.AEAD, error) { return newGCM(key, "key file") }

// newGCM returns AES-256-GCM under a 32-byte key; what names the key in
// errors. Every AEAD in this package is made here.
func newGCM(key []byte, what string) (cipher.AEAD, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("keys: %s has %d bytes, want 32: %w", what, len(key), ErrDecrypt)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("keys: %s: %w", what, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("keys: %s: %w", what, err)
	}
	return aead, nil
}

func fileAAD(params []byte) []byte {
	b := appendField(nil, keyFileDomain)
	return appendField(b, string(params))
}

// decodeStrict decodes one JSON value into v, refusing unknown fields,
// duplicate object keys and trailing data.
func decodeStrict(data []byte, v any) error {
	if len(data) > maxKeyFileSize {
		return errors.New("keys: key file too large")
	}
	if err := checkNoDuplicateKeys(data); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("keys: key file: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("keys: key file: trailing data")
	}
	return nil
}

const maxJSONDepth = 16

// checkNoDuplicateKeys fails on a repeated key in any object of data, or
// on nesting deeper than maxJSONDepth.
func checkNoDuplicateKeys(data []byte) error {
	if err := strictjson.CheckKeys(data, maxJSONDepth); err != nil {
		return fmt.Errorf("keys: key file: %w", err)
	}
	return nil
}
