package policy

// DecideSign answers whether a subject may electronically sign a version
// of a resource of type typ (21 CFR Part 11): only a person — a service
// client never signs, whatever its scopes — who may read the resource
// (Decide with ActionRead, so that the read's compartment obligation and
// the token's scopes hold) and who holds the right to sign that an
// administrator granted (right). The allowed Decision is the read's:
// whoever enforces it keeps its obligations.
//
// The ceremony (password and second factor entered again for this
// signing) is not a policy matter: package auth runs it before a
// signature is made, and a signature is made only when both agree.
func (p Policy) DecideSign(sub Subject, typ string, right bool) Decision {
	switch {
	case sub.UserID == "":
		return deny("only a person signs; a service client never does")
	case !right:
		return deny("the person does not hold the right to sign")
	}
	d := p.Decide(sub, Request{Action: ActionRead, Type: typ})
	if !d.Allow {
		return d
	}
	d.Reason = "allow: sign " + typ + " (" + d.Reason + ")"
	return d
}
