package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"text/tabwriter"
	"time"
)

// Phase holds the figures of one phase. Requests counts every request sent
// (failed ones included); Resources counts resources created (ingest),
// fetched (read) or returned in searchset entries (search) by successful
// requests; Errors counts failed requests. Latency percentiles are taken
// over every request that completed, by nearest rank.
type Phase struct {
	Name                string
	Requests, Resources int
	Errors              int
	Elapsed             time.Duration
	P50, P90, P99, Max  time.Duration
}

// RequestsPerSec is Requests divided by the wall-clock time of the phase.
func (p Phase) RequestsPerSec() float64 { return rate(p.Requests, p.Elapsed) }

// ResourcesPerSec is Resources divided by the wall-clock time of the phase.
func (p Phase) ResourcesPerSec() float64 { return rate(p.Resources, p.Elapsed) }

func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// Report holds the figures of a run.
type Report struct {
	Ingest, ReadByID, Search Phase
}

func (r *Report) phases() []Phase { return []Phase{r.Ingest, r.ReadByID, r.Search} }

// Errors is the number of failed requests over all phases.
func (r *Report) Errors() int { return r.Ingest.Errors + r.ReadByID.Errors + r.Search.Errors }

// Print writes the report as an aligned table, one row per phase.
func (r *Report) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\trequests\tresources\terrors\telapsed\treq/s\tres/s\tp50\tp90\tp99\tmax\t")
	for _, p := range r.phases() {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%.1f\t%.1f\t%s\t%s\t%s\t%s\t\n",
			p.Name, p.Requests, p.Resources, p.Errors, fmtDur(p.Elapsed),
			p.RequestsPerSec(), p.ResourcesPerSec(),
			fmtDur(p.P50), fmtDur(p.P90), fmtDur(p.P99), fmtDur(p.Max))
	}
	_ = tw.Flush()
}

// fmtDur prints durations with three significant figures of milliseconds.
func fmtDur(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case ms >= 100:
		return fmt.Sprintf("%.0fms", ms)
	case ms >= 10:
		return fmt.Sprintf("%.1fms", ms)
	default:
		return fmt.Sprintf("%.2fms", ms)
	}
}

// phaseJSON is the machine-readable form of a Phase: durations in
// milliseconds, rates per second.
type phaseJSON struct {
	Requests        int     `json:"requests"`
	Resources       int     `json:"resources"`
	Errors          int     `json:"errors"`
	ElapsedMS       float64 `json:"elapsed_ms"`
	RequestsPerSec  float64 `json:"requests_per_s"`
	ResourcesPerSec float64 `json:"resources_per_s"`
	P50MS           float64 `json:"p50_ms"`
	P90MS           float64 `json:"p90_ms"`
	P99MS           float64 `json:"p99_ms"`
	MaxMS           float64 `json:"max_ms"`
}

func toJSON(p Phase) phaseJSON {
	ms := func(d time.Duration) float64 { return round3(float64(d) / float64(time.Millisecond)) }
	return phaseJSON{
		Requests: p.Requests, Resources: p.Resources, Errors: p.Errors,
		ElapsedMS:       ms(p.Elapsed),
		RequestsPerSec:  round3(p.RequestsPerSec()),
		ResourcesPerSec: round3(p.ResourcesPerSec()),
		P50MS:           ms(p.P50), P90MS: ms(p.P90), P99MS: ms(p.P99), MaxMS: ms(p.Max),
	}
}

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

// WriteJSON writes the report as one line of JSON:
// {"ingest":{...},"read":{...},"search":{...}} with durations in
// milliseconds.
func (r *Report) WriteJSON(w io.Writer) error {
	b, err := json.Marshal(struct {
		Ingest phaseJSON `json:"ingest"`
		Read   phaseJSON `json:"read"`
		Search phaseJSON `json:"search"`
	}{toJSON(r.Ingest), toJSON(r.ReadByID), toJSON(r.Search)})
	if err != nil {
		return fmt.Errorf("loadgen: report: %w", err)
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("loadgen: report: %w", err)
	}
	return nil
}

// percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank method: the smallest value with at least p% of the values at
// or below it. It returns 0 for an empty slice.
func percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(n)))
	rank = max(1, min(rank, n))
	return sorted[rank-1]
}

// summarize fills a Phase from its counters and latencies. It sorts lat.
func summarize(name string, requests, resources, errs int, elapsed time.Duration, lat []time.Duration) Phase {
	slices.Sort(lat)
	p := Phase{Name: name, Requests: requests, Resources: resources, Errors: errs, Elapsed: elapsed}
	if len(lat) > 0 {
		p.P50 = percentile(lat, 50)
		p.P90 = percentile(lat, 90)
		p.P99 = percentile(lat, 99)
		p.Max = lat[len(lat)-1]
	}
	return p
}
