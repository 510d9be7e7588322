package keys

import (
	"bytes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Backup encryption. A backup is sealed in chunks with AES-256-GCM under a
// key of its own, derived by HKDF-SHA256 from a backup root of the key
// file and the backup's random id. The header names the root:
//
//	format 2  "WARDBK02" | root id length (1 byte) | root id | id (16 bytes) | chunk size (uint32)
//	format 1  "WARDBK01" | id (16 bytes) | chunk size (uint32)
//	chunk     length (uint32) | AES-256-GCM(chunk, nonce = counter, aad = header | counter | final)
//
// Format 2 backups are sealed under the backup generation the header
// names (a generation of KindBackup; rotating it changes the root of new
// backups only, and every generation is kept, so that every backup stays
// readable). Format 1 backups, written before backups had roots of their
// own, were sealed under the origin root (the first blind-index root),
// which never rotates; they are read, never written.
//
// The last chunk is marked final (it may be empty): a stream cut after any
// chunk, chunks reordered, dropped or repeated, and bytes after the final
// chunk are all refused. The key never leaves this package.

const (
	backupMagicV1   = "WARDBK01"
	backupMagic     = "WARDBK02"
	backupChunkSize = 1 << 20
	backupHeaderLen = len(backupMagic) + 16 + 4 // format 1; format 2 adds the root id
)

// ErrBackup is the error of a backup stream that does not open: another
// key file's, truncated, or altered.
var ErrBackup = errors.New("keys: the backup does not open with this key file (truncated, altered, or another key file's)")

// backupAEAD returns the AEAD of the backup with id, under the backup
// root named rootID ("" for format 1's origin root).
func (f *LocalFile) backupAEAD(rootID string, id []byte) (cipher.AEAD, error) {
	f.mu.RLock()
	var root []byte
	if rootID == "" {
		root = bytes.Clone(f.sec.Origin)
	} else {
		for _, g := range f.sec.Backup {
			if g.ID == rootID {
				root = bytes.Clone(g.Secret)
			}
		}
	}
	f.mu.RUnlock()
	if root == nil {
		return nil, fmt.Errorf("%w: its backup key %q is not in this key file", ErrBackup, rootID)
	}
	defer clear(root)
	key, err := hkdf.Key(sha256.New, root, id, "ward backup v1", 32)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	return newGCM(key, "backup key")
}

// BackupWriter seals a backup stream.
type BackupWriter struct {
	w       io.Writer
	aead    cipher.AEAD
	header  []byte
	buf     []byte
	counter uint64
	closed  bool
}

// NewBackupWriter starts a sealed backup stream on w and returns it with
// the backup's id.
func (f *LocalFile) NewBackupWriter(w io.Writer) (*BackupWriter, []byte, error) {
	if err := f.refresh(); err != nil {
		return nil, nil, err
	}
	id := make([]byte, 16)
	if _, err := io.ReadFull(rand.Reader, id); err != nil {
		return nil, nil, err
	}
	f.mu.RLock()
	g, _ := current(f.sec.Backup)
	f.mu.RUnlock()
	aead, err := f.backupAEAD(g.ID, id)
	if err != nil {
		return nil, nil, err
	}
	header := make([]byte, 0, backupHeaderLen+1+len(g.ID))
	header = append(header, backupMagic...)
	header = append(header, byte(len(g.ID))) // #nosec G115 -- generation ids are short ids that validKEKID admits (validateGenerations)
	header = append(header, g.ID...)
	header = append(header, id...)
	header = binary.BigEndian.AppendUint32(header, backupChunkSize)
	if _, err := w.Write(header); err != nil {
		return nil, nil, err
	}
	return &BackupWriter{w: w, aead: aead, header: header, buf: make([]byte, 0, backupChunkSize)}, id, nil
}

// Write seals p as it fills chunks.
func (b *BackupWriter) Write(p []byte) (int, error) {
	if b.closed {
		return 0, errors.New("keys: backup writer closed")
	}
	n := len(p)
	for len(p) > 0 {
		k := min(len(p), backupChunkSize-len(b.buf))
		b.buf = append(b.buf, p[:k]...)
		p = p[k:]
		if len(b.buf) == backupChunkSize {
			if err := b.flush(false); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

// Close seals the final chunk. The underlying writer is not closed.
func (b *BackupWriter) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	return b.flush(true)
}

func (b *BackupWriter) flush(final bool) error {
	ct := b.aead.Seal(nil, chunkNonce(b.counter), b.buf, chunkAAD(b.header, b.counter, final))
	b.counter++
	b.buf = b.buf[:0]
	var l [4]byte
	binary.BigEndian.PutUint32(l[:], uint32(len(ct))) // #nosec G115 -- a chunk is at most backupChunkSize plus the AEAD overhead, far below 4 GiB; a read length is checked against that bound
	if _, err := b.w.Write(l[:]); err != nil {
		return err
	}
	_, err := b.w.Write(ct)
	return err
}

func chunkNonce(counter uint64) []byte {
	n := make([]byte, 12)
	binary.BigEndian.PutUint64(n[4:], counter)
	return n
}

func chunkAAD(header []byte, counter uint64, final bool) []byte {
	aad := binary.BigEndian.AppendUint64(bytes.Clone(header), counter)
	if final {
		return append(aad, 1)
	}
	return append(aad, 0)
}

// BackupReader opens a sealed backup stream.
type BackupReader struct {
	r       io.Reader
	aead    cipher.AEAD
	header  []byte
	counter uint64
	plain   []byte
	done    bool
}

// NewBackupReader opens the sealed backup stream r and returns it with
// the backup's id. Reading returns ErrBackup for a stream that does not
// open, however it was changed; io.EOF only after the final chunk.
func (f *LocalFile) NewBackupReader(r io.Reader) (*BackupReader, []byte, error) {
	if err := f.refresh(); err != nil {
		return nil, nil, err
	}
	rootID, header, err := readBackupHeader(r)
	if err != nil {
		return nil, nil, err
	}
	id := bytes.Clone(header[len(header)-20 : len(header)-4])
	aead, err := f.backupAEAD(rootID, id)
	if err != nil {
		return nil, nil, err
	}
	return &BackupReader{r: r, aead: aead, header: header}, id, nil
}

// readBackupHeader reads a backup's header, of either format, and returns
// it with the backup root it names ("" for format 1).
func readBackupHeader(r io.Reader) (rootID string, header []byte, err error) {
	header = make([]byte, len(backupMagic), backupHeaderLen+1+maxKEKIDLen)
	if _, err := io.ReadFull(r, header); err != nil {
		return "", nil, ErrBackup
	}
	switch string(header) {
	case backupMagicV1:
	case backupMagic:
		var l [1]byte
		if _, err := io.ReadFull(r, l[:]); err != nil || l[0] == 0 || int(l[0]) > maxKEKIDLen {
			return "", nil, ErrBackup
		}
		name := make([]byte, l[0])
		if _, err := io.ReadFull(r, name); err != nil || !validKEKID(string(name)) {
			return "", nil, ErrBackup
		}
		rootID = string(name)
		header = append(append(header, l[0]), name...)
	default:
		return "", nil, ErrBackup
	}
	rest := make([]byte, 20)
	if _, err := io.ReadFull(r, rest); err != nil || binary.BigEndian.Uint32(rest[16:]) != backupChunkSize {
		return "", nil, ErrBackup
	}
	return rootID, append(header, rest...), nil
}

// BackupRoot returns the id of the backup root that sealed the backup
// read from r ("" for a format 1 backup, sealed under the origin root).
func BackupRoot(r io.Reader) (string, error) {
	id, _, err := readBackupHeader(r)
	return id, err
}

// Read returns the opened bytes.
func (b *BackupReader) Read(p []byte) (int, error) {
	for len(b.plain) == 0 {
		if b.done {
			return 0, io.EOF
		}
		if err := b.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, b.plain)
	b.plain = b.plain[n:]
	return n, nil
}

func (b *BackupReader) next() error {
	var l [4]byte
	if _, err := io.ReadFull(b.r, l[:]); err != nil {
		return fmt.Errorf("%w: cut before its final chunk", ErrBackup)
	}
	n := binary.BigEndian.Uint32(l[:])
	if n > backupChunkSize+uint32(b.aead.Overhead()) { // #nosec G115 -- a chunk is at most backupChunkSize plus the AEAD overhead, far below 4 GiB; a read length is checked against that bound
		return ErrBackup
	}
	ct := make([]byte, n)
	if _, err := io.ReadFull(b.r, ct); err != nil {
		return fmt.Errorf("%w: cut inside a chunk", ErrBackup)
	}
	for _, final := range []bool{false, true} {
		if pt, err := b.aead.Open(nil, chunkNonce(b.counter), ct, chunkAAD(b.header, b.counter, final)); err == nil {
			b.counter++
			b.plain, b.done = pt, final
			if final {
				var extra [1]byte
				if k, _ := b.r.Read(extra[:]); k != 0 {
					return fmt.Errorf("%w: bytes after its final chunk", ErrBackup)
				}
			}
			return nil
		}
	}
	return ErrBackup
}
