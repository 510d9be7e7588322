package policy

import (
	"slices"

	"github.com/wardhealth/ward/internal/fhir"
)

// Code systems of the security labels Ward understands.
const (
	// SystemConfidentiality holds the confidentiality codes U, L, M, N, R
	// and V; Ward restricts on R and V.
	SystemConfidentiality = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
	// SystemActCode holds, among others, the information sensitivity
	// codes (HIV, PSY, ETH, SUD, SEX, ...), each of which restricts.
	SystemActCode = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
	// SystemActReason holds the purpose of use codes (TREAT, ETREAT,
	// HPAYMT, BTG, ...).
	SystemActReason = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
)

// Label is a security label: one coding of meta.security.
type Label struct {
	System string
	Code   string
}

// Class is the set of restricting label classes a resource carries. 0 is
// normal data: no label that restricts. The bits are stable: they are
// stored with every resource version and searched on.
type Class uint8

// Label classes.
const (
	ClassRestricted     Class = 1 << iota // confidentiality R
	ClassVeryRestricted                   // confidentiality V
	ClassSensitive                        // any sensitivity code (SensitivityCodes)
)

// classAll is every class.
const classAll = ClassRestricted | ClassVeryRestricted | ClassSensitive

// Confidentiality labels that restrict.
var (
	LabelRestricted     = Label{SystemConfidentiality, "R"}
	LabelVeryRestricted = Label{SystemConfidentiality, "V"}
)

// sensitivityCodes are the v3-ActCode information sensitivity policy codes
// (_ActInformationSensitivityPolicy, _EntitySensitivityPolicyType and
// _RoleInformationSensitivityPolicy), sorted. Each restricts. The index of
// a code is its bit in a View's code set.
var sensitivityCodes = []string{
	"ADOL", "ALC", "B", "BH", "CEL", "COGN", "DEMO", "DIA", "DOB", "DRG", "DRGIS", "DVD",
	"EMOTDIS", "EMP", "EMPL", "ETH", "ETHUD", "GDIS", "GENDER", "HIV", "LIVARG", "LOCIS",
	"MARST", "MH", "MST", "OPIOIDUD", "PDS", "PHY", "PRS", "PSY", "PSYTHPN", "RACE",
	"REL", "SCA", "SDV", "SEX", "SICKLE", "SPI", "SSP", "STD", "SUD", "TBOO", "VIO",
}

// allCodes has a bit set for every sensitivity code.
var allCodes = uint64(1)<<len(sensitivityCodes) - 1

// SensitivityCodes returns the v3-ActCode codes Ward treats as
// sensitivity labels, sorted.
func SensitivityCodes() []string { return slices.Clone(sensitivityCodes) }

// codeBit returns the bit of a sensitivity label, or 0.
func codeBit(l Label) uint64 {
	if l.System != SystemActCode {
		return 0
	}
	i, ok := slices.BinarySearch(sensitivityCodes, l.Code)
	if !ok {
		return 0
	}
	return 1 << i
}

// Class returns the class a label puts a resource in: 0 for a label that
// does not restrict (N, L, M, U, an unknown system or code, a tag such as
// HTEST).
func (l Label) Class() Class {
	switch {
	case l == LabelRestricted:
		return ClassRestricted
	case l == LabelVeryRestricted:
		return ClassVeryRestricted
	case codeBit(l) != 0:
		return ClassSensitive
	}
	return 0
}

// ClassOf returns the classes of a set of labels.
func ClassOf(labels []Label) Class {
	var c Class
	for _, l := range labels {
		c |= l.Class()
	}
	return c
}

// SecurityLabels returns the security labels of a resource (the system and
// code of each meta.security coding), in document order. Codings without a
// code are left out.
func SecurityLabels(res *fhir.Resource) []Label {
	if res == nil {
		return nil
	}
	meta, _ := res.Object["meta"].(map[string]any)
	list, _ := meta["security"].([]any)
	var out []Label
	for _, v := range list {
		c, _ := v.(map[string]any)
		code, _ := c["code"].(string)
		if code == "" {
			continue
		}
		sys, _ := c["system"].(string)
		out = append(out, Label{System: sys, Code: code})
	}
	return out
}

// SameLabels reports whether two label lists hold the same labels,
// ignoring order and repeats.
func SameLabels(a, b []Label) bool {
	return subset(a, b) && subset(b, a)
}

// LabelsWithin reports whether every label of a is in b.
func LabelsWithin(a, b []Label) bool { return subset(a, b) }

func subset(a, b []Label) bool {
	for _, l := range a {
		if !slices.Contains(b, l) {
			return false
		}
	}
	return true
}

// MayRelabel reports whether a subject may set or remove security labels
// (meta.security) on what it writes under an allowed Decision d: a person
// whose role has Relabel, or a service acting with a system/ scope (an
// unrestricted Decision). Nobody else: no built-in role relabels, and a
// service limited to a launch patient does not.
func (p Policy) MayRelabel(sub Subject, d Decision) bool {
	if !d.Allow {
		return false
	}
	if sub.UserID == "" {
		return !d.Restricted()
	}
	role, ok := p.Role(sub.Role)
	return ok && role.Relabel
}
