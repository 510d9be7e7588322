package policy

import (
	"slices"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/fhir"
)

// ScopePatientPrivacy is the Consent scope Ward enforces
// (http://terminology.hl7.org/CodeSystem/consentscope).
const ScopePatientPrivacy = "patient-privacy"

const (
	systemConsentScope  = "http://terminology.hl7.org/CodeSystem/consentscope"
	systemResourceTypes = "http://hl7.org/fhir/resource-types"
)

// Consent is a patient's privacy Consent as Ward enforces it: one FHIR R4
// Consent resource, its provisions flattened into rules. ParseConsent
// builds it; View applies it.
type Consent struct {
	ID      string
	Patient string // the id of the patient Consent.patient refers to
	// Active: status active and scope patient-privacy. Other Consents
	// (drafts, rejected, research, treatment) have no effect on access.
	Active bool
	Rules  []Rule
}

// Rule is one provision of a Consent, nested ones included.
type Rule struct {
	Permit   bool
	Actors   []string // references such as "Practitioner/123"; empty: everyone
	Purposes []string // purpose of use codes (v3-ActReason); empty: any
	Types    []string // resource types; empty: every type
	// Labels are the restricting security labels the rule is about; empty:
	// all of the patient's data.
	Labels []Label
	// Start and End bound when the rule holds; End is exclusive; a zero
	// bound is open.
	Start, End time.Time
	// Void marks a permit with a criterion Ward cannot evaluate: it grants
	// nothing.
	Void bool
}

// ParseConsent reads a Consent resource. It never fails: what it cannot
// read makes a deny broader and a permit void (see the package
// documentation), and a Consent that is not an active patient-privacy one
// for a patient is returned with Active false.
func ParseConsent(res *fhir.Resource) Consent {
	c := Consent{ID: res.ID}
	if res.Type != "Consent" {
		return c
	}
	obj := res.Object
	status, _ := obj["status"].(string)
	if ref, ok := reference(obj["patient"]); ok {
		if typ, id, ok := strings.Cut(ref, "/"); ok && typ == "Patient" && fhir.ValidID(id) {
			c.Patient = id
		}
	}
	c.Active = status == "active" && privacyScope(obj["scope"]) && c.Patient != ""
	if prov, ok := obj["provision"].(map[string]any); ok {
		c.Rules = flatten(prov, "", time.Time{}, time.Time{}, false, nil)
	}
	return c
}

// privacyScope reports whether a Consent.scope is patient-privacy.
func privacyScope(v any) bool {
	for _, cd := range codings(v) {
		if cd.Code == ScopePatientPrivacy && (cd.System == systemConsentScope || cd.System == "") {
			return true
		}
	}
	return false
}

// flatten turns a provision and its nested provisions into rules. A
// nested provision takes its parent's type when it has none, and holds
// only within its parent's period.
func flatten(prov map[string]any, typ string, start, end time.Time, badPeriod bool, out []Rule) []Rule {
	if t, ok := prov["type"].(string); ok {
		typ = t
	}
	if p, ok := prov["period"].(map[string]any); ok {
		s, e, ok := period(p)
		if !ok {
			badPeriod = true
		} else {
			if s.After(start) {
				start = s
			}
			if !e.IsZero() && (end.IsZero() || e.Before(end)) {
				end = e
			}
		}
	}
	if typ == "permit" || typ == "deny" {
		out = append(out, rule(prov, typ == "permit", start, end, badPeriod))
	}
	nested, _ := prov["provision"].([]any)
	for _, n := range nested {
		if m, ok := n.(map[string]any); ok {
			out = flatten(m, typ, start, end, badPeriod, out)
		}
	}
	return out
}

// rule reads one provision's criteria. A criterion Ward cannot evaluate
// (an actor without a literal reference, a class that is not a resource
// type, codes, data, dataPeriod, an action other than access or use, an
// unreadable period) voids a permit and is dropped from a deny, which then
// covers more.
func rule(prov map[string]any, permit bool, start, end time.Time, badPeriod bool) Rule {
	r := Rule{Permit: permit, Start: start, End: end, Void: permit && badPeriod}
	unknown := false // a criterion that narrows, which Ward cannot evaluate
	actors, _ := prov["actor"].([]any)
	anyone := false
	for _, a := range actors {
		m, _ := a.(map[string]any)
		ref, ok := reference(m["reference"])
		if !ok {
			anyone = true // a deny covers everyone; a permit leaves it out
			continue
		}
		r.Actors = append(r.Actors, ref)
	}
	if anyone && !permit {
		r.Actors = nil
	}
	for _, cd := range codings(prov["purpose"]) {
		r.Purposes = append(r.Purposes, cd.Code)
	}
	classes := codings(prov["class"])
	for _, cd := range classes {
		if (cd.System == systemResourceTypes || cd.System == "") && fhir.IsResourceType(cd.Code) {
			r.Types = append(r.Types, cd.Code)
			continue
		}
		unknown = true
		if !permit {
			r.Types = nil // every type
			break
		}
	}
	labels := codings(prov["securityLabel"])
	for _, l := range labels {
		if l.Class() != 0 && !slices.Contains(r.Labels, l) {
			r.Labels = append(r.Labels, l)
		}
	}
	if len(labels) > 0 && len(r.Labels) == 0 && permit {
		r.Void = true // about labels that restrict nothing: lifts nothing
	}
	if acts, ok := prov["action"].([]any); ok && len(acts) > 0 {
		reads := false
		for _, cd := range codings(acts) {
			reads = reads || cd.Code == "access" || cd.Code == "use"
		}
		unknown = unknown || !reads
	}
	for _, k := range []string{"code", "data", "dataPeriod"} {
		if _, ok := prov[k]; ok {
			unknown = true
		}
	}
	if permit && (unknown || (len(actors) > 0 && len(r.Actors) == 0)) {
		r.Void = true
	}
	return r
}

// reference returns the literal reference of a Reference value.
func reference(v any) (string, bool) {
	m, _ := v.(map[string]any)
	s, _ := m["reference"].(string)
	return s, s != ""
}

// codings returns the codings of a Coding, a CodeableConcept, or a list
// of either.
func codings(v any) []Label {
	var out []Label
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case []any:
			for _, e := range v {
				walk(e)
			}
		case map[string]any:
			if list, ok := v["coding"]; ok {
				walk(list)
				return
			}
			if code, _ := v["code"].(string); code != "" {
				sys, _ := v["system"].(string)
				out = append(out, Label{System: sys, Code: code})
			}
		}
	}
	walk(v)
	return out
}

// period reads a Period: start inclusive, end exclusive at the end of the
// precision it is written in (an end of "2025-06" holds all of June).
func period(p map[string]any) (start, end time.Time, ok bool) {
	if s, has := p["start"].(string); has {
		if start, _, ok = instant(s); !ok {
			return start, end, false
		}
	}
	if e, has := p["end"].(string); has {
		if _, end, ok = instant(e); !ok {
			return start, end, false
		}
	}
	return start, end, true
}

// instant parses a FHIR date or dateTime into the first instant it covers
// and the first instant after it. Dates without a zone are read as UTC.
func instant(s string) (first, after time.Time, ok bool) {
	for _, f := range []struct {
		layout string
		next   func(time.Time) time.Time
	}{
		{"2006", func(t time.Time) time.Time { return t.AddDate(1, 0, 0) }},
		{"2006-01", func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }},
		{"2006-01-02", func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }},
		{time.RFC3339Nano, func(t time.Time) time.Time { return t.Add(time.Second) }},
	} {
		if len(s) != len(f.layout) && f.layout != time.RFC3339Nano {
			continue
		}
		if t, err := time.Parse(f.layout, s); err == nil {
			if f.layout == time.RFC3339Nano && t.Nanosecond() != 0 {
				return t, t.Add(time.Millisecond), true
			}
			return t, f.next(t), true
		}
	}
	return time.Time{}, time.Time{}, false
}

// during reports whether the rule holds at now.
func (r Rule) during(now time.Time) bool {
	return (r.Start.IsZero() || !now.Before(r.Start)) && (r.End.IsZero() || now.Before(r.End))
}

// forType reports whether the rule covers a resource type.
func (r Rule) forType(typ string) bool {
	return len(r.Types) == 0 || slices.Contains(r.Types, typ)
}

// covers reports whether the rule decides on a resource of typ. A
// Provenance may be about a resource of any type (a write's Provenance
// is in its patient's compartment and names what it is about), so a
// deny of some types covers the patient's Provenances too, which never
// tell what is withheld; a permit covers them only when it names them
// or every type.
func (r Rule) covers(typ string) bool {
	return r.forType(typ) || (!r.Permit && typ == "Provenance")
}

// forPurpose reports whether the rule covers a request's purpose of use.
// A request that states none is covered by a deny restricted to purposes
// (it might be any of them) and by no such permit.
func (r Rule) forPurpose(purpose string) bool {
	if len(r.Purposes) == 0 {
		return true
	}
	if purpose == "" {
		return !r.Permit
	}
	return slices.Contains(r.Purposes, purpose)
}

// names reports whether the rule names actor.
func (r Rule) names(actor string) bool {
	return actor != "" && slices.Contains(r.Actors, actor)
}

// Facts are what the caller gathered about the data an access touches:
// one resource type in one patient's compartment.
type Facts struct {
	Type     string    // resource type
	Patient  string    // the compartment's patient id; "" for shared resources
	Consents []Consent // the patient's Consents; others are ignored
	Purpose  string    // the purpose of use the request states; "" if none
	Now      time.Time
}

// View is what a subject may see of one patient's data of one resource
// type, by security label. Views are comparable: equal views admit the
// same resources.
type View struct {
	hidden  bool
	classes Class  // classes seen whatever the labels
	codes   uint64 // sensitivity codes seen, one bit per SensitivityCodes entry
}

// View decides what sub, allowed by d, may see of the data Facts
// describe. See the package documentation for the rules. The patient's
// compartment must be within d's reach: View narrows a Decision, it never
// widens one.
func (p Policy) View(sub Subject, d Decision, f Facts) View {
	all := View{classes: classAll, codes: allCodes}
	switch {
	case !d.Allow:
		return View{hidden: true}
	case sub.UserID == "" && !d.Restricted():
		return all // a service acting with a system/ scope
	case f.Patient != "" && p.self(sub, f.Patient):
		return all
	}
	actor := sub.FHIRUser
	// Reached through a break-the-glass grant: the Decision's Emergency
	// obligation records every such access with purpose of use BTG.
	btg := f.Patient != "" && d.InEmergency(f.Patient)
	var v View
	if btg {
		v.classes, v.codes = ClassRestricted, allCodes
	}
	var deniedClasses Class
	var deniedCodes uint64
	for i := range f.Consents {
		c := &f.Consents[i]
		if !c.Active || c.Patient != f.Patient || f.Patient == "" {
			continue
		}
		for j := range c.Rules {
			r := &c.Rules[j]
			if !r.during(f.Now) || !r.covers(f.Type) || !r.forPurpose(f.Purpose) {
				continue
			}
			if r.Permit {
				if r.Void || !r.names(actor) {
					continue
				}
				if len(r.Labels) == 0 {
					v.classes |= ClassRestricted | ClassVeryRestricted
					v.codes = allCodes
					continue
				}
				for _, l := range r.Labels {
					v.classes |= l.Class() &^ ClassSensitive
					v.codes |= codeBit(l)
				}
				continue
			}
			if btg || (len(r.Actors) > 0 && !r.names(actor)) {
				continue
			}
			if len(r.Labels) == 0 {
				return View{hidden: true}
			}
			for _, l := range r.Labels {
				deniedClasses |= l.Class() &^ ClassSensitive
				deniedCodes |= codeBit(l)
			}
		}
	}
	v.classes &^= deniedClasses
	v.codes &^= deniedCodes
	if v.codes == allCodes {
		v.classes |= ClassSensitive
	}
	return v
}

// self reports whether sub is the patient whose compartment it is.
func (p Policy) self(sub Subject, patient string) bool {
	if own, ok := ownPatient(sub.FHIRUser); !ok || own != patient || sub.UserID == "" {
		return false
	}
	role, ok := p.Role(sub.Role)
	return ok && role.Reach == ReachOwn
}

// Hidden reports whether the view sees none of the data.
func (v View) Hidden() bool { return v.hidden }

// All reports whether the view sees all of the data, whatever its labels.
func (v View) All() bool { return !v.hidden && v.classes == classAll }

// Classes returns the label classes the view sees whatever the codes: a
// resource whose class has no other bit is admitted.
func (v View) Classes() Class {
	if v.hidden {
		return 0
	}
	return v.classes
}

// HiddenCodes returns the sensitivity labels the view does not see,
// sorted by code: a resource whose class lacks only ClassSensitive from
// Classes is admitted when it carries none of them. Empty when the view
// sees every sensitivity code.
func (v View) HiddenCodes() []Label {
	var out []Label
	for i, code := range sensitivityCodes {
		if v.codes&(1<<i) == 0 {
			out = append(out, Label{SystemActCode, code})
		}
	}
	return out
}

// Partial reports whether the view sees some sensitivity codes but not
// all of them: deciding on a ClassSensitive resource then needs its labels,
// not only its class.
func (v View) Partial() bool {
	return !v.hidden && v.codes != 0 && v.codes != allCodes
}

// Admits reports whether the view sees a resource carrying labels.
func (v View) Admits(labels []Label) bool {
	if v.hidden {
		return false
	}
	missing := ClassOf(labels) &^ v.classes
	if missing == 0 {
		return true
	}
	if missing != ClassSensitive {
		return false
	}
	for _, l := range labels {
		if b := codeBit(l); b != 0 && v.codes&b == 0 {
			return false
		}
	}
	return true
}

// AdmitsClass reports whether the view sees a resource of class c, when
// that can be told from the class alone (known is false when it needs the
// resource's labels: a partial view and a sensitive resource).
func (v View) AdmitsClass(c Class) (admit, known bool) {
	if v.hidden {
		return false, true
	}
	missing := c &^ v.classes
	switch {
	case missing == 0:
		return true, true
	case missing == ClassSensitive && v.codes != 0:
		return false, false
	}
	return false, true
}
