package ledger

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/wardhealth/ward/internal/fsutil"
)

// WitnessState persists, per log origin, the latest checkpoint a witness
// cosigned. Latest returns size 0 and a nil note for a log never cosigned.
// Put replaces the record for origin durably before returning. The
// [Witness] serialises calls per origin; implementations need only be
// safe for concurrent use across origins.
type WitnessState interface {
	Latest(ctx context.Context, origin string) (size int64, note []byte, err error)
	Put(ctx context.Context, origin string, size int64, note []byte) error
}

// MemWitnessState is a WitnessState in memory, for tests. It is not
// durable.
type MemWitnessState struct {
	mu   sync.Mutex
	logs map[string]memWitnessRecord
}

type memWitnessRecord struct {
	size int64
	note []byte
}

// Latest implements WitnessState.
func (m *MemWitnessState) Latest(_ context.Context, origin string) (int64, []byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.logs[origin]
	return r.size, bytes.Clone(r.note), nil
}

// Put implements WitnessState.
func (m *MemWitnessState) Put(_ context.Context, origin string, size int64, note []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.logs == nil {
		m.logs = map[string]memWitnessRecord{}
	}
	m.logs[origin] = memWitnessRecord{size, bytes.Clone(note)}
	return nil
}

// FileWitnessState is a WitnessState in a directory: one file per log,
// named by the unpadded base64url of the origin plus ".checkpoint",
// holding the cosigned checkpoint note. Each Put writes a temporary file,
// syncs it, renames it over the old one and syncs the directory, so a
// crash leaves the old or the new record, never a mix.
type FileWitnessState struct {
	dir string
}

// NewFileWitnessState uses dir, creating it (mode 0700) if needed.
func NewFileWitnessState(dir string) (*FileWitnessState, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("ledger: witness state: %w", err)
	}
	return &FileWitnessState{dir: dir}, nil
}

// Path returns the file holding origin's latest cosigned checkpoint.
func (s *FileWitnessState) Path(origin string) string {
	return filepath.Join(s.dir, base64.RawURLEncoding.EncodeToString([]byte(origin))+".checkpoint")
}

// Latest implements WitnessState. A record that is not a checkpoint of
// origin is an error, never a fresh start.
func (s *FileWitnessState) Latest(_ context.Context, origin string) (int64, []byte, error) {
	b, err := os.ReadFile(s.Path(origin)) // #nosec G703 -- the path is the configured state directory and the base64url of the origin, which has no separator
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil, nil
	}
	if err != nil {
		return 0, nil, fmt.Errorf("ledger: witness state: %w", err)
	}
	c, err := checkpointOfNote(b)
	if err != nil || c.Origin != origin {
		return 0, nil, fmt.Errorf("ledger: witness state for %q is corrupt", origin)
	}
	return c.Size, b, nil
}

// Put implements WitnessState.
func (s *FileWitnessState) Put(_ context.Context, origin string, size int64, note []byte) error {
	if c, err := checkpointOfNote(note); err != nil || c.Origin != origin || c.Size != size {
		return errors.New("ledger: witness state: record is not a checkpoint of this origin and size")
	}
	if err := writeFileAtomic(s.Path(origin), note); err != nil {
		return fmt.Errorf("ledger: witness state: %w", err)
	}
	return nil
}

// writeFileAtomic replaces path with data: temporary file, fsync, rename,
// directory fsync.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path) // #nosec G703 -- the path is the configured state directory and the base64url of the origin, which has no separator
	}
	if err != nil {
		_ = os.Remove(tmp) // #nosec G703 -- the path is the configured state directory and the base64url of the origin, which has no separator
		return err
	}
	return fsutil.SyncDir(dir)
}

// syncDir makes a directory entry change durable.

// checkpointOfNote parses the body of a signed checkpoint note without
// checking its signatures: the text up to the blank line before the
// signature block, as note.Open splits it.
func checkpointOfNote(msg []byte) (Checkpoint, error) {
	split := bytes.LastIndex(msg, []byte("\n\n"))
	if split < 0 {
		return Checkpoint{}, errors.New("ledger: malformed checkpoint note")
	}
	c, _, err := parseCheckpoint(msg[:split+1])
	return c, err
}
