package ratelimit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Config is what Ward limits and how much. Zero values mean the defaults
// (DefaultConfig); a map entry overrides the limit of one role or client.
//
// Its JSON form (ward serve --rate-limits), every member optional:
//
//	{"principal": {"rate": 100, "burst": 1000},
//	 "roles":     {"patient": {"rate": 10, "burst": 100}},
//	 "clients":   {"ward-etl": {"rate": 1000, "burst": 10000}},
//	 "address":   {"rate": 20, "burst": 200},
//	 "auth_failures":   {"rate": 1, "burst": 100},
//	 "signin_attempts": {"rate": 0.1667, "burst": 20}}
type Config struct {
	// Principal limits each authenticated caller: a service by its client
	// id, a person by user id and app.
	Principal Limit `json:"principal"`
	// Roles overrides Principal for people of a role.
	Roles map[string]Limit `json:"roles,omitempty"`
	// Clients overrides Principal and Roles for the tokens of a client
	// (a service, or an app and each person acting through it).
	Clients map[string]Limit `json:"clients,omitempty"`
	// Address limits the requests of each source address to the endpoints
	// that authenticate the caller themselves: the token endpoint, the
	// other OAuth2 endpoints and the sign-in pages.
	Address Limit `json:"address"`
	// AuthFailures limits the requests of each source address that fail
	// authentication (a missing, expired or forged bearer token); an
	// address that used it up is refused before its tokens are checked.
	AuthFailures Limit `json:"auth_failures"`
	// SignInAttempts limits the failed password and second-factor
	// submissions of each source address, across accounts (a successful
	// one is not counted).
	SignInAttempts Limit `json:"signin_attempts"`
	// IPv6Bits is the IPv6 prefix length one source is taken to hold;
	// default 64.
	IPv6Bits int `json:"ipv6_bits,omitempty"`
	// MaxKeys bounds the buckets each limit remembers; default
	// DefaultMaxKeys.
	MaxKeys int `json:"max_keys,omitempty"`
}

// DefaultConfig is what Ward limits unless configured otherwise: generous
// for real clients (a service may send 100 requests a second, 1,000 at
// once), tight for guessing (20 failed sign-ins per address at once, then
// one every 6 seconds).
var DefaultConfig = Config{
	Principal:      Limit{Rate: 100, Burst: 1000},
	Address:        Limit{Rate: 20, Burst: 200},
	AuthFailures:   Limit{Rate: 1, Burst: 100},
	SignInAttempts: Limit{Rate: 1.0 / 6, Burst: 20},
	IPv6Bits:       64,
	MaxKeys:        DefaultMaxKeys,
}

// WithDefaults returns c with each zero member replaced by its default.
func (c Config) WithDefaults() Config {
	d := DefaultConfig
	for _, f := range []struct{ dst, def *Limit }{
		{&c.Principal, &d.Principal}, {&c.Address, &d.Address},
		{&c.AuthFailures, &d.AuthFailures}, {&c.SignInAttempts, &d.SignInAttempts},
	} {
		if f.dst.IsZero() {
			*f.dst = *f.def
		}
	}
	if c.IPv6Bits == 0 {
		c.IPv6Bits = d.IPv6Bits
	}
	if c.MaxKeys == 0 {
		c.MaxKeys = d.MaxKeys
	}
	return c
}

// Validate checks every limit of c, defaults applied.
func (c Config) Validate() error {
	c = c.WithDefaults()
	for name, l := range map[string]Limit{"principal": c.Principal, "address": c.Address, "auth_failures": c.AuthFailures, "signin_attempts": c.SignInAttempts} {
		if err := l.check(); err != nil {
			return fmt.Errorf("ratelimit: %s: %w", name, err)
		}
	}
	for kind, m := range map[string]map[string]Limit{"role": c.Roles, "client": c.Clients} {
		for k, l := range m {
			if k == "" {
				return fmt.Errorf("ratelimit: an empty %s name", kind)
			}
			if err := l.check(); err != nil {
				return fmt.Errorf("ratelimit: %s %q: %w", kind, k, err)
			}
		}
	}
	if c.IPv6Bits < 1 || c.IPv6Bits > 128 {
		return fmt.Errorf("ratelimit: ipv6_bits %d outside [1, 128]", c.IPv6Bits)
	}
	if c.MaxKeys < 1 {
		return errors.New("ratelimit: max_keys must be positive")
	}
	return nil
}

// ParseConfig reads a Config from its JSON form, strictly (an unknown
// member or trailing data is an error), and validates it.
func ParseConfig(data []byte) (Config, error) {
	if len(data) > 1<<20 {
		return Config{}, errors.New("ratelimit: configuration larger than 1 MiB")
	}
	var c Config
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("ratelimit: configuration: %w", err)
	}
	if dec.More() {
		return Config{}, errors.New("ratelimit: configuration: trailing data")
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// String describes the limits, for the start-up log line.
func (l Limit) String() string {
	return fmt.Sprintf("%g/s burst %d", l.Rate, l.Burst)
}

// Describe summarises c for a log line: the defaults in force and how
// many overrides there are.
func (c Config) Describe() string {
	c = c.WithDefaults()
	return fmt.Sprintf("principal=%v roles=%d clients=%d address=%v auth-failures=%v signin-attempts=%v",
		c.Principal, len(c.Roles), len(c.Clients), c.Address, c.AuthFailures, c.SignInAttempts)
}
