package detect

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/wardhealth/ward/internal/strictjson"
)

// Rule ids: the Rule of an [Alert] and the names of the rules in a
// [Config]'s JSON form.
const (
	RuleManyPatients       = "many-patients"
	RuleUnrelatedPatient   = "unrelated-patient"
	RuleOffHours           = "off-hours"
	RuleColleague          = "colleague-or-namesake"
	RuleVIP                = "vip"
	RuleServiceVolume      = "service-volume"
	RuleDenialBurst        = "denial-burst"
	RuleCredentialStuffing = "credential-stuffing" // #nosec G101 -- a detection rule's name, not a credential
	RuleTokenTwoSources    = "token-two-sources"
	RuleSearchSnooping     = "search-snooping"
)

// Rules lists every rule id, in a fixed order.
var Rules = []string{
	RuleManyPatients, RuleUnrelatedPatient, RuleOffHours, RuleColleague, RuleVIP,
	RuleServiceVolume, RuleDenialBurst, RuleCredentialStuffing, RuleTokenTwoSources, RuleSearchSnooping,
}

// Severities.
const (
	SeverityLow    = "low"
	SeverityMedium = "medium"
	SeverityHigh   = "high"
)

// Duration is a time.Duration that reads and writes JSON as a Go duration
// string ("90m", "24h").
type Duration time.Duration

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("detect: a duration is a string such as \"1h\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("detect: %w", err)
	}
	*d = Duration(v)
	return nil
}

// Common is what every rule's configuration has.
type Common struct {
	Disabled bool   `json:"disabled,omitempty"`
	Severity string `json:"severity,omitempty"` // low, medium or high; default per rule
	// Dedupe is the period an alert stays one alert: every trigger of the
	// rule for the same actor (or source) within one period, aligned to
	// multiples of it, updates the same alert (same Key).
	Dedupe Duration `json:"dedupe,omitempty"`
}

// ManyPatientsConfig: a person reading many distinct patients within
// Window, far above what that person usually reads.
type ManyPatientsConfig struct {
	Common
	Window Duration `json:"window,omitempty"` // default 1h
	// Patients: never alert at or below this many distinct patients in
	// Window. Default 50.
	Patients int `json:"patients,omitempty"`
	// Factor: after warm-up, alert only above Factor times the person's
	// baseline (an EWMA of the peak distinct patients per active hour,
	// at least Floor). Default 3.
	Factor float64 `json:"factor,omitempty"`
	Floor  float64 `json:"floor,omitempty"` // default 5
	// Ceiling: above this many distinct patients in Window, alert whatever
	// the baseline. Default 200.
	Ceiling int `json:"ceiling,omitempty"`
	// WarmupHours: active hours before the baseline counts; until then
	// Patients alone decides. Default 8.
	WarmupHours int     `json:"warmupHours,omitempty"`
	Alpha       float64 `json:"alpha,omitempty"` // EWMA weight of a new hour; default 0.1
}

// UnrelatedPatientConfig: reach outside care relationships.
type UnrelatedPatientConfig struct {
	Common
	// BreakGlassPatients: alert when one person reaches more than this
	// many distinct patients through break-the-glass within
	// BreakGlassWindow. Default 2 in 24h.
	BreakGlassPatients int      `json:"breakGlassPatients,omitempty"`
	BreakGlassWindow   Duration `json:"breakGlassWindow,omitempty"`
	// RepeatGrants: alert on a grant whose entry says the same person was
	// granted the same patient at least this many times before within the
	// records service's repeat window ("repeat=N"). Default 2.
	RepeatGrants int `json:"repeatGrants,omitempty"`
	// OutsidePatients: alert when one person is refused at least this many
	// distinct patients as outside their reach ("outside-compartment")
	// within OutsideWindow. Default 5 in 1h.
	OutsidePatients int      `json:"outsidePatients,omitempty"`
	OutsideWindow   Duration `json:"outsideWindow,omitempty"`
}

// OffHoursConfig: a person active at an hour they are rarely active.
type OffHoursConfig struct {
	Common
	// Timezone is the IANA name of the zone whose hours count (the
	// caller's binary must hold the zone database). Default UTC.
	Timezone string `json:"timezone,omitempty"`
	// Week: learn hour-of-week (168 buckets) instead of hour-of-day (24).
	Week bool `json:"week,omitempty"`
	// RareFraction: an hour in which, with Spread hours either side, the
	// person was active in less than this fraction of their active hours
	// is rare. Defaults 0.01 and 3: a few hours past a usual shift's
	// end is not rare, the middle of the night for a day worker is.
	RareFraction float64 `json:"rareFraction,omitempty"`
	Spread       int     `json:"spread,omitempty"`
	// Warm-up: the person's history must span WarmupDays and hold
	// WarmupHours active hours. Defaults 7 and 40.
	WarmupDays  int `json:"warmupDays,omitempty"`
	WarmupHours int `json:"warmupHours,omitempty"`
}

// ColleagueConfig: a person reading the record of a colleague, a
// namesake or a neighbour (decided by Facts).
type ColleagueConfig struct {
	Common
}

// VIPConfig: access to a patient Facts says is a VIP.
type VIPConfig struct {
	Common
	// Exempt actors never raise this rule (the VIP's treating team, the
	// privacy office).
	Exempt []string `json:"exempt,omitempty"`
	// Services: services (callers without a person) raise it too.
	Services bool `json:"services,omitempty"`
}

// ServiceVolumeConfig: a service, or any export, reading far beyond its
// client's baseline.
type ServiceVolumeConfig struct {
	Common
	// Hourly: entries and distinct patients per hour above Factor times
	// the client's baseline (EWMA per active hour, at least Floor).
	// Defaults 3 and 100.
	Factor float64 `json:"factor,omitempty"`
	Floor  float64 `json:"floor,omitempty"`
	// Daily: distinct patients per day above DayFactor times the daily
	// baseline (at least Floor). Default 2: slow exfiltration.
	DayFactor float64 `json:"dayFactor,omitempty"`
	// Ceiling: distinct patients per hour above which a client alerts
	// whatever its baseline. Default 5000.
	Ceiling int `json:"ceiling,omitempty"`
	// Warm-up: active hours and days before baselines count (until then
	// only Ceiling applies). Defaults 24 and 3.
	WarmupHours int     `json:"warmupHours,omitempty"`
	WarmupDays  int     `json:"warmupDays,omitempty"`
	Alpha       float64 `json:"alpha,omitempty"` // EWMA weight; default 0.1
	// MaxDistinct bounds the patients remembered per client and day.
	// Default 200000.
	MaxDistinct int `json:"maxDistinct,omitempty"`
}

// DenialBurstConfig: many refusals of one actor (or, for callers that
// proved no one, one source) within Window. Sign-in and token failures
// are credential-stuffing's.
type DenialBurstConfig struct {
	Common
	Denials int      `json:"denials,omitempty"` // default 20
	Window  Duration `json:"window,omitempty"`  // default 5m
}

// CredentialStuffingConfig: failed sign-ins and token requests across
// accounts.
type CredentialStuffingConfig struct {
	Common
	Window Duration `json:"window,omitempty"` // default 15m
	// From one source: Accounts distinct accounts or Failures failures.
	// Defaults 10 and 100.
	Accounts int `json:"accounts,omitempty"`
	Failures int `json:"failures,omitempty"`
	// From many: GlobalAccounts distinct accounts from GlobalSources
	// distinct sources. Defaults 30 and 10.
	GlobalAccounts int `json:"globalAccounts,omitempty"`
	GlobalSources  int `json:"globalSources,omitempty"`
}

// TokenSourcesConfig: one bearer token used from two networks within
// Window.
type TokenSourcesConfig struct {
	Common
	Window Duration `json:"window,omitempty"` // default 10m
	// Prefix lengths that make one network. Defaults 24 and 48.
	IPv4Bits int `json:"ipv4Bits,omitempty"`
	IPv6Bits int `json:"ipv6Bits,omitempty"`
	// SameNetworks are prefixes (CIDR) each counted as one network (a
	// hospital's address space, a VPN pool).
	SameNetworks []string `json:"sameNetworks,omitempty"`
}

// SearchSnoopingConfig: searches naming patients their answer did not
// hold.
type SearchSnoopingConfig struct {
	Common
	Patients int      `json:"patients,omitempty"` // distinct patients; default 10
	Window   Duration `json:"window,omitempty"`   // default 1h
}

// Config configures a [Detector]. The zero Config is every rule on with
// its defaults; LoadConfig reads one from JSON.
type Config struct {
	// IdleAfter: an actor, client, source or token unseen this long is
	// forgotten, baseline included. Default 30 days.
	IdleAfter Duration `json:"idleAfter,omitempty"`
	// MaxActors bounds the actors (and, separately, the sources, clients
	// and tokens) remembered; the least recently seen go first. Default
	// 100000.
	MaxActors int `json:"maxActors,omitempty"`
	// MaxEvidence bounds the ledger indexes an alert lists. Default 50.
	MaxEvidence int `json:"maxEvidence,omitempty"`

	ManyPatients       ManyPatientsConfig       `json:"manyPatients"`
	UnrelatedPatient   UnrelatedPatientConfig   `json:"unrelatedPatient"`
	OffHours           OffHoursConfig           `json:"offHours"`
	Colleague          ColleagueConfig          `json:"colleagueOrNamesake"`
	VIP                VIPConfig                `json:"vip"`
	ServiceVolume      ServiceVolumeConfig      `json:"serviceVolume"`
	DenialBurst        DenialBurstConfig        `json:"denialBurst"`
	CredentialStuffing CredentialStuffingConfig `json:"credentialStuffing"`
	TokenSources       TokenSourcesConfig       `json:"tokenTwoSources"`
	SearchSnooping     SearchSnoopingConfig     `json:"searchSnooping"`
}

// LoadConfig reads a Config from JSON, strictly: unknown fields,
// duplicate keys and trailing data are errors. Omitted values take their
// defaults.
func LoadConfig(r io.Reader) (Config, error) {
	b, err := io.ReadAll(io.LimitReader(r, 1<<20+1))
	if err != nil {
		return Config{}, fmt.Errorf("detect: reading config: %w", err)
	}
	if len(b) > 1<<20 {
		return Config{}, errors.New("detect: config larger than 1 MiB")
	}
	if err := noDuplicateKeys(b); err != nil {
		return Config{}, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("detect: config: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Config{}, errors.New("detect: config: trailing data")
	}
	if _, err := c.withDefaults(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// noDuplicateKeys fails on an object holding a key twice.
func noDuplicateKeys(b []byte) error {
	if err := strictjson.CheckKeys(b, 32); err != nil {
		return fmt.Errorf("detect: config: %w", err)
	}
	return nil
}

func orDuration(d Duration, def time.Duration) Duration {
	if d <= 0 {
		return Duration(def)
	}
	return d
}

func orInt(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

func orFloat(v, def float64) float64 {
	if v <= 0 {
		return def
	}
	return v
}

func (c *Common) defaults(severity string, dedupe time.Duration) error {
	if c.Severity == "" {
		c.Severity = severity
	}
	switch c.Severity {
	case SeverityLow, SeverityMedium, SeverityHigh:
	default:
		return fmt.Errorf("detect: unknown severity %q", c.Severity)
	}
	c.Dedupe = orDuration(c.Dedupe, dedupe)
	return nil
}

const day = 24 * time.Hour

// withDefaults returns c with every zero value replaced by its default,
// or an error for a value that cannot work.
func (c Config) withDefaults() (Config, error) {
	c.IdleAfter = orDuration(c.IdleAfter, 30*day)
	c.MaxActors = orInt(c.MaxActors, 100000)
	c.MaxEvidence = orInt(c.MaxEvidence, 50)

	m := &c.ManyPatients
	m.Window = orDuration(m.Window, time.Hour)
	m.Patients = orInt(m.Patients, 50)
	m.Factor = orFloat(m.Factor, 3)
	m.Floor = orFloat(m.Floor, 5)
	m.Ceiling = orInt(m.Ceiling, 200)
	m.WarmupHours = orInt(m.WarmupHours, 8)
	m.Alpha = orFloat(m.Alpha, 0.1)

	u := &c.UnrelatedPatient
	u.BreakGlassPatients = orInt(u.BreakGlassPatients, 2)
	u.BreakGlassWindow = orDuration(u.BreakGlassWindow, day)
	u.RepeatGrants = orInt(u.RepeatGrants, 2)
	u.OutsidePatients = orInt(u.OutsidePatients, 5)
	u.OutsideWindow = orDuration(u.OutsideWindow, time.Hour)

	o := &c.OffHours
	o.RareFraction = orFloat(o.RareFraction, 0.01)
	o.Spread = orInt(o.Spread, 3)
	o.WarmupDays = orInt(o.WarmupDays, 7)
	o.WarmupHours = orInt(o.WarmupHours, 40)

	s := &c.ServiceVolume
	s.Factor = orFloat(s.Factor, 3)
	s.Floor = orFloat(s.Floor, 100)
	s.DayFactor = orFloat(s.DayFactor, 2)
	s.Ceiling = orInt(s.Ceiling, 5000)
	s.WarmupHours = orInt(s.WarmupHours, 24)
	s.WarmupDays = orInt(s.WarmupDays, 3)
	s.Alpha = orFloat(s.Alpha, 0.1)
	s.MaxDistinct = orInt(s.MaxDistinct, 200000)

	b := &c.DenialBurst
	b.Denials = orInt(b.Denials, 20)
	b.Window = orDuration(b.Window, 5*time.Minute)

	cs := &c.CredentialStuffing
	cs.Window = orDuration(cs.Window, 15*time.Minute)
	cs.Accounts = orInt(cs.Accounts, 10)
	cs.Failures = orInt(cs.Failures, 100)
	cs.GlobalAccounts = orInt(cs.GlobalAccounts, 30)
	cs.GlobalSources = orInt(cs.GlobalSources, 10)

	t := &c.TokenSources
	t.Window = orDuration(t.Window, 10*time.Minute)
	t.IPv4Bits = orInt(t.IPv4Bits, 24)
	t.IPv6Bits = orInt(t.IPv6Bits, 48)

	ss := &c.SearchSnooping
	ss.Patients = orInt(ss.Patients, 10)
	ss.Window = orDuration(ss.Window, time.Hour)

	for _, x := range []struct {
		c        *Common
		severity string
		dedupe   time.Duration
	}{
		{&m.Common, SeverityHigh, time.Hour},
		{&u.Common, SeverityMedium, day},
		{&o.Common, SeverityLow, day},
		{&c.Colleague.Common, SeverityHigh, day},
		{&c.VIP.Common, SeverityHigh, day},
		{&s.Common, SeverityHigh, day},
		{&b.Common, SeverityMedium, time.Hour},
		{&cs.Common, SeverityHigh, time.Hour},
		{&t.Common, SeverityHigh, day},
		{&ss.Common, SeverityMedium, day},
	} {
		if err := x.c.defaults(x.severity, x.dedupe); err != nil {
			return Config{}, err
		}
	}

	switch {
	case m.Alpha > 1 || s.Alpha > 1:
		return Config{}, errors.New("detect: alpha must be at most 1")
	case o.RareFraction >= 1:
		return Config{}, errors.New("detect: offHours.rareFraction must be below 1")
	case o.Spread > 11:
		return Config{}, errors.New("detect: offHours.spread must be at most 11 hours")
	case t.IPv4Bits > 32 || t.IPv6Bits > 128:
		return Config{}, errors.New("detect: tokenTwoSources prefix length too long")
	}
	if o.Timezone != "" {
		if _, err := time.LoadLocation(o.Timezone); err != nil {
			return Config{}, fmt.Errorf("detect: offHours.timezone: %w", err)
		}
	}
	for _, p := range t.SameNetworks {
		if _, err := netip.ParsePrefix(p); err != nil {
			return Config{}, fmt.Errorf("detect: tokenTwoSources.sameNetworks: %w", err)
		}
	}
	return c, nil
}

// common returns the Common of a rule by id.
func (c *Config) common(rule string) *Common {
	switch rule {
	case RuleManyPatients:
		return &c.ManyPatients.Common
	case RuleUnrelatedPatient:
		return &c.UnrelatedPatient.Common
	case RuleOffHours:
		return &c.OffHours.Common
	case RuleColleague:
		return &c.Colleague.Common
	case RuleVIP:
		return &c.VIP.Common
	case RuleServiceVolume:
		return &c.ServiceVolume.Common
	case RuleDenialBurst:
		return &c.DenialBurst.Common
	case RuleCredentialStuffing:
		return &c.CredentialStuffing.Common
	case RuleTokenTwoSources:
		return &c.TokenSources.Common
	case RuleSearchSnooping:
		return &c.SearchSnooping.Common
	}
	return nil
}

// Enabled reports whether rule is on in c.
func (c Config) Enabled(rule string) bool {
	cm := c.common(rule)
	return cm != nil && !cm.Disabled
}
