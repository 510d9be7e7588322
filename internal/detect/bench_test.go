package detect_test

import (
	"sync"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/detect"
	"github.com/wardhealth/ward/internal/detect/scenario"
	"github.com/wardhealth/ward/internal/ledger"
)

// traffic is six days of the scenario hospital (200 staff, services,
// portal, attacks), encoded as the ledger stores it; generated once.
var traffic = sync.OnceValue(func() *benchTraffic {
	bt := &benchTraffic{}
	s := scenario.New(scenario.Config{Seed: 42, Days: 6, WarmupDays: 3})
	err := s.Emit(func(_ int64, e ledger.Entry) error {
		b, err := e.Encode()
		bt.encoded = append(bt.encoded, b)
		bt.entries = append(bt.entries, e)
		return err
	})
	if err != nil {
		panic(err)
	}
	bt.s = s
	return bt
})

type benchTraffic struct {
	s       *scenario.Scenario
	encoded [][]byte
	entries []ledger.Entry
}

// bench feeds b.N entries to detectors with every rule on, starting a
// fresh detector (untimed) each time the traffic is used up, so time
// never runs backwards.
func bench(b *testing.B, decode bool) {
	bt := traffic()
	newDetector := func() *detect.Detector {
		d, err := detect.New(bt.s.Detect, bt.s.Facts)
		if err != nil {
			b.Fatal(err)
		}
		return d
	}
	d := newDetector()
	alerts := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := i % len(bt.entries)
		if k == 0 && i > 0 {
			b.StopTimer()
			d = newDetector()
			b.StartTimer()
		}
		e := bt.entries[k]
		if decode {
			var err error
			if e, err = ledger.DecodeEntry(bt.encoded[k]); err != nil {
				b.Fatal(err)
			}
		}
		alerts += len(d.Observe(int64(k), e))
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
	_ = alerts
}

// BenchmarkObserve: go test -bench Observe -benchtime 1000000x ./internal/detect
func BenchmarkObserve(b *testing.B)       { bench(b, false) }
func BenchmarkDecodeObserve(b *testing.B) { bench(b, true) }

// The detector keeps up with 50,000 entries a second, decoding included.
// The rate is taken over the CPU time the process used, not the wall
// clock: on a machine whose cores other work keeps busy the wall-clock
// rate says how loaded the machine is, not how fast the detector is.
// (Where CPU time is not measured, the wall clock is used.)
func TestThroughput(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("timing: not under -short or -race")
	}
	bt := traffic()
	d, err := detect.New(bt.s.Detect, bt.s.Facts)
	if err != nil {
		t.Fatal(err)
	}
	start, cpu0 := time.Now(), processCPU()
	for k, b := range bt.encoded {
		e, err := ledger.DecodeEntry(b)
		if err != nil {
			t.Fatal(err)
		}
		d.Observe(int64(k), e)
	}
	took := processCPU() - cpu0
	if took <= 0 {
		took = time.Since(start)
	}
	rate := float64(len(bt.encoded)) / took.Seconds()
	t.Logf("%d entries, %.0f entries per CPU second, decoding included (wall clock %v)", len(bt.encoded), rate, time.Since(start))
	if rate < 50000 {
		t.Errorf("%.0f entries per CPU second, below 50,000", rate)
	}
}
