package keys

import (
	"bufio"
	"context"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// A FileKey seals the files of one export job (FHIR Bulk Data): a random
// 256-bit key drawn for the job, wrapped by the key provider's KEK like a
// data key and bound to the job id, so that the wrapped key of one job
// does not unwrap as another's.
//
// A sealed file is a stream of chunks. The plaintext is cut into chunks of
// FileChunkSize bytes, the last one shorter (and empty only when the
// whole file is). On disk the file is one version byte, then each chunk
// as a 12-byte random nonce followed by its AES-256-GCM ciphertext and
// tag. The associated data of a chunk names the job, the file's number,
// the chunk's index and whether it is the last one, so that:
//   - a chunk moved to another place, file or job does not open;
//   - chunks reordered, dropped or repeated do not open;
//   - a file cut after any chunk is refused, because no chunk but the
//     last is sealed as last; a file with bytes after its last chunk is
//     refused too.
//
// The reader hands out a chunk's plaintext only once it has been
// authenticated; a refusal comes at the first bad chunk, so a consumer
// that streams may have passed on the chunks before it (package bulk
// reads a file through to the end before it serves it when that matters).
type FileKey struct {
	job  string
	aead cipher.AEAD
	rand io.Reader
}

// FileChunkSize is the plaintext size of every chunk but the last.
const FileChunkSize = 64 << 10

const (
	fileVersion    = 1
	fileKeyDomain  = "ward export file key v1"
	fileSealDomain = "ward export file v1"
	fileChunkSeal  = nonceSize + FileChunkSize + tagSize
)

// String redacts the key.
func (f *FileKey) String() string { return "keys.FileKey(" + f.job + ", redacted)" }

func fileKeyAAD(job string) []byte {
	b := appendField(nil, fileKeyDomain)
	return appendField(b, job)
}

// NewFileKey draws a file key for an export job and wraps it under the
// provider's current KEK. The caller stores the wrapped key with the job.
func (k *Keyring) NewFileKey(ctx context.Context, job string) (*FileKey, WrappedKey, error) {
	if job == "" {
		return nil, WrappedKey{}, errors.New("keys: a file key needs a job id")
	}
	key := make([]byte, dekSize)
	defer clear(key)
	if _, err := io.ReadFull(k.rand, key); err != nil {
		return nil, WrappedKey{}, fmt.Errorf("keys: generating file key: %w", err)
	}
	wrapped, kekID, err := k.kek.Wrap(ctx, key, fileKeyAAD(job))
	if err != nil {
		return nil, WrappedKey{}, fmt.Errorf("keys: wrapping file key: %w", err)
	}
	fk, err := newFileKey(job, key, k.rand)
	if err != nil {
		return nil, WrappedKey{}, err
	}
	return fk, WrappedKey{KEKID: kekID, Wrapped: wrapped}, nil
}

// OpenFileKey unwraps the file key of an export job. A key wrapped for
// another job, or altered, is ErrDecrypt.
func (k *Keyring) OpenFileKey(ctx context.Context, job string, wk WrappedKey) (*FileKey, error) {
	key, err := k.kek.Unwrap(ctx, wk.Wrapped, wk.KEKID, fileKeyAAD(job))
	if err != nil {
		return nil, fmt.Errorf("keys: unwrapping file key: %w", err)
	}
	defer clear(key)
	return newFileKey(job, key, k.rand)
}

func newFileKey(job string, key []byte, rand io.Reader) (*FileKey, error) {
	aead, err := newGCM(key, "file key")
	if err != nil {
		return nil, err
	}
	return &FileKey{job: job, aead: aead, rand: rand}, nil
}

// chunkAAD binds a chunk to its job, file, index and finality.
func (f *FileKey) chunkAAD(b []byte, file int, index uint64, last bool) []byte {
	b = appendField(b, fileSealDomain)
	b = append(b, fileVersion)
	b = appendField(b, f.job)
	b = binary.BigEndian.AppendUint32(b, uint32(file)) // #nosec G115 -- a file index of an export job, far below 4 Gi
	b = binary.BigEndian.AppendUint64(b, index)
	if last {
		return append(b, 1)
	}
	return append(b, 0)
}

// Writer returns a writer that seals what is written to it as file number
// file of the job, onto w. Close seals the last chunk; a file not closed
// does not open.
func (f *FileKey) Writer(w io.Writer, file int) io.WriteCloser {
	return &fileWriter{key: f, w: w, file: file, buf: make([]byte, 0, FileChunkSize), out: make([]byte, 0, fileChunkSeal)}
}

type fileWriter struct {
	key    *FileKey
	w      io.Writer
	file   int
	index  uint64
	buf    []byte
	out    []byte
	head   bool
	err    error
	closed bool
}

func (w *fileWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.closed {
		return 0, errors.New("keys: write to a closed file")
	}
	n := 0
	for len(p) > 0 {
		if len(w.buf) == FileChunkSize {
			// More follows: the buffered chunk is not the last.
			if w.err = w.seal(false); w.err != nil {
				return n, w.err
			}
		}
		c := copy(w.buf[len(w.buf):FileChunkSize], p)
		w.buf = w.buf[:len(w.buf)+c]
		p = p[c:]
		n += c
	}
	return n, nil
}

func (w *fileWriter) seal(last bool) error {
	if !w.head {
		if _, err := w.w.Write([]byte{fileVersion}); err != nil {
			return err
		}
		w.head = true
	}
	out := w.out[:nonceSize]
	if _, err := io.ReadFull(w.key.rand, out); err != nil {
		return fmt.Errorf("keys: seal: reading nonce: %w", err)
	}
	var abuf [128]byte
	ad := w.key.chunkAAD(abuf[:0], w.file, w.index, last)
	out = w.key.aead.Seal(out, out[:nonceSize], w.buf, ad)
	w.index++
	w.buf = w.buf[:0]
	_, err := w.w.Write(out)
	return err
}

// Close seals the last chunk.
func (w *fileWriter) Close() error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return nil
	}
	w.closed = true
	w.err = w.seal(true)
	return w.err
}

// Reader returns a reader of the plaintext of file number file of the job,
// sealed onto r by Writer. Any tampering, truncation, reordering or bytes
// after the last chunk make it fail with ErrDecrypt at the first chunk
// that does not open; no unauthenticated byte is returned.
func (f *FileKey) Reader(r io.Reader, file int) io.Reader {
	return &fileReader{key: f, r: bufio.NewReaderSize(r, fileChunkSeal+1), file: file, in: make([]byte, fileChunkSeal)}
}

type fileReader struct {
	key   *FileKey
	r     *bufio.Reader
	file  int
	index uint64
	in    []byte
	plain []byte
	head  bool
	done  bool
	err   error
}

func (r *fileReader) Read(p []byte) (int, error) {
	for len(r.plain) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.done {
			return 0, io.EOF
		}
		r.err = r.next()
	}
	n := copy(p, r.plain)
	r.plain = r.plain[n:]
	return n, nil
}

// next opens the next chunk into r.plain.
func (r *fileReader) next() error {
	if !r.head {
		v, err := r.r.ReadByte()
		if err != nil || v != fileVersion {
			return fmt.Errorf("keys: export file header: %w", ErrDecrypt)
		}
		r.head = true
	}
	n, err := io.ReadFull(r.r, r.in)
	switch {
	case err == io.ErrUnexpectedEOF || err == io.EOF:
		// A short chunk can only be the last.
	case err != nil:
		return err
	}
	if n < nonceSize+tagSize {
		return fmt.Errorf("keys: export file chunk %d: %w", r.index, ErrDecrypt)
	}
	last := n < len(r.in)
	if !last {
		// A full chunk is the last when nothing follows it.
		if _, perr := r.r.Peek(1); perr == io.EOF {
			last = true
		} else if perr != nil {
			return perr
		}
	}
	var abuf [128]byte
	ad := r.key.chunkAAD(abuf[:0], r.file, r.index, last)
	plain, oerr := r.key.aead.Open(r.in[nonceSize:nonceSize], r.in[:nonceSize], r.in[nonceSize:n], ad)
	if oerr != nil {
		return fmt.Errorf("keys: export file chunk %d: %w", r.index, ErrDecrypt)
	}
	r.index++
	r.plain, r.done = plain, last
	return nil
}
