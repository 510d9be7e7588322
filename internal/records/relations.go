package records

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/policy"
)

// careSources are the searches that establish a care relationship between
// a practitioner and a patient: CareTeam membership, Encounter
// participation and EpisodeOfCare management. An explicit assignment is a
// CareTeam too. Each yields the compartments of the resources it finds.
var careSources = [][2]string{
	{"CareTeam", "participant"},
	{"Encounter", "participant"},
	{"EpisodeOfCare", "care-manager"},
}

// maxRelations bounds the resources read per source when looking up a
// practitioner's patients.
const maxRelations = 5000

// relationsTTL bounds how long a looked-up set of care relationships is
// reused: a relationship ended in the data stops granting access within it.
const relationsTTL = 30 * time.Second

type relationsCache struct {
	mu sync.Mutex
	m  map[string]relations
}

type relations struct {
	patients []string
	at       time.Time
}

// Relate fills a person's Subject with the patients their role reaches
// through care relationships (policy.Subject.Related) and through active
// break-the-glass grants (policy.Subject.Emergency, with the grants in
// Caller.Grants). It does nothing for services and for roles that do not
// reach related patients.
func (s *Service) Relate(ctx context.Context, c *Caller) error {
	sub := &c.Subject
	if sub.UserID == "" {
		return nil
	}
	role, ok := s.policy.Role(sub.Role)
	if !ok || role.Reach != policy.ReachRelated {
		return nil
	}
	if err := s.relateEmergency(ctx, c); err != nil {
		return err
	}
	typ, id, ok := strings.Cut(sub.FHIRUser, "/")
	if !ok || (typ != "Practitioner" && typ != "PractitionerRole") || !fhir.ValidID(id) {
		sub.Related = []string{}
		return nil
	}
	now := s.now()
	s.relations.mu.Lock()
	r, ok := s.relations.m[sub.FHIRUser]
	s.relations.mu.Unlock()
	if ok && now.Sub(r.at) < relationsTTL {
		sub.Related = r.patients
		return nil
	}
	all := policy.Decision{Allow: true}
	var patients []string
	for _, src := range careSources {
		rows, err := s.match(ctx, Caller{}, all, src[0], src[1]+"="+sub.FHIRUser, maxRelations)
		if err != nil {
			return err
		}
		for _, row := range rows {
			if row.Compartment != "" {
				patients = append(patients, row.Compartment)
			}
		}
	}
	slices.Sort(patients)
	patients = slices.Compact(patients)
	if patients == nil {
		patients = []string{}
	}
	s.relations.mu.Lock()
	if s.relations.m == nil || len(s.relations.m) > 10000 {
		s.relations.m = map[string]relations{}
	}
	s.relations.m[sub.FHIRUser] = relations{patients: patients, at: now}
	s.relations.mu.Unlock()
	sub.Related = patients
	return nil
}
