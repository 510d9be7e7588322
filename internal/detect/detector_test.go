package detect

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/ledger"
)

var t0 = time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC) // a Monday

// feed is a detector under test that collects the latest version of
// every alert and checks each one for patient ids.
type feed struct {
	t      *testing.T
	d      *Detector
	idx    int64
	alerts map[string]Alert
	order  []string
	ids    []string // patient ids fed, none of which may appear in an alert
}

func newFeed(t *testing.T, cfg Config, facts Facts) *feed {
	t.Helper()
	if facts == nil {
		facts = &MemoryFacts{}
	}
	d, err := New(cfg, facts)
	if err != nil {
		t.Fatal(err)
	}
	return &feed{t: t, d: d, alerts: map[string]Alert{}}
}

func (f *feed) add(es ...ledger.Entry) {
	f.t.Helper()
	for _, e := range es {
		f.ids = append(f.ids, e.Patient)
		f.ids = append(f.ids, e.Patients...)
		f.ids = append(f.ids, e.Asked...)
		for _, a := range f.d.Observe(f.idx, e) {
			if _, ok := f.alerts[a.Key]; !ok {
				f.order = append(f.order, a.Key)
			}
			f.alerts[a.Key] = a
		}
		f.idx++
	}
}

// rule returns the alerts of one rule, in the order first raised.
func (f *feed) rule(r string) []Alert {
	f.t.Helper()
	var out []Alert
	for _, k := range f.order {
		a := f.alerts[k]
		for _, id := range f.ids {
			if id != "" && (strings.Contains(a.Summary, id) || strings.Contains(a.Key, id)) {
				f.t.Fatalf("alert %s names patient %q", a.Key, id)
			}
		}
		if a.Rule == r {
			out = append(out, a)
		}
	}
	return out
}

func read(actor string, at time.Time, patient string) ledger.Entry {
	return ledger.Entry{Time: at, Actor: actor, Client: "ehr", Source: "10.1.1.5", Action: "read",
		ResourceType: "Observation", ResourceID: "o-" + patient, Patient: patient, Outcome: "success", Detail: "200"}
}

func pid(i int) string { return fmt.Sprintf("pat-%04d", i) }

func TestManyPatients(t *testing.T) {
	f := newFeed(t, Config{}, nil)
	for i := range 60 {
		f.add(read("nurse-1", t0.Add(9*time.Hour+time.Duration(i)*30*time.Second), pid(i)))
	}
	got := f.rule(RuleManyPatients)
	if len(got) != 1 {
		t.Fatalf("got %d alerts, want 1 updated alert: %+v", len(got), got)
	}
	a := got[0]
	if a.Actor != "nurse-1" || a.Count != 60 || len(a.Evidence) != 50 || a.Evidence[0] != 0 || a.Last != t0.Add(9*time.Hour+59*30*time.Second) {
		t.Errorf("alert %+v", a)
	}
	if !strings.Contains(a.Summary, "read 60 distinct patients") {
		t.Errorf("summary %q", a.Summary)
	}

	// 50 distinct patients is not more than 50: nothing.
	f = newFeed(t, Config{}, nil)
	for i := range 50 {
		f.add(read("nurse-1", t0.Add(time.Duration(i)*time.Minute), pid(i)))
		f.add(read("nurse-1", t0.Add(time.Duration(i)*time.Minute+time.Second), pid(i)))
	}
	if got := f.rule(RuleManyPatients); len(got) != 0 {
		t.Fatalf("alert at the threshold: %+v", got)
	}
}

// A clerk who reads 40 patients an hour every day has a baseline: 70 in
// an hour is not far above it, 130 is, and 201 passes the ceiling
// whatever the baseline.
func TestManyPatientsBaseline(t *testing.T) {
	for _, tc := range []struct {
		usual, today int
		want         bool
	}{
		{40, 70, false},
		{40, 130, true},
		{80, 201, true},
		{80, 190, false},
	} {
		t.Run(fmt.Sprint(tc.usual, "-", tc.today), func(t *testing.T) {
			f := newFeed(t, Config{}, nil)
			n := 0
			for dd := range 3 {
				for h := 8; h < 16; h++ {
					for i := range tc.usual {
						at := t0.Add(time.Duration(dd)*24*time.Hour + time.Duration(h)*time.Hour + time.Duration(i)*time.Hour/time.Duration(tc.usual))
						f.add(read("clerk", at, pid(n%5000)))
						n++
					}
				}
			}
			day4 := t0.Add(3*24*time.Hour + 9*time.Hour)
			for _, a := range f.rule(RuleManyPatients) {
				// Until the baseline is warm (8 active hours), 50 alone decides.
				if a.Last.After(t0.Add(16 * time.Hour)) {
					t.Fatalf("alert after warm-up: %+v", a)
				}
			}
			learning := len(f.rule(RuleManyPatients))
			for i := range tc.today {
				f.add(read("clerk", day4.Add(time.Duration(i)*time.Hour/time.Duration(tc.today+1)), pid(6000+i)))
			}
			if got := len(f.rule(RuleManyPatients)) > learning; got != tc.want {
				t.Fatalf("alert %v, want %v (baseline %.1f)", got, tc.want, f.d.actors["clerk"].base)
			}
		})
	}
}

func TestUnrelatedPatient(t *testing.T) {
	btg := func(at time.Time, p string) ledger.Entry {
		e := read("dr-1", at, p)
		e.Purpose, e.Detail = "BTG", "200 btg-grant=g1"
		return e
	}
	f := newFeed(t, Config{}, nil)
	f.add(btg(t0, pid(1)), btg(t0.Add(time.Hour), pid(2)), btg(t0.Add(2*time.Hour), pid(2)))
	if got := f.rule(RuleUnrelatedPatient); len(got) != 0 {
		t.Fatalf("two break-the-glass patients alerted: %+v", got)
	}
	f.add(btg(t0.Add(3*time.Hour), pid(3)))
	if got := f.rule(RuleUnrelatedPatient); len(got) != 1 || got[0].Count != 4 {
		t.Fatalf("three break-the-glass patients: %+v", got)
	}

	f = newFeed(t, Config{}, nil)
	grant := ledger.Entry{Time: t0, Actor: "dr-1", Client: "ehr", Action: "emergency-grant", Patient: pid(1), Outcome: "success", Purpose: "BTG", Detail: "g7 repeat=1"}
	f.add(grant)
	if got := f.rule(RuleUnrelatedPatient); len(got) != 0 {
		t.Fatalf("one repeat alerted: %+v", got)
	}
	grant.Detail, grant.Time = "g8 repeat=2", t0.Add(time.Hour)
	f.add(grant)
	if got := f.rule(RuleUnrelatedPatient); len(got) != 1 || !strings.Contains(got[0].Summary, "granted 2 time(s) before") {
		t.Fatalf("repeat=2: %+v", got)
	}

	f = newFeed(t, Config{}, nil)
	for i := range 5 {
		e := read("dr-2", t0.Add(time.Duration(i)*time.Minute), pid(i))
		e.Outcome, e.Detail = "denied", "outside-compartment"
		f.add(e)
		if got := len(f.rule(RuleUnrelatedPatient)); got != map[bool]int{true: 1, false: 0}[i == 4] {
			t.Fatalf("after %d refusals: %d alerts", i+1, got)
		}
	}
}

func TestOffHours(t *testing.T) {
	f := newFeed(t, Config{}, nil)
	for dd := range 10 {
		for h := 9; h < 17; h++ {
			f.add(read("dr-3", t0.Add(time.Duration(dd)*24*time.Hour+time.Duration(h)*time.Hour), pid(h)))
		}
	}
	f.add(read("dr-3", t0.Add(10*24*time.Hour+17*time.Hour+30*time.Minute), pid(1))) // an hour past the usual end
	if got := f.rule(RuleOffHours); len(got) != 0 {
		t.Fatalf("alert next to usual hours: %+v", got)
	}
	f.add(read("dr-3", t0.Add(11*24*time.Hour+3*time.Hour), pid(1)))
	f.add(read("dr-3", t0.Add(11*24*time.Hour+3*time.Hour+time.Minute), pid(2)))
	got := f.rule(RuleOffHours)
	if len(got) != 1 || got[0].Count != 2 {
		t.Fatalf("03:00: %+v", got)
	}

	// In another zone, 03:00 UTC is 12:00: usual hours there.
	g := newFeed(t, Config{OffHours: OffHoursConfig{Timezone: "Asia/Tokyo"}}, nil)
	for dd := range 10 {
		for h := 9; h < 17; h++ {
			g.add(read("dr-3", t0.Add(time.Duration(dd)*24*time.Hour+time.Duration(h-9)*time.Hour), pid(h)))
		}
	}
	g.add(read("dr-3", t0.Add(11*24*time.Hour+3*time.Hour), pid(1)))
	if got := g.rule(RuleOffHours); len(got) != 0 {
		t.Fatalf("zone ignored: %+v", got)
	}
}

func TestColleagueAndVIP(t *testing.T) {
	facts := &MemoryFacts{}
	facts.AddColleague("nurse-2", "pat-nb")
	facts.AddVIP("star")
	facts.AddSelf("star-user", "star")
	f := newFeed(t, Config{VIP: VIPConfig{Exempt: []string{"dr-star"}}}, facts)
	f.add(read("nurse-2", t0, "other"), read("nurse-3", t0, "pat-nb"))
	if got := f.rule(RuleColleague); len(got) != 0 {
		t.Fatalf("no colleague read, yet %+v", got)
	}
	f.add(read("nurse-2", t0.Add(time.Minute), "pat-nb"))
	if got := f.rule(RuleColleague); len(got) != 1 || got[0].Actor != "nurse-2" {
		t.Fatalf("colleague: %+v", got)
	}
	f.add(read("dr-star", t0, "star"), read("star-user", t0, "star"))
	search := ledger.Entry{Time: t0, Actor: "svc", Client: "svc", Action: "search", Outcome: "success", Patients: []string{"pat-a", "star"}}
	f.add(search) // a service, and services are not watched by default
	if got := f.rule(RuleVIP); len(got) != 0 {
		t.Fatalf("exempt, self or service alerted: %+v", got)
	}
	denied := read("clerk-9", t0, "star")
	denied.Outcome = "denied"
	f.add(denied)
	if got := f.rule(RuleVIP); len(got) != 1 || got[0].Actor != "clerk-9" || !strings.Contains(got[0].Summary, "was refused") {
		t.Fatalf("vip: %+v", got)
	}

	// Disabled rules need no Facts.
	cfg := Config{VIP: VIPConfig{Common: Common{Disabled: true}}, Colleague: ColleagueConfig{Common: Common{Disabled: true}}}
	if _, err := New(cfg, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{}, nil); err == nil {
		t.Fatal("New without Facts with the vip rule on")
	}
}

func TestServiceVolume(t *testing.T) {
	f := newFeed(t, Config{}, nil)
	svc := func(at time.Time, p string) ledger.Entry {
		e := read("lab", at, p)
		e.Client = "lab"
		return e
	}
	n := 0
	for h := range 4 * 24 {
		for i := range 150 {
			f.add(svc(t0.Add(time.Duration(h)*time.Hour+time.Duration(i)*20*time.Second), pid(n%3000)))
			n++
		}
	}
	if got := f.rule(RuleServiceVolume); len(got) != 0 {
		t.Fatalf("steady volume alerted: %+v", got[0])
	}
	start := t0.Add(4 * 24 * time.Hour)
	for i := range 600 {
		f.add(svc(start.Add(time.Duration(i)*5*time.Second), pid(10000+i)))
	}
	got := f.rule(RuleServiceVolume)
	if len(got) != 1 || got[0].Actor != "lab" || !strings.Contains(got[0].Key, "service-volume|lab|") {
		t.Fatalf("4x volume: %+v", got)
	}
}

func TestDenialBurst(t *testing.T) {
	f := newFeed(t, Config{}, nil)
	for i := range 19 {
		e := read("app-user", t0.Add(time.Duration(i)*10*time.Second), pid(1))
		e.Outcome, e.Detail = "denied", "403"
		f.add(e)
	}
	if got := f.rule(RuleDenialBurst); len(got) != 0 {
		t.Fatalf("19 refusals: %+v", got)
	}
	e := read("app-user", t0.Add(4*time.Minute), pid(1))
	e.Outcome = "denied"
	f.add(e)
	if got := f.rule(RuleDenialBurst); len(got) != 1 || got[0].Count != 20 || got[0].Source != "" {
		t.Fatalf("20 refusals: %+v", got)
	}

	// Callers that proved no one: by source, with aggregated counts.
	f = newFeed(t, Config{}, nil)
	first := ledger.Entry{Time: t0, Actor: "", Source: "203.0.113.9", Action: "read", Outcome: "denied", Detail: "401"}
	summary := first
	summary.Time, summary.Detail = t0.Add(4*time.Minute), "aggregated count=40 window=x first=r1 of=401"
	f.add(first, summary)
	if got := f.rule(RuleDenialBurst); len(got) != 1 || got[0].Source != "203.0.113.9" || !strings.Contains(got[0].Summary, "41 refusals") {
		t.Fatalf("aggregated: %+v", got)
	}
}

func TestCredentialStuffing(t *testing.T) {
	signin := func(at time.Time, account, src string) ledger.Entry {
		return ledger.Entry{Time: at, Actor: account, Client: "portal", Source: src, Action: "signin", Outcome: "denied", Detail: "wrong-password"}
	}
	f := newFeed(t, Config{}, nil)
	for i := range 9 {
		f.add(signin(t0.Add(time.Duration(i)*time.Second), fmt.Sprintf("user-%d", i), "198.51.100.7"))
	}
	if got := f.rule(RuleCredentialStuffing); len(got) != 0 {
		t.Fatalf("9 accounts: %+v", got)
	}
	f.add(signin(t0.Add(10*time.Second), "hmac:0123", "198.51.100.7"))
	if got := f.rule(RuleCredentialStuffing); len(got) != 1 || got[0].Source != "198.51.100.7" {
		t.Fatalf("10 accounts: %+v", got)
	}

	// Many sources, few accounts each.
	f = newFeed(t, Config{}, nil)
	for s := range 10 {
		for a := range 3 {
			f.add(signin(t0.Add(time.Duration(s*3+a)*10*time.Second), fmt.Sprintf("user-%d-%d", s, a), fmt.Sprintf("192.0.2.%d", s)))
		}
	}
	got := f.rule(RuleCredentialStuffing)
	if len(got) != 1 || !strings.Contains(got[0].Key, "|*|") || got[0].Source != "" {
		t.Fatalf("distributed: %+v", got)
	}
}

func TestTokenTwoSources(t *testing.T) {
	use := func(at time.Time, src string) ledger.Entry {
		e := read("dr-4", at, pid(1))
		e.Token, e.Source = "hmac:tok", src
		return e
	}
	for _, tc := range []struct {
		name    string
		cfg     Config
		a, b    string
		gap     time.Duration
		alerted bool
	}{
		{"same /24", Config{}, "10.0.1.5", "10.0.1.77", time.Minute, false},
		{"two networks", Config{}, "10.0.1.5", "10.0.2.5", time.Minute, true},
		{"two networks, far apart in time", Config{}, "10.0.1.5", "10.0.2.5", 11 * time.Minute, false},
		{"one site", Config{TokenSources: TokenSourcesConfig{SameNetworks: []string{"10.0.0.0/8"}}}, "10.0.1.5", "10.9.2.5", time.Minute, false},
		{"IPv6 same /48", Config{}, "2001:db8:1:1::5", "2001:db8:1:2::5", time.Minute, false},
		{"IPv6 two /48", Config{}, "2001:db8:1::5", "2001:db8:2::5", time.Minute, true},
		{"mapped IPv4", Config{}, "::ffff:10.0.1.5", "10.0.1.6", time.Minute, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFeed(t, tc.cfg, nil)
			f.add(use(t0, tc.a), use(t0.Add(tc.gap), tc.b))
			got := f.rule(RuleTokenTwoSources)
			if (len(got) == 1) != tc.alerted || len(got) > 1 {
				t.Fatalf("alerts %+v, want alerted %v", got, tc.alerted)
			}
			if tc.alerted && (got[0].Source != tc.b || !reflect.DeepEqual(got[0].Evidence, []int64{0, 1})) {
				t.Fatalf("alert %+v", got[0])
			}
		})
	}
}

func TestSearchSnooping(t *testing.T) {
	f := newFeed(t, Config{}, nil)
	search := func(at time.Time, asked string, answered bool) ledger.Entry {
		e := ledger.Entry{Time: at, Actor: "dr-5", Client: "ehr", Action: "search", ResourceType: "Observation", Outcome: "success", Asked: []string{asked}, Query: []string{"patient"}}
		if answered {
			e.Patients = []string{asked, "zzz"}
		}
		return e
	}
	for i := range 20 {
		f.add(search(t0.Add(time.Duration(i)*time.Minute), pid(i), true))
	}
	for i := range 9 {
		f.add(search(t0.Add(time.Duration(30+i)*time.Minute), pid(100+i), false))
	}
	if got := f.rule(RuleSearchSnooping); len(got) != 0 {
		t.Fatalf("answered or few: %+v", got)
	}
	f.add(search(t0.Add(50*time.Minute), pid(200), false))
	if got := f.rule(RuleSearchSnooping); len(got) != 1 || got[0].Count != 10 {
		t.Fatalf("10 unanswered: %+v", got)
	}
}

// The same entries give the same alerts, keys included, whichever
// detector reads them; a second period gives a second key.
func TestDeterministicKeys(t *testing.T) {
	var es []ledger.Entry
	for i := range 120 {
		es = append(es, read("nurse-1", t0.Add(time.Duration(i)*time.Minute), pid(i)))
	}
	run := func() []Alert {
		f := newFeed(t, Config{}, nil)
		f.add(es...)
		return f.rule(RuleManyPatients)
	}
	a, b := run(), run()
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("two runs differ:\n%+v\n%+v", a, b)
	}
	if len(a) != 2 || a[0].Key != "many-patients|nurse-1|2025-03-03T00:00:00Z" || a[1].Key != "many-patients|nurse-1|2025-03-03T01:00:00Z" {
		t.Fatalf("keys: %+v", a)
	}
}

func TestDisabledRule(t *testing.T) {
	f := newFeed(t, Config{ManyPatients: ManyPatientsConfig{Common: Common{Disabled: true}}}, nil)
	for i := range 300 {
		f.add(read("nurse-1", t0.Add(time.Duration(i)*time.Second), pid(i)))
	}
	if got := f.rule(RuleManyPatients); len(got) != 0 {
		t.Fatalf("disabled rule alerted: %+v", got)
	}
}

// Memory is bounded: actors beyond MaxActors are forgotten, idle ones
// after IdleAfter, tokens after their window.
func TestBoundedState(t *testing.T) {
	f := newFeed(t, Config{MaxActors: 100, IdleAfter: Duration(48 * time.Hour)}, nil)
	for i := range 1000 {
		e := read(fmt.Sprintf("u-%d", i), t0.Add(time.Duration(i)*time.Second), pid(i))
		e.Token = fmt.Sprintf("hmac:t%d", i)
		f.add(e)
	}
	f.add(read("late", t0.Add(2*time.Hour), pid(1)))
	if n := len(f.d.actors); n > 100 {
		t.Fatalf("%d actors held", n)
	}
	if n := len(f.d.tokens); n != 0 {
		t.Fatalf("%d tokens held past their window", n)
	}
	f.add(read("later", t0.Add(60*time.Hour), pid(1)))
	if _, ok := f.d.actors["late"]; ok {
		t.Fatal("idle actor kept")
	}
}
