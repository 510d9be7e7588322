package records

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/store"
)

// Export levels of FHIR Bulk Data Access: the whole server, every
// patient, or the patients of a Group.
const (
	ExportSystem  = "system"
	ExportPatient = "patient"
	ExportGroup   = "group"
)

// exportPage is how many stored versions an export reads at a time, and
// exportGroupBatch how many group members one storage query names: memory
// stays bounded whatever the size of the export.
const (
	exportPage       = 500
	exportGroupBatch = 500
)

// ExportRequest is a FHIR Bulk Data kick-off as the records service sees
// it. Job is the id of the export job, named in each of its entries.
type ExportRequest struct {
	Job   string
	Level string    // ExportSystem, ExportPatient or ExportGroup
	Group string    // the Group's id, for ExportGroup
	Types []string  // _type: the resource types asked for; nil for every type of the level
	Since time.Time // _since: only versions last updated at or after it; zero for all
}

// ExportPlan is a kick-off the records service accepted: the resource
// types to walk and, for a Group, its members. Export walks it.
type ExportPlan struct {
	ExportRequest
	types    []string
	patients []string // the Group's member patients, sorted, distinct
}

// Types returns the resource types the export walks, in order.
func (p ExportPlan) Types() []string { return slices.Clone(p.types) }

// PlanExport decides a kick-off: the types asked for must each be
// searchable by the caller (an explicit _type the caller may not search
// is ErrForbidden), at least one type must be, and a Group is read as a
// read would read it (ErrNotFound when the caller may not see it). The
// kick-off is recorded, whatever its outcome, with the status 202 of an
// accepted one; the export's disclosure is recorded by Export when it
// completes.
func (s *Service) PlanExport(ctx context.Context, c Caller, req ExportRequest) (ExportPlan, error) {
	p, err := s.planExport(ctx, c, req)
	typ, id := exportTarget(req)
	detail := "" // a refused kick-off leaves no job to name
	if err == nil {
		detail = "export-job=" + req.Job
	}
	return answer(p, s.account(ctx, c, err, access{action: "export-request", typ: typ, id: id, query: c.Query,
		status: 202, detail: detail}))
}

func exportTarget(req ExportRequest) (typ, id string) {
	switch req.Level {
	case ExportGroup:
		return "Group", req.Group
	case ExportPatient:
		return "Patient", ""
	}
	return "", ""
}

func (s *Service) planExport(ctx context.Context, c Caller, req ExportRequest) (ExportPlan, error) {
	p := ExportPlan{ExportRequest: req}
	all := fhir.PatientCompartmentTypes()
	switch req.Level {
	case ExportSystem:
		all = slices.DeleteFunc(fhir.ResourceTypes(), func(t string) bool { return t == policy.AuditType || t == subscriptionType })
	case ExportPatient, ExportGroup:
	default:
		return p, invalid("unknown export level")
	}
	if req.Job == "" {
		return p, invalid("an export needs a job id")
	}
	if req.Types != nil {
		for _, t := range req.Types {
			if !slices.Contains(all, t) {
				return p, invalid("_type: %s is not exported at this level", t)
			}
			if _, err := s.decide(c.Subject, policy.ActionSearch, t); err != nil {
				return p, err
			}
		}
		p.types = slices.Compact(slices.Sorted(slices.Values(req.Types)))
	} else {
		for _, t := range all {
			if d := s.policy.Decide(c.Subject, policy.Request{Action: policy.ActionSearch, Type: t}); d.Allow {
				p.types = append(p.types, t)
			}
		}
		if len(p.types) == 0 {
			return p, fmt.Errorf("%w: no resource type of the export may be searched", ErrForbidden)
		}
	}
	if req.Level == ExportGroup {
		g, err := s.read(ctx, c, "Group", req.Group)
		if err != nil {
			return p, err
		}
		if p.patients, err = groupPatients(g.Body); err != nil {
			return p, err
		}
	}
	return p, nil
}

// groupPatients lists the patients a Group's members refer to
// (Group.member.entity as "Patient/id").
func groupPatients(body []byte) ([]string, error) {
	var g struct {
		Member []struct {
			Entity struct {
				Reference string `json:"reference"`
			} `json:"entity"`
		} `json:"member"`
	}
	if err := json.Unmarshal(body, &g); err != nil {
		return nil, fmt.Errorf("records: stored Group: %w", err)
	}
	out := []string{}
	for _, m := range g.Member {
		typ, id, ok := splitTypeID(m.Entity.Reference)
		if ok && typ == "Patient" {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Export walks a planned export: every current resource of the plan's
// types that the caller may see, as a search would answer it (the policy
// decision per type, compartment narrowing, security labels and Consents,
// masking), type by type, calling emit once per resource; an error from
// emit stops the walk. A patient-level export leaves out shared
// resources; a Group export keeps only its members' compartments.
//
// The export is recorded once it has walked everything and before Export
// returns nil: one entry naming every patient whose data it emitted
// (several entries in one group commit when they are more than one entry
// can name, ledger.MaxPatients, each marked part=i/n). Until then nothing
// of it may be served; a walk that fails is recorded as failed, naming
// no one, and its output must be thrown away.
func (s *Service) Export(ctx context.Context, c Caller, p ExportPlan, emit func(Entry) error) error {
	seen := map[string]struct{}{}
	err := s.export(ctx, c, p, func(e Entry) error {
		if e.Compartment != "" {
			seen[e.Compartment] = struct{}{}
		}
		return emit(e)
	})
	typ, id := exportTarget(p.ExportRequest)
	a := access{action: "export", typ: typ, id: id, detail: "export-job=" + p.Job, listed: true}
	// The entry is written even when the job was cancelled: the walk ran.
	rctx := context.WithoutCancel(ctx)
	if err != nil {
		return s.account(rctx, c, err, a)
	}
	patients := make([]string, 0, len(seen))
	for pid := range seen {
		patients = append(patients, pid)
	}
	slices.Sort(patients)
	parts := (len(patients) + ledger.MaxPatients - 1) / ledger.MaxPatients
	if parts <= 1 {
		a.patients = patients
		return s.record(rctx, c, a)
	}
	as := make([]access, 0, parts)
	for i := 0; i < parts; i++ {
		part := a
		part.patients = patients[i*ledger.MaxPatients : min(len(patients), (i+1)*ledger.MaxPatients)]
		part.detail += " part=" + strconv.Itoa(i+1) + "/" + strconv.Itoa(parts)
		as = append(as, part)
	}
	return s.record(rctx, c, as...)
}

func (s *Service) export(ctx context.Context, c Caller, p ExportPlan, emit func(Entry) error) error {
	for _, typ := range p.types {
		d, err := s.decide(c.Subject, policy.ActionSearch, typ)
		if err != nil {
			continue // the caller lost access since the kick-off
		}
		if p.Level != ExportGroup {
			if err := s.exportType(ctx, c, p, d, typ, nil, emit); err != nil {
				return err
			}
			continue
		}
		for i := 0; i < len(p.patients); i += exportGroupBatch {
			batch := p.patients[i:min(len(p.patients), i+exportGroupBatch)]
			if err := s.exportType(ctx, c, p, d, typ, batch, emit); err != nil {
				return err
			}
		}
	}
	return nil
}

// exportType emits the resources of one type, within members when not
// nil.
func (s *Service) exportType(ctx context.Context, c Caller, p ExportPlan, d policy.Decision, typ string, members []string, emit func(Entry) error) error {
	q := store.Query{Type: typ, Count: exportPage, Sort: []store.SortKey{{Param: "_id"}}}
	narrow(d, &q)
	if members != nil {
		reach := make([]string, 0, len(members))
		for _, m := range members {
			if d.Reaches(m) {
				reach = append(reach, m)
			}
		}
		if len(reach) == 0 {
			return nil
		}
		q.Compartments = reach
	}
	if !p.Since.IsZero() {
		at := float64(p.Since.UnixMicro()) / 1e6
		q.Updated = []store.Predicate{{Kind: store.KindDate, Op: store.OpRange, Cmp: store.CmpGe, Lo: at, Hi: at}}
	}
	skipShared := func(row store.Resource) bool {
		return p.Level == ExportPatient && row.Compartment == "" // shared resources are no patient's data
	}
	return s.walk(ctx, c, d, q, skipShared, emit)
}

// walk streams every current version a storage query of one type selects,
// opened and masked under d, where the caller's labels and consents admit
// it and skip (when not nil) does not leave it out: the loop of
// $everything and of an export. It pages by id (keyset paging: every page
// costs the same, however deep), so q's Sort and Offset are its own.
func (s *Service) walk(ctx context.Context, c Caller, d policy.Decision, q store.Query, skip func(store.Resource) bool, emit func(Entry) error) error {
	q.Sort, q.Offset = []store.SortKey{{Param: "_id"}}, 0
	if q.Count <= 0 {
		q.Count = exportPage
	}
	labels, err := s.narrowLabels(ctx, c, d, &q)
	if err != nil {
		return err
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		page, err := s.store.Search(ctx, q)
		if err != nil {
			return storeErr(err)
		}
		if n := len(page.Resources); n > 0 {
			q.AfterID = page.Resources[n-1].ID
		}
		for _, row := range page.Resources {
			if skip != nil && skip(row) {
				continue
			}
			e, err := s.open(ctx, d, row)
			if err != nil {
				return err
			}
			if !labels.admits(e) {
				continue
			}
			if err := emit(e); err != nil {
				return err
			}
		}
		if !page.More || len(page.Resources) == 0 {
			return nil
		}
	}
}
