package credential

import (
	"math"
	"testing"
	"time"
)

func TestThrottleDelays(t *testing.T) {
	var th Throttle // zero value: the defaults
	for _, tc := range []struct {
		failures int
		want     time.Duration
	}{
		{0, 0}, {1, 0}, {4, 0},
		{5, time.Second}, {6, 2 * time.Second}, {7, 4 * time.Second},
		{14, 512 * time.Second}, {15, 15 * time.Minute}, {16, 15 * time.Minute},
		{1000, 15 * time.Minute}, {math.MaxInt, 15 * time.Minute},
	} {
		if got := th.Delay(tc.failures); got != tc.want {
			t.Errorf("Delay(%d) = %v, want %v", tc.failures, got, tc.want)
		}
		if got := DefaultThrottle.Delay(tc.failures); got != tc.want {
			t.Errorf("DefaultThrottle.Delay(%d) = %v, want %v", tc.failures, got, tc.want)
		}
	}
	last := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if got := th.LockedUntil(20, last); !got.Equal(last.Add(15 * time.Minute)) {
		t.Errorf("LockedUntil(20) = %v, want last + 15m", got)
	}
	custom := Throttle{Free: 3, Base: time.Minute, Max: time.Hour}
	if custom.Delay(2) != 0 || custom.Delay(3) != time.Minute || custom.Delay(5) != 4*time.Minute || custom.Delay(99) != time.Hour {
		t.Errorf("custom throttle: %v %v %v %v", custom.Delay(2), custom.Delay(3), custom.Delay(5), custom.Delay(99))
	}
}

// attack guesses against one account as fast as th allows, never
// succeeding, for the given time, and returns the time of each guess.
func attack(th Throttle, d time.Duration) []time.Time {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var guesses []time.Time
	failures, now := 0, start
	for now.Before(start.Add(d)) {
		guesses = append(guesses, now)
		failures++
		now = th.LockedUntil(failures, now)
	}
	return guesses
}

// maxIn returns the most guesses inside any window of length w.
func maxIn(guesses []time.Time, w time.Duration) int {
	best, j := 0, 0
	for i := range guesses {
		for guesses[i].Sub(guesses[j]) >= w {
			j++
		}
		best = max(best, i-j+1)
	}
	return best
}

// TestThrottleGuessesPerDay checks the numbers in Throttle's doc: at most
// 110 guesses in any 24 hours, 18 in any hour, 96 a day in the long run.
func TestThrottleGuessesPerDay(t *testing.T) {
	g := attack(DefaultThrottle, 7*24*time.Hour)
	day, hour := maxIn(g, 24*time.Hour), maxIn(g, time.Hour)
	t.Logf("guesses: %d in the worst 24 hours, %d in the worst hour, %d in 7 days", day, hour, len(g))
	if day > 110 {
		t.Errorf("%d guesses in 24 hours; the doc promises at most 110", day)
	}
	if hour > 18 || hour > 100 {
		t.Errorf("%d guesses in an hour; the doc promises at most 18 (ASVS V2.2.1: 100)", hour)
	}
	if late := maxIn(g[len(g)/2:], 24*time.Hour); late > 97 {
		t.Errorf("%d guesses a day in the steady state; want one per 15 minutes", late)
	}
	// catalogue B4: 100 wrong passwords on one account take hours, not seconds.
	if took := g[99].Sub(g[0]); took < 20*time.Hour {
		t.Errorf("100 guesses took %v", took)
	}
	// Never locked for longer than the cap, however long the attack.
	for i := 1; i < len(g); i++ {
		if gap := g[i].Sub(g[i-1]); gap > 15*time.Minute {
			t.Fatalf("guess %d waited %v, more than the 15-minute cap", i, gap)
		}
	}
}
