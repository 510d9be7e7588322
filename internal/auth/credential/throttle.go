package credential

import "time"

// Throttle is the per-account policy for failed sign-in attempts
// (passwords and second factors alike; ASVS V2.2.1). The first Free
// consecutive failures cost nothing; after that each failure makes the
// next attempt wait Base, doubling with every further failure, up to Max.
//
// With DefaultThrottle (5 free, 1 s doubling, 15 min cap) an attacker who
// guesses as fast as allowed gets at most 110 guesses in any 24 hours (and
// at most 18 in any hour, well under ASVS's 100), while the owner of the
// account is never locked out for longer than 15 minutes after the last
// failure. The caller:
//   - counts consecutive failures per submitted username, also for names
//     that do not exist (so a lock does not reveal that an account exists),
//     and resets the count on success;
//   - refuses attempts before LockedUntil without checking the credential
//     (call DummyCheck to keep the timing) and without counting them as
//     failures, so hammering a locked account neither helps an attacker nor
//     extends the owner's wait.
//
// The zero value of each field means its DefaultThrottle value.
type Throttle struct {
	Free int           // failures allowed before any delay
	Base time.Duration // delay after the first failure beyond Free
	Max  time.Duration // cap on the delay
}

// DefaultThrottle is the policy Ward uses unless configured otherwise.
var DefaultThrottle = Throttle{Free: 5, Base: time.Second, Max: 15 * time.Minute}

func (t Throttle) withDefaults() Throttle {
	if t.Free <= 0 {
		t.Free = DefaultThrottle.Free
	}
	if t.Base <= 0 {
		t.Base = DefaultThrottle.Base
	}
	if t.Max <= 0 {
		t.Max = DefaultThrottle.Max
	}
	return t
}

// Delay is how long the next attempt must wait after the last of failures
// consecutive failures.
func (t Throttle) Delay(failures int) time.Duration {
	t = t.withDefaults()
	if failures < t.Free {
		return 0
	}
	d := t.Base
	for i := t.Free; i < failures && d < t.Max; i++ {
		d *= 2
	}
	return min(d, t.Max)
}

// LockedUntil is the earliest time of the next attempt, given failures
// consecutive failures, the last of them at last.
func (t Throttle) LockedUntil(failures int, last time.Time) time.Time {
	return last.Add(t.Delay(failures))
}
