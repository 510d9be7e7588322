package loadgen

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-json-experiment/json/jsontext"
)

// maxPrintedFailures is how many failures are described in the output; the
// rest are only counted.
const maxPrintedFailures = 5

// failures counts failed requests and keeps the first few descriptions.
// Descriptions hold the phase, the resource type or search parameter, the
// status and the server's OperationOutcome diagnostics: no resource content.
type failures struct {
	mu    sync.Mutex
	n     int
	first []string
}

func (f *failures) add(phase, what string, status int, detail string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	if len(f.first) >= maxPrintedFailures {
		return
	}
	s := fmt.Sprintf("%s %s:", phase, what)
	if status != 0 {
		s += fmt.Sprintf(" status %d %s", status, http.StatusText(status))
	}
	if detail != "" {
		s += " (" + detail + ")"
	}
	f.first = append(f.first, s)
}

// outcome is what one job of a phase reports.
type outcome struct {
	sent      bool // a request was sent (counted in Requests and latencies)
	failed    bool
	resources int
	latency   time.Duration
}

// runPhase runs count jobs on workers goroutines. Jobs are numbered
// 0..count-1 and taken in order from a shared counter; the loop ends when all
// are taken or ctx is done. A job cut short by ctx is not counted.
func runPhase(ctx context.Context, name string, workers, count int, job func(ctx context.Context, i int) outcome) Phase {
	workers = max(1, min(workers, count))
	var next atomic.Int64
	type tally struct {
		requests, resources, errs int
		lat                       []time.Duration
	}
	tallies := make([]tally, workers)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			t := &tallies[w]
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(count) {
					return
				}
				o := job(ctx, int(i))
				if !o.sent || ctx.Err() != nil {
					continue
				}
				t.requests++
				t.resources += o.resources
				t.lat = append(t.lat, o.latency)
				if o.failed {
					t.errs++
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	var req, res, errs int
	var lat []time.Duration
	for _, t := range tallies {
		req += t.requests
		res += t.resources
		errs += t.errs
		lat = append(lat, t.lat...)
	}
	return summarize(name, req, res, errs, elapsed, lat)
}

// engine holds what the phases share.
type engine struct {
	s     settings
	c     *client
	fails *failures
}

// ref names one created resource.
type ref struct{ typ, id string }

// ingested is what the ingest phase learned: created resources in bundle
// order (so that seeded choices repeat across runs) and Patient ids.
type ingested struct {
	refs     []ref
	patients []string
}

func (e *engine) ingest(ctx context.Context, bundles []txBundle) (Phase, ingested) {
	order := slices.Clone(bundles)
	slices.SortStableFunc(order, func(a, b txBundle) int { return cmp.Compare(len(b.body), len(a.body)) })
	ids := make([][]string, len(order)) // per job; each slot written by one worker
	base := e.s.base.String()
	p := runPhase(ctx, "ingest", e.s.Concurrency, len(order), func(ctx context.Context, i int) outcome {
		b := order[i]
		what := fmt.Sprintf("bundle %d", b.index)
		r, err := e.c.do(ctx, http.MethodPost, base, b.body, true)
		o := outcome{sent: true, latency: r.latency}
		switch {
		case err != nil:
			if ctx.Err() == nil {
				e.fails.add("ingest", what, r.status, err.Error())
			}
			o.failed = true
		case r.status/100 != 2:
			e.fails.add("ingest", what, r.status, r.diag)
			o.failed = true
		default:
			got, err := parseTransactionResponse(r.body, b.types)
			if err != nil {
				e.fails.add("ingest", what, r.status, err.Error())
				o.failed = true
				break
			}
			ids[i] = got
			o.resources = len(got)
		}
		return o
	})
	// Collect in name order, whatever order the jobs ran in.
	byIndex := make(map[int][]string, len(order))
	for i, b := range order {
		byIndex[b.index] = ids[i]
	}
	var out ingested
	for _, b := range bundles {
		got := byIndex[b.index]
		if got == nil {
			continue // failed or not sent
		}
		for j, id := range got {
			out.refs = append(out.refs, ref{b.types[j], id})
		}
		for _, j := range b.patients {
			out.patients = append(out.patients, got[j])
		}
	}
	return p, out
}

// readPhase GETs created resources chosen at random until Reads requests
// are done. Choice j depends only on the seed and j.
func (e *engine) readPhase(ctx context.Context, refs []ref) Phase {
	if e.s.Reads < 0 || len(refs) == 0 {
		return Phase{Name: "read"}
	}
	return runPhase(ctx, "read", e.s.ReadConcurrency, e.s.Reads, func(ctx context.Context, i int) outcome {
		rng := rand.New(rand.NewPCG(e.s.Seed, uint64(i))) // #nosec G115 G404 -- a non-negative request index used as a PRNG stream id; seeded choice of what to read in a load run, nothing secret
		t := refs[rng.IntN(len(refs))]
		u := e.s.base.JoinPath(t.typ, t.id).String() // #nosec G125 -- type and id come from Location headers checked by validTypeAndID (TestValidTypeAndID)
		r, err := e.c.do(ctx, http.MethodGet, u, nil, false)
		o := outcome{sent: true, latency: r.latency}
		switch {
		case err != nil:
			if ctx.Err() == nil {
				e.fails.add("read", t.typ, r.status, err.Error())
			}
			o.failed = true
		case r.status/100 != 2:
			e.fails.add("read", t.typ, r.status, r.diag)
			o.failed = true
		default:
			o.resources = 1
		}
		return o
	})
}

// query is one kind of search: a resource type, the parameter, how a
// value becomes the parameter's argument, and the values to draw from.
type query struct {
	typ, param string
	format     func(string) string
	values     []string
	extra      url.Values
}

func searchKinds(sv searchValues, patients []string) []query {
	same := func(v string) string { return v }
	var qs []query
	if len(sv.families) > 0 {
		qs = append(qs, query{typ: "Patient", param: "family", format: same, values: sv.families})
	}
	if len(patients) > 0 {
		qs = append(qs, query{typ: "Observation", param: "subject",
			format: func(v string) string { return "Patient/" + v }, values: patients,
			extra: url.Values{"_count": {"50"}}})
	}
	if len(sv.loinc) > 0 {
		qs = append(qs, query{typ: "Observation", param: "code",
			format: func(v string) string { return "http://loinc.org|" + v }, values: sv.loinc})
	}
	if len(patients) > 0 {
		qs = append(qs, query{typ: "Encounter", param: "patient", format: same, values: patients})
	}
	return qs
}

// searchPhase runs Searches searches, cycling through the kinds of query;
// search j uses kind j mod len(kinds) and a value chosen from the seed and j.
func (e *engine) searchPhase(ctx context.Context, kinds []query) Phase {
	if e.s.Searches < 0 || len(kinds) == 0 {
		return Phase{Name: "search"}
	}
	return runPhase(ctx, "search", e.s.ReadConcurrency, e.s.Searches, func(ctx context.Context, i int) outcome {
		q := kinds[i%len(kinds)]
		rng := rand.New(rand.NewPCG(e.s.Seed^0x5eed, uint64(i))) // #nosec G115 G404 -- a non-negative request index used as a PRNG stream id; seeded choice of what to read in a load run, nothing secret
		v := url.Values{q.param: {q.format(q.values[rng.IntN(len(q.values))])}}
		for k, vs := range q.extra {
			v[k] = vs
		}
		u := e.s.base.JoinPath(q.typ) // #nosec G125 -- type and id come from Location headers checked by validTypeAndID (TestValidTypeAndID)
		u.RawQuery = v.Encode()
		what := q.typ + "?" + q.param // never the value: it may identify a patient
		r, err := e.c.do(ctx, http.MethodGet, u.String(), nil, true)
		o := outcome{sent: true, latency: r.latency}
		switch {
		case err != nil:
			if ctx.Err() == nil {
				e.fails.add("search", what, r.status, err.Error())
			}
			o.failed = true
		case r.status/100 != 2:
			e.fails.add("search", what, r.status, r.diag)
			o.failed = true
		default:
			n, err := searchsetEntries(r.body)
			if err != nil {
				e.fails.add("search", what, r.status, err.Error())
				o.failed = true
				break
			}
			o.resources = n
		}
		return o
	})
}

// searchsetEntries counts the entries of a searchset Bundle. It reads the
// document once, as tokens, skipping each entry's content: the client's
// CPU is taken from the server it measures on the same machine, and a
// struct decode cost more than half of it in a search phase. Errors give
// the byte offset, never content.
func searchsetEntries(body []byte) (int, error) {
	dec := jsontext.NewDecoder(bytes.NewReader(body))
	malformed := func() (int, error) {
		return 0, fmt.Errorf("searchset: malformed JSON near byte %d", dec.InputOffset())
	}
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return malformed()
	}
	var resourceType, typ string
	n := 0
	for dec.PeekKind() == '"' {
		tok, err := dec.ReadToken()
		if err != nil {
			return malformed()
		}
		name := tok.String()
		switch name {
		case "resourceType", "type":
			v, err := dec.ReadToken()
			if err != nil || v.Kind() != '"' {
				return malformed()
			}
			if name == "type" {
				typ = v.String()
			} else {
				resourceType = v.String()
			}
		case "entry":
			if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '[' {
				return malformed()
			}
			for dec.PeekKind() == '{' {
				if err := dec.SkipValue(); err != nil {
					return malformed()
				}
				n++
			}
			if tok, err := dec.ReadToken(); err != nil || tok.Kind() != ']' {
				return malformed()
			}
		default:
			if err := dec.SkipValue(); err != nil {
				return malformed()
			}
		}
	}
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '}' {
		return malformed()
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return malformed()
	}
	if resourceType != "Bundle" || typ != "searchset" {
		return 0, errors.New("searchset: not a searchset Bundle")
	}
	return n, nil
}

// Run ingests every transaction Bundle of cfg.Dir into the server, then
// reads and searches what it created, and returns the figures of each
// phase. Progress, the first failures and the report (a table, or one JSON
// line with cfg.JSON) are written to cfg.Out.
//
// A configuration, input or authentication problem found before the first
// timed request returns a nil report and an error. Otherwise Run returns the
// complete report, and a non-nil error when any request failed or ctx ended
// the run early.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	s, err := validate(cfg)
	if err != nil {
		return nil, err
	}
	bundles, sv, err := readBundles(s.Dir)
	if err != nil {
		return nil, err
	}
	hc, err := newHTTPClient(s.CAFile, max(s.Concurrency, s.ReadConcurrency), s.Timeout, s.HTTP1)
	if err != nil {
		return nil, err
	}
	defer hc.CloseIdleConnections()
	ts := &tokenSource{hc: hc, url: s.token.String(), clientID: s.ClientID, secret: s.ClientSecret, scope: s.Scope, now: time.Now}
	if _, err := ts.get(ctx); err != nil { // fail before timing anything
		return nil, err
	}
	e := &engine{s: s, c: &client{hc: hc, tokens: ts}, fails: &failures{}}

	entries := 0
	for _, b := range bundles {
		entries += len(b.types)
	}
	fmt.Fprintf(s.Out, "ingest: %d bundles, %d resources, %d workers\n", len(bundles), entries, s.Concurrency)
	rep := &Report{}
	var got ingested
	rep.Ingest, got = e.ingest(ctx, bundles)
	if len(got.refs) == 0 && ctx.Err() == nil {
		e.fails.add("ingest", "all bundles", 0, "no resource was created; skipping reads and searches")
	}
	if ctx.Err() == nil && s.Reads > 0 && len(got.refs) > 0 {
		fmt.Fprintf(s.Out, "read: %d requests over %d resources, %d workers\n", s.Reads, len(got.refs), s.ReadConcurrency)
		rep.ReadByID = e.readPhase(ctx, got.refs)
	} else {
		rep.ReadByID = Phase{Name: "read"}
	}
	kinds := searchKinds(sv, got.patients)
	if ctx.Err() == nil && s.Searches > 0 && len(kinds) > 0 {
		fmt.Fprintf(s.Out, "search: %d requests, %d kinds of query, %d workers\n", s.Searches, len(kinds), s.ReadConcurrency)
		rep.Search = e.searchPhase(ctx, kinds)
	} else {
		rep.Search = Phase{Name: "search"}
	}

	e.fails.mu.Lock()
	nfail, first := e.fails.n, slices.Clone(e.fails.first)
	e.fails.mu.Unlock()
	for _, f := range first {
		fmt.Fprintf(s.Out, "error: %s\n", f)
	}
	if nfail > len(first) {
		fmt.Fprintf(s.Out, "error: ... and %d more\n", nfail-len(first))
	}
	if s.JSON {
		if err := rep.WriteJSON(s.Out); err != nil {
			return rep, err
		}
	} else {
		rep.Print(s.Out)
	}
	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("loadgen: run cut short: %w", err)
	}
	if nfail > 0 {
		return rep, fmt.Errorf("loadgen: %d failure(s); see the errors above the report", nfail)
	}
	return rep, nil
}
