package keys

import (
	"bytes"
	"context"
	"crypto"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/wardhealth/ward/internal/fsutil"
)

// LocalParams configures a new local key file.
type LocalParams struct {
	// Passphrase seals the file's secrets; nil leaves them unsealed (the
	// file is then protected by its 0600 mode only).
	Passphrase []byte
	// Argon2id parameters for sealing; defaults 3, 64*1024 KiB, 2.
	ArgonTime      uint32
	ArgonMemoryKiB uint32
	ArgonThreads   uint8
}

// kekWrapDomain tags the associated data of a DEK wrapped by a LocalFile.
const kekWrapDomain = "ward local kek wrap v1"

// LocalFile is a key provider backed by a key file on local disk: it holds
// the KEKs, the blind-index root key, the token and ledger signing seeds and
// the paging MAC key. It implements KEKProvider and is safe for concurrent
// use, also by several processes sharing the file (Rotate and Retire take an
// exclusive lock on "<path>.lock" while they rewrite the file).
type LocalFile struct {
	path       string
	passphrase []byte
	rand       io.Reader

	mu      sync.RWMutex
	raw     []byte      // the file content the state below was read from
	st      fs.FileInfo // the file's identity and mtime when last read
	sec     *secrets
	kdf     *kdfParams
	derived *derived
	keks    map[string]cipher.AEAD
}

// String names the file but no key.
func (f *LocalFile) String() string { return "keys.LocalFile(" + f.path + ")" }

// CreateLocalFile writes a new key file with fresh random keys at path, with
// mode 0600. It refuses to overwrite an existing file.
func CreateLocalFile(path string, p LocalParams, rnd io.Reader) error {
	if rnd == nil {
		rnd = rand.Reader
	}
	if p.Passphrase != nil && len(p.Passphrase) == 0 {
		return errors.New("keys: empty passphrase; use nil for an unsealed key file")
	}
	s := &secrets{KEKs: map[string][]byte{}}
	id, key, err := newKEK(rnd)
	if err != nil {
		return err
	}
	s.KEKs[id], s.Current = key, id
	for _, b := range []*[]byte{&s.IndexRoot, &s.TokenSeed, &s.LedgerSeed, &s.PageKey, &s.ESignSeed} {
		*b = make([]byte, 32)
		if _, err := io.ReadFull(rnd, *b); err != nil {
			return fmt.Errorf("keys: generating keys: %w", err)
		}
	}
	var kdf *kdfParams
	var d *derived
	if p.Passphrase != nil {
		kdf = &kdfParams{Alg: "argon2id", Time: p.ArgonTime, MemoryKiB: p.ArgonMemoryKiB, Threads: p.ArgonThreads, Salt: make([]byte, 16)}
		if kdf.Time == 0 {
			kdf.Time = 3
		}
		if kdf.MemoryKiB == 0 {
			kdf.MemoryKiB = 64 * 1024
		}
		if kdf.Threads == 0 {
			kdf.Threads = 2
		}
		if _, err := io.ReadFull(rnd, kdf.Salt); err != nil {
			return fmt.Errorf("keys: generating salt: %w", err)
		}
		if err := kdf.validate(); err != nil {
			return err
		}
		if d, err = deriveFileKey(p.Passphrase, kdf); err != nil {
			return err
		}
	}
	data, err := encodeKeyFile(s, kdf, d, rnd)
	if err != nil {
		return err
	}
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600) // #nosec G304 -- the key file the operator configures (--data / keys.json)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("keys: key file %s already exists; refusing to overwrite it", path)
		}
		return fmt.Errorf("keys: creating key file: %w", err)
	}
	if err := writeSync(out, data); err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("keys: writing key file: %w", err)
	}
	if err := fsutil.SyncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("keys: writing key file: %w", err)
	}
	return nil
}

// OpenLocalFile opens a key file. It refuses a file that group or others
// may read or write. A sealed file needs its passphrase: a wrong or missing
// one is an error wrapping ErrPassphrase.
func OpenLocalFile(path string, passphrase []byte) (*LocalFile, error) {
	f := &LocalFile{path: path, passphrase: bytes.Clone(passphrase), rand: rand.Reader}
	data, st, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	if err := f.load(data); err != nil {
		return nil, err
	}
	f.st = st
	return f, nil
}

// load parses data and replaces the state. The caller holds f.mu for
// writing, or f is not yet shared.
func (f *LocalFile) load(data []byte) error {
	s, kdf, d, err := parseKeyFile(data, f.passphrase, f.derived)
	if err != nil {
		return err
	}
	keks := make(map[string]cipher.AEAD, len(s.KEKs))
	for id, k := range s.KEKs {
		var err error
		if keks[id], err = newGCM(k, "key file kek"); err != nil {
			return err
		}
	}
	f.raw, f.sec, f.kdf, f.derived, f.keks = data, s, kdf, d, keks
	return nil
}

// reload re-reads the file if it changed. The caller holds f.mu for writing.
func (f *LocalFile) reload() error {
	data, st, err := readKeyFile(f.path)
	if err != nil {
		return err
	}
	if !bytes.Equal(data, f.raw) {
		if err := f.load(data); err != nil {
			return err
		}
	}
	f.st = st
	return nil
}

// refresh reloads the file if it was replaced or modified since it was last
// read, so that Wrap uses the current KEK even when another process rotated.
func (f *LocalFile) refresh() error {
	st, err := os.Stat(f.path)
	if err != nil {
		return fmt.Errorf("keys: key file: %w: %w", ErrUnavailable, err)
	}
	f.mu.RLock()
	same := os.SameFile(st, f.st) && st.ModTime().Equal(f.st.ModTime()) && st.Size() == f.st.Size()
	f.mu.RUnlock()
	if same {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reload()
}

// CurrentKEK names the KEK that Wrap uses.
func (f *LocalFile) CurrentKEK() string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.sec.Current
}

// Wrap encrypts dek under the current KEK with AES-256-GCM, bound to aad and
// to the KEK id. The result is version byte | nonce | ciphertext+tag. It
// first re-reads the file if it changed on disk (a rotation by another
// process), so that new keys are wrapped under the newest KEK.
func (f *LocalFile) Wrap(ctx context.Context, dek, aad []byte) ([]byte, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", fmt.Errorf("keys: wrap: %w", err)
	}
	if err := f.refresh(); err != nil {
		return nil, "", fmt.Errorf("keys: wrap: %w", err)
	}
	f.mu.RLock()
	id := f.sec.Current
	aead := f.keks[id]
	f.mu.RUnlock()
	out := make([]byte, 1+nonceSize, SealOverhead+len(dek))
	out[0] = sealVersion
	if _, err := io.ReadFull(f.rand, out[1:]); err != nil {
		return nil, "", fmt.Errorf("keys: wrap: reading nonce: %w", err)
	}
	return aead.Seal(out, out[1:], dek, kekAAD(id, aad)), id, nil
}

// Unwrap reverses Wrap. An unknown kekID makes it re-read the file once
// (another process may have rotated) before failing.
func (f *LocalFile) Unwrap(ctx context.Context, wrapped []byte, kekID string, aad []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("keys: unwrap: %w", err)
	}
	f.mu.RLock()
	aead, ok := f.keks[kekID]
	f.mu.RUnlock()
	if !ok {
		f.mu.Lock()
		err := f.reload()
		aead, ok = f.keks[kekID]
		f.mu.Unlock()
		if err != nil {
			return nil, fmt.Errorf("keys: unwrap: %w", err)
		}
		if !ok {
			return nil, fmt.Errorf("keys: unwrap: unknown key-encryption key %q: %w", kekID, ErrDecrypt)
		}
	}
	if len(wrapped) < SealOverhead || wrapped[0] != sealVersion {
		return nil, ErrDecrypt
	}
	dek, err := aead.Open(nil, wrapped[1:1+nonceSize], wrapped[1+nonceSize:], kekAAD(kekID, aad))
	if err != nil {
		return nil, ErrDecrypt
	}
	return dek, nil
}

func kekAAD(kekID string, aad []byte) []byte {
	b := make([]byte, 0, 12+len(kekWrapDomain)+len(kekID)+len(aad))
	b = appendField(b, kekWrapDomain)
	b = appendField(b, kekID)
	return appendField(b, string(aad))
}

// Rotate adds a fresh KEK, makes it current and rewrites the file
// atomically. Data keys stay wrapped under the old KEK until Keyring.Rewrap.
func (f *LocalFile) Rotate(ctx context.Context) (string, error) {
	var id string
	err := f.update(ctx, func(s *secrets) error {
		newID, key, err := newKEK(f.rand)
		if err != nil {
			return err
		}
		s.KEKs[newID], s.Current, id = key, newID, newID
		return nil
	})
	if err != nil {
		return "", err
	}
	return id, nil
}

// Retire removes the KEKs other than the current one for which inUse
// reports false, rewriting the file atomically, and returns their ids.
//
// Run it after Keyring.Rewrap, with Keyring.KEKsInUse. Other processes pick
// up a rotation on their next Wrap, but a data key that a request in flight
// during the rotation wrapped under the old KEK can land after Rewrap's
// listing; running Rewrap a second time, some time after the rotation and
// just before Retire, closes that window.
func (f *LocalFile) Retire(ctx context.Context, inUse func(kekID string) bool) ([]string, error) {
	if inUse == nil {
		return nil, errors.New("keys: retire needs an in-use check")
	}
	var retired []string
	err := f.update(ctx, func(s *secrets) error {
		for id := range s.KEKs {
			if id != s.Current && !inUse(id) {
				retired = append(retired, id)
			}
		}
		for _, id := range retired {
			delete(s.KEKs, id)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return retired, nil
}

// update applies change to the newest secrets on disk, under the
// inter-process file lock, and writes the result atomically.
func (f *LocalFile) update(ctx context.Context, change func(*secrets) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("keys: key file: %w", err)
	}
	unlock, err := lockFile(f.path + ".lock")
	if err != nil {
		return fmt.Errorf("keys: locking key file: %w: %w", ErrUnavailable, err)
	}
	defer unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.reload(); err != nil {
		return err
	}
	s := cloneSecrets(f.sec)
	if err := change(s); err != nil {
		return err
	}
	data, err := encodeKeyFile(s, f.kdf, f.derived, f.rand)
	if err != nil {
		return err
	}
	if err := writeAtomic(f.path, data); err != nil {
		return fmt.Errorf("keys: rewriting key file: %w: %w", ErrUnavailable, err)
	}
	return f.reload()
}

// Erase adds compartment to the file's erasure register and rewrites the
// file atomically: from then on no process that reads the file hands out
// or creates the compartment's data key (Keyring.DataKey answers
// ErrErased), whatever a database, or a copy of one restored later,
// holds. Erasing a compartment twice keeps the first time.
func (f *LocalFile) Erase(ctx context.Context, compartment string, at time.Time) error {
	if compartment == "" {
		return errors.New("keys: the shared compartment cannot be erased")
	}
	return f.update(ctx, func(s *secrets) error {
		if _, ok := s.Erased[compartment]; ok {
			return nil
		}
		if s.Erased == nil {
			s.Erased = make(map[string]int64)
		}
		s.Erased[compartment] = at.Unix()
		return nil
	})
}

// Erased reports whether compartment is in the erasure register, reading
// the file again when another process changed it.
func (f *LocalFile) Erased(compartment string) (bool, error) {
	if err := f.refresh(); err != nil {
		return false, err
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	_, ok := f.sec.Erased[compartment]
	return ok, nil
}

// Erasures returns the erasure register: each erased compartment and when
// it was erased.
func (f *LocalFile) Erasures() (map[string]time.Time, error) {
	if err := f.refresh(); err != nil {
		return nil, err
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make(map[string]time.Time, len(f.sec.Erased))
	for c, t := range f.sec.Erased {
		out[c] = time.Unix(t, 0).UTC()
	}
	return out, nil
}

// IndexKey returns the blind-index root key.
func (f *LocalFile) IndexKey() IndexKey {
	f.mu.RLock()
	defer f.mu.RUnlock()
	k, _ := NewIndexKey(f.sec.IndexRoot) // length checked on load
	return k
}

// TokenSigner returns the signer of OAuth2 access tokens and id_tokens
// (Ed25519). The private key stays inside package keys.
func (f *LocalFile) TokenSigner() crypto.Signer {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return newEd25519Signer("token", f.sec.TokenSeed)
}

// LedgerSigner returns the signer of ledger checkpoints (Ed25519). The
// private key stays inside package keys.
func (f *LocalFile) LedgerSigner() crypto.Signer {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return newEd25519Signer("ledger", f.sec.LedgerSeed)
}

// CertificateSigner returns the signer of Ward's certificates, such as an
// erasure's (Ed25519): a key of its own, derived from the ledger seed, so
// that no certificate can pass for a checkpoint. The private key stays
// inside package keys.
func (f *LocalFile) CertificateSigner() crypto.Signer {
	f.mu.RLock()
	defer f.mu.RUnlock()
	seed, err := hkdf.Key(sha256.New, f.sec.LedgerSeed, nil, "ward certificate signing key v1", ed25519.SeedSize)
	if err != nil {
		panic("keys: HKDF-SHA256 of 32 bytes failed: " + err.Error()) // only for outputs over 255*32 bytes
	}
	return newEd25519Signer("certificate", seed)
}

// ErrNoESignKey: the key file has no e-signature key (it was made before
// Ward signed records); AddESignKey adds one.
var ErrNoESignKey = errors.New("keys: the key file has no e-signature key; add one with ward keys add-esign (ward serve adds it at start)")

// ESignSigner returns the signer of electronic signatures (Ed25519), a
// key used for nothing else: not derived from another key, so that no
// token, checkpoint or certificate can pass for a signature, nor the
// other way round. The private key stays inside package keys. A key file
// without one answers ErrNoESignKey.
func (f *LocalFile) ESignSigner() (crypto.Signer, error) {
	if err := f.refresh(); err != nil {
		return nil, err
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.sec.ESignSeed == nil {
		return nil, ErrNoESignKey
	}
	return newEd25519Signer("esign", f.sec.ESignSeed), nil
}

// AddESignKey gives a key file made before e-signatures its e-signature
// key: a fresh random seed, written atomically under the file lock, so
// that several processes starting at once add one key, not several. A
// file that has one keeps it; added reports whether this call added it.
func (f *LocalFile) AddESignKey(ctx context.Context) (added bool, err error) {
	if err := f.refresh(); err != nil {
		return false, err
	}
	f.mu.RLock()
	has := f.sec.ESignSeed != nil
	f.mu.RUnlock()
	if has {
		return false, nil
	}
	err = f.update(ctx, func(s *secrets) error {
		if s.ESignSeed != nil {
			return nil
		}
		seed := make([]byte, 32)
		if _, err := io.ReadFull(f.rand, seed); err != nil {
			return fmt.Errorf("keys: generating e-signature key: %w", err)
		}
		s.ESignSeed, added = seed, true
		return nil
	})
	return added, err
}

// PageKey returns the key that authenticates paging links.
func (f *LocalFile) PageKey() MACKey {
	f.mu.RLock()
	defer f.mu.RUnlock()
	k, _ := NewMACKey(f.sec.PageKey) // length checked on load
	return k
}

func newKEK(rnd io.Reader) (string, []byte, error) {
	var buf [8 + 32]byte
	if _, err := io.ReadFull(rnd, buf[:]); err != nil {
		return "", nil, fmt.Errorf("keys: generating kek: %w", err)
	}
	return "kek-" + hex.EncodeToString(buf[:8]), bytes.Clone(buf[8:]), nil
}

func cloneSecrets(s *secrets) *secrets {
	c := *s
	c.KEKs = make(map[string][]byte, len(s.KEKs))
	for id, k := range s.KEKs {
		c.KEKs[id] = k
	}
	c.Erased = maps.Clone(s.Erased)
	return &c
}

func deriveFileKey(passphrase []byte, kdf *kdfParams) (*derived, error) {
	// parseKeyFile does the derivation for existing files; this is the same
	// computation for a new one.
	params, err := json.Marshal(kdf)
	if err != nil {
		return nil, fmt.Errorf("keys: key file: %w", err)
	}
	return &derived{params: params, key: argonKey(passphrase, kdf)}, nil
}

// readKeyFile reads a key file after checking, on the opened file, that it
// is a regular file that neither group nor others can access.
func readKeyFile(path string) ([]byte, fs.FileInfo, error) {
	in, err := os.Open(path) // #nosec G304 -- the key file the operator configures (--data / keys.json)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			// Wraps fs.ErrNotExist too, for callers that create a missing file.
			return nil, nil, fmt.Errorf("keys: key file does not exist: %w: %w", ErrUnavailable, err)
		}
		return nil, nil, fmt.Errorf("keys: opening key file: %w: %w", ErrUnavailable, err)
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("keys: key file: %w: %w", ErrUnavailable, err)
	}
	if !st.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("keys: key file %s is not a regular file", path)
	}
	if err := checkPrivate(path, st); err != nil {
		return nil, nil, err
	}
	data, err := io.ReadAll(io.LimitReader(in, maxKeyFileSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("keys: reading key file: %w: %w", ErrUnavailable, err)
	}
	if len(data) > maxKeyFileSize {
		return nil, nil, errors.New("keys: key file too large")
	}
	return data, st, nil
}

// errPermissions marks a key file that group or others may access.
var errPermissions = errors.New("keys: key file permissions too open")

// writeAtomic replaces path with data: a 0600 temporary file in the same
// directory, fsync, rename, fsync of the directory.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if err := tmp.Chmod(0o600); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := writeSync(tmp, data); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return fsutil.SyncDir(dir)
}

// writeSync writes data to f, fsyncs and closes it.
func writeSync(f *os.File, data []byte) error {
	_, err := f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
