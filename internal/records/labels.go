package records

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/store"
)

// Security labels and Consent (catalogue A3, A5, A6). policy.View decides
// what a caller sees of each patient's data by its security labels and the
// patient's privacy Consents; the service gathers the facts and keeps the
// answer on every path:
//
//   - each version is stored with its label class (store.Resource.
//     Sensitivity), computed from its meta.security when it is written;
//   - searches, conditional matches, _revinclude and $everything narrow
//     the storage query itself by class (store.Query.Views), per patient
//     compartment, so totals and pages never count what the caller may
//     not see; where a Consent lifts some sensitivity codes but not
//     others, the query leaves out resources whose _security index rows
//     name a code still hidden;
//   - read, vread and instance history of what the caller may not see
//     answer ErrHidden, as an unknown id, deleted or not; an instance
//     history answers so unless every version is seen;
//   - every body served is checked once more against its own labels,
//     which catches versions written before classes were kept (class 0,
//     labels in the body): such a resource is left out of a page, which
//     then counts it in its total — until ClassifyStored has classified
//     the versions stored before classes were kept;
//   - type and system history (only roles reaching every patient have
//     them) are not narrowed by class in the store: versions the caller
//     may not see are left out of the page, and for such a caller the page
//     has no total (HistoryPage.HasTotal);
//   - writes: only a caller that policy.MayRelabel sets or removes
//     meta.security. Anyone else's create with labels is ErrForbidden,
//     nothing written; their update must not add a label, and keeps the
//     stored labels whatever it sends (a client that drops meta cannot
//     strip them); their update or delete of a version they may not see,
//     and their write into a compartment a Consent hides from them, are
//     ErrForbidden. Writing a patient-privacy Consent needs MayRelabel too:
//     otherwise a practitioner could write themself a permit.
//
// Consents are read from the patient's compartment and cached per patient
// for consentTTL; a Consent written through this service clears the cache
// at once, so the change holds here on the next request and on other
// replicas within consentTTL. Periods are checked at decision time, so a
// Consent expires exactly.

// consentTTL bounds how long a patient's Consents are reused.
const consentTTL = 30 * time.Second

// consentBatch is how many compartments one Consent lookup names, and how
// many Consents it reads at a time.
const consentBatch = 500

// maxConsentsAll bounds the Consents read for a caller that reaches every
// patient: beyond it, such a caller's searches are ErrTooCostly.
const maxConsentsAll = 20000

// maxCachedPatients bounds the consent cache; past it, it starts again.
const maxCachedPatients = 100000

// securityParam is the search parameter that indexes meta.security.
const securityParam = "_security"

type consentCache struct {
	mu  sync.Mutex
	gen uint64 // bumped by every forget, so a racing load is not kept
	m   map[string]consentEntry
	all time.Time // when every patient's Consents were last read together
}

type consentEntry struct {
	list []policy.Consent // active patient-privacy Consents only
	at   time.Time
}

// forgetConsents empties the consent cache: a Consent was written.
func (s *Service) forgetConsents() {
	s.consents.mu.Lock()
	s.consents.gen++
	s.consents.m = nil
	s.consents.all = time.Time{}
	s.consents.mu.Unlock()
}

// consentsOf returns the active privacy Consents of each patient in
// patients ("" is skipped), from the cache or the store.
func (s *Service) consentsOf(ctx context.Context, patients []string) (map[string][]policy.Consent, error) {
	now := s.now()
	out := make(map[string][]policy.Consent)
	var missing []string
	s.consents.mu.Lock()
	gen := s.consents.gen
	for _, p := range patients {
		if p == "" {
			continue
		}
		if e, ok := s.consents.m[p]; ok && now.Sub(e.at) < consentTTL {
			if e.list != nil {
				out[p] = e.list
			}
			continue
		}
		missing = append(missing, p)
	}
	s.consents.mu.Unlock()
	for start := 0; start < len(missing); start += consentBatch {
		batch := missing[start:min(start+consentBatch, len(missing))]
		found, err := s.readConsents(ctx, batch, 0)
		if err != nil {
			return nil, err
		}
		s.keepConsents(gen, now, batch, found, false)
		for p, list := range found {
			out[p] = list
		}
	}
	return out, nil
}

// allConsents returns the active privacy Consents of every patient, for a
// caller that reaches every patient.
func (s *Service) allConsents(ctx context.Context) (map[string][]policy.Consent, error) {
	now := s.now()
	s.consents.mu.Lock()
	gen := s.consents.gen
	if now.Sub(s.consents.all) < consentTTL {
		out := make(map[string][]policy.Consent)
		for p, e := range s.consents.m {
			if e.list != nil {
				out[p] = e.list
			}
		}
		s.consents.mu.Unlock()
		return out, nil
	}
	s.consents.mu.Unlock()
	found, err := s.readConsents(ctx, nil, maxConsentsAll)
	if err != nil {
		return nil, err
	}
	s.keepConsents(gen, now, nil, found, true)
	return found, nil
}

// keepConsents caches what a load found, unless the cache was cleared
// while it ran. asked lists the patients looked up (nil: all of them),
// which have no Consent unless found names them.
func (s *Service) keepConsents(gen uint64, now time.Time, asked []string, found map[string][]policy.Consent, all bool) {
	s.consents.mu.Lock()
	defer s.consents.mu.Unlock()
	if s.consents.gen != gen {
		return
	}
	if s.consents.m == nil || len(s.consents.m)+len(asked)+len(found) > maxCachedPatients {
		s.consents.m = make(map[string]consentEntry)
		s.consents.all = time.Time{}
	}
	if all {
		clear(s.consents.m)
		s.consents.all = now
	}
	for _, p := range asked {
		s.consents.m[p] = consentEntry{at: now}
	}
	for p, list := range found {
		s.consents.m[p] = consentEntry{list: list, at: now}
	}
}

// readConsents reads the current Consents sealed in compartments (nil: in
// any compartment, at most limit of them) and keeps the active privacy
// ones, by patient.
func (s *Service) readConsents(ctx context.Context, compartments []string, limit int) (map[string][]policy.Consent, error) {
	out := make(map[string][]policy.Consent)
	q := store.Query{Type: "Consent", Compartments: compartments, Count: consentBatch, Sort: []store.SortKey{{Param: "_id"}}}
	for read := 0; ; {
		page, err := s.store.Search(ctx, q)
		if err != nil {
			return nil, storeErr(err)
		}
		for _, row := range page.Resources {
			if row.Compartment == "" {
				continue
			}
			e, err := s.decrypt(ctx, row)
			if err != nil {
				return nil, err
			}
			res, err := fhir.Parse(e.Body, fhir.Limits{})
			if err != nil {
				return nil, fmt.Errorf("records: stored Consent: %w", err)
			}
			if c := policy.ParseConsent(res); c.Active && c.Patient == row.Compartment {
				out[c.Patient] = append(out[c.Patient], c)
			}
		}
		read += len(page.Resources)
		if !page.More {
			return out, nil
		}
		if limit > 0 && read >= limit {
			return nil, fmt.Errorf("%w: more than %d Consents to decide on", ErrTooCostly, limit)
		}
		q.Offset += consentBatch
	}
}

// viewOf decides what c, allowed by d, sees of typ in compartment.
func (s *Service) viewOf(ctx context.Context, c Caller, d policy.Decision, typ, compartment string) (policy.View, error) {
	f := policy.Facts{Type: typ, Patient: compartment, Purpose: c.Purpose, Now: s.now()}
	if v := s.policy.View(c.Subject, d, f); v.All() || compartment == "" {
		return v, nil // Consents restrict neither the unrestricted nor the patient themself
	}
	found, err := s.consentsOf(ctx, []string{compartment})
	if err != nil {
		return policy.View{}, err
	}
	f.Consents = found[compartment]
	return s.policy.View(c.Subject, d, f), nil
}

// labelView is what a caller sees of one resource type in one compartment.
type labelView struct{ policy.View }

// screen decides whether c may see a stored version by what is known
// before it is opened: the patient's Consents and the version's class. A
// version it may not see is ErrHidden; a deleted version whose class does
// not tell is hidden too. reveal finishes the decision on the opened body.
func (s *Service) screen(ctx context.Context, c Caller, d policy.Decision, row store.Resource) (labelView, error) {
	v, err := s.viewOf(ctx, c, d, row.Type, row.Compartment)
	if err != nil {
		return labelView{}, err
	}
	admit, known := v.AdmitsClass(policy.Class(row.Sensitivity))
	if (known && !admit) || (!known && row.Deleted) {
		return labelView{}, hiddenIn(row.Compartment)
	}
	return labelView{v}, nil
}

// reveal passes an opened version through when its own labels are seen.
func (v labelView) reveal(e Entry, err error) (Entry, error) {
	if err != nil || e.Body == nil {
		return e, err
	}
	if !admitsBody(v.View, e.labelled()) {
		return Entry{}, hiddenIn(e.Compartment)
	}
	return e, nil
}

// admitsBody reports whether v sees a plaintext body by its own labels.
func admitsBody(v policy.View, body []byte) bool {
	if v.All() {
		return true
	}
	if !bytes.Contains(body, []byte(`"security"`)) {
		return v.Admits(nil)
	}
	res, err := fhir.Parse(body, fhir.Limits{})
	if err != nil {
		return false
	}
	return v.Admits(policy.SecurityLabels(res))
}

// viewSet is what a caller sees of one resource type across the
// compartments a query covers.
type viewSet struct {
	all bool                   // sees everything: nothing to check
	by  map[string]policy.View // by compartment
	def policy.View            // compartments not in by
}

// admits reports whether the caller sees an opened entry by its own
// labels.
func (vs viewSet) admits(e Entry) bool {
	if vs.all || e.Body == nil {
		return true
	}
	v, ok := vs.by[e.Compartment]
	if !ok {
		v = vs.def
	}
	return admitsBody(v, e.labelled())
}

// keep leaves out the entries whose own labels the caller may not see:
// versions written before their class was kept.
func (vs viewSet) keep(entries []Entry) []Entry {
	if vs.all {
		return entries
	}
	return slices.DeleteFunc(entries, func(e Entry) bool { return !vs.admits(e) })
}

// narrowLabels narrows a storage query, already narrowed to d's
// compartments (narrow), to what c sees of each compartment by security
// label and Consent.
func (s *Service) narrowLabels(ctx context.Context, c Caller, d policy.Decision, q *store.Query) (viewSet, error) {
	f := policy.Facts{Type: q.Type, Purpose: c.Purpose, Now: s.now()}
	def := s.policy.View(c.Subject, d, f) // shared resources, and patients without Consents
	if def.All() {
		return viewSet{all: true}, nil
	}
	var (
		patients []string
		consents map[string][]policy.Consent
		err      error
	)
	switch {
	case q.Compartment != nil:
		patients = []string{*q.Compartment}
	case q.Compartments != nil:
		patients = q.Compartments
	}
	if patients != nil {
		consents, err = s.consentsOf(ctx, patients)
	} else {
		consents, err = s.allConsents(ctx)
		for p := range consents {
			patients = append(patients, p)
		}
		patients = append(patients, d.Emergency...)
	}
	if err != nil {
		return viewSet{}, err
	}
	vs := viewSet{by: make(map[string]policy.View, len(patients)), def: def}
	groups := make(map[policy.View][]string)
	for _, p := range patients {
		f.Patient, f.Consents = p, consents[p]
		v := s.policy.View(c.Subject, d, f)
		if _, dup := vs.by[p]; dup {
			continue
		}
		vs.by[p] = v
		groups[v] = append(groups[v], p)
	}
	// The views name every group but one, which covers the rest: the
	// default for a query over every compartment, else the largest group.
	others := def
	if q.Compartment != nil || q.Compartments != nil {
		size := -1
		for v, list := range groups {
			if len(list) > size || (len(list) == size && v.Hidden()) {
				others, size = v, len(list)
			}
		}
	}
	views := []store.View{storeView(others, nil)}
	for v, list := range groups {
		if v != others {
			slices.Sort(list)
			views = append(views, storeView(v, list))
		}
	}
	q.Views = views
	return vs, nil
}

// storeView is a policy view as a storage view of compartments.
func storeView(v policy.View, compartments []string) store.View {
	sv := store.View{Compartments: compartments, None: v.Hidden(), Sensitivity: uint8(v.Classes())}
	if v.Partial() {
		sv.Partial = uint8(policy.ClassSensitive)
		sv.Hidden.Param = securityParam
		for _, l := range v.HiddenCodes() {
			sv.Hidden.Any = append(sv.Hidden.Any, store.Predicate{Kind: store.KindToken, Op: store.OpEq, HasSystem: true, System: l.System, Value: l.Code})
		}
	}
	return sv
}

// labelsRestrict reports whether security labels or Consents may hide
// something of typ from c under d.
func (s *Service) labelsRestrict(c Caller, d policy.Decision, typ string) bool {
	return !s.policy.View(c.Subject, d, policy.Facts{Type: typ, Now: s.now()}).All()
}

// ClassifyStored gives the current versions stored before Ward kept each
// version's sensitivity class (schema migration 0009 gave them class 0
// whatever their labels, so a narrowed search could count a labelled one
// in its total) the class their labels call for, then records that none
// is left. It returns how many it classified and how many it could not
// read (a body that does not decrypt or parse; reads refuse it too). It
// does nothing once done, and is safe while requests are served: a
// version rewritten meanwhile got its class when it was written, and only
// the version read is changed. A failure leaves the work pending for the
// next call.
func (s *Service) ClassifyStored(ctx context.Context) (classified, unreadable int, err error) {
	pending, err := s.store.SensitivityPending(ctx)
	if err != nil || !pending {
		return 0, 0, storeErr(err)
	}
	classified, err = eachStoredBatch(ctx, s.store.Unclassified, func(rows []store.Resource) (int, error) {
		var found []store.Resource
		for _, row := range rows {
			e, err := s.decrypt(ctx, row)
			switch {
			case stopsMaintenance(err):
				return 0, err
			case err != nil:
				unreadable++
				continue
			}
			if !bytes.Contains(e.Body, []byte(`"security"`)) {
				continue
			}
			res, err := fhir.Parse(e.Body, fhir.Limits{})
			if err != nil {
				unreadable++
				continue
			}
			if row.Sensitivity = sensitivityOf(res); row.Sensitivity != 0 {
				found = append(found, row)
			}
		}
		n, err := s.store.SetSensitivity(ctx, found)
		return n, storeErr(err)
	})
	if err != nil {
		return classified, unreadable, err
	}
	return classified, unreadable, storeErr(s.store.SensitivityClassified(ctx))
}

// sensitivityOf is the class of a body about to be stored.
func sensitivityOf(res *fhir.Resource) uint8 {
	return uint8(policy.ClassOf(policy.SecurityLabels(res)))
}

// privacyConsent reports whether res is a patient-privacy Consent,
// whatever its status.
func privacyConsent(res *fhir.Resource) bool {
	if res == nil || res.Type != "Consent" {
		return false
	}
	scope, _ := res.Object["scope"].(map[string]any)
	codings, _ := scope["coding"].([]any)
	for _, v := range codings {
		cd, _ := v.(map[string]any)
		if code, _ := cd["code"].(string); code == policy.ScopePatientPrivacy {
			return true
		}
	}
	return false
}

// guardLabels keeps the security label rules on a write (see above): res
// is the body about to be stored, cur the current version when exists.
// For a writer that may not relabel, it puts the stored labels into res,
// indexing it again when that changes them.
func (s *Service) guardLabels(ctx context.Context, c Caller, op *writeOp, res *fhir.Resource, cur store.Resource, exists bool) error {
	if !op.labelsRead {
		op.labels, op.labelsRead = policy.SecurityLabels(op.res), true
	}
	relabel := s.policy.MayRelabel(c.Subject, op.within)
	var stored *fhir.Resource
	if exists && !cur.Deleted && (!relabel || op.typ == "Consent") {
		e, err := s.decrypt(ctx, cur)
		if err != nil {
			return err
		}
		if stored, err = fhir.Parse(e.Body, fhir.Limits{}); err != nil {
			return fmt.Errorf("records: stored %s: %w", cur.Type, err)
		}
	}
	if relabel {
		return nil
	}
	if op.typ == "Consent" && (privacyConsent(res) || privacyConsent(stored)) {
		return fmt.Errorf("%w: a patient-privacy Consent is written only by a role that may relabel", ErrForbidden)
	}
	if exists {
		v, err := s.viewOf(ctx, c, op.within, op.typ, cur.Compartment)
		if err != nil {
			return err
		}
		seen := false
		if stored != nil {
			seen = v.Admits(policy.SecurityLabels(stored))
		} else {
			admit, known := v.AdmitsClass(policy.Class(cur.Sensitivity))
			seen = admit && known
		}
		if !seen {
			if res == nil {
				return hidden() // a deletion: as if there were nothing there
			}
			return fmt.Errorf("%w: %s/%s is not visible to the caller", ErrForbidden, op.typ, op.id)
		}
	}
	if res == nil {
		return nil // a deletion
	}
	if v, err := s.viewOf(ctx, c, op.within, op.typ, op.compartment); err != nil {
		return err
	} else if v.Hidden() {
		return fmt.Errorf("%w: a Consent withholds this patient's %s from the caller", ErrForbidden, op.typ)
	}
	keep := policy.SecurityLabels(stored)
	if op.created || stored == nil {
		if len(op.labels) > 0 {
			return fmt.Errorf("%w: only a role that may relabel sets security labels (meta.security)", ErrForbidden)
		}
		keep = nil
	} else if !policy.LabelsWithin(op.labels, keep) {
		return fmt.Errorf("%w: only a role that may relabel sets security labels (meta.security)", ErrForbidden)
	}
	if policy.SameLabels(policy.SecurityLabels(res), keep) {
		return nil
	}
	setSecurity(res, stored)
	return s.prepareBody(ctx, op, res)
}

// setSecurity gives res the meta.security of from (none when from has
// none).
func setSecurity(res, from *fhir.Resource) {
	meta, _ := res.Object["meta"].(map[string]any)
	if meta == nil {
		meta = make(map[string]any)
	} else {
		meta = maps.Clone(meta)
	}
	var sec any
	if from != nil {
		if m, ok := from.Clone().Object["meta"].(map[string]any); ok {
			sec = m["security"]
		}
	}
	if sec == nil {
		delete(meta, "security")
	} else {
		meta["security"] = sec
	}
	res.Object["meta"] = meta
}

// openSeen opens a stored version for c, or answers ErrHidden when c may
// not see it.
func (s *Service) openSeen(ctx context.Context, c Caller, d policy.Decision, row store.Resource) (Entry, error) {
	v, err := s.screen(ctx, c, d, row)
	if err != nil {
		return Entry{}, err
	}
	return v.reveal(s.open(ctx, d, row))
}

// historyVisible reports ErrHidden unless c sees every version of typ/id:
// a resource that was ever labelled beyond what c sees has no history c
// may page through.
func (s *Service) historyVisible(ctx context.Context, c Caller, d policy.Decision, typ, id string) error {
	if !s.labelsRestrict(c, d, typ) {
		return nil
	}
	const batch = 200
	for offset := 0; ; offset += batch {
		page, err := s.store.History(ctx, store.HistoryQuery{Type: typ, ID: id, Offset: offset, Count: batch})
		if err != nil {
			return storeErr(err)
		}
		for _, row := range page.Resources {
			v, err := s.screen(ctx, c, d, row)
			if err != nil {
				return err
			}
			if _, err := v.reveal(s.decrypt(ctx, row)); err != nil {
				return err
			}
		}
		if !page.More || len(page.Resources) == 0 {
			return nil
		}
	}
}

// forgetWritten clears the consent cache when ops wrote a Consent.
func (s *Service) forgetWritten(ops []*writeOp) {
	for _, op := range ops {
		if op.typ == "Consent" && !op.noop {
			s.forgetConsents()
			return
		}
	}
}
