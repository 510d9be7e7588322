package records

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/wardhealth/ward/internal/fhir/search"
)

// DetectionFacts answers what the anomaly detector asks of the records
// about patients and staff, without any value leaving this package:
//
//   - VIP: the patient's record carries the celebrity label (v3-ActCode
//     CEL) or is very restricted (confidentiality V);
//   - Colleague: the patient's record carries the employee label
//     (v3-ActCode EMP), or shares the person's family name, or their
//     address (line and postal code), as the person's own Practitioner
//     (or other FHIR) record gives them. The comparison is of blind
//     indexes: the person's values are hashed under the Patient search
//     parameters' keys and looked up in the index, never compared as
//     text.
//
// Answers are cached (labels for a minute, a person's namesakes for ten);
// a lookup that fails answers false and is tried again at the next
// refresh. It reads without audit entries: it discloses nothing to
// anyone, and the alerts it feeds name only ids.
type DetectionFacts struct {
	svc      *Service
	fhirUser func(ctx context.Context, actor string) (string, error)
	now      func() time.Time

	mu       sync.Mutex
	labelled struct {
		at       time.Time
		vip, emp map[string]bool
	}
	actors map[string]actorFacts
}

type actorFacts struct {
	at       time.Time
	record   string          // the person's FHIR record, "Patient/123"; "" for none
	patients map[string]bool // patients sharing the person's family name or address
}

// Label lifetimes of DetectionFacts' caches.
const (
	factsLabelTTL = time.Minute
	factsActorTTL = 10 * time.Minute
	factsMaxMatch = 1000 // patients one value may match before it is taken as too common to mean anything
	factsMaxActor = 10000
)

// DetectionFacts returns the detector's facts over this service's
// records; fhirUser gives a user id's FHIR record ("Practitioner/123"),
// "" for none.
func (s *Service) DetectionFacts(fhirUser func(ctx context.Context, actor string) (string, error)) *DetectionFacts {
	return &DetectionFacts{svc: s, fhirUser: fhirUser, now: s.now, actors: map[string]actorFacts{}}
}

// Self reports whether actor is patient: a patient reading their own
// record is no colleague's or VIP's access.
func (f *DetectionFacts) Self(actor, patient string) bool {
	return f.actor(actor).record == "Patient/"+patient
}

// VIP reports whether patient's record is flagged as a VIP's.
func (f *DetectionFacts) VIP(patient string) bool {
	vip, _ := f.labels()
	return vip[patient]
}

// Colleague reports whether patient is a colleague of actor's (an
// employee's record) or shares their family name or address.
func (f *DetectionFacts) Colleague(actor, patient string) bool {
	if _, emp := f.labels(); emp[patient] {
		return true
	}
	return f.actor(actor).patients[patient]
}

func (f *DetectionFacts) labels() (vip, emp map[string]bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	if f.labelled.vip != nil && now.Sub(f.labelled.at) < factsLabelTTL {
		return f.labelled.vip, f.labelled.emp
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const actCode = "http://terminology.hl7.org/CodeSystem/v3-ActCode|"
	vip = f.svc.patientsWhere(ctx, url.Values{"_security": {actCode + "CEL,http://terminology.hl7.org/CodeSystem/v3-Confidentiality|V"}})
	emp = f.svc.patientsWhere(ctx, url.Values{"_security": {actCode + "EMP"}})
	f.labelled.at, f.labelled.vip, f.labelled.emp = now, vip, emp
	return vip, emp
}

// actor returns what is known of actor: their record and the patients
// sharing their family name or address.
func (f *DetectionFacts) actor(actor string) actorFacts {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	if a, ok := f.actors[actor]; ok && now.Sub(a.at) < factsActorTTL {
		return a
	}
	if len(f.actors) >= factsMaxActor {
		clear(f.actors)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a := actorFacts{at: now, patients: map[string]bool{}}
	ref, err := f.fhirUser(ctx, actor)
	if err == nil {
		a.record = ref
	}
	f.actors[actor] = a
	typ, id, ok := strings.Cut(a.record, "/")
	if !ok {
		return a
	}
	row, err := f.svc.store.Current(ctx, typ, id)
	if err != nil || row.Deleted {
		return a
	}
	e, err := f.svc.decrypt(ctx, row)
	if err != nil || e.Body == nil {
		return a
	}
	var person struct {
		Name []struct {
			Family string `json:"family"`
		} `json:"name"`
		Address []struct {
			Line       []string `json:"line"`
			PostalCode string   `json:"postalCode"`
		} `json:"address"`
	}
	if json.Unmarshal(e.Body, &person) != nil {
		return a
	}
	for _, n := range person.Name {
		if n.Family != "" {
			for p := range f.svc.patientsWhere(ctx, url.Values{"family": {search.Escape(n.Family)}}) {
				a.patients[p] = true
			}
		}
	}
	for _, ad := range person.Address {
		if len(ad.Line) == 0 || ad.PostalCode == "" {
			continue
		}
		for p := range f.svc.patientsWhere(ctx, url.Values{"address": {search.Escape(ad.Line[0])}, "address-postalcode": {search.Escape(ad.PostalCode)}}) {
			a.patients[p] = true
		}
	}
	return a
}

// patientsWhere returns the ids of the patients a search on Patient with
// params matches, through the indexes as any search would; nil when it
// fails or matches more than factsMaxMatch (a value that common says
// nothing about anyone).
func (s *Service) patientsWhere(ctx context.Context, params url.Values) map[string]bool {
	q, err := s.params.ParseQuery("Patient", params, s.cfg.Search)
	if err != nil {
		return nil
	}
	sq, err := s.storeQuery(q)
	if err != nil {
		return nil
	}
	sq.Count, sq.Offset, sq.Total = factsMaxMatch+1, 0, false
	page, err := s.store.Search(ctx, sq)
	if err != nil || len(page.Resources) > factsMaxMatch {
		return nil
	}
	out := make(map[string]bool, len(page.Resources))
	for _, r := range page.Resources {
		out[r.ID] = true
	}
	return out
}
