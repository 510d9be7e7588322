package policy

// DecideAccessLog answers whether a subject may read a patient's access
// log: every ledger entry that names the patient, whoever made it, with
// denied attempts and break-the-glass access (GDPR Art. 15, HIPAA
// 164.528). It is allowed to
//   - the patient themself: a person whose role reaches their own record
//     and whose fhirUser is the patient, through a token that may read
//     their Patient resource;
//   - a person whose role reviews break-the-glass access (the privacy
//     officer), signed in with a second factor (mfa);
//   - any subject allowed to search AuditEvents without a compartment
//     obligation (a service with system/AuditEvent.rs, an auditor).
//
// Nobody else: a practitioner who may read the record may not read who
// else did.
func (p Policy) DecideAccessLog(sub Subject, mfa bool, patient string) Decision {
	if patient == "" {
		return deny("an access log names a patient")
	}
	if p.self(sub, patient) {
		if d := p.Decide(sub, Request{Action: ActionRead, Type: "Patient"}); d.Allow && d.Reaches(patient) {
			return Decision{Allow: true, Reason: "allow: the patient's own access log", Patients: []string{patient}}
		}
	}
	if role, ok := p.Role(sub.Role); ok && sub.UserID != "" && role.Review {
		if !mfa {
			return deny("an access log needs a sign-in with a second factor")
		}
		return Decision{Allow: true, Reason: "allow: role " + role.Name + " reads access logs"}
	}
	if d := p.Decide(sub, Request{Action: ActionSearch, Type: "AuditEvent"}); d.Allow && !d.Restricted() {
		return Decision{Allow: true, Reason: "allow: may search audit events"}
	}
	return deny("only the patient, a privacy officer or an auditor reads an access log")
}
