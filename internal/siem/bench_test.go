package siem

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/secevent"
)

type nullSink struct{}

func (nullSink) Name() string                                 { return "null" }
func (nullSink) Send(context.Context, []secevent.Event) error { return nil }
func (nullSink) Close() error                                 { return nil }

func benchEvent() secevent.Event {
	e := secevent.New(secevent.SignInFailed, time.Now())
	e.Actor, e.Client, e.Source, e.Outcome = "u-7f3a9c", "ward-app", "192.0.2.10", secevent.Failure
	return e.With(secevent.AttrReason, "wrong-password").With(secevent.AttrRequestID, "0123456789abcdef")
}

// BenchmarkEmit is the cost a request pays to raise an event: clean,
// encode, append to the buffer (the sync is the background syncer's).
func BenchmarkEmit(b *testing.B) {
	s, err := Open(Config{Dir: b.TempDir(), Sinks: []Sink{nullSink{}}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	e := benchEvent()
	b.ReportAllocs()
	for b.Loop() {
		s.Emit(e)
	}
}

// BenchmarkEmitParallel is Emit from concurrent requests.
func BenchmarkEmitParallel(b *testing.B) {
	s, err := Open(Config{Dir: b.TempDir(), Sinks: []Sink{nullSink{}}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	e := benchEvent()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.Emit(e)
		}
	})
}

// deliver emits n events into a stream to sink and waits until they are
// delivered, reporting events/s end to end.
func deliver(b *testing.B, sink Sink) {
	s, err := Open(Config{Dir: b.TempDir(), Sinks: []Sink{sink}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	e := benchEvent()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		e.ID = secevent.NewID()
		s.Emit(e)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

// BenchmarkDeliverFile: throughput to the JSON-lines file sink (a sync
// per batch of 256).
func BenchmarkDeliverFile(b *testing.B) {
	sink, err := NewFile(filepath.Join(b.TempDir(), "events.jsonl"), "bench")
	if err != nil {
		b.Fatal(err)
	}
	deliver(b, sink)
}

// BenchmarkDeliverSyslog: throughput to a local syslog-over-TLS receiver.
func BenchmarkDeliverSyslog(b *testing.B) {
	p := newTestPKI(b, b.TempDir())
	rcv := newReceiver(b, p, false)
	go func() {
		for range rcv.msgs {
		}
	}()
	sink, err := NewSyslog(SyslogConfig{Addr: rcv.addr(), RootCAs: p.pool, Version: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	deliver(b, sink)
}
