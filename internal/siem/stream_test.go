package siem

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/secevent"
)

// fakeClock hands each wait to the test, which fires it.
type fakeClock struct {
	waits chan chan time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{waits: make(chan chan time.Time, 1000)} }

func (c *fakeClock) Now() time.Time { return t0.Add(time.Hour) }

func (c *fakeClock) After(time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	c.waits <- ch
	return ch
}

// wait returns the next wait a sender started (it failed), or fails.
func (c *fakeClock) wait(t *testing.T) chan time.Time {
	t.Helper()
	select {
	case ch := <-c.waits:
		return ch
	case <-time.After(30 * time.Second):
		t.Fatal("no sender started a retry wait")
		return nil
	}
}

// memSink records what it receives; while fail is set it refuses.
type memSink struct {
	name string

	mu     sync.Mutex
	fail   bool
	got    []secevent.Event
	sends  int
	closed bool
}

var errRefused = errors.New("refused")

func (m *memSink) Name() string { return m.name }

func (m *memSink) Send(_ context.Context, events []secevent.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sends++
	if m.fail {
		return errRefused
	}
	m.got = append(m.got, events...)
	return nil
}

func (m *memSink) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}

func (m *memSink) setFail(v bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fail = v
}

func (m *memSink) ids() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, e := range m.got {
		out = append(out, e.ID)
	}
	return out
}

func emitN(s *Stream, n int, kind secevent.Kind) []string {
	var ids []string
	for i := range n {
		e := secevent.New(kind, t0.Add(time.Duration(i)*time.Millisecond))
		e.Actor = "u-" + strconv.Itoa(i)
		ids = append(ids, e.ID)
		s.Emit(e)
	}
	return ids
}

func flush(t *testing.T, s *Stream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// crash stops s as a killed process would: no final sync, no cursors
// saved at the end, the lock released by the kernel.
func crash(s *Stream) {
	s.cancel()
	s.wg.Wait()
	_ = s.active.Close()
	s.unlock()
}

func segments(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestRestartDeliversEverything: events buffered while the only sink
// refuses survive a crash and a half-written record, and a restarted
// stream delivers each of them once, in order, to a sink that works;
// delivered segments are deleted.
func TestRestartDeliversEverything(t *testing.T) {
	dir := t.TempDir()
	clk := newFakeClock()
	down := &memSink{name: "siem", fail: true}
	s, err := Open(Config{Dir: dir, Sinks: []Sink{down}, SegmentBytes: 4096, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	want := emitN(s, 500, secevent.SignInFailed)
	clk.wait(t) // the sink failed and its sender waits
	st := s.Stats()
	if st.Emitted != 500 || st.Sinks[0].Backlog != 500 || st.Sinks[0].Failures == 0 || st.Sinks[0].Delivered != 0 ||
		st.Sinks[0].LastError == "" || st.Sinks[0].Oldest <= 0 {
		t.Fatalf("stats while the sink is down: %+v", st)
	}
	crash(s)
	segs := segments(t, dir)
	if len(segs) < 5 {
		t.Fatalf("%d segments for 500 events at 4 KiB: want several", len(segs))
	}
	// The crash left half a record at the end.
	f, err := os.OpenFile(segs[len(segs)-1], os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(encodeRecord(secevent.New(secevent.SignInFailed, t0))[:20]); err != nil {
		t.Fatal(err)
	}
	f.Close()

	up := &memSink{name: "siem"}
	s, err = Open(Config{Dir: dir, Sinks: []Sink{up}, SegmentBytes: 4096, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	flush(t, s)
	if got := up.ids(); !slices.Equal(got, want) {
		t.Fatalf("delivered %d events after the restart, want the %d emitted in order", len(got), len(want))
	}
	if st := s.Stats(); st.Sinks[0].Backlog != 0 || st.Sinks[0].Delivered != 500 || st.Lost != 0 || st.Sinks[0].LastError != "" {
		t.Fatalf("stats after delivery: %+v", st)
	}
	if n := len(segments(t, dir)); n != 1 {
		t.Errorf("%d segments left after delivery; want only the active one", n)
	}
	// More events continue the sequence, and a clean restart delivers
	// nothing twice.
	more := emitN(s, 10, secevent.AccessDenied)
	flush(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !up.closed {
		t.Error("Close left the sink open")
	}
	again := &memSink{name: "siem"}
	s, err = Open(Config{Dir: dir, Sinks: []Sink{again}, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want = append(want, more...)
	extra := emitN(s, 1, secevent.AccessDenied)
	flush(t, s)
	if got := up.ids(); !slices.Equal(got, want) {
		t.Errorf("first sink got %d events, want %d", len(got), len(want))
	}
	if got := again.ids(); !slices.Equal(got, extra) {
		t.Errorf("after a clean restart the sink got %d events, want only the 1 new one", len(got))
	}
}

// TestSinksIndependent: a failing sink does not hold back the other
// sink; the segments it has not delivered stay until it has.
func TestSinksIndependent(t *testing.T) {
	dir := t.TempDir()
	clk := newFakeClock()
	a, b := &memSink{name: "a"}, &memSink{name: "b", fail: true}
	s, err := Open(Config{Dir: dir, Sinks: []Sink{a, b}, SegmentBytes: 2048, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := emitN(s, 100, secevent.RateLimited)
	w := clk.wait(t)
	// a delivers everything while b is down.
	for len(a.ids()) < 100 {
		ch := s.progressCh()
		if len(a.ids()) >= 100 {
			break
		}
		<-ch
	}
	if !slices.Equal(a.ids(), want) {
		t.Fatal("the working sink did not get every event")
	}
	st := s.Stats()
	if st.Sinks[0].Backlog != 0 || st.Sinks[1].Backlog != 100 {
		t.Fatalf("backlogs %+v", st.Sinks)
	}
	if n := len(segments(t, dir)); n < 3 {
		t.Fatalf("%d segments: those b has not delivered must stay", n)
	}
	b.setFail(false)
	w <- t0
	flush(t, s)
	if !slices.Equal(b.ids(), want) {
		t.Fatal("the recovered sink did not get every event in order")
	}
	if st := s.Stats(); st.Sinks[1].Retries == 0 || st.Sinks[1].Backlog != 0 {
		t.Fatalf("stats %+v", st.Sinks)
	}
	if n := len(segments(t, dir)); n != 1 {
		t.Errorf("%d segments after both delivered", n)
	}
}

// progressCh returns the channel closed at the next cursor advance.
func (s *Stream) progressCh() chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.progress
}

// TestFullBuffer: with the sink down, the bounded buffer keeps what fits,
// counts every event it could not keep, and once there is room reports
// the count in a siem.events.dropped event ahead of the next event.
func TestFullBuffer(t *testing.T) {
	dir := t.TempDir()
	clk := newFakeClock()
	sink := &memSink{name: "siem", fail: true}
	s, err := Open(Config{Dir: dir, Sinks: []Sink{sink}, MaxBytes: 8192, SegmentBytes: 2048, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	emitted := emitN(s, 200, secevent.SignInFailed)
	w := clk.wait(t)
	st := s.Stats()
	if st.Dropped == 0 || st.Emitted+st.Dropped != 200 || st.BufferBytes > 8192 {
		t.Fatalf("full buffer: %+v", st)
	}
	kept := emitted[:st.Emitted]
	sink.setFail(false)
	w <- t0
	flush(t, s)
	last := emitN(s, 1, secevent.AccessDenied)
	flush(t, s)
	sink.mu.Lock()
	got := slices.Clone(sink.got)
	sink.mu.Unlock()
	if len(got) != len(kept)+2 {
		t.Fatalf("delivered %d events, want %d kept + the report + 1", len(got), len(kept))
	}
	for i, id := range kept {
		if got[i].ID != id {
			t.Fatalf("event %d is not the %d-th kept one", i, i)
		}
	}
	report := got[len(kept)]
	if report.Kind != secevent.EventsDropped || report.Attrs[secevent.AttrCount] != strconv.FormatUint(st.Dropped, 10) ||
		report.Severity != secevent.Critical || got[len(kept)+1].ID != last[0] {
		t.Fatalf("the drop report %+v, then %s", report, got[len(kept)+1].Kind)
	}
}

// TestEmitAfterClose: counted, not lost silently, and no panic.
func TestEmitAfterClose(t *testing.T) {
	s, err := Open(Config{Dir: t.TempDir(), Sinks: []Sink{&memSink{name: "m"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s.Emit(secevent.New(secevent.LedgerFault, t0))
	if st := s.Stats(); st.Dropped != 1 {
		t.Errorf("an event after Close: %+v", st)
	}
}

// TestOneProcessPerDirectory: a second stream on a directory in use is
// refused.
func TestOneProcessPerDirectory(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Config{Dir: dir, Sinks: []Sink{&memSink{name: "m"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := Open(Config{Dir: dir, Sinks: []Sink{&memSink{name: "m"}}}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("a second Open: %v", err)
	}
}

// TestRejectedCounted: an event with free text is cleaned, counted and
// still delivered, without the text.
func TestRejectedCounted(t *testing.T) {
	sink := &memSink{name: "m"}
	s, err := Open(Config{Dir: t.TempDir(), Sinks: []Sink{sink}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Emit(secevent.New(secevent.SignInFailed, t0).With(secevent.AttrReason, "typed by Jane"))
	flush(t, s)
	if st := s.Stats(); st.Rejected != 1 || len(sink.got) != 1 || sink.got[0].Attrs[secevent.AttrReason] != "" ||
		sink.got[0].Attrs[secevent.AttrRejected] != "reason" {
		t.Errorf("stats %+v, delivered %+v", st, sink.got)
	}
}

// TestEnqueueIngest: events another process enqueues are taken into the
// stream in order and their files removed; without a buffer directory
// Enqueue says there is no stream.
func TestEnqueueIngest(t *testing.T) {
	if err := Enqueue(filepath.Join(t.TempDir(), "none"), secevent.New(secevent.AccountChanged, t0)); !errors.Is(err, ErrNoStream) {
		t.Fatalf("Enqueue without a stream: %v", err)
	}
	dir := t.TempDir()
	var want []string
	for i := range 3 {
		e := secevent.New(secevent.AccountChanged, t0).With(secevent.AttrUser, "u-"+strconv.Itoa(i))
		want = append(want, e.ID)
		if err := Enqueue(dir, e); err != nil {
			t.Fatal(err)
		}
	}
	sink := &memSink{name: "m"}
	s, err := Open(Config{Dir: dir, Sinks: []Sink{sink}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n, err := s.Ingest(); err != nil || n != 3 {
		t.Fatalf("Ingest = %d, %v", n, err)
	}
	flush(t, s)
	if !slices.Equal(sink.ids(), want) {
		t.Fatalf("ingested %v, want %v", sink.ids(), want)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "incoming", "*")); len(left) != 0 {
		t.Errorf("files left in incoming: %v", left)
	}
	if n, _ := s.Ingest(); n != 0 {
		t.Errorf("a second Ingest took %d", n)
	}
}
