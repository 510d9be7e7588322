// Package bulk runs FHIR Bulk Data export jobs (HL7 FHIR Bulk Data Access
// 2.0, the asynchronous request pattern): a kick-off starts a job in the
// background of the serving process, the client polls its status, fetches
// its NDJSON files once the manifest lists them, or cancels it.
//
// What it guarantees:
//   - Exactly what the caller may see: the records service plans and
//     walks the export (records.PlanExport, records.Export) with the same
//     policy decision, compartment narrowing, labels, Consents and masks
//     as a search; this package never reads a resource itself.
//   - Audited before it is available: the export's ledger entry, naming
//     every patient it disclosed, is durable before the job is marked
//     complete, and no file is served before that (File refuses a job
//     that is not complete).
//   - Sealed at rest: each file is written through a keys.FileKey drawn
//     for the job, wrapped by the KEK and stored with the job; no
//     plaintext byte reaches the export directory. A file that was cut,
//     altered or swapped is refused before a byte of it is served.
//   - Only the client (and person) that started a job sees it: status,
//     files and cancellation answer ErrNotFound to anyone else, as for a
//     job that does not exist.
//   - Expiry: a finished job and its files are deleted Config.TTL after
//     it finished, a running one Config.MaxRuntime after it started, by
//     Sweep (ward serve runs it in the background); a cancelled job at
//     once.
//   - Memory stays flat: resources stream from storage pages to sealed
//     chunks; only the set of patient ids disclosed grows with the export.
//
// What it does not do: HTTP (package api maps its errors and renders the
// manifest's URLs), and it does not move a job to another process: a job
// runs where it was started, and its files are in that process's
// directory (several replicas share the directory, or route a job's
// requests to one replica; see README, Bulk export).
package bulk

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/store"
)

// Errors callers branch on.
var (
	// ErrNotFound: no such job for this caller (unknown, expired,
	// cancelled, or another client's).
	ErrNotFound = errors.New("bulk: no such export job")
	// ErrBusy: the process runs as many jobs as it may; try later.
	ErrBusy = errors.New("bulk: too many export jobs running")
	// ErrNotReady: the job has not completed; there is no file yet.
	ErrNotReady = errors.New("bulk: export job not complete")
	// ErrCorrupt: a file did not open under its job's key (cut, altered
	// or swapped at rest).
	ErrCorrupt = errors.New("bulk: export file failed its integrity check")
)

// Config configures the jobs. Zero values mean the defaults.
type Config struct {
	Dir        string        // where sealed files wait; required
	TTL        time.Duration // how long a finished job's files wait; default 1h
	MaxRuntime time.Duration // a running job's deadline; default 6h
	MaxJobs    int           // jobs running at once in this process; default 2
	FileLimit  int           // resources per file; default 100,000
	Now        func() time.Time
}

func (c *Config) fill() error {
	if c.Dir == "" {
		return errors.New("bulk: an export directory is required")
	}
	if c.TTL <= 0 {
		c.TTL = time.Hour
	}
	if c.MaxRuntime <= 0 {
		c.MaxRuntime = 6 * time.Hour
	}
	if c.MaxJobs <= 0 {
		c.MaxJobs = 2
	}
	if c.FileLimit <= 0 {
		c.FileLimit = 100_000
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Store is what jobs need of the storage contract.
type Store interface {
	store.Exports
}

// Manager runs export jobs. It is safe for concurrent use.
type Manager struct {
	cfg     Config
	store   Store
	records *records.Service
	keys    *keys.Keyring

	base    context.Context
	stop    context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	running map[string]context.CancelFunc
	pending int // kick-offs holding a slot before their job runs
}

// New returns a Manager. The directory is created (mode 0700) if needed.
func New(cfg Config, st Store, rec *records.Service, kr *keys.Keyring) (*Manager, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("bulk: export directory: %w", err)
	}
	base, stop := context.WithCancel(context.Background())
	return &Manager{cfg: cfg, store: st, records: rec, keys: kr, base: base, stop: stop, running: map[string]context.CancelFunc{}}, nil
}

// Close cancels the running jobs and waits for them to stop. Their
// files are deleted; their rows expire.
func (m *Manager) Close() {
	m.stop()
	m.wg.Wait()
}

// File is one output file of a completed job, as the manifest lists it.
type File struct {
	Type  string `json:"type"`
	N     int    `json:"n"`
	Count int    `json:"count"`
}

// Job is an export job as its owner sees it.
type Job struct {
	ID       string
	Request  string
	State    string // store.ExportRunning, ExportComplete or ExportFailed
	Progress string
	Output   []File
	Created  time.Time
	Expires  time.Time
}

// idEncoding is lower-case base32: job ids are valid FHIR ids and safe
// file names.
var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

func newJobID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return idEncoding.EncodeToString(b[:])
}

// validID reports whether id could be a job id: what keeps a caller's
// value from naming any other path.
func validID(id string) bool {
	if len(id) != 26 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || '2' <= c && c <= '7') {
			return false
		}
	}
	return true
}

func (m *Manager) dir(id string) string { return filepath.Join(m.cfg.Dir, id) }

func (m *Manager) path(id string, n int) string {
	return filepath.Join(m.dir(id), strconv.Itoa(n)+".ndjson.sealed")
}

// Start kicks off an export for c: the records service plans it (and
// records the kick-off), then it runs in the background. request is the
// kick-off's URL, which the manifest echoes.
func (m *Manager) Start(ctx context.Context, c records.Caller, req records.ExportRequest, request string) (string, error) {
	m.mu.Lock()
	busy := len(m.running)+m.pending >= m.cfg.MaxJobs
	if !busy {
		m.pending++
	}
	m.mu.Unlock()
	if busy {
		return "", ErrBusy
	}
	defer func() {
		m.mu.Lock()
		m.pending--
		m.mu.Unlock()
	}()
	req.Job = newJobID()
	fk, wk, err := m.keys.NewFileKey(ctx, req.Job)
	if err != nil {
		return "", fmt.Errorf("bulk: %w: %w", records.ErrUnavailable, err)
	}
	now := m.cfg.Now().UTC()
	j := store.ExportJob{ID: req.Job, Client: c.ClientID, User: c.UserID, Request: request, State: store.ExportRunning,
		Progress: "planned", KEKID: wk.KEKID, Key: wk.Wrapped, Created: now, Updated: now, Expires: now.Add(m.cfg.MaxRuntime)}
	if err := m.store.CreateExportJob(ctx, j); err != nil {
		return "", fmt.Errorf("bulk: %w: %w", records.ErrUnavailable, err)
	}
	plan, err := m.records.PlanExport(ctx, c, req)
	if err == nil {
		err = os.MkdirAll(m.dir(j.ID), 0o700)
	}
	if err != nil {
		_ = m.store.DeleteExportJob(context.WithoutCancel(ctx), j.ID)
		return "", err
	}
	jobCtx, cancel := context.WithCancel(m.base)
	m.mu.Lock()
	m.running[j.ID] = cancel
	m.mu.Unlock()
	bg := c
	bg.Trail = nil
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer cancel()
		m.run(jobCtx, bg, plan, j, fk)
		m.mu.Lock()
		delete(m.running, j.ID)
		m.mu.Unlock()
	}()
	return j.ID, nil
}

// errCancelled: the job's row is gone (cancelled or expired elsewhere).
var errCancelled = errors.New("bulk: export job cancelled")

// run walks the export into sealed files and reports the job's end.
func (m *Manager) run(ctx context.Context, c records.Caller, plan records.ExportPlan, j store.ExportJob, fk *keys.FileKey) {
	out := &outputs{m: m, ctx: ctx, job: j, key: fk}
	err := m.records.Export(ctx, c, plan, out.write)
	if cerr := out.close(); err == nil {
		err = cerr
	}
	now := m.cfg.Now().UTC()
	j.Updated, j.Expires = now, now.Add(m.cfg.TTL)
	if err == nil {
		// The export's entry is durable (records.Export returned nil):
		// only now may the manifest list the files.
		j.State, j.Progress = store.ExportComplete, out.progress()
		if j.Output, err = json.Marshal(out.files); err == nil {
			err = m.store.UpdateExportJob(context.WithoutCancel(ctx), j)
		}
		if err == nil {
			return
		}
	}
	_ = os.RemoveAll(m.dir(j.ID))
	if errors.Is(err, errCancelled) || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
		return
	}
	if errors.Is(err, context.Canceled) {
		// Cancelled here (DELETE) or shutting down: the row, if any, expires.
		return
	}
	j.State, j.Progress, j.Output = store.ExportFailed, "failed", nil
	_ = m.store.UpdateExportJob(context.WithoutCancel(ctx), j)
}

// outputs writes an export's resources into sealed files: one or more
// per resource type, each at most FileLimit resources.
type outputs struct {
	m     *Manager
	ctx   context.Context
	job   store.ExportJob
	key   *keys.FileKey
	files []File
	f     *os.File
	w     io.WriteCloser
	total int
}

func (o *outputs) write(e records.Entry) error {
	cur := len(o.files) - 1
	if o.w == nil || o.files[cur].Type != e.Type || o.files[cur].Count >= o.m.cfg.FileLimit {
		if err := o.next(e.Type); err != nil {
			return err
		}
		cur = len(o.files) - 1
	}
	body := ndjsonLine(e.Body)
	if _, err := o.w.Write(body); err != nil {
		return fmt.Errorf("bulk: writing export file: %w", err)
	}
	o.files[cur].Count++
	o.total++
	if o.total%2000 == 0 {
		return o.report()
	}
	return nil
}

// next closes the current file and opens the next one, for typ.
func (o *outputs) next(typ string) error {
	if err := o.closeFile(); err != nil {
		return err
	}
	n := len(o.files)
	f, err := os.OpenFile(o.m.path(o.job.ID, n), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("bulk: creating export file: %w", err)
	}
	o.f, o.w = f, o.key.Writer(f, n)
	o.files = append(o.files, File{Type: typ, N: n})
	return o.report()
}

func (o *outputs) closeFile() error {
	if o.w == nil {
		return nil
	}
	err := o.w.Close()
	if serr := o.f.Sync(); err == nil {
		err = serr
	}
	if cerr := o.f.Close(); err == nil {
		err = cerr
	}
	o.f, o.w = nil, nil
	if err != nil {
		return fmt.Errorf("bulk: closing export file: %w", err)
	}
	return nil
}

func (o *outputs) close() error { return o.closeFile() }

func (o *outputs) progress() string {
	return strconv.Itoa(o.total) + " resources in " + strconv.Itoa(len(o.files)) + " files"
}

// report records the progress; a job whose row is gone stops.
func (o *outputs) report() error {
	j := o.job
	j.Progress, j.Updated = o.progress(), o.m.cfg.Now().UTC()
	err := o.m.store.UpdateExportJob(o.ctx, j)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
		return errCancelled
	}
	return err
}

// ndjsonLine is a resource body on one line with its newline.
func ndjsonLine(body []byte) []byte {
	line := make([]byte, 0, len(body)+1)
	for _, b := range body {
		if b != '\n' && b != '\r' {
			line = append(line, b)
		}
	}
	return append(line, '\n')
}

// job reads a job for its owner; anyone else gets ErrNotFound.
func (m *Manager) job(ctx context.Context, c records.Caller, id string) (store.ExportJob, error) {
	if !validID(id) {
		return store.ExportJob{}, ErrNotFound
	}
	j, err := m.store.ExportJob(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return j, ErrNotFound
	case err != nil:
		return j, fmt.Errorf("bulk: %w: %w", records.ErrUnavailable, err)
	}
	if j.Client != c.ClientID || j.User != c.UserID || !m.cfg.Now().Before(j.Expires) {
		return store.ExportJob{}, ErrNotFound
	}
	return j, nil
}

// Status returns a job as its owner sees it.
func (m *Manager) Status(ctx context.Context, c records.Caller, id string) (Job, error) {
	j, err := m.job(ctx, c, id)
	if err != nil {
		return Job{}, err
	}
	out := Job{ID: j.ID, Request: j.Request, State: j.State, Progress: j.Progress, Created: j.Created, Expires: j.Expires}
	if j.State == store.ExportComplete {
		if err := json.Unmarshal(j.Output, &out.Output); err != nil {
			return Job{}, fmt.Errorf("bulk: stored output list: %w", err)
		}
	}
	return out, nil
}

// Cancel deletes a job and its files; a running job stops.
func (m *Manager) Cancel(ctx context.Context, c records.Caller, id string) error {
	if _, err := m.job(ctx, c, id); err != nil {
		return err
	}
	return m.remove(ctx, id)
}

// remove deletes a job's row and files, stopping it if it runs here.
func (m *Manager) remove(ctx context.Context, id string) error {
	err := m.store.DeleteExportJob(ctx, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("bulk: %w: %w", records.ErrUnavailable, err)
	}
	m.mu.Lock()
	if cancel, ok := m.running[id]; ok {
		cancel()
	}
	m.mu.Unlock()
	if err := os.RemoveAll(m.dir(id)); err != nil {
		return fmt.Errorf("bulk: deleting export files: %w", err)
	}
	return nil
}

// Open returns file n of a completed job for its owner, checked: every
// chunk is authenticated once before the reader is returned, and again
// as it is read (a file changed in between fails then). The caller
// closes it.
func (m *Manager) Open(ctx context.Context, c records.Caller, id string, n int) (io.ReadCloser, File, error) {
	j, err := m.job(ctx, c, id)
	if err != nil {
		return nil, File{}, err
	}
	if j.State != store.ExportComplete {
		return nil, File{}, ErrNotReady
	}
	var files []File
	if err := json.Unmarshal(j.Output, &files); err != nil {
		return nil, File{}, fmt.Errorf("bulk: stored output list: %w", err)
	}
	if n < 0 || n >= len(files) {
		return nil, File{}, ErrNotFound
	}
	fk, err := m.keys.OpenFileKey(ctx, j.ID, keys.WrappedKey{KEKID: j.KEKID, Wrapped: j.Key})
	if err != nil {
		if errors.Is(err, keys.ErrDecrypt) {
			return nil, File{}, fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		return nil, File{}, fmt.Errorf("bulk: %w: %w", records.ErrUnavailable, err)
	}
	f, err := os.Open(m.path(j.ID, n))
	if err != nil {
		return nil, File{}, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if _, err := io.Copy(io.Discard, fk.Reader(f, n)); err != nil {
		_ = f.Close()
		return nil, File{}, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		_ = f.Close()
		return nil, File{}, fmt.Errorf("bulk: %w", err)
	}
	return readCloser{Reader: fk.Reader(f, n), Closer: f}, files[n], nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// Sweep deletes the jobs expired by now, with their files, and the
// directories of jobs that no longer exist (left by a process that
// stopped, or by a replica that swept the row). It returns how many jobs
// it deleted.
func (m *Manager) Sweep(ctx context.Context) (int, error) {
	n := 0
	for {
		jobs, err := m.store.ExpiredExportJobs(ctx, m.cfg.Now(), 100)
		if err != nil {
			return n, fmt.Errorf("bulk: sweep: %w", err)
		}
		for _, j := range jobs {
			if err := m.remove(ctx, j.ID); err != nil {
				return n, err
			}
			n++
		}
		if len(jobs) < 100 {
			break
		}
	}
	entries, err := os.ReadDir(m.cfg.Dir)
	if err != nil {
		return n, fmt.Errorf("bulk: sweep: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() || !validID(e.Name()) {
			continue
		}
		_, err := m.store.ExportJob(ctx, e.Name())
		if errors.Is(err, store.ErrNotFound) {
			m.mu.Lock()
			_, running := m.running[e.Name()]
			m.mu.Unlock()
			if !running {
				if err := os.RemoveAll(m.dir(e.Name())); err != nil {
					return n, fmt.Errorf("bulk: sweep: %w", err)
				}
			}
		} else if err != nil {
			return n, fmt.Errorf("bulk: sweep: %w", err)
		}
	}
	return n, nil
}
