package fhir

import (
	"slices"
	"strconv"
	"strings"
)

// Reference points at the reference element of one Reference in a
// resource tree. Set changes the tree in place.
type Reference struct {
	obj  map[string]any
	path string
}

// Value returns the Reference.reference string.
func (ref Reference) Value() string {
	s, _ := ref.obj["reference"].(string)
	return s
}

// Set replaces the Reference.reference string in the tree.
func (ref Reference) Set(v string) { ref.obj["reference"] = v }

// Path returns the FHIRPath-like location of the Reference element,
// for example "Observation.subject" or "Bundle.entry[2].resource.subject".
func (ref Reference) Path() string { return ref.path }

// References returns every Reference.reference string in the tree,
// including those inside contained and Bundle entry resources, in document
// order (the member order of Marshal).
//
// A Reference is recognised structurally: an object with a string
// "reference" member. The three R4 elements named "reference" that are not
// References are excluded: DetectedIssue.reference (a uri on a resource
// root), Immunization.education.reference (a uri) and Expression.reference
// (a uri; an Expression always has "language", a Reference never does). A
// test checks this rule against the types of the R4 schema.
func (r *Resource) References() []Reference {
	var refs []Reference
	collectRefs(r.Object, r.Type, "", true, r.Type, &refs)
	return refs
}

func collectRefs(v any, path, parentKey string, root bool, rtype string, refs *[]Reference) {
	switch v := v.(type) {
	case []any:
		for i, e := range v {
			collectRefs(e, path+"["+strconv.Itoa(i)+"]", parentKey, false, rtype, refs)
		}
	case map[string]any:
		if t, ok := v["resourceType"].(string); ok {
			// A resource (root, contained or in a Bundle entry).
			root, rtype = true, t
		}
		if _, ok := v["reference"].(string); ok && !root && isReferenceObject(v, parentKey, rtype) {
			*refs = append(*refs, Reference{obj: v, path: path})
		}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if k == "resourceType" {
				continue
			}
			if _, ok := v[k].(string); ok {
				continue // primitives hold no references
			}
			collectRefs(v[k], path+"."+k, k, false, rtype, refs)
		}
	}
}

func isReferenceObject(v map[string]any, parentKey, rtype string) bool {
	if _, ok := v["language"]; ok {
		return false // Expression
	}
	if rtype == "Immunization" && parentKey == "education" {
		return false
	}
	return true
}

// ParseReference splits a literal reference into type, id and version. It
// accepts a relative reference "Type/id" or "Type/id/_history/version", and
// an absolute URL whose path ends with one. Type must be an R4 resource
// type and id and version valid ids. Local ("#id"), urn: and conditional
// ("Type?query") references give ok == false.
func ParseReference(s string) (typ, id, version string, ok bool) {
	if i := strings.Index(s, "://"); i > 0 {
		if !validScheme(s[:i]) {
			return "", "", "", false
		}
		rest := s[i+3:]
		slash := strings.IndexByte(rest, '/')
		if slash < 1 || strings.ContainsAny(rest, "?# ") {
			return "", "", "", false
		}
		segs := strings.Split(rest[slash+1:], "/")
		n := len(segs)
		if n >= 4 && segs[n-2] == "_history" {
			return checkRef(segs[n-4], segs[n-3], segs[n-1], true)
		}
		if n >= 2 {
			return checkRef(segs[n-2], segs[n-1], "", false)
		}
		return "", "", "", false
	}
	return parseRelative(s)
}

func parseRelative(s string) (typ, id, version string, ok bool) {
	segs := strings.Split(s, "/")
	switch {
	case len(segs) == 2:
		return checkRef(segs[0], segs[1], "", false)
	case len(segs) == 4 && segs[2] == "_history":
		return checkRef(segs[0], segs[1], segs[3], true)
	}
	return "", "", "", false
}

func checkRef(typ, id, version string, versioned bool) (string, string, string, bool) {
	if !IsResourceType(typ) || !ValidID(id) || versioned && !ValidID(version) {
		return "", "", "", false
	}
	return typ, id, version, true
}

func validScheme(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	return s != ""
}
