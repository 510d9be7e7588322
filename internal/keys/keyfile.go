package keys

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/wardhealth/ward/internal/strictjson"
	"golang.org/x/crypto/argon2"
)

// Key file format, version 2. The file is one JSON object:
//
//	{"format":"ward-keyfile","version":2,"secrets":{...}}             unsealed
//	{"format":"ward-keyfile","version":2,"kdf":{...},"nonce":"..","sealed":".."}
//
// In a sealed file, "sealed" is the AES-256-GCM encryption of the JSON
// secrets object under argon2id(passphrase, kdf.salt), with associated data
// binding the format tag, the version and the KDF parameters.
//
// Version 2 keeps every rotating key as a list of generations, each with
// its creation time (the secrets type). Version 1 files (one blind-index
// root, one token seed, one ledger seed, no creation times) are read and
// converted on open (upgradeV1); the file is then rewritten as version 2.
const (
	keyFileFormat   = "ward-keyfile"
	keyFileVersion  = 2
	keyFileDomain   = "ward keyfile v2"
	keyFileDomainV1 = "ward keyfile v1"
	maxKeyFileSize  = 1 << 20
	// maxGenerations bounds each kind's list of generations read from a
	// file.
	maxGenerations = 256
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
	// Secrets is the unsealed secrets object, decoded by version.
	Secrets json.RawMessage `json:"secrets,omitempty"`
}

type kdfParams struct {
	Alg       string `json:"alg"`
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
	Salt      []byte `json:"salt"`
}

// secrets is the content of a version 2 key file.
type secrets struct {
	KEKs    map[string][]byte `json:"keks"`
	Current string            `json:"current"`
	// KEKCreated is when each KEK was made (unix seconds), the file's and
	// the HSM's ("hsm." ids, recorded when Ward moved to them).
	KEKCreated map[string]int64 `json:"kek_created"`
	// KEKEstimated marks the KEKs whose creation time is the upgrade's
	// from version 1, which recorded none.
	KEKEstimated map[string]bool `json:"kek_created_estimated,omitempty"`
	// Origin is the first blind-index root. It never rotates: ledger
	// pseudonyms are keyed by it (an auditor must be able to match a
	// pseudonym recorded years ago), and backups of format 1 were sealed
	// under a key derived from it.
	Origin []byte `json:"origin_root"`
	// CertificateSeed keys Ward's certificates (an erasure's, a
	// backup's). It does not rotate with the ledger key, so that every
	// certificate made keeps verifying.
	CertificateSeed []byte `json:"certificate_seed"`
	PageKey         []byte `json:"page_key"`
	// The generations of each rotating key, oldest first; the last one
	// is current (for the index: the last one not announced only).
	Index  []generation `json:"index"`
	Token  []generation `json:"token"`
	Ledger []generation `json:"ledger"`
	Backup []generation `json:"backup"`
	ESign  []generation `json:"esign,omitempty"`
	// Erased is the erasure register: the compartments whose data keys
	// were destroyed, with when (unix seconds). It lives here, with the
	// KEKs, not in the database, so that restoring a database copy taken
	// before an erasure cannot bring the compartment back (Keyring).
	Erased map[string]int64 `json:"erased,omitempty"`
}

// secretsV1 is the content of a version 1 key file.
type secretsV1 struct {
	KEKs       map[string][]byte `json:"keks"`
	Current    string            `json:"current"`
	IndexRoot  []byte            `json:"index_root"`
	TokenSeed  []byte            `json:"token_seed"`
	LedgerSeed []byte            `json:"ledger_seed"`
	PageKey    []byte            `json:"page_key"`
	// ESignSeed is the e-signature key of a version 1 file made after
	// Ward signed records (files made before have none).
	ESignSeed []byte           `json:"esign_seed,omitempty"`
	Erased    map[string]int64 `json:"erased,omitempty"`
}

// upgradeV1 converts a version 1 file's secrets. Nothing a version 1
// file keyed changes: the index root becomes generation 1 of the index
// and the origin root, the token and ledger seeds their generation 1, the
// ledger seed also the certificate seed (certificates were keyed by it).
// The backup key gets a first generation of its own; an e-signature
// seed, when the file has one, becomes e-signature generation 1 (a file
// without one gets one later, AddESignKey). A version 1 file
// recorded no creation times: every key gets created, the time of the
// upgrade, marked estimated.
func upgradeV1(v *secretsV1, now time.Time, rnd io.Reader) (*secrets, error) {
	t := now.Unix()
	s := &secrets{
		KEKs: v.KEKs, Current: v.Current, KEKCreated: make(map[string]int64, len(v.KEKs)),
		Origin: bytes.Clone(v.IndexRoot), CertificateSeed: bytes.Clone(v.LedgerSeed), PageKey: v.PageKey, Erased: v.Erased,
	}
	s.KEKEstimated = make(map[string]bool, len(v.KEKs))
	for id := range v.KEKs {
		s.KEKCreated[id], s.KEKEstimated[id] = t, true
	}
	s.Index = []generation{{ID: "index-1", Created: t, Estimated: true, Secret: bytes.Clone(v.IndexRoot)}}
	tok, err := fileSigningGeneration("token-1", v.TokenSeed, t)
	if err != nil {
		return nil, err
	}
	led, err := fileSigningGeneration("ledger-1", v.LedgerSeed, t)
	if err != nil {
		return nil, err
	}
	tok.Estimated, led.Estimated = true, true
	s.Token, s.Ledger = []generation{tok}, []generation{led}
	backup := make([]byte, 32)
	if _, err := io.ReadFull(rnd, backup); err != nil {
		return nil, fmt.Errorf("keys: generating backup root: %w", err)
	}
	s.Backup = []generation{{ID: "backup-1", Created: t, Secret: backup}}
	if v.ESignSeed != nil {
		es, err := fileSigningGeneration("esign-1", v.ESignSeed, t)
		if err != nil {
			return nil, err
		}
		es.Estimated = true
		s.ESign = []generation{es}
	}
	return s, nil
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
		"origin_root": s.Origin, "certificate_seed": s.CertificateSeed, "page_key": s.PageKey,
	} {
		if len(b) != 32 {
			return fmt.Errorf("keys: key file: %s has %d bytes, want 32", name, len(b))
		}
	}
	for id := range s.KEKCreated {
		if !validKEKID(id) {
			return fmt.Errorf("keys: key file: invalid kek id %q", id)
		}
	}
	for _, k := range []Kind{KindIndex, KindToken, KindLedger, KindBackup, KindESign} {
		if err := validateGenerations(k, *s.gens(k)); err != nil {
			return err
		}
	}
	for c := range s.Erased {
		if c == "" || len(c) > 64 {
			return fmt.Errorf("keys: key file: invalid erased compartment %q", c)
		}
	}
	return nil
}

func (s *secretsV1) validate() error {
	v2 := &secrets{KEKs: s.KEKs, Current: s.Current, Origin: s.IndexRoot, CertificateSeed: s.LedgerSeed, PageKey: s.PageKey, Erased: s.Erased}
	if s.ESignSeed != nil && len(s.ESignSeed) != 32 {
		return fmt.Errorf("keys: key file: esign_seed has %d bytes, want 32", len(s.ESignSeed))
	}
	for name, b := range map[string][]byte{"token_seed": s.TokenSeed, "ledger_seed": s.LedgerSeed} {
		if len(b) != 32 {
			return fmt.Errorf("keys: key file: %s has %d bytes, want 32", name, len(b))
		}
	}
	// The generations are checked after the upgrade; here, the rest.
	v2.Index = []generation{{ID: "index-1", Created: 1, Secret: s.IndexRoot}}
	tok, _ := fileSigningGeneration("token-1", s.TokenSeed, 1)
	led, _ := fileSigningGeneration("ledger-1", s.LedgerSeed, 1)
	v2.Token, v2.Ledger = []generation{tok}, []generation{led}
	v2.Backup = []generation{{ID: "backup-1", Created: 1, Secret: s.IndexRoot}}
	return v2.validate()
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
// A version 1 file is upgraded (upgradeV1) and reported by upgraded.
func parseKeyFile(data, passphrase []byte, cache *derived, now time.Time, rnd io.Reader) (s *secrets, kdf *kdfParams, d *derived, upgraded bool, err error) {
	var kf keyFile
	if err := decodeStrict(data, &kf); err != nil {
		return nil, nil, nil, false, err
	}
	if kf.Format != keyFileFormat || kf.Version != keyFileVersion && kf.Version != 1 {
		return nil, nil, nil, false, fmt.Errorf("keys: not a version 1 or %d ward key file", keyFileVersion)
	}
	var plain []byte
	if kf.KDF == nil {
		if kf.Secrets == nil || kf.Nonce != nil || kf.Sealed != nil {
			return nil, nil, nil, false, errors.New("keys: key file: malformed unsealed file")
		}
		if len(passphrase) > 0 {
			return nil, nil, nil, false, errors.New("keys: key file is not sealed, but a passphrase was given")
		}
		plain = kf.Secrets
	} else {
		if kf.Secrets != nil || len(kf.Nonce) != nonceSize || len(kf.Sealed) < tagSize {
			return nil, nil, nil, false, errors.New("keys: key file: malformed sealed file")
		}
		if err := kf.KDF.validate(); err != nil {
			return nil, nil, nil, false, err
		}
		if len(passphrase) == 0 {
			return nil, nil, nil, false, fmt.Errorf("keys: key file is sealed and needs its passphrase: %w", ErrPassphrase)
		}
		params, err := json.Marshal(kf.KDF)
		if err != nil {
			return nil, nil, nil, false, fmt.Errorf("keys: key file: %w", err)
		}
		d = cache
		if d == nil || !bytes.Equal(d.params, params) {
			d = &derived{params: params, key: argonKey(passphrase, kf.KDF)}
		}
		aead, err := fileAEAD(d.key)
		if err != nil {
			return nil, nil, nil, false, err
		}
		domain := keyFileDomain
		if kf.Version == 1 {
			domain = keyFileDomainV1
		}
		plain, err = aead.Open(nil, kf.Nonce, kf.Sealed, fileAAD(domain, params))
		if err != nil {
			return nil, nil, nil, false, ErrPassphrase
		}
		defer clear(plain)
		kdf = kf.KDF
	}
	if kf.Version == 1 {
		var v1 secretsV1
		if err := decodeStrict(plain, &v1); err != nil {
			return nil, nil, nil, false, err
		}
		if err := v1.validate(); err != nil {
			return nil, nil, nil, false, err
		}
		if s, err = upgradeV1(&v1, now, rnd); err != nil {
			return nil, nil, nil, false, err
		}
		upgraded = true
	} else {
		s = new(secrets)
		if err := decodeStrict(plain, s); err != nil {
			return nil, nil, nil, false, err
		}
	}
	if err := s.validate(); err != nil {
		return nil, nil, nil, false, err
	}
	return s, kdf, d, upgraded, nil
}

// encodeKeyFile serialises s, sealed under d when kdf is not nil.
func encodeKeyFile(s *secrets, kdf *kdfParams, d *derived, rand io.Reader) ([]byte, error) {
	kf := keyFile{Format: keyFileFormat, Version: keyFileVersion}
	plain, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("keys: key file: %w", err)
	}
	if kdf == nil {
		kf.Secrets = plain
		return json.MarshalIndent(kf, "", "  ")
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
	kf.Sealed = aead.Seal(nil, kf.Nonce, plain, fileAAD(keyFileDomain, d.params))
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

func fileAAD(domain string, params []byte) []byte {
	b := appendField(nil, domain)
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
