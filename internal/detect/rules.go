package detect

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/ledger"
)

// actor is what the detector remembers of one proven actor (a person or
// a service).
type actor struct {
	last, first int64

	// many-patients: distinct patients read in the sliding window, the
	// peak of the current hour, and the baseline of peaks.
	recent     window
	hour       int64
	peak       int
	hourAlert  bool
	base       float64
	baseHours  int
	btg        window   // unrelated-patient: patients reached through break-the-glass
	outside    window   // unrelated-patient: patients refused outside reach
	missed     window   // search-snooping: patients searches asked for and did not get
	denials    window   // denial-burst
	activeHour int64    // off-hours: the absolute hour last noted
	active     int      // off-hours: active hours learned
	hist       []uint16 // off-hours: active hours learned per bucket
	pending    []uint16 // off-hours: buckets of today's active hours, learned tomorrow
	pendingDay int64
}

func (d *Detector) actor(id string, t int64) *actor {
	a := d.actors[id]
	if a == nil {
		c := &d.cfg
		a = &actor{
			first:   t,
			recent:  newWindow(int64(c.ManyPatients.Window), maxWindowEvents, true),
			btg:     newWindow(int64(c.UnrelatedPatient.BreakGlassWindow), maxWindowEvents, true),
			outside: newWindow(int64(c.UnrelatedPatient.OutsideWindow), maxWindowEvents, true),
			missed:  newWindow(int64(c.SearchSnooping.Window), maxWindowEvents, true),
			denials: newWindow(int64(c.DenialBurst.Window), maxWindowEvents, false),
			hour:    -1, activeHour: -1,
		}
		d.actors[id] = a
	}
	if t > a.last {
		a.last = t
	}
	return a
}

func (a *actor) expire(now int64) {
	a.recent.expire(now)
	a.btg.expire(now)
	a.outside.expire(now)
	a.missed.expire(now)
	a.denials.expire(now)
}

// personRules runs the rules about people on an entry of a.
func (d *Detector) personRules(a *actor, idx, t int64, e *ledger.Entry, cls class) {
	success := e.Outcome == outcomeSuccess
	if d.on[ixOffHours] && success {
		d.offHours(a, idx, t, e, cls)
	}
	if d.on[ixMany] && success && cls == classRead && hasPatients(e) {
		d.manyPatients(a, idx, t, e)
	}
	if d.on[ixUnrelated] {
		d.unrelated(a, idx, t, e)
	}
	if d.on[ixColleague] && (cls == classRead || cls == classWrite) && (success || e.Outcome == outcomeDenied) {
		n := 0
		patientsOf(e, func(p string) {
			if d.facts.Colleague(e.Actor, p) && !d.facts.Self(e.Actor, p) {
				n++
			}
		})
		if n > 0 {
			d.raise(idx, t, e, trigger{rule: ixColleague, subject: e.Actor, actor: e.Actor, also: -1,
				summary: fmt.Sprintf("%s an entry naming %d patient(s) who are colleagues, namesakes or neighbours of the actor", outcomeVerb(e.Outcome), n)})
		}
	}
}

func outcomeVerb(outcome string) string {
	if outcome == outcomeSuccess {
		return "accessed"
	}
	return "was refused"
}

// manyPatients: distinct patients read in the window, against the
// ceiling, the floor and the person's baseline.
func (d *Detector) manyPatients(a *actor, idx, t int64, e *ledger.Entry) {
	c := &d.cfg.ManyPatients
	if h := t / hourNs; h > a.hour {
		// An hour that alerted teaches nothing once the baseline is warm:
		// an attack must not raise its own threshold.
		if a.hour >= 0 && a.peak > 0 && (!a.hourAlert || a.baseHours < c.WarmupHours) {
			if a.baseHours == 0 {
				a.base = float64(a.peak)
			} else {
				a.base = c.Alpha*float64(a.peak) + (1-c.Alpha)*a.base
			}
			a.baseHours++
		}
		a.hour, a.peak, a.hourAlert = h, 0, false
	}
	patientsOf(e, func(p string) { a.recent.add(t, idx, 1, p) })
	n := a.recent.distinct()
	a.peak = max(a.peak, n)
	warm := a.baseHours >= c.WarmupHours
	switch {
	case n > c.Ceiling:
	case n <= c.Patients:
		return
	case warm && float64(n) <= c.Factor*max(a.base, c.Floor):
		return
	}
	a.hourAlert = true
	base := "no baseline yet"
	if warm {
		base = fmt.Sprintf("baseline %.1f per hour", a.base)
	}
	d.raise(idx, t, e, trigger{rule: ixMany, subject: e.Actor, actor: e.Actor, w: &a.recent, also: -1,
		summary: fmt.Sprintf("read %d distinct patients within %s (%s; threshold %d, ceiling %d)", n, time.Duration(c.Window), base, c.Patients, c.Ceiling)})
}

// unrelated: break-the-glass reach, repeated grants, refusals outside
// the person's reach.
func (d *Detector) unrelated(a *actor, idx, t int64, e *ledger.Entry) {
	c := &d.cfg.UnrelatedPatient
	success := e.Outcome == outcomeSuccess
	if success && e.Patient != "" && (e.Purpose == purposeBTG || strings.Contains(e.Detail, detailGrant) || e.Action == actionGrant) {
		a.btg.add(t, idx, 1, e.Patient)
		if n := a.btg.distinct(); n > c.BreakGlassPatients {
			d.raise(idx, t, e, trigger{rule: ixUnrelated, subject: e.Actor, actor: e.Actor, w: &a.btg, also: -1,
				summary: fmt.Sprintf("reached %d distinct patients through break-the-glass within %s (threshold %d)", n, time.Duration(c.BreakGlassWindow), c.BreakGlassPatients)})
		}
	}
	if success && e.Action == actionGrant {
		if n := intAfter(e.Detail, detailRepeat); n >= c.RepeatGrants {
			d.raise(idx, t, e, trigger{rule: ixUnrelated, subject: e.Actor, actor: e.Actor, also: -1,
				summary: fmt.Sprintf("break-the-glass granted again for a patient granted %d time(s) before (threshold %d)", n, c.RepeatGrants)})
		}
	}
	if e.Outcome == outcomeDenied && e.Patient != "" && strings.Contains(e.Detail, detailOutside) {
		a.outside.add(t, idx, 1, e.Patient)
		if n := a.outside.distinct(); n >= c.OutsidePatients {
			d.raise(idx, t, e, trigger{rule: ixUnrelated, subject: e.Actor, actor: e.Actor, w: &a.outside, also: -1,
				summary: fmt.Sprintf("refused %d distinct patients outside care relationships within %s (threshold %d)", n, time.Duration(c.OutsideWindow), c.OutsidePatients)})
		}
	}
}

// offHours: alert on data access in an hour the person was rarely
// active in on earlier days, then note the hour. Hours are learned a day
// late, so that a night of activity cannot teach itself, hour by hour,
// that the night is usual.
func (d *Detector) offHours(a *actor, idx, t int64, e *ledger.Entry, cls class) {
	c := &d.cfg.OffHours
	n := 24
	if c.Week {
		n = 168
	}
	if a.hist == nil {
		a.hist = make([]uint16, n)
	}
	if day := t / dayNs; day > a.pendingDay {
		for _, b := range a.pending {
			if a.hist[b] < ^uint16(0) {
				a.hist[b]++
			}
			a.active++
		}
		a.pending, a.pendingDay = a.pending[:0], day
	}
	b := d.bucket(e.Time, t, c.Week)
	warm := a.active >= c.WarmupHours && t-a.first >= int64(c.WarmupDays)*dayNs
	if warm && (cls == classRead || cls == classWrite) {
		near := 0
		for k := -c.Spread; k <= c.Spread; k++ {
			near += int(a.hist[(b+k+n)%n])
		}
		if float64(near) < c.RareFraction*float64(a.active) {
			unit := "hour of day"
			if c.Week {
				unit = "hour of week"
			}
			d.raise(idx, t, e, trigger{rule: ixOffHours, subject: e.Actor, actor: e.Actor, also: -1,
				summary: fmt.Sprintf("accessed records in an %s the actor was active in %d of %d active hours on earlier days (within %d hours either side)", unit, near, a.active, c.Spread)})
		}
	}
	if h := t / hourNs; h != a.activeHour {
		a.activeHour = h
		a.pending = append(a.pending, uint16(b)) // #nosec G115 -- a bucket index below 24*60, well inside uint16
	}
}

// bucket is the hour of day (or of week, Sunday first) of tm in the
// configured zone.
func (d *Detector) bucket(tm time.Time, t int64, week bool) int {
	if d.loc == nil {
		secs := t / int64(time.Second)
		if t < 0 && t%int64(time.Second) != 0 {
			secs--
		}
		h := int(((secs/3600)%24 + 24) % 24)
		if !week {
			return h
		}
		days := secs / 86400
		if secs < 0 && secs%86400 != 0 {
			days--
		}
		wd := int(((days+4)%7 + 7) % 7) // 1970-01-01 was a Thursday
		return wd*24 + h
	}
	lt := tm.In(d.loc)
	if !week {
		return lt.Hour()
	}
	return int(lt.Weekday())*24 + lt.Hour()
}

// vip: access to a VIP's record by an actor not exempt.
func (d *Detector) vip(idx, t int64, e *ledger.Entry) {
	if d.vipExempt[e.Actor] || !hasPatients(e) {
		return
	}
	n := 0
	patientsOf(e, func(p string) {
		if d.facts.VIP(p) && !d.facts.Self(e.Actor, p) {
			n++
		}
	})
	if n > 0 {
		d.raise(idx, t, e, trigger{rule: ixVIP, subject: e.Actor, actor: e.Actor, also: -1,
			summary: fmt.Sprintf("%s: an entry (%s, %s) naming %d VIP patient(s)", outcomeVerb(e.Outcome), e.Action, e.Outcome, n)})
	}
}

// searchSnooping: searches that named patients their answers did not
// hold.
func (d *Detector) searchSnooping(a *actor, idx, t int64, e *ledger.Entry) {
	c := &d.cfg.SearchSnooping
	added := false
	for _, p := range e.Asked {
		if p == e.Patient {
			continue
		}
		if _, found := slices.BinarySearch(e.Patients, p); found {
			continue
		}
		a.missed.add(t, idx, 1, p)
		added = true
	}
	if !added {
		return
	}
	if n := a.missed.distinct(); n >= c.Patients {
		d.raise(idx, t, e, trigger{rule: ixSnooping, subject: e.Actor, actor: e.Actor, w: &a.missed, also: -1,
			summary: fmt.Sprintf("searches named %d distinct patients their answers did not hold within %s (threshold %d)", n, time.Duration(c.Window), c.Patients)})
	}
}

// source is what the detector remembers of one network address.
type source struct {
	last     int64
	denials  window // denial-burst of callers that proved no one
	accounts window // credential-stuffing: accounts tried
	failures window // credential-stuffing: failures (aggregated counts included)
}

func (d *Detector) source(addr string, t int64) *source {
	s := d.sources[addr]
	if s == nil {
		c := &d.cfg
		s = &source{
			denials:  newWindow(int64(c.DenialBurst.Window), maxWindowEvents, false),
			accounts: newWindow(int64(c.CredentialStuffing.Window), maxWindowEvents, true),
			failures: newWindow(int64(c.CredentialStuffing.Window), maxWindowEvents, false),
		}
		d.sources[addr] = s
		d.grown(len(d.sources))
	}
	if t > s.last {
		s.last = t
	}
	return s
}

// denial: a refusal other than a failed sign-in, counted per proven
// actor or, for callers that proved no one, per source.
func (d *Detector) denial(idx, t int64, e *ledger.Entry, proven bool) {
	if !d.on[ixDenial] {
		return
	}
	c := &d.cfg.DenialBurst
	n := aggregatedCount(e.Detail)
	var w *window
	tr := trigger{rule: ixDenial, also: -1}
	switch {
	case proven:
		w = &d.actor(e.Actor, t).denials
		tr.subject, tr.actor = e.Actor, e.Actor
	case e.Source != "":
		w = &d.source(e.Source, t).denials
		tr.subject, tr.source = "src:"+e.Source, e.Source
	default:
		return
	}
	w.add(t, idx, n, "")
	if w.total >= int64(c.Denials) {
		tr.w = w
		tr.summary = fmt.Sprintf("%d refusals within %s (threshold %d)", w.total, time.Duration(c.Window), c.Denials)
		d.raise(idx, t, e, tr)
	}
}

// stuffing is the credential-stuffing state across sources.
type stuffing struct {
	accounts window
	sources  window
}

// credentialFailure: a failed sign-in or token request.
func (d *Detector) credentialFailure(idx, t int64, e *ledger.Entry) {
	if !d.on[ixStuffing] || e.Source == "" {
		return
	}
	c := &d.cfg.CredentialStuffing
	s := d.source(e.Source, t)
	n := aggregatedCount(e.Detail)
	s.failures.add(t, idx, n, "")
	if e.Actor != "" {
		s.accounts.add(t, idx, 1, e.Actor)
		d.stuff.accounts.add(t, idx, 1, e.Actor)
	}
	d.stuff.sources.add(t, idx, 1, e.Source)
	if accounts, failures := s.accounts.distinct(), s.failures.total; accounts >= c.Accounts || failures >= int64(c.Failures) {
		d.raise(idx, t, e, trigger{rule: ixStuffing, subject: "src:" + e.Source, source: e.Source, w: &s.failures, also: -1,
			summary: fmt.Sprintf("%d failed sign-ins or token requests against %d distinct accounts from one source within %s (thresholds %d failures, %d accounts)",
				failures, accounts, time.Duration(c.Window), c.Failures, c.Accounts)})
	}
	if accounts, sources := d.stuff.accounts.distinct(), d.stuff.sources.distinct(); accounts >= c.GlobalAccounts && sources >= c.GlobalSources {
		d.raise(idx, t, e, trigger{rule: ixStuffing, subject: "*", w: &d.stuff.sources, also: -1,
			summary: fmt.Sprintf("failed sign-ins or token requests against %d distinct accounts from %d distinct sources within %s (thresholds %d accounts, %d sources)",
				accounts, sources, time.Duration(c.Window), c.GlobalAccounts, c.GlobalSources)})
	}
}

// token is the latest use of one bearer token.
type token struct {
	t, idx int64
	src    string
	net    network
}

// network is the network a source belongs to: a prefix, or the source as
// recorded when it is no address.
type network struct {
	p   netip.Prefix
	raw string
}

func (d *Detector) network(src string) network {
	addr, err := netip.ParseAddr(src)
	if err != nil {
		return network{raw: src}
	}
	addr = addr.Unmap()
	for _, p := range d.sameNetworks {
		if p.Contains(addr) {
			return network{p: p}
		}
	}
	bits := d.cfg.TokenSources.IPv4Bits
	if addr.Is6() {
		bits = d.cfg.TokenSources.IPv6Bits
	}
	p, _ := addr.Prefix(bits)
	return network{p: p}
}

// token: one token used from two networks within the window.
func (d *Detector) token(idx, t int64, e *ledger.Entry) {
	c := &d.cfg.TokenSources
	tk := d.tokens[e.Token]
	if tk == nil {
		d.tokens[e.Token] = &token{t: t, idx: idx, src: e.Source, net: d.network(e.Source)}
		d.grown(len(d.tokens))
		return
	}
	if e.Source != tk.src {
		n := d.network(e.Source)
		if n != tk.net && t-tk.t <= int64(c.Window) {
			d.raise(idx, t, e, trigger{rule: ixToken, subject: e.Actor, actor: e.Actor, source: e.Source, also: tk.idx,
				summary: fmt.Sprintf("one bearer token used from two networks %s apart (window %s)", time.Duration(t-tk.t).Round(time.Second), time.Duration(c.Window))})
		}
		tk.src, tk.net = e.Source, n
	}
	tk.t, tk.idx = max(tk.t, t), idx
}

// service is what the detector remembers of one client's volume.
type service struct {
	last, first int64

	hour         int64
	hourEntries  int64
	hourPatients map[string]struct{}
	hourAlert    bool
	day          int64
	dayPatients  map[string]struct{}
	dayAlert     bool

	baseEntries, basePatients, baseDay float64
	hours, days                        int
}

// serviceVolume: a client's hourly entries and patients, and daily
// patients, against its baselines and the ceiling.
func (d *Detector) serviceVolume(idx, t int64, e *ledger.Entry) {
	c := &d.cfg.ServiceVolume
	id := e.Client
	if id == "" {
		id = e.Actor
	}
	s := d.clients[id]
	if s == nil {
		s = &service{first: t, hour: -1, day: -1, hourPatients: map[string]struct{}{}, dayPatients: map[string]struct{}{}}
		d.clients[id] = s
	}
	s.last = max(s.last, t)
	ewma := func(base *float64, n int, v float64) {
		if n == 0 {
			*base = v
		} else {
			*base = c.Alpha*v + (1-c.Alpha)*(*base)
		}
	}
	if h := t / hourNs; h > s.hour {
		if s.hour >= 0 && s.hourEntries > 0 && !s.hourAlert {
			ewma(&s.baseEntries, s.hours, float64(s.hourEntries))
			ewma(&s.basePatients, s.hours, float64(len(s.hourPatients)))
			s.hours++
		}
		s.hour, s.hourEntries, s.hourAlert = h, 0, false
		clear(s.hourPatients)
	}
	if dd := t / dayNs; dd > s.day {
		if s.day >= 0 && len(s.dayPatients) > 0 && !s.dayAlert {
			ewma(&s.baseDay, s.days, float64(len(s.dayPatients)))
			s.days++
		}
		s.day, s.dayAlert = dd, false
		clear(s.dayPatients)
	}
	s.hourEntries++
	patientsOf(e, func(p string) {
		if len(s.hourPatients) < c.MaxDistinct {
			s.hourPatients[p] = struct{}{}
		}
		if len(s.dayPatients) < c.MaxDistinct {
			s.dayPatients[p] = struct{}{}
		}
	})
	hp, dp := len(s.hourPatients), len(s.dayPatients)
	warm := s.hours >= c.WarmupHours && t-s.first >= int64(c.WarmupDays)*dayNs
	var why string
	switch {
	case hp > c.Ceiling:
		why = fmt.Sprintf("%d distinct patients this hour (ceiling %d)", hp, c.Ceiling)
	case warm && float64(s.hourEntries) > c.Factor*max(s.baseEntries, c.Floor):
		why = fmt.Sprintf("%d entries this hour (baseline %.0f, factor %.1f)", s.hourEntries, s.baseEntries, c.Factor)
	case warm && float64(hp) > c.Factor*max(s.basePatients, c.Floor):
		why = fmt.Sprintf("%d distinct patients this hour (baseline %.0f, factor %.1f)", hp, s.basePatients, c.Factor)
	case warm && s.days >= c.WarmupDays && float64(dp) > c.DayFactor*max(s.baseDay, c.Floor):
		why = fmt.Sprintf("%d distinct patients today (baseline %.0f, factor %.1f)", dp, s.baseDay, c.DayFactor)
		s.dayAlert = true
	default:
		return
	}
	s.hourAlert = true
	d.raise(idx, t, e, trigger{rule: ixService, subject: id, actor: e.Actor, also: -1, summary: "read " + why})
}
