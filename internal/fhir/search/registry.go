package search

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"slices"
	"sort"
	"strings"
)

//go:embed spec/search-parameters.json.gz
var searchParametersGz []byte

// Type is a FHIR search parameter type.
type Type string

// The R4 search parameter types.
const (
	TypeString    Type = "string"
	TypeToken     Type = "token"
	TypeReference Type = "reference"
	TypeDate      Type = "date"
	TypeNumber    Type = "number"
	TypeQuantity  Type = "quantity"
	TypeURI       Type = "uri"
	TypeComposite Type = "composite"
	TypeSpecial   Type = "special"
)

// Param is one search parameter as it applies to one resource type.
type Param struct {
	Code string
	Type Type
	// Base is the resource type this entry is for ("Resource" or
	// "DomainResource" for the parameters every resource has).
	Base string
	// Expression is the part of the official FHIRPath expression for Base.
	Expression string
	// Targets are the resource types a reference parameter may point to.
	Targets []string
	// Blind marks parameters whose values Ward stores only as blind indexes
	// (keyed hashes), so they support exact matching only. It is decided
	// per resource type (blind.go): the same common parameter (_tag,
	// _source) is blind on an Observation and plain on an Organization.
	Blind bool
	// Supported is false when Ward cannot extract or search this parameter;
	// Reason then says why.
	Supported bool
	Reason    string
	// Components are a composite parameter's parts, in the order its
	// values give them ('$'-separated): each a parameter of the same
	// resource type, evaluated on one element that Expression selects.
	Components []Component

	branches []branch // compiled expression, one entry per union branch
	// idTargets, on a reference parameter, are the types a bare id is
	// tried against (see bareIDTargets).
	idTargets []string
	// ident, on a supported reference parameter, is the token parameter
	// its elements' Reference.identifier values are indexed under (the
	// :identifier modifier; identifierParam).
	ident *Param
}

// Component is one part of a composite parameter: the parameter whose
// values it takes (its type, blind rule and value syntax), and its
// expression relative to the composite's element.
type Component struct {
	Param      *Param
	Expression string

	branches []branch
}

// Registry holds the R4 search parameters, compiled. It is immutable and safe
// for concurrent use.
type Registry struct {
	byType map[string]map[string]*Param // resource type -> code -> param
	common map[string]*Param            // base Resource / DomainResource
	// inherited holds, per resource type, its own copy of each common
	// parameter it has, so that Blind can differ between types.
	inherited map[string]map[string]*Param
	unsupp    []*Param
	ordered   map[string][]*Param // resource type -> params sorted by code, including common
}

// isDomainResource reports whether an R4 resource type is a DomainResource
// (all but Bundle, Binary and Parameters).
func isDomainResource(t string) bool {
	return t != "Bundle" && t != "Binary" && t != "Parameters"
}

// NewRegistry loads and compiles the embedded R4 SearchParameter definitions.
func NewRegistry() (*Registry, error) {
	zr, err := gzip.NewReader(bytes.NewReader(searchParametersGz))
	if err != nil {
		return nil, fmt.Errorf("search: open definitions: %w", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("search: read definitions: %w", err)
	}
	var bundle struct {
		Entry []struct {
			Resource struct {
				Code       string   `json:"code"`
				Type       string   `json:"type"`
				Base       []string `json:"base"`
				Expression string   `json:"expression"`
				Target     []string `json:"target"`
				URL        string   `json:"url"`
				Component  []struct {
					Definition string `json:"definition"`
					Expression string `json:"expression"`
				} `json:"component"`
			} `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(raw, &bundle); err != nil {
		return nil, fmt.Errorf("search: decode definitions: %w", err)
	}
	r := &Registry{
		byType:    make(map[string]map[string]*Param),
		common:    make(map[string]*Param),
		ordered:   make(map[string][]*Param),
		inherited: make(map[string]map[string]*Param),
	}
	// A composite's components name other definitions by URL; they are
	// resolved once every parameter is known.
	codeOf := make(map[string]string)
	type pendingComposite struct {
		p     *Param
		defs  []string
		exprs []string
	}
	var composites []pendingComposite
	for _, e := range bundle.Entry {
		d := e.Resource
		codeOf[d.URL] = d.Code
		branches, cerr := compile(d.Expression)
		for _, base := range d.Base {
			p := &Param{
				Code:    d.Code,
				Type:    Type(d.Type),
				Base:    base,
				Targets: d.Target,
			}
			p.Blind = blind(base, p)
			p.Supported, p.Reason = true, ""
			switch {
			case d.Expression == "":
				p.Supported, p.Reason = false, "no FHIRPath expression (full-text or named query)"
			case p.Type == TypeComposite:
				pc := pendingComposite{p: p}
				for _, c := range d.Component {
					pc.defs, pc.exprs = append(pc.defs, c.Definition), append(pc.exprs, c.Expression)
				}
				composites = append(composites, pc)
			case p.Type == TypeSpecial:
				p.Supported, p.Reason = false, "special parameters are not supported"
			case cerr != nil:
				p.Supported, p.Reason = false, cerr.Error()
			}
			if p.Supported {
				var parts []string
				for _, b := range branches {
					if b.root == "" || b.root == base || b.root == "Resource" || b.root == "DomainResource" {
						p.branches = append(p.branches, b)
						parts = append(parts, strings.TrimSpace(d.Expression[b.start:b.end]))
					}
				}
				p.Expression = strings.Join(parts, " | ")
				p.idTargets = bareIDTargets(d.Target, parts)
				if len(p.branches) == 0 {
					p.Supported, p.Reason = false, "expression has no path for this base"
				}
			} else {
				p.Expression = d.Expression
			}
			if base == "Resource" || base == "DomainResource" {
				r.common[p.Code] = p
			} else {
				if r.byType[base] == nil {
					r.byType[base] = make(map[string]*Param)
				}
				r.byType[base][p.Code] = p
			}
		}
	}
	for _, pc := range composites {
		if pc.p.Supported {
			pc.p.Supported, pc.p.Reason = r.resolveComponents(pc.p, pc.defs, pc.exprs, codeOf)
		}
	}
	for _, m := range r.byType {
		for _, p := range m {
			if !p.Supported {
				r.unsupp = append(r.unsupp, p)
			}
		}
	}
	for _, p := range r.common {
		if !p.Supported {
			r.unsupp = append(r.unsupp, p)
		}
	}
	// R4 resource types that have only the common parameters.
	for _, t := range []string{"Binary", "BiologicallyDerivedProduct", "CatalogEntry", "MedicinalProductIngredient", "MedicinalProductManufactured", "ObservationDefinition", "OperationOutcome", "Parameters", "SubstanceNucleicAcid", "SubstancePolymer", "SubstanceProtein", "SubstanceReferenceInformation", "SubstanceSourceMaterial"} {
		if r.byType[t] == nil {
			r.byType[t] = make(map[string]*Param)
		}
	}
	for t, m := range r.byType {
		var list []*Param
		for _, p := range m {
			list = append(list, p)
		}
		own := make(map[string]*Param)
		for c, p := range r.common {
			if _, shadowed := m[c]; !shadowed && (p.Base == "Resource" || isDomainResource(t)) {
				q := *p
				q.Blind = blind(t, &q)
				own[c] = &q
				list = append(list, &q)
			}
		}
		r.inherited[t] = own
		for _, p := range list {
			if p.Supported && p.Type == TypeReference {
				p.ident = identifierParam(t, p)
			}
		}
		sort.Slice(list, func(i, j int) bool { return list[i].Code < list[j].Code })
		r.ordered[t] = list
	}
	sort.Slice(r.unsupp, func(i, j int) bool {
		if r.unsupp[i].Base != r.unsupp[j].Base {
			return r.unsupp[i].Base < r.unsupp[j].Base
		}
		return r.unsupp[i].Code < r.unsupp[j].Code
	})
	return r, nil
}

// identifierSuffix ends the code under which a reference parameter's
// Reference.identifier values are indexed: "subject:identifier" for
// subject. No search parameter's code holds a ':' (it separates a
// modifier in a query), so these rows never mix with a parameter's own.
const identifierSuffix = ":identifier"

// ReferenceIdentifier reports whether p is the parameter a reference
// parameter's :identifier searches (identifierParam): its values are
// Reference.identifier.
func (p *Param) ReferenceIdentifier() bool {
	return p.Type == TypeToken && strings.HasSuffix(p.Code, identifierSuffix)
}

// identifierParam is the token parameter that indexes the
// Reference.identifier of ref's elements, on resources of resourceType,
// for ref:identifier=[system|]value. It reads what ref reads
// (Expression), so a mask that hides ref's element, or anything in it,
// covers it too. Its Blind is decided as for every identifier (blind.go).
// It is not in Params: it is no parameter a query can name, only what
// ref:identifier searches.
func identifierParam(resourceType string, ref *Param) *Param {
	p := &Param{Code: ref.Code + identifierSuffix, Type: TypeToken, Base: ref.Base, Expression: ref.Expression, Supported: true}
	p.Blind = blind(resourceType, p)
	return p
}

// resolveComponents binds a composite's components to the parameters of
// its base they name, and compiles their relative expressions. A
// component that names no supported parameter of the base, or whose
// expression the evaluator cannot read (%resource), leaves the composite
// unsupported, with the reason.
func (r *Registry) resolveComponents(p *Param, defs, exprs []string, codeOf map[string]string) (bool, string) {
	if len(defs) < 2 {
		return false, "composite parameter without components"
	}
	p.Blind = false
	for i, def := range defs {
		code, ok := codeOf[def]
		if !ok {
			return false, "composite component names an unknown parameter"
		}
		cp := r.byType[p.Base][code]
		if cp == nil || !cp.Supported || cp.Type == TypeComposite || cp.Type == TypeSpecial {
			return false, "composite component " + code + " is not a supported parameter of " + p.Base
		}
		branches, err := compile(exprs[i])
		if err != nil {
			return false, "composite component " + code + ": " + err.Error()
		}
		for _, b := range branches {
			if b.root != "" {
				return false, "composite component " + code + " is not relative to its element"
			}
		}
		p.Components = append(p.Components, Component{Param: cp, Expression: exprs[i], branches: branches})
		p.Blind = p.Blind || cp.Blind
	}
	return true, ""
}

// Param returns the parameter code of resourceType, including the parameters
// every resource has (_id, _lastUpdated, _tag, _profile, _security, _source).
func (r *Registry) Param(resourceType, code string) (*Param, bool) {
	if m, ok := r.byType[resourceType]; ok {
		if p, ok := m[code]; ok {
			return p, true
		}
		if p, ok := r.inherited[resourceType][code]; ok {
			return p, true
		}
	}
	return nil, false
}

// Params returns the parameters of resourceType sorted by code, or nil for an
// unknown resource type. The caller must not modify them.
func (r *Registry) Params(resourceType string) []*Param {
	return r.ordered[resourceType]
}

// Unsupported returns the parameters Ward cannot search, sorted by base and
// code, each with its Reason.
func (r *Registry) Unsupported() []*Param {
	return r.unsupp
}

// IDTargets are the types a bare id given to reference parameter p is
// tried against: Targets, or fewer where the expression admits fewer
// (bareIDTargets).
func (p *Param) IDTargets() []string {
	if p.idTargets != nil {
		return p.idTargets
	}
	return p.Targets
}

// resolvedType matches a branch that keeps only references to one type.
var resolvedType = regexp.MustCompile(`\.where\(resolve\(\) is ([A-Z][A-Za-z]*)\)$`)

// bareIDTargets returns the types a bare id of a reference parameter is
// tried against: its targets, narrowed to the types its expression keeps
// when every branch ends in where(resolve() is T). R4's clinical
// "patient" parameter lists Patient and Group, but on an Encounter
// (Encounter.subject.where(resolve() is Patient)) no Group reference is
// ever indexed under it: "patient=123" is then Patient/123 alone, one
// equality rather than a list of two that a planner without statistics
// reads by scanning every index row of the parameter.
func bareIDTargets(targets, branches []string) []string {
	var kept []string
	for _, b := range branches {
		m := resolvedType.FindStringSubmatch(b)
		if m == nil {
			return targets
		}
		if !slices.Contains(kept, m[1]) {
			kept = append(kept, m[1])
		}
	}
	var out []string
	for _, t := range targets {
		if slices.Contains(kept, t) {
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		return targets
	}
	return out
}
