package siem

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/fsutil"
	"github.com/wardhealth/ward/internal/secevent"
)

// Events from other processes (ward user, run beside a serving Ward) reach
// the stream through the buffer directory's incoming/ folder: Enqueue
// writes each event to a file of its own (synced, then renamed into
// place), and the stream's Ingest takes them in, in the order they were
// written, and deletes them.

// ErrNoStream is Enqueue's answer when the buffer directory does not
// exist: no Ward process on this data directory streams to a SIEM.
var ErrNoStream = errors.New("siem: no security event stream in this data directory")

// ErrIncomingFull is Enqueue's answer when MaxIncoming events wait.
var ErrIncomingFull = errors.New("siem: too many security events wait to be taken in")

// MaxIncoming bounds the events waiting in incoming/.
const MaxIncoming = 10000

const incomingDir = "incoming"

// Enqueue hands e to the stream that owns the buffer directory dir, from
// another process; it is taken in at the stream's next Ingest (or its next
// start).
func Enqueue(dir string, e secevent.Event) error {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return ErrNoStream
	}
	in := filepath.Join(dir, incomingDir)
	if err := os.MkdirAll(in, 0o700); err != nil {
		return fmt.Errorf("siem: %w", err)
	}
	if names, err := filepath.Glob(filepath.Join(in, "*.event")); err == nil && len(names) >= MaxIncoming {
		return ErrIncomingFull
	}
	e, _ = secevent.Clean(e, time.Now())
	data, err := json.Marshal(stored{e.ID, e.Kind, e.Severity, e.Time, e.Actor, e.Client, e.Source, e.Outcome, e.Attrs})
	if err != nil {
		return fmt.Errorf("siem: %w", err)
	}
	name := fmt.Sprintf("%020d-%s", time.Now().UnixNano(), e.ID)
	tmp := filepath.Join(in, name+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600) // #nosec G304 -- buffer files Ward names itself in the configured SIEM directory
	if err != nil {
		return fmt.Errorf("siem: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(in, name+".event"))
	}
	if err == nil {
		err = fsutil.SyncDir(in)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("siem: %w", err)
	}
	return nil
}

// Ingest takes the events other processes enqueued into the stream, oldest
// first, and deletes their files; it returns how many it took. A file
// that does not hold an event is deleted and counted in Stats.Lost.
func (s *Stream) Ingest() (int, error) {
	in := filepath.Join(s.cfg.Dir, incomingDir)
	names, err := filepath.Glob(filepath.Join(in, "*.event"))
	if err != nil || len(names) == 0 {
		return 0, err
	}
	slices.Sort(names) // by the time in their names
	n := 0
	for _, name := range names {
		data, err := os.ReadFile(name) // #nosec G304 -- buffer files Ward names itself in the configured SIEM directory
		if err != nil {
			return n, fmt.Errorf("siem: %w", err)
		}
		e, derr := decodePayload(data)
		if derr != nil || !strings.HasSuffix(name, e.ID+".event") {
			s.lost.Add(1)
		} else {
			s.Emit(e)
			n++
		}
		if err := os.Remove(name); err != nil {
			return n, fmt.Errorf("siem: %w", err)
		}
	}
	return n, nil
}
