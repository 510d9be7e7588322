// Package policy is Ward's one policy decision point (DESIGN invariant 2):
// Decide answers whether a subject may perform an action on a resource type,
// and under which obligation, and every handler, batch entry and operation
// asks it instead of deciding on its own. The package is pure: no I/O, no
// clock, no context, no state.
//
// What it guarantees:
//   - Deny by default. An access is allowed only when a granted scope covers
//     it; an unknown action, a malformed type, an empty subject or a subject
//     without scopes is denied.
//   - Scopes follow SMART App Launch 2.0 ("system/Patient.rs"), with v1 forms
//     ("system/*.read", ".write", ".*") accepted and normalised to v2.
//   - Audit data is granted only by a scope that names AuditEvent
//     ("system/AuditEvent.rs", "user/AuditEvent.rs" for a role that reads
//     the ledger): the wildcard "*" covers every other type (Scope.Covers).
//     The ledger endpoints are decided as reads of AuditEvent.
//   - A system/ scope grants the access without restriction: the Decision's
//     Compartment is "".
//   - A patient/ scope grants the access only when the subject carries a
//     patient launch context (Subject.Patient), and then only under an
//     obligation: Decision.Compartment is that patient's id, and the caller
//     must keep the access within that patient's compartment (reads and
//     searches see only resources in it, writes may only put resources in
//     it, and anything outside must look as if it did not exist). Without a
//     launch patient a patient/ scope grants nothing.
//   - When several scopes cover an access, a system/ scope wins: the
//     Decision is the least restricted one the scopes allow.
//   - user/ scopes grant nothing yet: they are limited to what a user may
//     see through care relationships, which are not modelled, so they grant
//     nothing rather than everything. Query-restricted v2 scopes
//     ("?category=...") are parsed but grant nothing.
//   - AuditEvent is never written through Decide, whatever the scopes.
//   - Every Decision carries a Reason made only of the action, the resource
//     type and scope strings: safe for logs and audit entries, never PHI.
//     The Reason does not name the compartment's patient.
//
// What it does not do: enforce the compartment obligation, which needs the
// data (package records does it), and, not yet, roles in data access
// (Decide does not consult Subject.Role), care relationships, FHIR Consent
// and break-the-glass obligations. Subject, Request and Decision are the
// place those will be added.
//
// # Security labels and Consent
//
// View narrows an allowed Decision by the data's security labels
// (meta.security) and the patient's Consents. It answers per patient
// compartment and resource type; the caller gathers the Facts (the
// patient's parsed Consents, the purpose of use, the time) and enforces
// the answer. The rules, exactly:
//
//   - Labels that restrict: confidentiality R and V
//     (v3-Confidentiality), and the information sensitivity codes of
//     v3-ActCode (HIV, PSY, ETH, SUD, SEX, ...: SensitivityCodes). Every
//     other label (N, L, M, U, HTEST, unknown systems or codes) restricts
//     nothing. A resource's Class is the set of R, V and "sensitive" it
//     carries.
//   - Who is not restricted at all: a service acting with a system/ scope
//     (an unrestricted Decision), and a patient reading their own
//     compartment, whose own Consents never restrict them. Everyone else
//     is: people of every role, and services limited to a launch patient.
//   - Defaults: normal data (no restricting label) follows the Decision's
//     reach. R and sensitivity labels are seen by the patient themself and
//     by actors a permitting Consent names; V only by actors a permitting
//     Consent names. Shared resources (no compartment) have no Consents:
//     only their normal data is seen.
//   - A Consent counts when it is status active, scope patient-privacy,
//     for the compartment's patient. Each provision, nested ones included,
//     is a rule; a nested provision without a type takes its parent's and
//     holds only within its parent's period. A rule holds when its period
//     covers Facts.Now, its class lists the resource type (or none), and
//     its purposes list the request's purpose of use (or none). A request
//     that states no purpose is covered by a deny restricted to purposes,
//     and by no such permit.
//   - Deny: covers the actors it lists (matched against Subject.FHIRUser,
//     "Practitioner/123"), or everyone when it lists none. Without
//     restricting labels it hides all of the patient's data of the types
//     it covers; with labels, it hides the data carrying them, even from
//     an actor a permit names. A deny wins over every permit.
//   - Permit: lifts restrictions only for the actors it names (a permit
//     naming no one lifts nothing: normal data is seen anyway). With
//     securityLabel it lifts the restricting labels it lists, each on its
//     own (a resource labelled HIV and PSY needs both); without, it lifts
//     all of them, V included. A permit never widens the Decision's reach.
//   - What Ward cannot evaluate makes a deny broader and a permit void:
//     an actor without a literal reference (the deny covers everyone),
//     a class that is not a resource type (the deny covers every type),
//     code, data or dataPeriod (ignored by a deny), an action other than
//     access or use, an unreadable period (the deny has no bound), a
//     securityLabel list with no restricting label (the deny covers all
//     the data).
//   - Break-the-glass: where the Decision reaches the patient only through
//     an emergency grant (Decision.InEmergency), whose every access is
//     recorded with purpose of use BTG, deny rules do not apply and R and
//     sensitivity labels are lifted; V still needs a permit naming the
//     actor.
//
// Writes: only a subject that MayRelabel (a person whose role has
// Relabel, or a service with a system/ scope) sets or removes security
// labels. No built-in role has Relabel.
//
// Action to scope letter mapping (SMART v2):
//
//	create    -> c
//	read      -> r   (vread is a read)
//	update    -> u
//	delete    -> d
//	search    -> s
//	history   -> r   (instance and type history read past versions)
//	operation -> cruds: an operation may read and write anything in its
//	             scope, so until operations are classified one by one only a
//	             scope granting every letter on the type allows it
//
// Whole-system interactions (Request.Type ""): system search and system
// history need the letter on a "*" scope, since they cross every type. A
// batch or transaction is decided by the caller once per entry, with that
// entry's type; create, read, update and delete always name a type.
package policy

import "slices"

// Action is a FHIR interaction class.
type Action string

// Actions Decide knows; any other Action is denied.
const (
	ActionCreate    Action = "create"
	ActionRead      Action = "read" // read and vread
	ActionUpdate    Action = "update"
	ActionDelete    Action = "delete"
	ActionSearch    Action = "search"
	ActionHistory   Action = "history"
	ActionOperation Action = "operation"
)

// Subject is who asks: an OAuth2 client and the scopes its token carries,
// and for a person's token the person, the role and the SMART launch
// context, with the care relationships and break-the-glass grants the
// caller looked up for this request.
type Subject struct {
	ClientID string
	Scopes   []Scope
	// A person's token also names the person, their role and the SMART
	// launch context; all empty for a service. Patient is the patient id
	// that patient/ scopes are limited to: the patient chosen at sign-in, or
	// a patient user's own id.
	UserID   string
	Role     string
	Patient  string
	FHIRUser string // "Patient/abc", "Practitioner/123": a patient user's own record
	// Related lists the patients the person has a care relationship with
	// (CareTeam membership, Encounter or EpisodeOfCare participation, an
	// explicit assignment), and Emergency those with an active
	// break-the-glass grant. The caller fills them for roles that reach
	// related patients; both sorted, without repeats.
	Related   []string
	Emergency []string
}

// Request is what the subject asks to do. Type is a resource type, or "" for
// a whole-system interaction.
type Request struct {
	Action Action
	Type   string
}

// Decision is the answer. Reason explains it for logs and audit entries; it
// is not meant for the caller, who sees only allowed or not.
//
// An allowed Decision carries obligations that whoever enforces it must
// keep:
//   - Patients: when not nil, the access is limited to the compartments of
//     these patients (sorted, distinct; an empty list reaches no patient);
//     reads and searches must be narrowed to them, writes must put
//     resources only in them, and anything outside must look as if it did
//     not exist. nil means every patient.
//   - Shared: with Patients set, resources outside any patient compartment
//     (Practitioner, Organization, Medication...) may be read too. Writes
//     to them need an unrestricted Decision.
//   - Emergency: the patients in Patients reached only through a
//     break-the-glass grant: each access to their data must be recorded
//     with purpose of use BTG and raise a security alert.
//   - Mask: elements the subject's role may never see; they must be removed
//     from every representation served (read, search, includes,
//     $everything, history, bundles).
//
// A denied Decision has no obligations.
type Decision struct {
	Allow     bool
	Reason    string
	Patients  []string
	Shared    bool
	Emergency []string
	Mask      []string
}

// Restricted reports whether the Decision limits the patients reached.
func (d Decision) Restricted() bool { return d.Patients != nil }

// Reaches reports whether an allowed Decision covers a resource sealed in
// compartment ("" for a shared resource) for reading.
func (d Decision) Reaches(compartment string) bool {
	if d.Patients == nil {
		return true
	}
	if compartment == "" {
		return d.Shared
	}
	_, ok := slices.BinarySearch(d.Patients, compartment)
	return ok
}

// Writes reports whether an allowed Decision lets a resource be written
// into compartment: shared resources only without a restriction.
func (d Decision) Writes(compartment string) bool {
	if d.Patients == nil {
		return true
	}
	if compartment == "" {
		return false
	}
	_, ok := slices.BinarySearch(d.Patients, compartment)
	return ok
}

// InEmergency reports whether reaching compartment relies on a
// break-the-glass grant.
func (d Decision) InEmergency(compartment string) bool {
	_, ok := slices.BinarySearch(d.Emergency, compartment)
	return ok && compartment != ""
}

// Decide is the policy decision function with the built-in roles only. See
// the package documentation for the rules; Policy.Decide adds configured
// roles.
func Decide(sub Subject, req Request) Decision { return Policy{}.Decide(sub, req) }

// Decide is the policy decision function. See the package documentation
// for the rules.
func (p Policy) Decide(sub Subject, req Request) Decision {
	need, ok := required(req.Action)
	if !ok {
		return deny("unknown action")
	}
	if sub.ClientID == "" {
		return deny("no authenticated subject")
	}
	typ := req.Type
	if typ == "" {
		switch req.Action {
		case ActionSearch, ActionHistory, ActionOperation:
			typ = "*" // crosses every type: only a wildcard scope covers it
		default:
			return deny(string(req.Action) + " needs a resource type")
		}
	} else if !validType(typ) {
		return deny("malformed resource type")
	}
	if typ == AuditType && (req.Action == ActionCreate || req.Action == ActionUpdate || req.Action == ActionDelete) {
		// AuditEvents are the ledger seen as FHIR: only Ward writes it.
		return deny("AuditEvent is read-only")
	}
	need.Type = typ
	if sub.UserID != "" {
		return p.decidePerson(sub, req.Action, need)
	}
	need.Context = "system"
	if s, ok := covering(sub.Scopes, need); ok {
		return Decision{Allow: true, Reason: "allow: scope " + s.String() + " grants " + string(req.Action) + " on " + typ}
	}
	need.Context = "patient"
	if s, ok := covering(sub.Scopes, need); ok {
		if sub.Patient == "" {
			return deny("scope " + s.String() + " needs a patient launch context")
		}
		return Decision{
			Allow:    true,
			Reason:   "allow: scope " + s.String() + " grants " + string(req.Action) + " on " + typ + " within the launch patient's compartment",
			Patients: []string{sub.Patient},
		}
	}
	// A service's user/ scopes name no user: they grant nothing.
	return deny("no scope grants " + string(req.Action) + " on " + typ)
}

// covering returns the first unrestricted scope that covers need.
func covering(scopes []Scope, need Scope) (Scope, bool) {
	for _, s := range scopes {
		if s.Query == "" && s.Covers(need) {
			return s, true
		}
	}
	return Scope{}, false
}

// required maps an action to the permissions a scope must grant.
func required(a Action) (Scope, bool) {
	switch a {
	case ActionCreate:
		return Scope{Create: true}, true
	case ActionRead, ActionHistory:
		return Scope{Read: true}, true
	case ActionUpdate:
		return Scope{Update: true}, true
	case ActionDelete:
		return Scope{Delete: true}, true
	case ActionSearch:
		return Scope{Search: true}, true
	case ActionOperation:
		return Scope{Create: true, Read: true, Update: true, Delete: true, Search: true}, true
	}
	return Scope{}, false
}

func deny(reason string) Decision { return Decision{Reason: "deny: " + reason} }
