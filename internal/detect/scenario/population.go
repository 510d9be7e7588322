package scenario

import (
	"fmt"
	"slices"
	"time"

	"github.com/wardhealth/ward/internal/ledger"
)

// Roles of the simulated staff.
const (
	roleClinician = "clinician" // reaches their care team's patients only
	roleClerk     = "clerk"     // reaches every patient's demographics
	roleOther     = "other"     // pharmacists, therapists: a few patients an hour
)

type person struct {
	id, role string
	night    bool
	care     []string // care team (clinicians)
	rate     int      // entries (clinicians, others) or distinct patients (clerks) per hour
	source   string   // workstation address
	shifts   []shift
	token    string
	tokenEnd int // absolute hour the token's shift ends
	grants   []string
}

type shift struct{ from, to int } // absolute hours [from, to)

type service struct {
	id     string
	source string
	rate   int      // entries per active hour
	pool   []string // patients it serves
	active func(h int) bool
	export bool // one export an active hour instead of reads
}

type patientUser struct {
	id, patient string
}

func (g *gen) populate() {
	c := g.cfg
	for i := range c.Patients {
		g.patients = append(g.patients, fmt.Sprintf("pt%06x", i*7919%0xffffff))
	}
	// VIPs.
	for range 3 {
		v := g.patients[g.rng.IntN(len(g.patients))]
		g.vips = append(g.vips, v)
		g.sensitive[v] = true
		g.facts.AddVIP(v)
	}
	// Staff: the role mix varies with the seed.
	clerks := c.Staff * (10 + g.rng.IntN(8)) / 100
	others := c.Staff * (10 + g.rng.IntN(10)) / 100
	for i := range c.Staff {
		p := &person{id: fmt.Sprintf("u-%04d", i), role: roleClinician}
		dept := g.rng.IntN(40)
		p.source = fmt.Sprintf("10.20.%d.%d", dept, 10+g.rng.IntN(200))
		switch {
		case i < clerks:
			p.role, p.rate = roleClerk, 15+g.rng.IntN(30)
			if i < 2 {
				p.rate = 70 + g.rng.IntN(40) // registration desk: heavy, every day
			}
		case i < clerks+others:
			p.role, p.rate = roleOther, 3+g.rng.IntN(6)
		default:
			p.night = g.rng.IntN(4) == 0
			p.rate = 6 + g.rng.IntN(14)
		}
		g.staff = append(g.staff, p)
	}
	// Staff who are patients too, and each one's namesakes or neighbours.
	for _, p := range g.staff {
		if g.rng.IntN(12) == 0 {
			pt := g.patients[g.rng.IntN(len(g.patients))]
			g.staffPat[p.id] = pt
			g.sensitive[pt] = true
			g.facts.AddSelf(p.id, pt)
		}
		for range 1 + g.rng.IntN(2) {
			pt := g.patients[g.rng.IntN(len(g.patients))]
			g.neighbours[p.id] = append(g.neighbours[p.id], pt)
			g.sensitive[pt] = true
			g.facts.AddColleague(p.id, pt)
		}
	}
	for id, pt := range g.staffPat {
		for _, q := range g.staff {
			if q.id != id {
				g.facts.AddColleague(q.id, pt)
			}
		}
	}
	// Care teams avoid the sensitive patients; three clinicians treat the
	// VIPs and are exempt from the vip rule.
	for _, p := range g.staff {
		if p.role == roleClinician {
			for len(p.care) < 25+g.rng.IntN(15) {
				p.care = append(p.care, g.ordinary())
			}
		}
	}
	for _, p := range g.staff[len(g.staff)-3:] {
		p.care = append(p.care, g.vips...)
		g.vipTeam = append(g.vipTeam, p.id)
	}
	// Patients using the portal; one VIP among them.
	for i := range 300 {
		pt := g.patients[g.rng.IntN(len(g.patients))]
		if i == 0 {
			pt = g.vips[0]
		}
		u := &patientUser{id: fmt.Sprintf("pu-%04d", i), patient: pt}
		g.facts.AddSelf(u.id, pt)
		g.portal = append(g.portal, u)
	}
	// Services with steady volumes.
	inpatients := make([]string, 0, 2000)
	for len(inpatients) < 2000 {
		inpatients = append(inpatients, g.ordinary())
	}
	always := func(int) bool { return true }
	g.services = []*service{
		{id: "svc-lab", source: "10.99.0.10", rate: 120 + g.rng.IntN(80), pool: inpatients, active: always},
		{id: "svc-pharmacy", source: "10.99.0.11", rate: 60 + g.rng.IntN(40), pool: inpatients, active: always},
		{id: "svc-billing", source: "10.99.0.12", rate: 250 + g.rng.IntN(200), active: func(h int) bool {
			wd, hh := g.weekday(h), h%24
			return wd >= time.Monday && wd <= time.Friday && hh >= 9 && hh < 17
		}},
		{id: "svc-registry", source: "10.99.0.13", rate: 600 + g.rng.IntN(300), export: true, active: func(h int) bool { return h%24 == 2 }},
	}
	g.shifts()
}

// ordinary returns a random patient outside the sensitive ones.
func (g *gen) ordinary() string {
	for {
		p := g.patients[g.rng.IntN(len(g.patients))]
		if !g.sensitive[p] {
			return p
		}
	}
}

func (g *gen) weekday(h int) time.Weekday {
	return g.cfg.Start.Add(time.Duration(h) * time.Hour).Weekday()
}

// shifts lays out every person's shifts: clinicians four twelve-hour
// shifts a week (day 07-19 or night 19-07), clerks and others weekdays
// 08-17; starts vary by an hour and some shifts run over by one or two.
func (g *gen) shifts() {
	total := g.cfg.Days * 24
	g.hours = make([][]*person, total+48)
	for _, p := range g.staff {
		offset := g.rng.IntN(7)
		for d := range g.cfg.Days {
			var start, length int
			switch p.role {
			case roleClinician:
				if (d+offset)%7 >= 4 {
					continue
				}
				start, length = 7, 12
				if p.night {
					start = 19
				}
			default:
				wd := g.weekday(d * 24)
				if wd == time.Saturday || wd == time.Sunday {
					continue
				}
				start, length = 8, 9
			}
			from := d*24 + start + g.rng.IntN(3) - 1
			to := from + length
			switch r := g.rng.IntN(100); {
			case r < 3:
				to += 2
			case r < 12:
				to++
			}
			p.shifts = append(p.shifts, shift{from, to})
			for h := from; h < to && h < len(g.hours); h++ {
				g.hours[h] = append(g.hours[h], p)
			}
		}
	}
}

// shiftOf returns p's shift holding hour h.
func (p *person) shiftOf(h int) (shift, bool) {
	for _, s := range p.shifts {
		if h >= s.from && h < s.to {
			return s, true
		}
	}
	return shift{}, false
}

// entry is an entry of p at time at.
func (g *gen) entry(p *person, at time.Time, action, typ, patient string) ledger.Entry {
	return ledger.Entry{
		Time: at, Actor: p.id, Client: "ehr", Source: p.source, Action: action, ResourceType: typ,
		ResourceID: g.resID(), Patient: patient, Outcome: "success", Detail: "200", Token: p.token,
	}
}

func (g *gen) resID() string { return fmt.Sprintf("r%08x", g.rng.Uint32()) }

// hour produces the benign traffic of absolute hour h.
func (g *gen) hour(h int) {
	for _, p := range g.hours[h] {
		g.work(p, h)
	}
	for _, s := range g.services {
		if s.active(h) {
			g.serve(s, h)
		}
	}
	for _, u := range g.portal {
		if g.rng.IntN(24*12) == 0 && h%24 >= 6 {
			g.portalVisit(u, h)
		}
	}
	g.background(h)
}

// signIn starts p's shift: a sign-in (after a typo now and then) and a
// fresh token.
func (g *gen) signIn(p *person, h int, end int) {
	at := g.at(h, g.rng.IntN(600))
	if g.rng.IntN(30) == 0 {
		g.add(ledger.Entry{Time: at.Add(-20 * time.Second), Actor: p.id, Client: "ehr", Source: p.source, Action: "signin", Outcome: "denied", Detail: "wrong-password"}, nil)
	}
	g.add(ledger.Entry{Time: at, Actor: p.id, Client: "ehr", Source: p.source, Action: "signin", Outcome: "success", Detail: "ok"}, nil)
	p.token, p.tokenEnd = g.token(), end
}

// work is one hour of p's shift.
func (g *gen) work(p *person, h int) {
	s, _ := p.shiftOf(h)
	if h == s.from || p.token == "" || p.tokenEnd != s.to {
		g.signIn(p, h, s.to)
	}
	switch p.role {
	case roleClinician:
		if h == s.from && g.rng.IntN(10) < 3 { // the care team changes a little
			p.care[g.rng.IntN(len(p.care))] = g.ordinary()
		}
		focus := make([]string, 0, 8)
		for range 3 + g.rng.IntN(6) {
			focus = append(focus, p.care[g.rng.IntN(len(p.care))])
		}
		for range p.rate/2 + g.rng.IntN(p.rate+1) {
			pt := focus[g.rng.IntN(len(focus))]
			at := g.in(h)
			switch r := g.rng.IntN(100); {
			case r < 60:
				g.add(g.entry(p, at, "read", pick(g, "Observation", "Patient", "MedicationRequest", "Condition"), pt), nil)
			case r < 88:
				e := g.entry(p, at, "search", pick(g, "Observation", "MedicationRequest", "DiagnosticReport"), "")
				e.ResourceID, e.Query = "", []string{"patient"}
				e.SetAsked([]string{pt})
				if g.rng.IntN(12) != 0 { // most searches find something
					e.SetPatients([]string{pt})
				}
				g.add(e, nil)
			default:
				g.add(g.entry(p, at, pick(g, "create", "update"), "Observation", pt), nil)
			}
		}
	case roleClerk:
		for range p.rate*3/4 + g.rng.IntN(p.rate/2+1) {
			g.add(g.entry(p, g.in(h), "read", "Patient", g.ordinary()), nil)
		}
		if g.rng.IntN(3) == 0 {
			e := g.entry(p, g.in(h), "search", "Patient", "")
			e.ResourceID, e.Query = "", []string{"family", "given"}
			var found []string
			for range 1 + g.rng.IntN(4) {
				found = append(found, g.ordinary())
			}
			e.SetPatients(found)
			g.add(e, nil)
		}
	default:
		for range p.rate {
			g.add(g.entry(p, g.in(h), "read", pick(g, "MedicationRequest", "Observation"), g.services[0].pool[g.rng.IntN(len(g.services[0].pool))]), nil)
		}
	}
}

func pick(g *gen, xs ...string) string { return xs[g.rng.IntN(len(xs))] }

// serve is one hour of a service.
func (g *gen) serve(s *service, h int) {
	tok := g.token()
	base := ledger.Entry{Actor: s.id, Client: s.id, Source: s.source, Outcome: "success", Detail: "200", Token: tok}
	if s.export {
		e := base
		e.Time, e.Action = g.at(h, 5), "export-request"
		g.add(e, nil)
		e.Time, e.Action, e.Detail = g.at(h, 900+g.rng.IntN(600)), "export", "export-job="+g.id("job-")
		var ps []string
		for range s.rate {
			ps = append(ps, g.ordinary())
		}
		e.SetPatients(ps)
		g.add(e, nil)
		return
	}
	n := s.rate*4/5 + g.rng.IntN(s.rate*2/5+1)
	for range n {
		e := base
		e.Time, e.ResourceID = g.in(h), g.resID()
		if s.pool != nil {
			e.Patient = s.pool[g.rng.IntN(len(s.pool))]
		} else {
			e.Patient = g.ordinary()
		}
		if g.rng.IntN(2) == 0 {
			e.Action, e.ResourceType = "read", "Observation"
		} else {
			e.Action, e.ResourceType, e.Query = "search", "Encounter", []string{"patient"}
			e.ResourceID = ""
			e.SetAsked([]string{e.Patient})
		}
		g.add(e, nil)
	}
}

// portalVisit is a patient reading their own record from home.
func (g *gen) portalVisit(u *patientUser, h int) {
	src := fmt.Sprintf("100.%d.%d.%d", 64+g.rng.IntN(60), g.rng.IntN(256), 1+g.rng.IntN(254))
	tok := g.token()
	start := g.rng.IntN(3000)
	g.add(ledger.Entry{Time: g.at(h, start), Actor: u.id, Client: "portal", Source: src, Action: "signin", Outcome: "success", Detail: "ok"}, nil)
	for i := range 3 + g.rng.IntN(6) {
		g.add(ledger.Entry{Time: g.at(h, start+10+i*30), Actor: u.id, Client: "portal", Source: src, Action: "read",
			ResourceType: pick(g, "Observation", "Patient", "Immunization"), ResourceID: g.resID(), Patient: u.patient,
			Outcome: "success", Detail: "200", Token: tok}, nil)
	}
}

// background is the rest of a working hospital: a stray refused read,
// an occasional legitimate break-the-glass.
func (g *gen) background(h int) {
	on := g.hours[h]
	if len(on) == 0 {
		return
	}
	if g.rng.IntN(12) == 0 { // a click on a patient outside the care team
		p := on[g.rng.IntN(len(on))]
		if p.role == roleClinician {
			e := g.entry(p, g.in(h), "read", "Patient", g.ordinary())
			e.Outcome, e.Detail = "denied", "outside-compartment"
			g.add(e, nil)
		}
	}
	if g.rng.IntN(72) == 0 { // about one break-the-glass every three days
		p := on[g.rng.IntN(len(on))]
		if p.role == roleClinician {
			pt := g.ordinary()
			if len(p.grants) > 0 && g.rng.IntN(4) == 0 {
				pt = p.grants[g.rng.IntN(len(p.grants))] // the same patient again: repeat=1
			}
			g.breakGlass(p, h, g.rng.IntN(1800), pt, nil)
		}
	}
}

// breakGlass is a grant to p for patient pt at second s of hour h and
// the reads it allows.
func (g *gen) breakGlass(p *person, h, s int, pt string, ep *Episode) {
	repeat := 0
	for _, q := range p.grants {
		if q == pt {
			repeat++
		}
	}
	p.grants = append(p.grants, pt)
	grant := g.id("g-")
	e := g.entry(p, g.at(h, s), "emergency-grant", "", pt)
	e.ResourceID, e.Purpose, e.Detail = "", "BTG", grant
	if repeat > 0 {
		e.Detail += fmt.Sprintf(" repeat=%d", repeat)
	}
	g.add(e, ep)
	for i := range 3 + g.rng.IntN(4) {
		r := g.entry(p, g.at(h, s+60+i*90), "read", pick(g, "Observation", "Patient", "AllergyIntolerance"), pt)
		r.Purpose, r.Detail = "BTG", "200 btg-grant="+grant
		g.add(r, ep)
	}
}

// clinicians returns the clinicians (day shift when day is set) outside
// the VIP team, in a fixed order.
func (g *gen) clinicians(day bool) []*person {
	var out []*person
	for _, p := range g.staff {
		if p.role == roleClinician && !slices.Contains(g.vipTeam, p.id) && (!day || !p.night) {
			out = append(out, p)
		}
	}
	return out
}
