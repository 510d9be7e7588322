//go:build race

package detect_test

// raceEnabled: the race detector slows everything about tenfold, so
// timing assertions are off.
const raceEnabled = true
