// Package policy is Ward's one policy decision point (DESIGN invariant 2):
// Decide answers whether a subject may perform an action on a resource type,
// and every handler, batch entry and operation asks it instead of deciding on
// its own. The package is pure: no I/O, no clock, no context, no state.
//
// What it guarantees:
//   - Deny by default. An access is allowed only when a granted scope covers
//     it; an unknown action, a malformed type, an empty subject or a subject
//     without scopes is denied.
//   - Scopes follow SMART App Launch 2.0 ("system/Patient.rs"), with v1 forms
//     ("system/*.read", ".write", ".*") accepted and normalised to v2.
//   - Only system/ scopes grant access today. patient/ scopes are limited to a
//     patient compartment and user/ scopes to what a user may see; neither the
//     compartment nor users are modelled yet, so such scopes grant nothing
//     rather than everything. Query-restricted v2 scopes ("?category=...")
//     are parsed but grant nothing.
//   - Every Decision carries a Reason made only of the action, the resource
//     type and scope strings: safe for logs and audit entries, never PHI.
//
// What it does not do yet: roles, care relationships, patient compartments,
// FHIR Consent and break-the-glass obligations. Subject and Request are the
// place those will be added.
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

// Subject is who asks: today an OAuth2 client and the scopes its token
// carries.
type Subject struct {
	ClientID string
	Scopes   []Scope
	// A person's token also names the person, their role and the SMART
	// launch context; all empty for a service.
	UserID  string
	Role    string
	Patient string
}

// Request is what the subject asks to do. Type is a resource type, or "" for
// a whole-system interaction.
type Request struct {
	Action Action
	Type   string
}

// Decision is the answer. Reason explains it for logs and audit entries; it
// is not meant for the caller, who sees only allowed or not.
type Decision struct {
	Allow  bool
	Reason string
}

// Decide is the policy decision function. See the package documentation for
// the rules.
func Decide(sub Subject, req Request) Decision {
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
	if typ == "AuditEvent" && (req.Action == ActionCreate || req.Action == ActionUpdate || req.Action == ActionDelete) {
		// AuditEvents are the ledger seen as FHIR: only Ward writes it.
		return deny("AuditEvent is read-only")
	}
	need.Context, need.Type = "system", typ
	for _, s := range sub.Scopes {
		if s.Query == "" && s.Covers(need) {
			return Decision{Allow: true, Reason: "allow: scope " + s.String() + " grants " + string(req.Action) + " on " + typ}
		}
	}
	return deny("no scope grants " + string(req.Action) + " on " + typ)
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
