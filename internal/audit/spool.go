package audit

// The spool: durable entries without a database commit per group.
//
// On the embedded database every commit appends to SQLite's WAL and syncs
// it, and it makes every reader connection drop its page cache (SQLite
// discards a connection's cache whenever another connection has written).
// Committing each group of read entries to the database therefore slows the
// very reads it accounts for. A Log opened with a spool directory instead
// makes each group durable in a file of its own: the group's frames are
// written and the file is synced, with no database work, and then Append
// returns. A folder goroutine appends what was spooled to the ledger in
// larger batches, at most FoldInterval after an entry was spooled, each in
// one transaction that also records the spool's mark (the sequence number
// of the last spooled entry it holds; store.LedgerWriter.MarkSpool).
//
// Recovery: a spool file is named after its random id and held under an
// exclusive advisory lock by the process that writes it. Opening a spooled
// Log first replays every spool file no live process holds: the frames
// after the file's mark are folded, the file is removed and its mark
// forgotten. A crash at any point of that is repaired by the next replay,
// and the mark makes each entry fold exactly once.
//
// Failure: a group whose write fails is reported to its appenders, and
// whatever part of it reached the file is cut off again (the header of its
// first frame zeroed) before the next group. A failed sync breaks the spool: the kernel may have dropped the
// unsynced pages, so what the file holds can no longer be trusted, and
// every later Append fails until the process restarts and replays. Folds
// that fail (the database is down) are retried with backoff; entries wait
// in the file and in memory, and past MaxUnfolded pending entries Append
// fails rather than let the backlog grow without bound.
//
// The frame format: 4 bytes big-endian body length, 4 bytes CRC-32C of the
// body, then the body: sequence number (8 bytes), entry time in unix
// microseconds (8 bytes), the patient and the patient list as
// uvarint-length-prefixed strings (the list preceded by its count), and
// the encoded entry to the end of the body. A torn or corrupt frame ends
// the file: nothing after it was acknowledged.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/wardhealth/ward/internal/fsutil"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/store"
)

// ErrBacklog is returned by Append when more spooled entries wait to be
// folded into the ledger than the spool may hold.
var ErrBacklog = errors.New("audit: too many entries wait to be folded into the ledger")

// ErrSpoolUnsupported is returned by OpenSpooled where files cannot be
// locked (outside Unix).
var ErrSpoolUnsupported = errors.New("audit: the ledger spool is supported on unix only")

// SpoolFile is the file a spool writes: WriteAt, and Sync, which makes
// what was written durable (fdatasync where there is one). Config.WrapSpool
// may wrap it to inject faults.
type SpoolFile interface {
	WriteAt(p []byte, off int64) (int, error)
	Sync() error
}

// osSpoolFile syncs data, not timestamps: the spool never changes its
// length between extensions, so a sync writes the frames and nothing else.
type osSpoolFile struct{ *os.File }

func (f osSpoolFile) Sync() error { return datasync(f.File) }

const (
	spoolPrefix   = "ledger-spool-"
	spoolSuffix   = ".log"
	newSuffix     = ".new"
	frameHeader   = 8
	maxFrameBody  = 16 << 20
	extendBytes   = 4 << 20  // the file grows, zero-filled, in steps up to this size
	wrapBytes     = 16 << 20 // start the file over once this much is written and folded
	foldBackoff   = 100 * time.Millisecond
	maxFoldBackof = 5 * time.Second
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type spooled struct {
	seq int64
	rec Record
}

type spool struct {
	st          Store
	dir, id     string
	path        string
	file        *os.File // holds the lock
	f           SpoolFile
	off         int64 // end of the last synced frame
	size        int64 // zero-filled length of the file
	buf         []byte
	maxBatch    int
	maxUnfolded int
	interval    time.Duration
	obs         Observer

	mu       sync.Mutex
	next     int64 // sequence number of the next frame
	synced   int64 // last synced sequence number
	folded   int64 // last folded sequence number
	unfolded []spooled
	foldErr  error
	broken   error
	progress chan struct{} // closed and replaced on each fold attempt

	kick, hurry chan struct{}
	stop, done  chan struct{}
	closeErr    error
}

// OpenSpooled replays the spool files in dir that no live process holds,
// then starts a Log whose entries are made durable in a new spool file
// there and folded into st in batches (see the package documentation).
func OpenSpooled(ctx context.Context, st Store, dir string, cfg Config) (*Log, error) {
	cfg = cfg.withDefaults()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit: spool directory: %w", err)
	}
	replayed, err := ReplaySpools(ctx, st, dir)
	if err != nil {
		return nil, err
	}
	sp, err := createSpool(st, dir, cfg)
	if err != nil {
		return nil, err
	}
	l := newLog(st, cfg)
	l.sp, l.replayed = sp, replayed
	go sp.foldLoop()
	go l.run()
	return l, nil
}

func createSpool(st Store, dir string, cfg Config) (*spool, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	id := hex.EncodeToString(b[:])
	tmp := filepath.Join(dir, spoolPrefix+id+newSuffix)
	file, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600) // #nosec G304 -- spool files Ward names itself in the directory beside its database
	if err != nil {
		return nil, fmt.Errorf("audit: create spool: %w", err)
	}
	// Lock before the file gets the name replay looks for, so that no other
	// process can take it for an abandoned spool.
	if ok, err := tryLock(file); err != nil || !ok {
		_ = file.Close()
		_ = os.Remove(tmp)
		if err == nil {
			err = errors.New("held by another process")
		}
		return nil, fmt.Errorf("audit: lock spool: %w", err)
	}
	path := filepath.Join(dir, spoolPrefix+id+spoolSuffix)
	if err := os.Rename(tmp, path); err != nil {
		_ = file.Close()
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("audit: create spool: %w", err)
	}
	if err := fsutil.SyncDir(dir); err != nil {
		_ = file.Close()
		return nil, fmt.Errorf("audit: create spool: %w", err)
	}
	sp := &spool{
		st: st, dir: dir, id: id, path: path, file: file, f: osSpoolFile{file},
		maxBatch: cfg.MaxBatch, maxUnfolded: cfg.MaxUnfolded, interval: cfg.FoldInterval, obs: cfg.Observer,
		next: 1, progress: make(chan struct{}),
		kick: make(chan struct{}, 1), hurry: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	if cfg.WrapSpool != nil {
		sp.f = cfg.WrapSpool(sp.f)
	}
	if err := sp.extend(1); err != nil {
		_ = file.Close()
		return nil, fmt.Errorf("audit: create spool: %w", err)
	}
	return sp, nil
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// write makes recs durable in the spool and queues them for folding. Only
// the Log's committer goroutine calls it.
func (s *spool) write(recs []Record) error {
	s.mu.Lock()
	if s.broken != nil {
		s.mu.Unlock()
		return s.broken
	}
	if len(s.unfolded)+len(recs) > s.maxUnfolded {
		s.mu.Unlock()
		signal(s.hurry)
		return ErrBacklog
	}
	wrap := len(s.unfolded) == 0 && s.off >= wrapBytes
	first := s.next
	s.mu.Unlock()
	if wrap {
		// Everything in the file is folded: write over it from the start.
		// The frames after the new ones have lower sequence numbers, so
		// reading stops at them.
		s.off = 0
	}
	buf := s.buf[:0]
	for i, r := range recs {
		buf = appendFrame(buf, first+int64(i), r)
	}
	if cap(buf) <= 1<<20 {
		s.buf = buf
	}
	if err := s.extend(s.off + int64(len(buf))); err != nil {
		return fmt.Errorf("audit: spool: %w", err)
	}
	if _, err := s.f.WriteAt(buf, s.off); err != nil {
		// Cut off whatever part of the group reached the file, so that no
		// entry of a refused request is folded later.
		if cerr := s.cut(); cerr != nil {
			_ = s.fail(fmt.Errorf("audit: spool cannot be repaired after a failed write: %w", cerr))
		}
		return fmt.Errorf("audit: spool write: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		// Cut the group off too (if the disk still lets us), so that a
		// crash before the restart replays nothing that was refused.
		_ = s.cut()
		return s.fail(fmt.Errorf("audit: spool sync failed: %w", err))
	}
	s.off += int64(len(buf))
	s.mu.Lock()
	s.next += int64(len(recs))
	s.synced = s.next - 1
	for i, r := range recs {
		s.unfolded = append(s.unfolded, spooled{seq: first + int64(i), rec: r})
	}
	full := len(s.unfolded) >= s.maxBatch
	s.mu.Unlock()
	signal(s.kick)
	if full {
		signal(s.hurry)
	}
	return nil
}

// extend zero-fills the file up to at least end, so that writing frames
// never changes its length: syncing them then needs no metadata journal
// commit, which on a busy file system waits for every other file's.
func (s *spool) extend(end int64) error {
	if end <= s.size {
		return nil
	}
	zeros := make([]byte, 64<<10)
	// Grow by doubling from 64 KiB up to steps of extendBytes, so that a
	// new spool costs little and a busy one extends rarely.
	step := min(max(s.size, int64(len(zeros))), extendBytes)
	newSize := (end + step - 1) / step * step
	for at := s.size; at < newSize; at += int64(len(zeros)) {
		if _, err := s.f.WriteAt(zeros[:min(int64(len(zeros)), newSize-at)], at); err != nil {
			return err
		}
	}
	if err := s.f.Sync(); err != nil {
		return err
	}
	s.size = newSize
	return nil
}

// cut zeroes the frame header at the end of the synced frames, so that
// reading stops there whatever a failed write left after it.
func (s *spool) cut() error {
	if _, err := s.f.WriteAt(make([]byte, frameHeader), s.off); err != nil {
		return err
	}
	return s.f.Sync()
}

// fail breaks the spool for good and returns the reason.
func (s *spool) fail(err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken == nil {
		s.broken = fmt.Errorf("%w; the ledger spool refuses entries until Ward restarts", err)
	}
	return s.broken
}

func appendFrame(b []byte, seq int64, r Record) []byte {
	start := len(b)
	b = append(b, make([]byte, frameHeader)...)
	b = binary.BigEndian.AppendUint64(b, uint64(seq)) // #nosec G115 -- spool frames are bounded far below 4 GiB and sequence numbers and times are non-negative int64 values written by Ward; a decoded length is checked against the frame before use
	b = binary.BigEndian.AppendUint64(b, uint64(r.Time.UnixMicro()))
	b = appendString(b, r.Patient)
	b = binary.AppendUvarint(b, uint64(len(r.Patients)))
	for _, p := range r.Patients {
		b = appendString(b, p)
	}
	b = append(b, r.Entry...)
	body := b[start+frameHeader:]
	binary.BigEndian.PutUint32(b[start:], uint32(len(body))) // #nosec G115 -- spool frames are bounded far below 4 GiB and sequence numbers and times are non-negative int64 values written by Ward; a decoded length is checked against the frame before use
	binary.BigEndian.PutUint32(b[start+4:], crc32.Checksum(body, castagnoli))
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// readFrames reads a spool's frames up to its end or its first torn or
// corrupt frame, whichever comes first, keeping those with a sequence
// number above after. Sequence numbers must rise: a frame that does not
// rise is left over from before the file was started over, and ends it.
func readFrames(r io.Reader, after int64) ([]spooled, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	var (
		out  []spooled
		last int64
		hdr  [frameHeader]byte
	)
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return out, nil
			}
			return out, err
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n < 17 || n > maxFrameBody {
			return out, nil
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(br, body); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return out, nil
			}
			return out, err
		}
		if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(hdr[4:]) {
			return out, nil
		}
		sp, ok := decodeFrame(body)
		if !ok || sp.seq <= last {
			return out, nil
		}
		last = sp.seq
		if sp.seq > after {
			out = append(out, sp)
		}
	}
}

func decodeFrame(body []byte) (spooled, bool) {
	var sp spooled
	sp.seq = int64(binary.BigEndian.Uint64(body))                                // #nosec G115 -- spool frames are bounded far below 4 GiB and sequence numbers and times are non-negative int64 values written by Ward; a decoded length is checked against the frame before use
	sp.rec.Time = time.UnixMicro(int64(binary.BigEndian.Uint64(body[8:]))).UTC() // #nosec G115 -- spool frames are bounded far below 4 GiB and sequence numbers and times are non-negative int64 values written by Ward; a decoded length is checked against the frame before use
	rest := body[16:]
	str := func() (string, bool) {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) { // #nosec G115 -- spool frames are bounded far below 4 GiB and sequence numbers and times are non-negative int64 values written by Ward; a decoded length is checked against the frame before use
			return "", false
		}
		s := string(rest[k : k+int(n)]) // #nosec G115 -- spool frames are bounded far below 4 GiB and sequence numbers and times are non-negative int64 values written by Ward; a decoded length is checked against the frame before use
		rest = rest[k+int(n):]          // #nosec G115 -- spool frames are bounded far below 4 GiB and sequence numbers and times are non-negative int64 values written by Ward; a decoded length is checked against the frame before use
		return s, true
	}
	var ok bool
	if sp.rec.Patient, ok = str(); !ok {
		return sp, false
	}
	count, k := binary.Uvarint(rest)
	if k <= 0 || count > uint64(len(rest)) {
		return sp, false
	}
	rest = rest[k:]
	for range count {
		p, ok := str()
		if !ok {
			return sp, false
		}
		sp.rec.Patients = append(sp.rec.Patients, p)
	}
	if len(rest) == 0 {
		return sp, false
	}
	sp.rec.Entry = rest
	// A frame does not repeat the entry's actor and client (frames written
	// before the store indexed them have none): they come from the entry.
	// An entry that does not decode keeps them empty, and the offline
	// verifier names it.
	if e, err := ledger.DecodeEntry(rest); err == nil {
		sp.rec.Actor, sp.rec.Client = e.Actor, e.Client
	}
	return sp, true
}

// foldLoop folds spooled entries into the ledger until the spool stops.
func (s *spool) foldLoop() {
	defer close(s.done)
	backoff := foldBackoff
	for {
		select {
		case <-s.kick:
		case <-s.hurry:
		case <-s.stop:
			s.closeErr = s.foldAll()
			return
		}
		// Let a batch gather, unless someone waits for it or it is full.
		select {
		case <-s.hurry:
		default:
			t := time.NewTimer(s.interval)
			select {
			case <-t.C:
			case <-s.hurry:
			case <-s.stop:
			}
			t.Stop()
		}
		if err := s.foldAll(); err != nil {
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-s.hurry:
			case <-s.stop:
			}
			t.Stop()
			backoff = min(2*backoff, maxFoldBackof)
			signal(s.kick)
			continue
		}
		backoff = foldBackoff
	}
}

// foldAll folds the entries spooled when it is called, in batches of at
// most maxBatch. Entries spooled meanwhile wait for the next round, so
// that folds stay large while reads keep arriving.
func (s *spool) foldAll() error {
	s.mu.Lock()
	upto := s.synced
	s.mu.Unlock()
	for {
		s.mu.Lock()
		n := 0
		for n < len(s.unfolded) && n < s.maxBatch && s.unfolded[n].seq <= upto {
			n++
		}
		batch := s.unfolded[:n:n]
		s.mu.Unlock()
		if n == 0 {
			return nil
		}
		began := time.Now()
		err := fold(s.st, s.id, batch)
		if s.obs != nil {
			s.obs.Fold(n, time.Since(began), err != nil)
		}
		s.mu.Lock()
		if err == nil {
			s.unfolded = s.unfolded[n:]
			s.folded = batch[n-1].seq
		}
		s.foldErr = err
		close(s.progress)
		s.progress = make(chan struct{})
		s.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

// fold appends a batch of spooled entries to the ledger with the spool's
// mark, in one transaction.
func fold(st Store, id string, batch []spooled) error {
	recs := make([]Record, len(batch))
	for i, sp := range batch {
		recs[i] = sp.rec
	}
	return commit(st, recs, func(ctx context.Context, tx store.Tx) error {
		return tx.MarkSpool(ctx, id, batch[len(batch)-1].seq)
	})
}

// Replayed returns how many entries OpenSpooled folded from the spools
// of processes that had stopped without folding them.
func (l *Log) Replayed() int { return l.replayed }

// flush waits until every entry spooled before the call is folded.
func (s *spool) flush(ctx context.Context) error {
	s.mu.Lock()
	target := s.synced
	s.mu.Unlock()
	for {
		s.mu.Lock()
		folded, ch := s.folded, s.progress
		s.mu.Unlock()
		if folded >= target {
			return nil
		}
		signal(s.hurry)
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("audit: waiting for the ledger: %w", ctx.Err())
		}
		s.mu.Lock()
		folded, err := s.folded, s.foldErr
		s.mu.Unlock()
		if folded < target && err != nil {
			return err
		}
	}
}

// close folds what is spooled and, when all of it is in the ledger,
// removes the spool file and its mark. When a fold fails, the file stays
// for the next replay.
func (s *spool) close() error {
	close(s.stop)
	<-s.done
	defer s.file.Close()
	if s.closeErr != nil {
		return fmt.Errorf("audit: spooled entries stay in %s until the next start: %w", s.path, s.closeErr)
	}
	// Every acknowledged entry is folded, a broken spool's included: the
	// file holds nothing more that belongs in the ledger.
	if err := os.Remove(s.path); err != nil {
		return fmt.Errorf("audit: remove spool: %w", err)
	}
	_ = fsutil.SyncDir(s.dir)
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	return s.st.ForgetSpool(ctx, s.id)
}

// ReplaySpools folds the entries of every spool file in dir that no live
// process holds into st, then removes the file and its mark. It returns
// how many entries it folded.
func ReplaySpools(ctx context.Context, st Store, dir string) (int, error) {
	total := 0
	names, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("audit: replay spools: %w", err)
	}
	for _, de := range names {
		name := de.Name()
		if !strings.HasPrefix(name, spoolPrefix) {
			continue
		}
		path := filepath.Join(dir, name)
		switch {
		case strings.HasSuffix(name, newSuffix):
			// Created but never named for use: nothing was written to it.
			if err := removeUnheld(path); err != nil {
				return total, err
			}
		case strings.HasSuffix(name, spoolSuffix):
			id := strings.TrimSuffix(strings.TrimPrefix(name, spoolPrefix), spoolSuffix)
			n, err := replaySpool(ctx, st, dir, path, id)
			total += n
			if err != nil {
				return total, err
			}
		}
	}
	return total, nil
}

// PendingSpools counts the entries waiting in dir's spool files, held by
// a live process or not, that the ledger in st does not hold yet.
func PendingSpools(ctx context.Context, st store.Spools, dir string) (int, error) {
	names, err := filepath.Glob(filepath.Join(dir, spoolPrefix+"*"+spoolSuffix))
	if err != nil {
		return 0, err
	}
	total := 0
	for _, path := range names {
		id := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(path), spoolPrefix), spoolSuffix)
		mark, err := st.SpoolMark(ctx, id)
		if err != nil {
			return total, err
		}
		f, err := os.Open(path) // #nosec G304 -- spool files Ward names itself in the directory beside its database
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return total, err
		}
		frames, err := readFrames(f, mark)
		_ = f.Close()
		if err != nil {
			return total, err
		}
		total += len(frames)
	}
	return total, nil
}

func removeUnheld(path string) error {
	f, err := os.Open(path) // #nosec G304 -- spool files Ward names itself in the directory beside its database
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("audit: replay spools: %w", err)
	}
	defer f.Close()
	if ok, err := tryLock(f); err != nil || !ok {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("audit: replay spools: %w", err)
	}
	return nil
}

func replaySpool(ctx context.Context, st Store, dir, path, id string) (int, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0) // #nosec G304 -- spool files Ward names itself in the directory beside its database
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("audit: replay spool %s: %w", id, err)
	}
	defer f.Close()
	ok, err := tryLock(f)
	if err != nil {
		return 0, fmt.Errorf("audit: replay spool %s: %w", id, err)
	}
	if !ok {
		return 0, nil // a live process writes it
	}
	// Another process may have replayed and removed the file between our
	// open and our lock.
	if same, err := isFileAt(f, path); err != nil || !same {
		return 0, err
	}
	mark, err := st.SpoolMark(ctx, id)
	if err != nil {
		return 0, fmt.Errorf("audit: replay spool %s: %w", id, err)
	}
	frames, err := readFrames(f, mark)
	if err != nil {
		return 0, fmt.Errorf("audit: replay spool %s: %w", id, err)
	}
	for start := 0; start < len(frames); start += 4096 {
		if err := fold(st, id, frames[start:min(start+4096, len(frames))]); err != nil {
			return start, fmt.Errorf("audit: replay spool %s: %w", id, err)
		}
	}
	if err := os.Remove(path); err != nil {
		return len(frames), fmt.Errorf("audit: replay spool %s: %w", id, err)
	}
	if err := fsutil.SyncDir(dir); err != nil {
		return len(frames), fmt.Errorf("audit: replay spool %s: %w", id, err)
	}
	if err := st.ForgetSpool(ctx, id); err != nil {
		return len(frames), fmt.Errorf("audit: replay spool %s: %w", id, err)
	}
	return len(frames), nil
}

func isFileAt(f *os.File, path string) (bool, error) {
	a, err := f.Stat()
	if err != nil {
		return false, err
	}
	b, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(a, b), nil
}
