package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/wardhealth/ward/internal/fhir"
)

// Reach is how far a role reaches into patients' data.
type Reach string

// Reaches of roles.
const (
	ReachNone    Reach = "none"    // no clinical data (admin, auditor, privacy officer)
	ReachOwn     Reach = "own"     // the person's own compartment (patient)
	ReachRelated Reach = "related" // patients with a care relationship or a break-the-glass grant (practitioner)
	ReachAll     Reach = "all"     // every patient: only for configured roles, never a default
)

// Role is what a role may do at most. A person's access is the
// intersection of the role and the token's scopes, never the union.
type Role struct {
	Name  string
	Reach Reach
	// Grants are the interactions the role may perform, as SMART scopes of
	// context user ("user/*.rs", "user/Observation.cruds").
	Grants []Scope
	// Mask lists elements the role never sees, as "Type.element" or
	// "Type.element:system" (an identifier or coding with that system).
	Mask []string
	// Ledger lets the role read the audit ledger and its AuditEvent view.
	Ledger bool
	// Relabel lets the role set or remove security labels (meta.security).
	Relabel bool
	// Review lets the role work the break-the-glass review queue: list
	// emergency grants, read their reasons and close them (DecidePrivacy).
	Review bool
}

// Built-in role names.
const (
	RolePatient      = "patient"
	RolePractitioner = "practitioner"
	RoleAdmin        = "admin"
	RoleAuditor      = "auditor"
	// RolePrivacyOfficer reviews break-the-glass access; it sees no
	// clinical data.
	RolePrivacyOfficer = "privacy-officer"
	// RoleSecurityOfficer works alerts and incidents and contains accounts
	// and clients; it sees no clinical data.
	RoleSecurityOfficer = "security-officer"
)

// BuiltinRoles lists the built-in roles.
func BuiltinRoles() []string {
	return []string{RolePatient, RolePractitioner, RoleAdmin, RoleAuditor, RolePrivacyOfficer, RoleSecurityOfficer}
}

// PrivilegedRoles lists the built-in roles that are always privileged:
// they reach accounts, the ledger or the review queue, so a person in one
// must sign in with a second factor, whatever else is configured.
func PrivilegedRoles() []string {
	return []string{RoleAdmin, RoleAuditor, RolePrivacyOfficer, RoleSecurityOfficer}
}

// SSN is the identifier system of US social security numbers, which the
// practitioner role does not see.
const SSN = "http://hl7.org/fhir/sid/us-ssn"

// builtin returns a built-in role: least privilege by default.
func builtin(name string) (Role, bool) {
	switch name {
	case RolePatient:
		return Role{Name: name, Reach: ReachOwn, Grants: []Scope{{Context: "user", Type: "*", Read: true, Search: true}}}, true
	case RolePractitioner:
		return Role{Name: name, Reach: ReachRelated, Mask: practitionerMask,
			Grants: []Scope{{Context: "user", Type: "*", Create: true, Read: true, Update: true, Delete: true, Search: true}}}, true
	case RoleAdmin:
		return Role{Name: name, Reach: ReachNone}, true
	case RoleAuditor:
		return Role{Name: name, Reach: ReachNone, Ledger: true}, true
	case RolePrivacyOfficer:
		return Role{Name: name, Reach: ReachNone, Review: true}, true
	case RoleSecurityOfficer:
		return Role{Name: name, Reach: ReachNone}, true
	}
	return Role{}, false
}

var practitionerMask = []string{"Patient.identifier:" + SSN, "Reference.identifier:" + SSN}

func mustScopes(raw ...string) []Scope {
	out := make([]Scope, len(raw))
	for i, r := range raw {
		sc, err := ParseScope(r)
		if err != nil {
			panic(err)
		}
		out[i] = sc
	}
	return out
}

// Policy is the decision function with its roles: the built-in ones and
// any configured. The zero Policy has the built-in roles only.
type Policy struct {
	custom map[string]Role
}

// New returns a policy with custom roles added to the built-in ones. A
// custom role may not reuse a built-in name, and must name its grants as
// user/ scopes without query restrictions.
func New(custom []Role) (Policy, error) {
	p := Policy{custom: map[string]Role{}}
	for _, r := range custom {
		if _, ok := builtin(r.Name); ok {
			return Policy{}, fmt.Errorf("policy: role %q is built in", r.Name)
		}
		if !ValidRoleName(r.Name) {
			return Policy{}, fmt.Errorf("policy: role name %q: want 1-32 of a-z - _", r.Name)
		}
		if _, dup := p.custom[r.Name]; dup {
			return Policy{}, fmt.Errorf("policy: role %q defined twice", r.Name)
		}
		switch r.Reach {
		case ReachNone, ReachOwn, ReachRelated, ReachAll:
		default:
			return Policy{}, fmt.Errorf("policy: role %q: reach must be none, own, related or all", r.Name)
		}
		for _, g := range r.Grants {
			if g.Context != "user" || g.Query != "" {
				return Policy{}, fmt.Errorf("policy: role %q: grants must be user/ scopes without a query", r.Name)
			}
		}
		// A mask that records could not apply would fail every access it
		// covers: refuse it here, once.
		if _, err := fhir.ParseMask(r.Mask); err != nil {
			return Policy{}, fmt.Errorf("policy: role %q: %w", r.Name, err)
		}
		p.custom[r.Name] = r
	}
	return p, nil
}

// Role returns a role by name.
func (p Policy) Role(name string) (Role, bool) {
	if r, ok := builtin(name); ok {
		return r, true
	}
	r, ok := p.custom[name]
	return r, ok
}

// ValidRoleName reports whether s can name a role: 1 to 32 of a-z - _.
func ValidRoleName(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// ErrNoOwnRecord: a role that reaches its own compartment has no patient
// record linked (fhirUser).
var ErrNoOwnRecord = errors.New("policy: no patient record linked to the person")

// decidePerson decides for a person's token: the role and the token's
// scopes must both grant the interaction, and the patients reached are the
// role's reach, narrowed to the launch patient by a patient/ scope.
func (p Policy) decidePerson(sub Subject, action Action, need Scope) Decision {
	role, ok := p.Role(sub.Role)
	if !ok {
		return deny("unknown role")
	}
	typ := need.Type
	if typ == "AuditEvent" && role.Ledger {
		need.Context = "user"
		if s, ok := covering(sub.Scopes, need); ok {
			return Decision{Allow: true, Reason: "allow: role " + role.Name + " reads the ledger; scope " + s.String()}
		}
		return deny("no scope grants " + string(action) + " on AuditEvent")
	}
	if role.Reach == ReachNone {
		return deny("role " + role.Name + " has no access to clinical data")
	}
	roleNeed := need
	roleNeed.Context = "user"
	if _, ok := covering(role.Grants, roleNeed); !ok {
		return deny("role " + role.Name + " may not " + string(action) + " " + typ)
	}
	reading := action == ActionRead || action == ActionSearch || action == ActionHistory
	var reach []string // nil: every patient
	switch role.Reach {
	case ReachOwn:
		own, ok := ownPatient(sub.FHIRUser)
		if !ok {
			return deny("role " + role.Name + " has no patient record linked")
		}
		reach = []string{own}
	case ReachRelated:
		reach = sub.Related
		if len(sub.Emergency) > 0 {
			reach = union(sub.Related, sub.Emergency)
		} else if reach == nil {
			reach = []string{}
		}
	}
	var emergency []string
	need.Context = "patient"
	if s, ok := covering(sub.Scopes, need); ok {
		if sub.Patient == "" {
			return deny("scope " + s.String() + " needs a patient launch context")
		}
		if reach != nil && !slices.Contains(reach, sub.Patient) {
			return deny("the launch patient is outside role " + role.Name + "'s reach")
		}
		if slices.Contains(sub.Emergency, sub.Patient) && !slices.Contains(sub.Related, sub.Patient) {
			emergency = []string{sub.Patient}
		}
		return Decision{Allow: true, Patients: []string{sub.Patient}, Emergency: emergency, Mask: role.Mask,
			Reason: "allow: role " + role.Name + " and scope " + s.String() + " grant " + string(action) + " on " + typ + " within the launch patient's compartment"}
	}
	need.Context = "user"
	s, ok := covering(sub.Scopes, need)
	if !ok {
		return deny("no scope grants " + string(action) + " on " + typ)
	}
	for _, e := range sub.Emergency {
		if !slices.Contains(sub.Related, e) {
			emergency = append(emergency, e)
		}
	}
	d := Decision{Allow: true, Patients: reach, Emergency: emergency, Mask: role.Mask,
		Reason: "allow: role " + role.Name + " and scope " + s.String() + " grant " + string(action) + " on " + typ}
	if reach != nil {
		d.Shared = reading
		if d.Patients == nil {
			d.Patients = []string{}
		}
	}
	return d
}

// ownPatient is the patient id of a patient user's own record.
func ownPatient(fhirUser string) (string, bool) {
	typ, id, ok := strings.Cut(fhirUser, "/")
	return id, ok && typ == "Patient" && id != ""
}

// union returns the sorted, distinct union of two sorted lists.
func union(a, b []string) []string {
	out := make([]string, 0, len(a)+len(b))
	out = append(out, a...)
	out = append(out, b...)
	slices.Sort(out)
	return slices.Compact(out)
}

// ValidID reports whether id is a valid FHIR resource id, for callers that
// check the ids people and tokens name without depending on package fhir.
func ValidID(id string) bool { return fhir.ValidID(id) }
