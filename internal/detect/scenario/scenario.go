// Package scenario generates labelled audit traffic for the detector:
// a simulated hospital (staff on shifts reading their care teams' records,
// clerks with broad reach, services with steady volumes, patients reading
// their own records, sign-ins with the odd typo, occasional legitimate
// break-the-glass) with malicious episodes planted in it, each labelled
// with the rules that must fire, and benign hard cases labelled with the
// rules they are expected to set off wrongly. The traffic is a pure
// function of the Config (seed included), produced as canonical ledger
// entries in ledger order, so it can be replayed, exported as JSON lines
// and appended to a real ledger by a drill.
//
// Score matches a detector's alerts against the labels and reports
// precision and recall per rule. Patient ids, actor ids and addresses
// here are synthetic; nothing in this package is PHI.
package scenario

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/wardhealth/ward/internal/detect"
	"github.com/wardhealth/ward/internal/ledger"
)

// Config sizes a scenario. Zero values mean the defaults.
type Config struct {
	Seed     uint64
	Days     int       // default 30
	Staff    int       // default 200
	Patients int       // default 20000
	Start    time.Time // default 2025-01-06T00:00:00Z, a Monday
	// WarmupDays: no episode is planted before, and Score ignores the
	// alerts of this period, as the runner replays history before its
	// cursor without saving alerts. Default 8.
	WarmupDays int
}

func (c Config) withDefaults() Config {
	c.Days = cmp.Or(c.Days, 30)
	c.Staff = cmp.Or(c.Staff, 200)
	c.Patients = cmp.Or(c.Patients, 20000)
	if c.Start.IsZero() {
		c.Start = time.Date(2025, 1, 6, 0, 0, 0, 0, time.UTC)
	}
	c.WarmupDays = cmp.Or(c.WarmupDays, 8)
	return c
}

// Episode is a labelled stretch of traffic: malicious (Rules must fire)
// or a benign hard case (Rules are expected to fire wrongly: false
// positives the suite shows rather than hides).
type Episode struct {
	Name      string   `json:"name"`
	Malicious bool     `json:"malicious"`
	Rules     []string `json:"rules"`          // malicious: must fire; hard case: expected to fire
	Also      []string `json:"also,omitempty"` // may fire too, correctly
	// Who: an actor, a source, or every source (Global) for distributed
	// credential stuffing.
	Actor  string `json:"actor,omitempty"`
	Source string `json:"source,omitempty"`
	Global bool   `json:"global,omitempty"`
	// The ledger indexes and times of its first and last entries.
	First   int64     `json:"first"`
	Last    int64     `json:"last"`
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	Entries int       `json:"entries"`
}

// Traffic is what Generate produced besides the entries.
type Traffic struct {
	Config   Config
	Entries  int64
	Episodes []*Episode
	// Facts knows the synthetic colleagues, namesakes, neighbours, VIPs
	// and patient users.
	Facts *detect.MemoryFacts
	// Detect is the detector configuration the hospital would run: its
	// VIPs' treating team exempt, its own address space one network.
	Detect detect.Config
	// EvalFrom is the end of the warm-up.
	EvalFrom time.Time
}

// Scenario is a generated hospital, ready to emit its traffic once.
type Scenario struct {
	Traffic
	g    *gen
	done bool
}

// New lays out the scenario of cfg: its people, facts and episodes.
// Episode ranges are known once Emit has run.
func New(cfg Config) *Scenario {
	cfg = cfg.withDefaults()
	g := newGen(cfg)
	g.populate()
	g.plan()
	return &Scenario{g: g, Traffic: Traffic{
		Config: cfg, Episodes: g.episodes, Facts: g.facts, Detect: g.detectConfig(),
		EvalFrom: cfg.Start.Add(time.Duration(cfg.WarmupDays) * 24 * time.Hour),
	}}
}

// Emit produces the traffic, calling emit for each entry in ledger order
// with its index, and stops at emit's first error. It runs once.
func (s *Scenario) Emit(emit func(idx int64, e ledger.Entry) error) error {
	if s.done {
		return errors.New("scenario: traffic already emitted")
	}
	s.done = true
	if err := s.g.run(emit); err != nil {
		return err
	}
	s.Entries = s.g.idx
	for _, ep := range s.Episodes {
		if ep.Entries == 0 {
			return fmt.Errorf("scenario: episode %s produced no entries", ep.Name)
		}
	}
	return nil
}

// Generate is New and Emit.
func Generate(cfg Config, emit func(idx int64, e ledger.Entry) error) (*Traffic, error) {
	s := New(cfg)
	if err := s.Emit(emit); err != nil {
		return nil, err
	}
	return &s.Traffic, nil
}

// WriteJSONL writes the traffic of cfg as JSON lines, one canonical
// entry encoding (ledger.Entry.Encode) per line, in ledger order, and
// returns the labels.
func WriteJSONL(w io.Writer, cfg Config) (*Traffic, error) {
	bw := bufio.NewWriterSize(w, 1<<16)
	tr, err := Generate(cfg, func(_ int64, e ledger.Entry) error {
		b, err := e.Encode()
		if err != nil {
			return err
		}
		_, _ = bw.Write(b)
		return bw.WriteByte('\n')
	})
	if err != nil {
		return nil, err
	}
	return tr, bw.Flush()
}

// ReadJSONL replays JSON lines written by WriteJSONL.
func ReadJSONL(r io.Reader, fn func(idx int64, e ledger.Entry) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<16), ledger.MaxEntrySize+1)
	var i int64
	for sc.Scan() {
		e, err := ledger.DecodeEntry(sc.Bytes())
		if err != nil {
			return fmt.Errorf("scenario: line %d: %w", i+1, err)
		}
		if err := fn(i, e); err != nil {
			return err
		}
		i++
	}
	return sc.Err()
}

// WriteLabels writes the episodes as JSON.
func (t *Traffic) WriteLabels(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(t.Episodes)
}

// gen is the state of one generation.
type gen struct {
	cfg Config
	rng *rand.Rand

	facts    *detect.MemoryFacts
	patients []string
	// sensitive patients no benign care team or clerk picks: VIPs,
	// staff who are patients, staff's namesakes and neighbours.
	sensitive  map[string]bool
	vips       []string
	vipTeam    []string
	staff      []*person
	services   []*service
	portal     []*patientUser
	neighbours map[string][]string // staff id -> namesake or neighbour patients
	staffPat   map[string]string   // staff id -> own patient record

	hours    [][]*person // absolute hour -> staff on shift
	specials map[int][]func(h int)
	episodes []*Episode

	buf []tagged
	idx int64
	seq uint64 // ids for grants, tokens
}

type tagged struct {
	e  ledger.Entry
	ep *Episode
}

func newGen(cfg Config) *gen {
	return &gen{
		cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)), // #nosec G404 -- a seeded, replayable drill scenario: determinism is the point, nothing secret
		facts: &detect.MemoryFacts{}, sensitive: map[string]bool{}, neighbours: map[string][]string{},
		staffPat: map[string]string{}, specials: map[int][]func(int){},
	}
}

// at is the time of second s of absolute hour h.
func (g *gen) at(h int, s int) time.Time {
	return g.cfg.Start.Add(time.Duration(h)*time.Hour + time.Duration(s)*time.Second)
}

// in returns a random time within absolute hour h.
func (g *gen) in(h int) time.Time { return g.at(h, g.rng.IntN(3600)) }

func (g *gen) add(e ledger.Entry, ep *Episode) { g.buf = append(g.buf, tagged{e, ep}) }

func (g *gen) schedule(h int, fn func(h int)) { g.specials[h] = append(g.specials[h], fn) }

// run produces every hour's entries, sorted by time, and emits them.
func (g *gen) run(emit func(int64, ledger.Entry) error) error {
	for h := range g.cfg.Days * 24 {
		g.buf = g.buf[:0]
		g.hour(h)
		for _, fn := range g.specials[h] {
			fn(h)
		}
		slices.SortStableFunc(g.buf, func(a, b tagged) int { return a.e.Time.Compare(b.e.Time) })
		for _, t := range g.buf {
			if ep := t.ep; ep != nil {
				if ep.Entries == 0 {
					ep.First, ep.From = g.idx, t.e.Time
				}
				ep.Last, ep.To = g.idx, t.e.Time
				ep.Entries++
			}
			if err := emit(g.idx, t.e); err != nil {
				return err
			}
			g.idx++
		}
	}
	return nil
}

func (g *gen) id(prefix string) string {
	g.seq++
	return fmt.Sprintf("%s%x", prefix, g.seq*0x9e3779b1%0xffffffff)
}

func (g *gen) token() string {
	g.seq++
	return fmt.Sprintf("hmac:%016x", g.rng.Uint64())
}

func (g *gen) detectConfig() detect.Config {
	return detect.Config{
		VIP:          detect.VIPConfig{Exempt: slices.Clone(g.vipTeam)},
		TokenSources: detect.TokenSourcesConfig{SameNetworks: []string{"10.0.0.0/8"}},
	}
}
