package policy

// AdminAction is an administrative operation on people's accounts.
type AdminAction string

// Administrative actions.
const (
	AdminListUsers  AdminAction = "list-users"
	AdminCreateUser AdminAction = "create-user"
	AdminChangeUser AdminAction = "change-user" // disable, enable, reset a second factor
)

// DecideAdmin answers whether a subject may administer people's accounts:
// only a person with the admin role who signed in with a second factor
// (mfa). Services (client credentials) never administer people, whatever
// their scopes; and the admin role gives no access to clinical data (Decide
// does not consult roles).
func DecideAdmin(sub Subject, mfa bool, a AdminAction) Decision {
	switch a {
	case AdminListUsers, AdminCreateUser, AdminChangeUser:
	default:
		return deny("unknown admin action")
	}
	switch {
	case sub.UserID == "":
		return deny("admin actions need a person's token")
	case sub.Role != "admin":
		return deny("admin actions need the admin role")
	case !mfa:
		return deny("admin actions need a sign-in with a second factor")
	}
	return Decision{Allow: true, Reason: "allow: admin " + string(a)}
}

// SecurityAction is an operation of detection and response.
type SecurityAction string

// Security actions.
const (
	SecurityReadAlerts SecurityAction = "read-alerts"  // list and read alerts and incidents
	SecurityWork       SecurityAction = "work-alerts"  // acknowledge and close alerts; open and work incidents
	SecurityContain    SecurityAction = "contain"      // suspend, revoke, force re-enrolment, and lift
	SecurityScope      SecurityAction = "scope-breach" // list what an actor read or changed (names patients by id)
)

// DecideSecurity answers whether a subject may perform a detection and
// response action: only a person with the security-officer role who signed
// in with a second factor. Services never do, whatever their scopes, and
// the role gives no access to clinical data.
func DecideSecurity(sub Subject, mfa bool, a SecurityAction) Decision {
	switch a {
	case SecurityReadAlerts, SecurityWork, SecurityContain, SecurityScope:
	default:
		return deny("unknown security action")
	}
	switch {
	case sub.UserID == "":
		return deny("security actions need a person's token")
	case sub.Role != RoleSecurityOfficer:
		return deny("security actions need the security-officer role")
	case !mfa:
		return deny("security actions need a sign-in with a second factor")
	}
	return Decision{Allow: true, Reason: "allow: security " + string(a)}
}
