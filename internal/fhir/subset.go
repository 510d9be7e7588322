package fhir

import (
	"strings"
	"sync"
)

// Subsets of a resource: the views that the search result parameters
// _summary and _elements ask for (R4 search.html#summary and
// #elements). A subset only removes elements from a body it is given;
// applied to a body already masked, it cannot bring a masked element
// back. Every subset is marked with the SUBSETTED tag, as R4 asks, so
// that a client does not take it for the whole resource (and does not
// write it back as one).

// SubsettedSystem and SubsettedCode are the meta.tag R4 puts on a
// resource that is not served whole.
const (
	SubsettedSystem = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
	SubsettedCode   = "SUBSETTED"
)

// Subset is a view of resources: the zero Subset is the whole resource.
type Subset struct {
	summary  string          // "true", "text", "data", or "" for none
	elements map[string]bool // _elements: root element names (a choice without [x])
}

// SummaryMode returns the Subset of _summary=mode: "true" keeps the
// elements R4 marks isSummary (and mandatory ones), "text" keeps text,
// id, meta and the mandatory elements at the root, "data" removes text,
// "false" or "" keeps everything. "count" is not a view of a resource:
// the caller serves no resource at all.
func SummaryMode(mode string) (Subset, bool) {
	switch mode {
	case "", "false":
		return Subset{}, true
	case "true", "text", "data":
		return Subset{summary: mode}, true
	}
	return Subset{}, false
}

// ElementsOf returns the Subset of _elements=list for resources of typ:
// each comma-separated name is an element at the root of typ, given as
// R4 does ("name", "value" for value[x], or "valueQuantity") or prefixed
// with the type ("Patient.name"). id, meta and the mandatory elements
// are kept too. ok is false, with the name, for a name typ does not have.
func ElementsOf(typ, list string) (s Subset, bad string, ok bool) {
	els := tableOf(typ)
	if els == nil {
		return Subset{}, typ, false
	}
	s.elements = make(map[string]bool)
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		name = strings.TrimPrefix(name, typ+".")
		if name == "" {
			continue
		}
		base, found := els.lookup("", name)
		if !found || strings.Contains(base, ".") {
			return Subset{}, name, false
		}
		s.elements[base] = true
	}
	return s, "", true
}

// Whole reports whether s keeps every element.
func (s Subset) Whole() bool { return s.summary == "" && s.elements == nil }

// Apply returns body, a resource's JSON, reduced to the subset and
// tagged SUBSETTED. A whole Subset returns body itself.
func (s Subset) Apply(body []byte) ([]byte, error) {
	if s.Whole() {
		return body, nil
	}
	r, err := Parse(body, Limits{})
	if err != nil {
		return nil, err
	}
	s.reduce(r.Type, r.Object)
	tagSubsetted(r.Object)
	return r.Marshal(), nil
}

func (s Subset) reduce(typ string, obj map[string]any) {
	els := tableOf(typ)
	for k, v := range obj {
		if k == "resourceType" {
			continue
		}
		name := strings.TrimPrefix(k, "_") // a primitive's extensions go with it
		base, found := els.lookup("", name)
		f := els[base]
		keep := false
		switch {
		case s.summary == "data":
			keep = name != "text"
		case s.summary == "text":
			keep = name == "text" || name == "id" || name == "meta" || found && f.mandatory
		case s.summary == "true":
			keep = found && (f.summary || f.mandatory)
			if keep && f.backbone {
				obj[k] = els.reduceSummary(base, f, v)
			}
		default: // _elements
			keep = name == "id" || name == "meta" || found && (s.elements[base] || f.mandatory)
		}
		if !keep {
			delete(obj, k)
		}
	}
}

// reduceSummary keeps, in the backbone element at path, the children
// flagged summary or mandatory.
func (t elementFlags) reduceSummary(path string, f elementFlag, v any) any {
	if f.ref != "" {
		path = f.ref
	}
	switch x := v.(type) {
	case []any:
		out := make([]any, len(x))
		for i, item := range x {
			out[i] = t.reduceSummary(path, elementFlag{}, item)
		}
		return out
	case map[string]any:
		for k, item := range x {
			base, found := t.lookup(path+".", strings.TrimPrefix(k, "_"))
			cf := t[base]
			switch {
			case !found || !(cf.summary || cf.mandatory):
				delete(x, k)
			case cf.backbone:
				x[k] = t.reduceSummary(base, cf, item)
			}
		}
		return x
	}
	return v
}

func tagSubsetted(obj map[string]any) {
	meta, _ := obj["meta"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
		obj["meta"] = meta
	}
	tags, _ := meta["tag"].([]any)
	for _, t := range tags {
		if m, ok := t.(map[string]any); ok && m["system"] == SubsettedSystem && m["code"] == SubsettedCode {
			return
		}
	}
	meta["tag"] = append(tags[:len(tags):len(tags)], map[string]any{"system": SubsettedSystem, "code": SubsettedCode})
}

// elementFlag is what the R4 definition says of one element.
type elementFlag struct {
	summary, mandatory, backbone, choice bool
	ref                                  string // contentReference: the element whose children it has
}

// elementFlags are the elements of one resource type by path (below the
// root, dotted; a choice element without its [x]).
type elementFlags map[string]elementFlag

// lookup finds the element named name (a JSON member name) under
// prefix ("" for the root, else "path."): its path, and whether it
// exists. A choice element matches its typed names (valueQuantity for
// value[x]) and its bare name.
func (t elementFlags) lookup(prefix, name string) (string, bool) {
	if _, ok := t[prefix+name]; ok {
		return prefix + name, true
	}
	for i := len(name) - 1; i > 0; i-- {
		if name[i] >= 'A' && name[i] <= 'Z' {
			if f, ok := t[prefix+name[:i]]; ok && f.choice {
				return prefix + name[:i], true
			}
		}
	}
	return "", false
}

var (
	elementsOnce   sync.Once
	elementsByType map[string]elementFlags
)

// tableOf returns the parsed elementTable row of typ, nil for a type
// it does not have.
func tableOf(typ string) elementFlags {
	elementsOnce.Do(func() {
		elementsByType = make(map[string]elementFlags, len(elementTable))
		for t, row := range elementTable {
			m := make(elementFlags)
			for _, tok := range strings.Fields(row) {
				path, flags, _ := strings.Cut(tok, ":")
				flags, ref, _ := strings.Cut(flags, "=")
				f := elementFlag{
					summary: strings.Contains(flags, "s"), mandatory: strings.Contains(flags, "m"),
					backbone: strings.Contains(flags, "b"), ref: ref,
				}
				if p, ok := strings.CutSuffix(path, "[x]"); ok {
					path, f.choice = p, true
				}
				m[path] = f
			}
			elementsByType[t] = m
		}
	})
	return elementsByType[typ]
}
