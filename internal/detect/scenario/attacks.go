package scenario

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/wardhealth/ward/internal/detect"
	"github.com/wardhealth/ward/internal/ledger"
)

// plan lays out the malicious episodes and the benign hard cases, after
// the warm-up, each at a random hour that fits it.
func (g *gen) plan() {
	days := g.cfg.Days - g.cfg.WarmupDays
	if days < 2 {
		return
	}
	var clerks, others []*person
	for _, p := range g.staff {
		switch {
		case p.role == roleClerk && p.rate < 60:
			clerks = append(clerks, p)
		case p.role == roleOther:
			others = append(others, p)
		}
	}
	clin, dayClin := g.clinicians(false), g.clinicians(true)
	one := func(ps []*person) *person { return ps[g.rng.IntN(len(ps))] }

	for range 2 {
		g.vipSnoop(one(clerks), true)
	}
	g.vipSnoop(one(clin), false)
	for range 2 {
		g.colleagueSnoop(one(clerks), true)
	}
	g.colleagueSnoop(one(clin), false)
	for range 2 {
		g.massLookup(one(clerks), 150+g.rng.IntN(150), 1+g.rng.IntN(2))
	}
	g.massLookup(one(others), 60+g.rng.IntN(20), 3)
	g.serviceExfil(g.services[1], 4, 6, "service-exfiltration")
	g.serviceExfil(g.services[0], 1, 24, "slow-exfiltration")
	g.exportExfil(one(clerks))
	for range 2 {
		g.probe(one(clin))
	}
	g.stuffSingle("203.0.113.7", "signin")
	g.stuffSingle("203.0.113.99", "token")
	g.stuffDistributed()
	for range 2 {
		g.stolenToken(one(clin), "198.51.100.", "stolen-token", true)
	}
	g.repeatedBreakGlass(one(clin))
	for range 2 {
		g.searchSnoop(one(clin))
	}
	for range 2 {
		g.offHours(one(dayClin))
	}
	g.scraper("192.0.2.77")

	// Benign hard cases: traffic the rules are expected to flag wrongly.
	for range 2 {
		g.coverShift(one(dayClin))
	}
	g.colleagueTreated(one(clin))
	g.stolenToken(one(clin), "172.16.5.", "vpn-roaming", false)
	g.massCasualty(one(clin))
}

func (g *gen) episode(name string, malicious bool, rules []string, also ...string) *Episode {
	ep := &Episode{Name: name, Malicious: malicious, Rules: rules, Also: also}
	g.episodes = append(g.episodes, ep)
	return ep
}

// when returns an hour of a shift of p after the warm-up, with margin
// hours of the shift before and after it; -1 when there is none.
func (g *gen) when(p *person, margin int) int {
	first := g.cfg.WarmupDays * 24
	for range 200 {
		s := p.shifts[g.rng.IntN(len(p.shifts))]
		if s.from < first || s.to-s.from < 2*margin+1 || s.to >= g.cfg.Days*24 {
			continue
		}
		return s.from + margin + g.rng.IntN(s.to-s.from-2*margin)
	}
	return -1
}

// anyHour returns an hour after the warm-up with room for n hours.
func (g *gen) anyHour(n int) int {
	first := g.cfg.WarmupDays * 24
	return first + g.rng.IntN(g.cfg.Days*24-first-n)
}

func (g *gen) vipSnoop(p *person, reach bool) {
	h := g.when(p, 1)
	if h < 0 {
		return
	}
	vip := g.vips[g.rng.IntN(len(g.vips))]
	rules := []string{detect.RuleVIP}
	ep := g.episode("vip-snoop", true, rules)
	ep.Actor = p.id
	g.schedule(h, func(h int) {
		s := g.rng.IntN(1800)
		for i := range 2 + g.rng.IntN(3) {
			e := g.entry(p, g.at(h, s+i*40), "read", pick(g, "Patient", "Observation", "Condition"), vip)
			if !reach {
				e.Outcome, e.Detail = "denied", "outside-compartment"
			}
			g.add(e, ep)
		}
	})
}

func (g *gen) colleagueSnoop(p *person, reach bool) {
	h := g.when(p, 1)
	if h < 0 {
		return
	}
	target := g.neighbours[p.id][0]
	if !reach {
		target = g.colleagueOf(p)
	}
	ep := g.episode("colleague-snoop", true, []string{detect.RuleColleague})
	ep.Actor = p.id
	g.schedule(h, func(h int) {
		s := g.rng.IntN(1800)
		for i := range 1 + g.rng.IntN(3) {
			e := g.entry(p, g.at(h, s+i*60), "read", pick(g, "Patient", "Observation"), target)
			if !reach {
				e.Outcome, e.Detail = "denied", "outside-compartment"
			}
			g.add(e, ep)
		}
	})
}

func (g *gen) massLookup(p *person, perHour, hours int) {
	h := g.when(p, 0)
	if h < 0 {
		return
	}
	ep := g.episode("mass-lookup", true, []string{detect.RuleManyPatients})
	ep.Actor = p.id
	for k := range hours {
		g.schedule(h+k, func(h int) {
			for range perHour {
				g.add(g.entry(p, g.in(h), "read", "Patient", g.ordinary()), ep)
			}
		})
	}
}

// serviceExfil: s reads extra times its rate of patients outside its
// pool for hours hours.
func (g *gen) serviceExfil(s *service, extra, hours int, name string) {
	h := g.anyHour(hours)
	ep := g.episode(name, true, []string{detect.RuleServiceVolume})
	ep.Actor = s.id
	for k := range hours {
		g.schedule(h+k, func(h int) {
			for range s.rate * extra {
				g.add(ledger.Entry{Time: g.in(h), Actor: s.id, Client: s.id, Source: s.source, Action: "read", // #nosec G101 -- a synthetic ledger entry of a drill, no credential
					ResourceType: "Patient", ResourceID: g.resID(), Patient: g.ordinary(), Outcome: "success", Detail: "200", Token: "hmac:exfil"}, ep)
			}
		})
	}
}

// exportExfil: a person starts a bulk export of far more patients than
// anyone exports, through an app that never exported before.
func (g *gen) exportExfil(p *person) {
	h := g.when(p, 1)
	if h < 0 {
		return
	}
	ep := g.episode("export-exfiltration", true, []string{detect.RuleServiceVolume}, detect.RuleManyPatients)
	ep.Actor = p.id
	g.schedule(h, func(h int) {
		base := ledger.Entry{Actor: p.id, Client: "research-app", Source: p.source, Outcome: "success", Detail: "200", Token: p.token}
		e := base
		e.Time, e.Action = g.at(h, 60), "export-request"
		g.add(e, ep)
		job := g.id("job-")
		parts := 6
		for i := range parts {
			e := base
			e.Time, e.Action, e.Detail = g.at(h, 1200+i), "export", fmt.Sprintf("export-job=%s part=%d/%d", job, i+1, parts)
			ps := make([]string, 0, ledger.MaxPatients)
			for range ledger.MaxPatients {
				ps = append(ps, g.ordinary())
			}
			e.SetPatients(ps)
			g.add(e, ep)
		}
	})
}

// probe: a clinician opens record after record outside their care team.
func (g *gen) probe(p *person) {
	h := g.when(p, 1)
	if h < 0 {
		return
	}
	ep := g.episode("probing", true, []string{detect.RuleUnrelatedPatient, detect.RuleDenialBurst})
	ep.Actor = p.id
	g.schedule(h, func(h int) {
		s := g.rng.IntN(2400)
		for i := range 25 + g.rng.IntN(15) {
			e := g.entry(p, g.at(h, s+i*15), "read", "Patient", g.ordinary())
			e.Outcome, e.Detail = "denied", "outside-compartment"
			g.add(e, ep)
		}
	})
}

// stuffSingle: one source tries many accounts, as api/failures.go
// records it: the first refusal of each (source, account) in a
// five-minute window on its own, the rest counted into a summary at the
// window's end; user names no account has share one key.
func (g *gen) stuffSingle(src, action string) {
	h := g.anyHour(1)
	ep := g.episode("credential-stuffing", true, []string{detect.RuleCredentialStuffing})
	ep.Source = src
	g.schedule(h, func(h int) {
		start := g.at(h, g.rng.IntN(1200))
		window := start.Truncate(5 * time.Minute)
		client := "ehr"
		if action == "token" {
			client = ""
		}
		refuse := func(at time.Time, actor, detail string) {
			g.add(ledger.Entry{Time: at, Actor: actor, Client: client, Source: src, Action: action, Outcome: "denied", Detail: detail}, ep)
		}
		n := 30 + g.rng.IntN(50)
		for i := range n {
			at := start.Add(time.Duration(i) * 4 * time.Second)
			var actor string
			if action == "token" || g.rng.IntN(3) == 0 {
				actor = fmt.Sprintf("hmac:%016x", g.rng.Uint64()) // a name no account or client has
			} else {
				actor = g.staff[g.rng.IntN(len(g.staff))].id
			}
			refuse(at, actor, "wrong-password")
		}
		end := start.Add(time.Duration(n) * 4 * time.Second).Truncate(5 * time.Minute).Add(5 * time.Minute)
		summary := fmt.Sprintf("aggregated count=%d window=%s/5m0s first=r1 of=wrong-password", n*2, window.Format(time.RFC3339))
		refuse(end, "", summary)
	})
}

// stuffDistributed: many sources, a few accounts each.
func (g *gen) stuffDistributed() {
	h := g.anyHour(1)
	ep := g.episode("credential-stuffing-distributed", true, []string{detect.RuleCredentialStuffing})
	ep.Global = true
	g.schedule(h, func(h int) {
		s := g.rng.IntN(2400)
		for k := range 20 + g.rng.IntN(20) {
			src := fmt.Sprintf("198.18.%d.%d", g.rng.IntN(256), 1+g.rng.IntN(254))
			for range 2 + g.rng.IntN(2) {
				g.add(ledger.Entry{Time: g.at(h, s+k*20+g.rng.IntN(20)), Actor: g.staff[g.rng.IntN(len(g.staff))].id, Client: "ehr",
					Source: src, Action: "signin", Outcome: "denied", Detail: "wrong-password"}, ep)
			}
		}
	})
}

// stolenToken: p's token of the shift is used from another network
// minutes after p used it. Malicious from an attacker's address; a hard
// case when it is p's own VPN.
func (g *gen) stolenToken(p *person, net, name string, malicious bool) {
	h := g.when(p, 1)
	if h < 0 {
		return
	}
	var ep *Episode
	if malicious {
		ep = g.episode(name, true, []string{detect.RuleTokenTwoSources})
	} else {
		ep = g.episode(name, false, []string{detect.RuleTokenTwoSources})
	}
	ep.Actor = p.id
	g.schedule(h, func(h int) {
		s := g.rng.IntN(2400)
		e := g.entry(p, g.at(h, s), "read", "Observation", p.care[0])
		g.add(e, ep)
		src := fmt.Sprintf("%s%d", net, 1+g.rng.IntN(254))
		for i := range 3 + g.rng.IntN(4) {
			e := g.entry(p, g.at(h, s+120+i*30), "read", pick(g, "Patient", "Observation"), p.care[g.rng.IntN(len(p.care))])
			e.Source = src
			g.add(e, ep)
		}
	})
}

// repeatedBreakGlass: grants for the same patient on three days, and two
// more patients on the third.
func (g *gen) repeatedBreakGlass(p *person) {
	h := g.when(p, 2)
	if h < 0 || h-96 < g.cfg.WarmupDays*24 {
		h = g.when(p, 2)
	}
	if h < 0 {
		return
	}
	ep := g.episode("repeated-break-the-glass", true, []string{detect.RuleUnrelatedPatient})
	ep.Actor = p.id
	pt := g.ordinary()
	for _, back := range []int{96, 48} {
		if hh := h - back; hh >= 0 {
			g.schedule(hh, func(hh int) { g.breakGlass(p, hh, 600, pt, ep) })
		}
	}
	g.schedule(h, func(h int) {
		g.breakGlass(p, h, 300, pt, ep)
		g.breakGlass(p, h, 1500, g.ordinary(), ep)
		g.breakGlass(p, h, 2700, g.ordinary(), ep)
	})
}

// searchSnoop: searches about patients outside the care team, answered
// empty.
func (g *gen) searchSnoop(p *person) {
	h := g.when(p, 1)
	if h < 0 {
		return
	}
	ep := g.episode("search-snooping", true, []string{detect.RuleSearchSnooping})
	ep.Actor = p.id
	g.schedule(h, func(h int) {
		s := g.rng.IntN(1800)
		for i := range 12 + g.rng.IntN(10) {
			e := g.entry(p, g.at(h, s+i*60), "search", "Observation", "")
			e.ResourceID, e.Query = "", []string{"patient"}
			e.SetAsked([]string{g.ordinary()})
			g.add(e, ep)
		}
	})
}

// offHours: a day clinician signs in at night and reads records.
func (g *gen) offHours(p *person) {
	d := g.cfg.WarmupDays + g.rng.IntN(g.cfg.Days-g.cfg.WarmupDays-1)
	h := d*24 + 2
	ep := g.episode("off-hours", true, []string{detect.RuleOffHours})
	ep.Actor = p.id
	g.schedule(h, func(h int) {
		tok := g.token()
		s := g.rng.IntN(1200)
		g.add(ledger.Entry{Time: g.at(h, s), Actor: p.id, Client: "ehr", Source: p.source, Action: "signin", Outcome: "success", Detail: "ok"}, ep)
		for i := range 6 + g.rng.IntN(8) {
			e := g.entry(p, g.at(h, s+30+i*90), "read", pick(g, "Patient", "Observation"), p.care[g.rng.IntN(len(p.care))])
			e.Token = tok
			g.add(e, ep)
		}
	})
}

// scraper: a caller without a valid token hammering the API, as the
// ledger records it (one entry, then an aggregated count).
func (g *gen) scraper(src string) {
	h := g.anyHour(1)
	ep := g.episode("denial-burst", true, []string{detect.RuleDenialBurst})
	ep.Source = src
	g.schedule(h, func(h int) {
		at := g.at(h, g.rng.IntN(600))
		g.add(ledger.Entry{Time: at, Source: src, Action: "read", ResourceType: "Patient", ResourceID: "hmac:0f0f", Outcome: "denied", Detail: "401"}, ep)
		end := at.Truncate(5 * time.Minute).Add(5 * time.Minute)
		g.add(ledger.Entry{Time: end, Source: src, Action: "read", Outcome: "denied",
			Detail: "aggregated count=150 window=" + at.Truncate(5*time.Minute).Format(time.RFC3339) + "/5m0s first=r2 of=401"}, ep)
	})
}

// coverShift: a day clinician covers a night shift (hard case for
// off-hours).
func (g *gen) coverShift(p *person) {
	d := g.cfg.WarmupDays + g.rng.IntN(g.cfg.Days-g.cfg.WarmupDays-1)
	from := d*24 + 19
	for _, s := range p.shifts {
		if s.from < from+12 && from < s.to {
			return // already working then
		}
	}
	ep := g.episode("cover-night-shift", false, []string{detect.RuleOffHours})
	ep.Actor = p.id
	// The shift's hours are scheduled as specials so that its entries
	// carry the episode.
	p2 := *p
	for h := from; h < from+12; h++ {
		g.schedule(h, func(h int) {
			n := len(g.buf)
			p2.shifts = []shift{{from, from + 12}}
			g.work(&p2, h)
			for i := n; i < len(g.buf); i++ {
				g.buf[i].ep = ep
			}
		})
	}
}

// colleagueTreated: a staff member admitted and treated by a colleague
// (hard case for colleague-or-namesake).
func (g *gen) colleagueTreated(p *person) {
	pt := g.colleagueOf(p)
	h := g.when(p, 1)
	if h < 0 || pt == "" {
		return
	}
	ep := g.episode("colleague-treated", false, []string{detect.RuleColleague})
	ep.Actor = p.id
	g.schedule(h, func(h int) {
		for i := range 4 + g.rng.IntN(4) {
			g.add(g.entry(p, g.at(h, 300+i*400), "read", pick(g, "Observation", "MedicationRequest"), pt), ep)
		}
	})
}

// massCasualty: one clinician breaks the glass for four patients in an
// afternoon (hard case for unrelated-patient).
func (g *gen) massCasualty(p *person) {
	h := g.when(p, 2)
	if h < 0 {
		return
	}
	ep := g.episode("mass-casualty", false, []string{detect.RuleUnrelatedPatient})
	ep.Actor = p.id
	g.schedule(h, func(h int) {
		for i := range 4 {
			g.breakGlass(p, h, 200+i*800, g.ordinary(), ep)
		}
	})
}

// colleagueOf returns the patient record of a staff member other than p
// ("" when there is none), the same for the same seed.
func (g *gen) colleagueOf(p *person) string {
	ids := slices.Sorted(maps.Keys(g.staffPat))
	for _, k := range g.rng.Perm(len(ids)) {
		if ids[k] != p.id {
			return g.staffPat[ids[k]]
		}
	}
	return ""
}
