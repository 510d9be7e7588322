package records

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/policy"
)

// A write can carry a Provenance (R4's X-Provenance header): why a
// correction was made, by whom, on whose behalf (GDPR Art. 16, 21 CFR
// Part 11 §11.10(e), catalogue H4). The Provenance is one more write in
// the write's own storage transaction, so both commit or neither does:
//   - its target is the exact version the write creates
//     ("Type/id/_history/N"), and its recorded time the commit's; Ward
//     sets both, and refuses a Provenance that names a target itself;
//   - it is sealed in the compartment of the resource it targets, not
//     R4's (which leaves a Provenance about an Observation shared), so
//     that it is read, narrowed and erased with the patient's data, and
//     carries that version's security labels, so that it is seen by
//     whoever sees that version;
//   - the caller must be allowed to create a Provenance as well as to
//     make the write, and a compartment obligation holds for both;
//   - the write's ledger entry names the Provenance and its reason codes
//     (Detail "provenance=Provenance/ID reason=system|code,..."), never
//     its free text; the Provenance's own create has an entry of its own.
//
// The earlier value stays in the resource's history, as every version
// does. A transaction or batch Bundle takes no X-Provenance: its entries
// may include Provenance resources directly.

// A WriteOption qualifies one write: Create, Update, CreateIfNoneExist
// or UpdateWhere.
type WriteOption func(*writeOptions)

type writeOptions struct {
	provenance *fhir.Resource
}

func optionsOf(opts []WriteOption) writeOptions {
	var o writeOptions
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithProvenance has the write store p, a Provenance without a target,
// about the version it creates (see above). A conditional create that
// matches an existing resource writes nothing, and so no Provenance.
func WithProvenance(p *fhir.Resource) WriteOption {
	return func(o *writeOptions) { o.provenance = p }
}

// Limits on what a write's entry records of its Provenance's reasons.
const (
	maxReasons      = 3  // codings recorded; the others are left out
	maxReasonCoding = 64 // bytes of one "system|code"; longer ones are left out
)

// withProvenance returns ops with the write of p about op appended, after
// checking that the caller may create it. p's id is assigned here; its
// target and recorded time are set when op's version is known (stamp).
func (s *Service) withProvenance(c Caller, op *writeOp, p *fhir.Resource) ([]*writeOp, error) {
	if p == nil {
		return []*writeOp{op}, nil
	}
	if p.Type != "Provenance" {
		return nil, invalid("the provenance of a write must be a Provenance, not %s", p.Type)
	}
	if _, ok := p.Object["target"]; ok {
		return nil, invalid("Provenance.target of a write's provenance is set by Ward: leave it out")
	}
	d, err := s.decide(c.Subject, policy.ActionCreate, "Provenance")
	if err != nil {
		return nil, err
	}
	prov := &writeOp{typ: "Provenance", id: newID(), res: p, mustNew: true, within: d, about: op}
	op.provenance = prov
	return []*writeOp{op, prov}, nil
}

// stamp sets the target and recorded time of a write's Provenance: the
// version op.about is written as (its Location once settled, "Type/id"
// before), and the commit time.
func stamp(op *writeOp, now time.Time) {
	target := op.about.typ + "/" + op.about.id
	if op.about.entry.Version != 0 {
		target = op.about.entry.Location()
	}
	op.res.Object["target"] = []any{map[string]any{"reference": target}}
	op.res.Object["recorded"] = now.UTC().Format("2006-01-02T15:04:05.000Z07:00") // as meta.lastUpdated
}

// settleProvenance stamps a write's Provenance with the version its
// target op was just settled to and prepares its body again, so that its
// index holds the final values. A retry settles the target again first.
func (s *Service) settleProvenance(ctx context.Context, op *writeOp, now time.Time) error {
	if op.about.entry.Version == 0 {
		return fmt.Errorf("records: provenance settled before its target")
	}
	stamp(op, now)
	return s.prepareBody(ctx, op, op.res)
}

// inheritLabels gives a write's Provenance the security labels of the
// version it targets, so that whoever may not see that version does not
// see why it was written either. The writer's own labels on the
// Provenance were checked by guardLabels; these replace them.
func (s *Service) inheritLabels(ctx context.Context, op *writeOp, res *fhir.Resource) error {
	var from *fhir.Resource
	switch {
	case op.about != nil:
		from = op.about.stored
	case op.labelsOf != nil:
		from = op.labelsOf // a signature's Provenance (esign.go)
	default:
		return nil
	}
	if policy.SameLabels(policy.SecurityLabels(res), policy.SecurityLabels(from)) {
		return nil
	}
	setSecurity(res, from)
	return s.prepareBody(ctx, op, res)
}

// provenanceError says of a validation error that it is about a write's
// Provenance, not about the resource written.
func provenanceError(err error) error {
	var fe *fhir.Error
	if !errors.As(err, &fe) {
		return err
	}
	issues := slices.Clone(fe.Issues)
	for i := range issues {
		issues[i].Diagnostics = "the write's Provenance: " + issues[i].Diagnostics
	}
	return &fhir.Error{Issues: issues}
}

// provenanceDetail is what the entry of a write records of its
// Provenance p: its reference and its reason codes as "system|code", the
// first maxReasons that are plain codes. Never text or display.
func provenanceDetail(p *writeOp) string {
	d := "provenance=Provenance/" + p.id
	var reasons []string
	for _, rc := range asList(p.res.Object["reason"]) {
		cc, _ := rc.(map[string]any)
		for _, co := range asList(cc["coding"]) {
			coding, _ := co.(map[string]any)
			sys, _ := coding["system"].(string)
			code, _ := coding["code"].(string)
			v := sys + "|" + code
			if len(reasons) < maxReasons && len(v) <= maxReasonCoding && plainCode(sys, true) && plainCode(code, false) {
				reasons = append(reasons, v)
			}
		}
	}
	if len(reasons) > 0 {
		d += " reason=" + strings.Join(reasons, ",")
	}
	return d
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// plainCode reports whether s is a code (or, when uri, a code system)
// made only of the characters of codes and URIs that cannot separate the
// Detail's fields: letters, digits and "-._:", and "/#" in a system. A
// code with a space or other characters is left out of the entry, as
// anything that might be text.
func plainCode(s string, uri bool) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '.', c == '_', c == ':':
		case uri && (c == '/' || c == '#'):
		default:
			return false
		}
	}
	return true
}
