// Package siem delivers Ward's security events (package secevent) to
// SIEMs: syslog over TLS (RFC 5425) carrying OCSF JSON or CEF, and a file
// of OCSF JSON lines.
//
// What it guarantees:
//   - Stream.Emit writes the event to an on-disk buffer before it returns
//     and never fails the caller: events survive a crash of the process
//     (the buffer is synced to disk in groups, shortly after each write,
//     so a power loss may take the last few) and are delivered after a
//     restart;
//   - every sink receives every buffered event, in emission order, from
//     its own cursor, which is kept on disk; a failing sink is retried
//     with exponential backoff and holds back no other sink;
//   - the buffer is bounded (Config.MaxBytes). When it is full, new
//     events are not kept: they are counted (Stats.Dropped), and as soon
//     as there is room again an event of kind siem.events.dropped with
//     the count is buffered, so the SIEM learns of the gap. Nothing is
//     dropped silently;
//   - segments every sink has delivered are deleted.
//
// What it does not guarantee: exactly-once delivery. A crash between a
// sink's delivery and the write of its cursor sends those events again;
// every event carries a unique id (OCSF metadata.uid, CEF externalId) by
// which a SIEM removes duplicates. One process uses a buffer directory at
// a time.
package siem

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wardhealth/ward/internal/fsutil"
	"github.com/wardhealth/ward/internal/secevent"
)

// Sink delivers events to one SIEM. Send delivers events in order, all or
// (on error) possibly some of them; the Stream sends the same events
// again after an error. Name names the sink's cursor file: unique per
// Stream, letters and digits.
type Sink interface {
	Name() string
	Send(ctx context.Context, events []secevent.Event) error
	Close() error
}

// Clock is the time source of retries. Tests inject one that they
// advance themselves.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Config configures a Stream. Zero values are the defaults.
type Config struct {
	// Dir is the buffer directory, created 0700 if missing. Required.
	Dir string
	// Sinks receive every event; at least one.
	Sinks []Sink
	// MaxBytes bounds the buffer on disk; default 256 MiB.
	MaxBytes int64
	// SegmentBytes is the size at which a segment file is closed and a
	// new one started; default 4 MiB.
	SegmentBytes int64
	// Batch is the most events handed to a sink at once; default 256.
	Batch int
	// MinBackoff and MaxBackoff bound the wait before a failed delivery
	// is tried again, doubling from the one to the other; default 1s and
	// 1m.
	MinBackoff, MaxBackoff time.Duration
	// Clock defaults to the system's.
	Clock Clock
	// Logger receives a sink's first failure after a success, its
	// recovery, and the start of a run of dropped events; default none.
	Logger *slog.Logger
}

func (c *Config) validate() error {
	if c.Dir == "" {
		return errors.New("siem: no buffer directory")
	}
	if len(c.Sinks) == 0 {
		return errors.New("siem: no sink")
	}
	names := map[string]bool{}
	for _, s := range c.Sinks {
		n := s.Name()
		if n == "" || names[n] || strings.Trim(n, "abcdefghijklmnopqrstuvwxyz0123456789") != "" {
			return fmt.Errorf("siem: sink name %q: want distinct lower-case letters and digits", n)
		}
		names[n] = true
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = 256 << 20
	}
	if c.SegmentBytes <= 0 {
		c.SegmentBytes = 4 << 20
	}
	if c.SegmentBytes > c.MaxBytes {
		c.SegmentBytes = c.MaxBytes
	}
	if c.Batch <= 0 {
		c.Batch = 256
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = time.Second
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = max(time.Minute, c.MinBackoff)
	}
	if c.Clock == nil {
		c.Clock = realClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Stats are a Stream's counters since it was opened, and its backlog.
type Stats struct {
	Emitted     uint64 // events written to the buffer
	Dropped     uint64 // events not kept: the buffer was full, a write failed, or the stream was closed
	Rejected    uint64 // events whose fields broke secevent's rules and were cleaned
	Lost        uint64 // buffered events found unreadable (a damaged segment) and skipped
	BufferBytes int64  // the buffer's size on disk
	Sinks       []SinkStats
}

// SinkStats are one sink's counters.
type SinkStats struct {
	Name      string
	Delivered uint64        // events the sink accepted
	Failures  uint64        // failed deliveries
	Retries   uint64        // deliveries tried again after a failure
	Backlog   uint64        // events buffered and not yet delivered
	Oldest    time.Duration // age of the oldest undelivered event; 0 with no backlog
	LastError string        // the last failure's error, "" after a success
}

// Stream is the durable stream of security events: a secevent.Emitter
// that buffers on disk and a sender per sink.
type Stream struct {
	cfg  Config
	lock *os.File

	mu         sync.Mutex
	segs       []segment // by first sequence number; the last is active
	active     *os.File
	total      int64  // bytes of all segments
	next       uint64 // sequence number of the next event
	pending    uint64 // events dropped and not yet reported by an event
	closed     bool
	progress   chan struct{} // closed and replaced when a cursor advances
	senders    []*sender
	emitted    atomic.Uint64
	dropped    atomic.Uint64
	rejected   atomic.Uint64
	lost       atomic.Uint64
	syncNeeded chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type segment struct {
	first uint64
	size  int64
}

func segName(first uint64) string { return fmt.Sprintf("%020d.seg", first) }

// Record layout: 4 bytes big-endian payload length, 4 bytes CRC-32C of
// the payload, the payload (stored's JSON).
const recordHeader = 8

// maxRecord bounds one record's payload: far above any valid event.
const maxRecord = 64 << 10

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// stored is an event's form in the buffer; the message comes back from
// the catalogue.
type stored struct {
	ID       string            `json:"id"`
	Kind     secevent.Kind     `json:"kind"`
	Severity secevent.Severity `json:"severity"`
	Time     time.Time         `json:"time"`
	Actor    string            `json:"actor,omitempty"`
	Client   string            `json:"client,omitempty"`
	Source   string            `json:"source,omitempty"`
	Outcome  secevent.Outcome  `json:"outcome,omitempty"`
	Attrs    map[string]string `json:"attrs,omitempty"`
}

func encodeRecord(e secevent.Event) []byte {
	payload, _ := json.Marshal(stored{e.ID, e.Kind, e.Severity, e.Time, e.Actor, e.Client, e.Source, e.Outcome, e.Attrs})
	rec := make([]byte, recordHeader, recordHeader+len(payload))
	binary.BigEndian.PutUint32(rec, uint32(len(payload))) // #nosec G115 -- an event record is bounded by secevent limits to a few KiB
	binary.BigEndian.PutUint32(rec[4:], crc32.Checksum(payload, castagnoli))
	return append(rec, payload...)
}

var errBadRecord = errors.New("siem: damaged record in the buffer")

func decodePayload(p []byte) (secevent.Event, error) {
	var s stored
	if err := json.Unmarshal(p, &s); err != nil {
		return secevent.Event{}, errBadRecord
	}
	e := secevent.Event{ID: s.ID, Kind: s.Kind, Severity: s.Severity, Time: s.Time, Actor: s.Actor, Client: s.Client,
		Source: s.Source, Outcome: s.Outcome, Attrs: s.Attrs}
	if c, ok := secevent.Lookup(s.Kind); ok {
		e.Message = c.Message
	}
	return e, nil
}

// Open opens (or creates) the buffer in cfg.Dir, repairs a segment a
// crash left half-written, and starts a sender per sink from its saved
// cursor.
func Open(cfg Config) (*Stream, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("siem: %w", err)
	}
	s := &Stream{cfg: cfg, progress: make(chan struct{}), syncNeeded: make(chan struct{}, 1)}
	lock, err := lockDir(cfg.Dir)
	if err != nil {
		return nil, err
	}
	s.lock = lock
	if err := s.load(); err != nil {
		s.unlock()
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	for _, sink := range cfg.Sinks {
		sd := &sender{s: s, sink: sink, wake: make(chan struct{}, 1)}
		sd.cursor = s.readCursor(sink.Name())
		s.senders = append(s.senders, sd)
	}
	s.wg.Add(1 + len(s.senders))
	go s.syncer()
	for _, sd := range s.senders {
		go sd.run()
	}
	return s, nil
}

func (s *Stream) unlock() {
	if s.lock != nil {
		_ = s.lock.Close()
	}
}

// load reads the segments: their sizes, the number of events, and a
// half-written record at the end of a segment, which is cut off.
func (s *Stream) load() error {
	entries, err := os.ReadDir(s.cfg.Dir)
	if err != nil {
		return fmt.Errorf("siem: %w", err)
	}
	for _, de := range entries {
		name, ok := strings.CutSuffix(de.Name(), ".seg")
		if !ok {
			continue
		}
		first, err := strconv.ParseUint(name, 10, 64)
		if err != nil || first == 0 {
			continue
		}
		s.segs = append(s.segs, segment{first: first})
	}
	slices.SortFunc(s.segs, func(a, b segment) int { return cmpU(a.first, b.first) })
	s.next = 1
	var end uint64 // the sequence number after the last segment's events
	for i := range s.segs {
		seg := &s.segs[i]
		n, size, err := s.scan(seg.first)
		if err != nil {
			return err
		}
		seg.size = size
		s.total += size
		s.next = seg.first + n
		end = s.next
		if i+1 < len(s.segs) && s.segs[i+1].first != s.next {
			// Events of a damaged segment are gone; the next one is
			// where the sequence goes on.
			s.lost.Add(s.segs[i+1].first - s.next)
		}
	}
	// A sequence number never goes back, also when every segment was
	// delivered and deleted: cursors remember how far it went.
	for _, sink := range s.cfg.Sinks {
		s.next = max(s.next, s.readCursor(sink.Name()))
	}
	if len(s.segs) == 0 || s.next > end {
		// No segment, or the cursors went past the buffered events (their
		// segments were lost): the next event starts a segment of its own.
		return s.newSegment()
	}
	last := s.segs[len(s.segs)-1]
	f, err := os.OpenFile(filepath.Join(s.cfg.Dir, segName(last.first)), os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("siem: %w", err)
	}
	s.active = f
	return nil
}

func cmpU(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// scan counts a segment's whole records and cuts off anything after them.
func (s *Stream) scan(first uint64) (n uint64, size int64, err error) {
	path := filepath.Join(s.cfg.Dir, segName(first))
	f, err := os.OpenFile(path, os.O_RDWR, 0o600) // #nosec G304 -- buffer files Ward names itself in the configured SIEM directory
	if err != nil {
		return 0, 0, fmt.Errorf("siem: %w", err)
	}
	defer f.Close()
	r := &recordReader{f: f}
	for {
		_, err := r.next()
		if err != nil {
			break
		}
		n++
	}
	info, err := f.Stat()
	if err != nil {
		return 0, 0, fmt.Errorf("siem: %w", err)
	}
	if info.Size() != r.off {
		if err := f.Truncate(r.off); err != nil {
			return 0, 0, fmt.Errorf("siem: repairing %s: %w", path, err)
		}
		if err := f.Sync(); err != nil {
			return 0, 0, fmt.Errorf("siem: repairing %s: %w", path, err)
		}
	}
	return n, r.off, nil
}

// newSegment starts the active segment at s.next. Called with s.mu held
// (or before the Stream is shared).
func (s *Stream) newSegment() error {
	path := filepath.Join(s.cfg.Dir, segName(s.next))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600) // #nosec G304 -- buffer files Ward names itself in the configured SIEM directory
	if err != nil {
		return fmt.Errorf("siem: %w", err)
	}
	if err := fsutil.SyncDir(s.cfg.Dir); err != nil {
		_ = f.Close()
		return fmt.Errorf("siem: %w", err)
	}
	if s.active != nil {
		_ = s.active.Sync()
		_ = s.active.Close()
	}
	s.active = f
	s.segs = append(s.segs, segment{first: s.next})
	return nil
}

// Emit buffers e (cleaned by secevent.Clean first) and returns; it never
// fails. An event the buffer has no room for is counted in Stats.Dropped
// and reported later by an event of kind siem.events.dropped.
func (s *Stream) Emit(e secevent.Event) {
	e, cleaned := secevent.Clean(e, s.cfg.Clock.Now())
	if cleaned {
		s.rejected.Add(1)
	}
	rec := encodeRecord(e)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.dropped.Add(1)
		return
	}
	if s.pending > 0 {
		d := secevent.New(secevent.EventsDropped, s.cfg.Clock.Now()).With(secevent.AttrCount, strconv.FormatUint(s.pending, 10))
		if dr := encodeRecord(d); s.total+int64(len(dr)+len(rec)) <= s.cfg.MaxBytes && s.appendLocked(dr) {
			s.pending = 0
		}
	}
	ok := s.pending == 0 && s.total+int64(len(rec)) <= s.cfg.MaxBytes && s.appendLocked(rec)
	if !ok {
		if s.pending == 0 {
			s.cfg.Logger.Error("security events are being dropped: the SIEM buffer is full; they are counted and reported once there is room",
				"dir", s.cfg.Dir, "max_bytes", s.cfg.MaxBytes)
		}
		s.pending++
	}
	s.mu.Unlock()
	if !ok {
		s.dropped.Add(1)
		return
	}
	s.emitted.Add(1)
	select {
	case s.syncNeeded <- struct{}{}:
	default:
	}
	for _, sd := range s.senders {
		sd.poke()
	}
}

// appendLocked writes one record to the active segment, starting a new
// one when it is full. A failed write is undone.
func (s *Stream) appendLocked(rec []byte) bool {
	last := &s.segs[len(s.segs)-1]
	if last.size > 0 && last.size+int64(len(rec)) > s.cfg.SegmentBytes {
		if err := s.newSegment(); err != nil {
			return false
		}
		last = &s.segs[len(s.segs)-1]
	}
	if _, err := s.active.Write(rec); err != nil {
		_ = s.active.Truncate(last.size)
		return false
	}
	last.size += int64(len(rec))
	s.total += int64(len(rec))
	s.next++
	return true
}

// syncer syncs the active segment after writes, one sync for however
// many writes came since the last.
func (s *Stream) syncer() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.syncNeeded:
		}
		s.mu.Lock()
		f := s.active
		s.mu.Unlock()
		_ = f.Sync() // a segment closed meanwhile was synced by newSegment
	}
}

// Stats returns the counters and each sink's backlog.
func (s *Stream) Stats() Stats {
	now := s.cfg.Clock.Now()
	st := Stats{Emitted: s.emitted.Load(), Dropped: s.dropped.Load(), Rejected: s.rejected.Load(), Lost: s.lost.Load()}
	s.mu.Lock()
	defer s.mu.Unlock()
	st.BufferBytes = s.total
	for _, sd := range s.senders {
		ss := SinkStats{Name: sd.sink.Name(), Delivered: sd.delivered.Load(), Failures: sd.failures.Load(),
			Retries: sd.retries.Load(), Backlog: s.next - sd.cursor, LastError: sd.lastErr}
		if ss.Backlog > 0 && sd.headSeq == sd.cursor && !sd.headTime.IsZero() {
			ss.Oldest = max(0, now.Sub(sd.headTime))
		}
		st.Sinks = append(st.Sinks, ss)
	}
	return st
}

// Flush waits until every sink has delivered every event buffered so far,
// or ctx ends.
func (s *Stream) Flush(ctx context.Context) error {
	s.mu.Lock()
	target := s.next
	s.mu.Unlock()
	for {
		s.mu.Lock()
		done := true
		for _, sd := range s.senders {
			done = done && sd.cursor >= target
		}
		ch := s.progress
		s.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("siem: flush: %w", ctx.Err())
		case <-ch:
		}
	}
}

// Close stops the senders (a delivery under way is abandoned and made
// again at the next start), syncs the buffer, saves the cursors and
// closes the sinks. Events emitted after Close are counted as dropped.
func (s *Stream) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	var errs []error
	s.mu.Lock()
	if err := s.active.Sync(); err != nil {
		errs = append(errs, fmt.Errorf("siem: %w", err))
	}
	errs = append(errs, s.active.Close())
	s.mu.Unlock()
	for _, sd := range s.senders {
		errs = append(errs, sd.saveCursor(), sd.sink.Close())
		sd.closeReader()
	}
	s.unlock()
	return errors.Join(errs...)
}

// cursorPath is where a sink's cursor is kept.
func (s *Stream) cursorPath(name string) string { return filepath.Join(s.cfg.Dir, "cursor-"+name) }

// readCursor returns a sink's saved cursor; without one, the oldest
// buffered event.
func (s *Stream) readCursor(name string) uint64 {
	data, err := os.ReadFile(s.cursorPath(name))
	if err == nil {
		if c, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64); err == nil && c > 0 {
			return c
		}
	}
	if len(s.segs) > 0 {
		return s.segs[0].first
	}
	return 1
}

// collect deletes the segments every sink has delivered; never the
// active one.
func (s *Stream) collect() {
	s.mu.Lock()
	defer s.mu.Unlock()
	low := s.next
	for _, sd := range s.senders {
		low = min(low, sd.cursor)
	}
	for len(s.segs) > 1 && s.segs[1].first <= low {
		if err := os.Remove(filepath.Join(s.cfg.Dir, segName(s.segs[0].first))); err != nil && !errors.Is(err, os.ErrNotExist) {
			return
		}
		s.total -= s.segs[0].size
		s.segs = s.segs[1:]
	}
}

// sender delivers the buffer to one sink.
type sender struct {
	s    *Stream
	sink Sink
	wake chan struct{}

	// Guarded by s.mu.
	cursor   uint64 // the next event to deliver
	headSeq  uint64 // the first event of the batch being delivered
	headTime time.Time
	lastErr  string

	delivered, failures, retries atomic.Uint64

	// The sender's own reader.
	rd      *recordReader
	rdFirst uint64 // the segment rd reads
	rdSeq   uint64 // the sequence number of rd's next record
}

func (sd *sender) poke() {
	select {
	case sd.wake <- struct{}{}:
	default:
	}
}

func (sd *sender) run() {
	s := sd.s
	defer s.wg.Done()
	failing := false
	for {
		batch, err := sd.read()
		if err != nil {
			// read skipped what it could not read; go on from there.
			s.cfg.Logger.Error("siem: events in the buffer were unreadable and are skipped", "sink", sd.sink.Name(), "error", err.Error())
			continue
		}
		if len(batch) == 0 {
			select {
			case <-s.ctx.Done():
				return
			case <-sd.wake:
				continue
			}
		}
		backoff := s.cfg.MinBackoff
		for {
			err := sd.sink.Send(s.ctx, batch)
			if err == nil {
				break
			}
			if s.ctx.Err() != nil {
				return
			}
			sd.failures.Add(1)
			s.mu.Lock()
			sd.lastErr = err.Error()
			s.mu.Unlock()
			if !failing {
				failing = true
				s.cfg.Logger.Warn("siem: delivery failed; events stay buffered and are retried", "sink", sd.sink.Name(), "error", err.Error())
			}
			wait := backoff + rand.N(backoff/4+1) // #nosec G404 -- jitter of a retry wait, nothing secret
			select {
			case <-s.ctx.Done():
				return
			case <-s.cfg.Clock.After(wait):
			}
			sd.retries.Add(1)
			backoff = min(2*backoff, s.cfg.MaxBackoff)
		}
		if failing {
			failing = false
			s.cfg.Logger.Info("siem: delivering again", "sink", sd.sink.Name())
		}
		s.mu.Lock()
		sd.cursor += uint64(len(batch))
		sd.lastErr = ""
		close(s.progress)
		s.progress = make(chan struct{})
		s.mu.Unlock()
		sd.delivered.Add(uint64(len(batch)))
		if err := sd.saveCursor(); err != nil {
			s.cfg.Logger.Error("siem: saving a cursor; events may be delivered twice after a restart", "sink", sd.sink.Name(), "error", err.Error())
		}
		s.collect()
	}
}

// read returns the next events from the cursor, at most a batch, from
// one segment.
func (sd *sender) read() ([]secevent.Event, error) {
	s := sd.s
	s.mu.Lock()
	next := s.next
	if sd.cursor < s.segs[0].first {
		// Events before the oldest segment are gone (a cursor file older
		// than the deletion of their segment): go on from there.
		sd.cursor = s.segs[0].first
	}
	cursor := sd.cursor
	i, _ := slices.BinarySearchFunc(s.segs, cursor, func(g segment, c uint64) int { return cmpU(g.first, c) })
	if i == len(s.segs) || s.segs[i].first > cursor {
		i--
	}
	first, end := s.segs[i].first, next
	if i+1 < len(s.segs) {
		end = s.segs[i+1].first
	}
	s.mu.Unlock()
	if cursor >= next {
		return nil, nil
	}
	if sd.rd == nil || sd.rdFirst != first || sd.rdSeq > cursor {
		sd.closeReader()
		f, err := os.Open(filepath.Join(s.cfg.Dir, segName(first)))
		if err != nil {
			return nil, sd.skip(end, fmt.Errorf("siem: %w", err))
		}
		sd.rd, sd.rdFirst, sd.rdSeq = &recordReader{f: f}, first, first
	}
	for sd.rdSeq < cursor {
		if _, err := sd.rd.next(); err != nil {
			return nil, sd.skip(end, err)
		}
		sd.rdSeq++
	}
	var batch []secevent.Event
	for sd.rdSeq < end && len(batch) < s.cfg.Batch {
		p, err := sd.rd.next()
		if err == nil {
			var e secevent.Event
			if e, err = decodePayload(p); err == nil {
				batch = append(batch, e)
				sd.rdSeq++
				continue
			}
		}
		if len(batch) > 0 {
			break // deliver what was read; the damage is met again next time
		}
		return nil, sd.skip(end, err)
	}
	if len(batch) > 0 {
		s.mu.Lock()
		sd.headSeq, sd.headTime = cursor, batch[0].Time
		s.mu.Unlock()
	}
	return batch, nil
}

// skip moves the cursor past the rest of a damaged segment, counting the
// events lost.
func (sd *sender) skip(end uint64, err error) error {
	s := sd.s
	sd.closeReader()
	s.mu.Lock()
	if end > sd.cursor {
		s.lost.Add(end - sd.cursor)
		sd.cursor = end
	}
	s.mu.Unlock()
	return err
}

func (sd *sender) closeReader() {
	if sd.rd != nil {
		_ = sd.rd.f.Close()
		sd.rd = nil
	}
}

// saveCursor writes the cursor (a new file renamed over the old).
func (sd *sender) saveCursor() error {
	s := sd.s
	s.mu.Lock()
	c := sd.cursor
	s.mu.Unlock()
	path := s.cursorPath(sd.sink.Name())
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.FormatUint(c, 10)+"\n"), 0o600); err != nil {
		return fmt.Errorf("siem: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("siem: %w", err)
	}
	return nil
}

// recordReader reads a segment's records from the start.
type recordReader struct {
	f   *os.File
	off int64 // offset of the next record
	buf []byte
}

// next returns the next record's payload; io.EOF at the end or before a
// half-written record, errBadRecord for a damaged one.
func (r *recordReader) next() ([]byte, error) {
	var h [recordHeader]byte
	if _, err := r.f.ReadAt(h[:], r.off); err != nil {
		return nil, io.EOF
	}
	n := binary.BigEndian.Uint32(h[:])
	if n > maxRecord {
		return nil, errBadRecord
	}
	if cap(r.buf) < int(n) {
		r.buf = make([]byte, n)
	}
	p := r.buf[:n]
	if _, err := r.f.ReadAt(p, r.off+recordHeader); err != nil {
		return nil, io.EOF
	}
	if crc32.Checksum(p, castagnoli) != binary.BigEndian.Uint32(h[4:]) {
		return nil, errBadRecord
	}
	r.off += recordHeader + int64(n)
	return p, nil
}
