package detect

import (
	"cmp"
	"errors"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/ledger"
)

// pseudonymPrefix starts the keyed hash Ward records in place of a value
// an unproven caller chose (keys.PseudonymPrefix): such an actor proved
// no one.
const pseudonymPrefix = "hmac:"

// Words of the ledger this package reads (records, api).
const (
	outcomeSuccess = "success"
	outcomeDenied  = "denied"
	outcomeInvalid = "invalid"

	purposeBTG         = "BTG"                 // policy.PurposeBTG
	detailGrant        = "btg-grant="          // records.Caller.MarkEmergency
	detailRepeat       = "repeat="             // records.RepeatedGrant
	detailOutside      = "outside-compartment" // records: a read outside the caller's reach
	detailAggregated   = "aggregated count="   // api: the summary of refusals counted in a window
	actionGrant        = "emergency-grant"     // records.ActionEmergencyGrant
	actionSearch       = "search"
	actionOtherSources = "failures-other-sources" // api.ActionOtherSources
)

// Bounds of the events one window holds.
const (
	maxWindowEvents = 20000
	hourNs          = int64(time.Hour)
	dayNs           = int64(day)
)

// class sorts actions by what the rules make of them.
type class uint8

const (
	classOther      class = iota
	classRead             // discloses data: read, vread, search, history, everything, export, notify
	classWrite            // changes data
	classCredential       // proves (or fails to prove) who calls: sign-in, MFA, token requests
)

func classify(action string) class {
	switch action {
	case "read", "vread", "search", "history", "everything", "export", "notify":
		return classRead
	case "create", "update", "delete", "patch", "transaction", "batch", "bundle":
		return classWrite
	case "signin", "signin-federated", "mfa", "mfa-enrol", "token", "authorize", "authorize/callback":
		return classCredential
	}
	return classOther
}

// Detector raises alerts from ledger entries fed in ledger order. It is
// not safe for concurrent use: one goroutine feeds it (Runner does).
type Detector struct {
	cfg   Config
	facts Facts
	loc   *time.Location // nil for UTC
	on    [len(ruleIndex)]bool

	vipExempt    map[string]bool
	sameNetworks []netip.Prefix

	now       int64 // latest entry time seen, Unix nanoseconds
	nextSweep int64

	actors  map[string]*actor
	sources map[string]*source
	clients map[string]*service
	tokens  map[string]*token
	stuff   stuffing
	open    map[string]*openAlert

	out []Alert
}

// ruleIndex gives each rule a slot in Detector.on.
var ruleIndex = [...]string{
	RuleManyPatients, RuleUnrelatedPatient, RuleOffHours, RuleColleague, RuleVIP,
	RuleServiceVolume, RuleDenialBurst, RuleCredentialStuffing, RuleTokenTwoSources, RuleSearchSnooping,
}

const (
	ixMany = iota
	ixUnrelated
	ixOffHours
	ixColleague
	ixVIP
	ixService
	ixDenial
	ixStuffing
	ixToken
	ixSnooping
)

// New returns a Detector for cfg. facts may be nil only when the rules
// that need it (colleague-or-namesake, vip) are disabled.
func New(cfg Config, facts Facts) (*Detector, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	d := &Detector{
		cfg: c, facts: facts,
		actors: map[string]*actor{}, sources: map[string]*source{}, clients: map[string]*service{},
		tokens: map[string]*token{}, open: map[string]*openAlert{}, vipExempt: map[string]bool{},
	}
	for i, r := range ruleIndex {
		d.on[i] = c.Enabled(r)
	}
	if facts == nil && (d.on[ixColleague] || d.on[ixVIP]) {
		return nil, errors.New("detect: rules colleague-or-namesake and vip need Facts; disable them or supply one")
	}
	if tz := c.OffHours.Timezone; tz != "" && tz != "UTC" {
		if d.loc, err = time.LoadLocation(tz); err != nil {
			return nil, err
		}
	}
	for _, a := range c.VIP.Exempt {
		d.vipExempt[a] = true
	}
	for _, p := range c.TokenSources.SameNetworks {
		d.sameNetworks = append(d.sameNetworks, netip.MustParsePrefix(p).Masked()) // checked by withDefaults
	}
	d.stuff = stuffing{
		accounts: newWindow(int64(c.CredentialStuffing.Window), maxWindowEvents, true),
		sources:  newWindow(int64(c.CredentialStuffing.Window), maxWindowEvents, true),
	}
	return d, nil
}

// Config returns the configuration in force, defaults filled in.
func (d *Detector) Config() Config { return d.cfg }

// Observe feeds the entry at ledger index idx and returns the alerts it
// raised or updated (nil for none; the caller owns the slice). Entries
// must come in ledger order; time is taken from them only.
func (d *Detector) Observe(idx int64, e ledger.Entry) []Alert {
	t := e.Time.UnixNano()
	if t > d.now {
		d.now = t
	}
	d.out = nil
	cls := classify(e.Action)
	proven := e.Actor != "" && !strings.HasPrefix(e.Actor, pseudonymPrefix)
	person := proven && e.Actor != e.Client

	if cls == classCredential {
		if e.Outcome == outcomeDenied || (e.Outcome == outcomeInvalid && e.Action == "token") {
			d.credentialFailure(idx, t, &e)
		}
	} else if e.Outcome == outcomeDenied && e.Action != actionOtherSources {
		d.denial(idx, t, &e, proven)
	}
	if proven {
		a := d.actor(e.Actor, t)
		if person {
			d.personRules(a, idx, t, &e, cls)
		}
		if d.on[ixSnooping] && e.Action == actionSearch && len(e.Asked) > 0 {
			d.searchSnooping(a, idx, t, &e)
		}
		if d.on[ixVIP] && (person || d.cfg.VIP.Services) {
			d.vip(idx, t, &e)
		}
		if d.on[ixToken] && e.Token != "" && e.Source != "" {
			d.token(idx, t, &e)
		}
		if d.on[ixService] && e.Outcome == outcomeSuccess && (cls == classRead && !person || strings.HasPrefix(e.Action, "export")) {
			d.serviceVolume(idx, t, &e)
		}
	}
	if t >= d.nextSweep {
		d.sweep(t)
	}
	return d.out
}

// patientsOf calls fn for each patient e names.
func patientsOf(e *ledger.Entry, fn func(p string)) {
	if e.Patient != "" {
		fn(e.Patient)
	}
	for _, p := range e.Patients {
		fn(p)
	}
}

func hasPatients(e *ledger.Entry) bool { return e.Patient != "" || len(e.Patients) > 0 }

// openAlert is an alert whose period is not over: later triggers update
// it.
type openAlert struct {
	Alert
	lastIdx int64 // the latest entry listed, so that one entry counts once
}

// trigger is one firing of a rule.
type trigger struct {
	rule    int
	subject string // actor, "src:"+source, or "*"
	actor   string
	source  string
	summary string
	w       *window // evidence: the window's entries, when the alert is new
	also    int64   // a further index to list first (token-two-sources), or -1
}

// raise opens or updates the alert of tr for the entry at idx.
func (d *Detector) raise(idx, t int64, e *ledger.Entry, tr trigger) {
	rule := ruleIndex[tr.rule]
	cm := d.cfg.common(rule)
	period := int64(cm.Dedupe)
	start := t - t%period
	if t < 0 && t%period != 0 {
		start -= period
	}
	key := rule + "|" + tr.subject + "|" + time.Unix(0, start).UTC().Format(time.RFC3339)
	o := d.open[key]
	max := d.cfg.MaxEvidence
	add := func(i int64) {
		o.Count++
		if len(o.Evidence) < max {
			o.Evidence = append(o.Evidence, i)
		}
		o.lastIdx = i
	}
	switch {
	case o == nil:
		o = &openAlert{Alert: Alert{Key: key, Rule: rule, Severity: cm.Severity, Actor: tr.actor, First: e.Time.UTC()}, lastIdx: -1}
		if tr.also >= 0 {
			add(tr.also)
		}
		if tr.w != nil {
			o.lastIdx = tr.w.evidence(&o.Alert, max, o.lastIdx)
		}
		if o.lastIdx != idx {
			add(idx)
		}
		d.open[key] = o
	case o.lastIdx != idx:
		if tr.also >= 0 && tr.also > o.lastIdx {
			add(tr.also)
		}
		add(idx)
	}
	a := &o.Alert
	if tr.source != "" {
		a.Source = tr.source
	}
	if a.First.IsZero() || e.Time.Before(a.First) {
		a.First = e.Time.UTC()
	}
	if e.Time.After(a.Last) {
		a.Last = e.Time.UTC()
	}
	a.Client = e.Client
	a.Summary = tr.summary
	for i := range d.out {
		if d.out[i].Key == key {
			d.out[i] = a.clone()
			return
		}
	}
	d.out = append(d.out, a.clone())
}

// sweep forgets what has been idle too long and closes alerts whose
// period is over, at most once an hour of entry time (and whenever a
// table has grown past twice its bound).
func (d *Detector) sweep(now int64) {
	d.nextSweep = now + hourNs
	idle := now - int64(d.cfg.IdleAfter)
	for k, a := range d.actors {
		if a.last < idle {
			delete(d.actors, k)
			continue
		}
		a.expire(now)
	}
	for k, c := range d.clients {
		if c.last < idle {
			delete(d.clients, k)
		}
	}
	srcIdle := now - max(int64(d.cfg.DenialBurst.Window), int64(d.cfg.CredentialStuffing.Window))
	for k, s := range d.sources {
		if s.last <= srcIdle {
			delete(d.sources, k)
		}
	}
	tokIdle := now - int64(d.cfg.TokenSources.Window)
	for k, tk := range d.tokens {
		if tk.t <= tokIdle {
			delete(d.tokens, k)
		}
	}
	for k, a := range d.open {
		if a.Last.UnixNano()+int64(d.cfg.common(a.Rule).Dedupe)+hourNs < now {
			delete(d.open, k)
		}
	}
	d.stuff.accounts.expire(now)
	d.stuff.sources.expire(now)
	limit := d.cfg.MaxActors
	evictOldest(d.actors, limit, func(a *actor) int64 { return a.last })
	evictOldest(d.clients, limit, func(c *service) int64 { return c.last })
	evictOldest(d.sources, limit, func(s *source) int64 { return s.last })
	evictOldest(d.tokens, limit, func(tk *token) int64 { return tk.t })
}

// grown sweeps at once when a table fed by callers outside Ward's
// control (sources, tokens) holds more than twice the bound.
func (d *Detector) grown(n int) {
	if n > 2*d.cfg.MaxActors {
		d.sweep(d.now)
	}
}

// evictOldest deletes the least recently seen values of m beyond limit;
// ties go by key, so that every replica evicts the same.
func evictOldest[V any](m map[string]V, limit int, last func(V) int64) {
	if len(m) <= limit {
		return
	}
	type kv struct {
		k string
		t int64
	}
	all := make([]kv, 0, len(m))
	for k, v := range m {
		all = append(all, kv{k, last(v)})
	}
	slices.SortFunc(all, func(a, b kv) int { return cmp.Or(cmp.Compare(a.t, b.t), strings.Compare(a.k, b.k)) })
	for _, x := range all[:len(all)-limit] {
		delete(m, x.k)
	}
}

// aggregatedCount is the number of refusals an entry stands for: the
// count of an aggregated summary entry (api/failures.go), else 1.
func aggregatedCount(detail string) int64 {
	i := strings.Index(detail, detailAggregated)
	if i < 0 {
		return 1
	}
	s := detail[i+len(detailAggregated):]
	if j := strings.IndexByte(s, ' '); j >= 0 {
		s = s[:j]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 {
		return 1
	}
	return n
}

// intAfter parses the decimal number after prefix in s; 0 when none.
func intAfter(s, prefix string) int {
	i := strings.Index(s, prefix)
	if i < 0 {
		return 0
	}
	s = s[i+len(prefix):]
	j := 0
	for j < len(s) && s[j] >= '0' && s[j] <= '9' {
		j++
	}
	n, _ := strconv.Atoi(s[:j])
	return n
}
