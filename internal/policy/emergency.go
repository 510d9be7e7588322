package policy

import "slices"

// PurposeBTG is the purpose of use of break-the-glass access (HL7
// v3 ActReason BTG): every access it allows is recorded with it.
const PurposeBTG = "BTG"

// DecideBreakGlass answers whether a subject may ask for emergency access
// to patient, outside their care relationships: only a person (never a
// service) whose role reaches related patients, and only for a patient
// they are not related to already. Sub.Related must be filled as for
// Decide.
//
// The caller keeps what the decision does not cover: a fresh second factor
// (step-up), a stated reason and purpose of use, a patient that exists,
// and a time limit on the grant. A grant widens only the reach of the
// role: the token's scopes still bound every interaction (Decide).
func (p Policy) DecideBreakGlass(sub Subject, patient string) Decision {
	if sub.UserID == "" {
		return deny("break-the-glass needs a person's token")
	}
	role, ok := p.Role(sub.Role)
	switch {
	case !ok:
		return deny("unknown role")
	case role.Reach != ReachRelated:
		return deny("role " + role.Name + " does not reach patients through care relationships")
	case patient == "":
		return deny("break-the-glass needs a patient")
	case slices.Contains(sub.Related, patient):
		return deny("the patient is already related")
	}
	return Decision{Allow: true, Reason: "allow: role " + role.Name + " may break the glass", Patients: []string{patient}, Emergency: []string{patient}}
}

// PrivacyAction is an operation of the break-the-glass review queue.
type PrivacyAction string

// Review queue actions.
const (
	PrivacyListEmergency   PrivacyAction = "list-emergency"
	PrivacyReviewEmergency PrivacyAction = "review-emergency"
	// Erasure (GDPR Art. 17) is asked for by one such person and
	// approved by another.
	PrivacyRequestErasure PrivacyAction = "request-erasure"
	PrivacyApproveErasure PrivacyAction = "approve-erasure"
)

// DecidePrivacy answers whether a subject may work the break-the-glass
// review queue, or ask for or approve an erasure: only a person whose role
// reviews (the privacy-officer role, or a configured role with Review) and
// who signed in with a second factor (mfa). Services never do, whatever
// their scopes; the queue holds the grants' stated reasons, which may name
// clinical facts. That an erasure's approver is not its requester is the
// caller's to check.
func (p Policy) DecidePrivacy(sub Subject, mfa bool, a PrivacyAction) Decision {
	switch a {
	case PrivacyListEmergency, PrivacyReviewEmergency, PrivacyRequestErasure, PrivacyApproveErasure:
	default:
		return deny("unknown review action")
	}
	if sub.UserID == "" {
		return deny("review actions need a person's token")
	}
	role, ok := p.Role(sub.Role)
	switch {
	case !ok:
		return deny("unknown role")
	case !role.Review:
		return deny("role " + role.Name + " does not review break-the-glass access")
	case !mfa:
		return deny("review actions need a sign-in with a second factor")
	}
	return Decision{Allow: true, Reason: "allow: role " + role.Name + " " + string(a)}
}
