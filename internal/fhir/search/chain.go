package search

import (
	"slices"
	"strconv"
	"strings"
)

// Chained parameters and _has (R4 search.html#chaining, #has). ParseQuery
// reads their first hop and checks what it can without running a
// search: the reference parameter, the target type, that the next hop
// names a search parameter (not a result parameter such as _count or
// _include) and the number of hops. The rest is the inner query's own
// ParseQuery, which the caller runs on the target type, so every hop is
// held to the same rules as a search of its own.

// parseChain reads one occurrence of a chained parameter or _has.
func (r *Registry) parseChain(q *Query, key, raw string, lim Limits) error {
	if hops(key) > lim.MaxChain {
		return qerr(key, "chains more than "+strconv.Itoa(lim.MaxChain)+" searches")
	}
	if len(q.Clauses)+len(q.LastUpdated)+len(q.Chains)+len(q.Has)+len(q.Composites) >= lim.MaxClauses {
		return qerr(key, "too many search parameters")
	}
	if rest, ok := strings.CutPrefix(key, "_has:"); ok {
		return r.parseHas(q, key, rest, raw)
	}
	head, inner, _ := strings.Cut(key, ".")
	code, typ, _ := strings.Cut(head, ":")
	p, ok := r.Param(q.Type, code)
	if !ok || !p.Supported || p.Type != TypeReference {
		if lim.Lenient {
			return nil
		}
		return qerr(key, "chained parameters start with a reference parameter of the searched type")
	}
	if inner == "" {
		return qerr(key, "a chain needs a parameter after the '.'")
	}
	next := innerName(inner)
	var targets []string
	candidates := p.Targets
	if typ == "identifier" {
		// ref:identifier searches the reference's own identifier; it
		// names no resource to chain through. (It may end a chain:
		// subject:Patient.general-practitioner:identifier=... is an
		// inner search like any other.)
		return qerr(key, ":identifier ends a parameter: a chain cannot follow it")
	}
	if typ != "" {
		if _, known := r.byType[typ]; !known || (len(p.Targets) > 0 && !slices.Contains(p.Targets, typ)) {
			return qerr(key, "reference type modifier is not a target of this parameter")
		}
		candidates = []string{typ}
	}
	for _, t := range candidates {
		if r.searchable(t, next) {
			targets = append(targets, t)
		}
	}
	if len(targets) == 0 {
		if lim.Lenient {
			return nil
		}
		return qerr(key, "no target type of the reference has the chained parameter")
	}
	q.Chains = append(q.Chains, Chain{Param: p, Targets: targets, Key: inner, Value: raw})
	return nil
}

// parseHas reads _has:Type:param:rest.
func (r *Registry) parseHas(q *Query, key, rest, raw string) error {
	parts := strings.SplitN(rest, ":", 3)
	if len(parts) != 3 || parts[2] == "" {
		return qerr(key, "must be _has:Type:parameter:parameter")
	}
	typ, code, inner := parts[0], parts[1], parts[2]
	if _, known := r.byType[typ]; !known {
		return qerr(key, "_has names an unknown resource type")
	}
	p, ok := r.Param(typ, code)
	if !ok || !p.Supported || p.Type != TypeReference {
		return qerr(key, "_has needs a reference parameter of its resource type")
	}
	if len(p.Targets) > 0 && !slices.Contains(p.Targets, q.Type) {
		return qerr(key, "the _has parameter cannot refer to the searched type")
	}
	if !r.searchable(typ, innerName(inner)) {
		return qerr(key, "the _has resource type has no such search parameter")
	}
	q.Has = append(q.Has, Has{Type: typ, Param: p, Key: inner, Value: raw})
	return nil
}

// innerName is the parameter name an inner key starts with: "name" of
// "name:exact", "organization" of "organization.name", "_has" of a
// nested _has.
func innerName(inner string) string {
	end := strings.IndexAny(inner, ":.")
	if end < 0 {
		return inner
	}
	return inner[:end]
}

// searchable reports whether code is a filter a chain may end or pass
// through on typ: a supported search parameter, _id, _lastUpdated, or a
// nested _has. Result parameters (_count, _sort, _include...) are not.
func (r *Registry) searchable(typ, code string) bool {
	switch code {
	case "_id", "_lastUpdated", "_has":
		return true
	}
	p, ok := r.Param(typ, code)
	return ok && p.Supported
}

// hops counts the searches a chained key asks for: one per '.' and one
// per _has.
func hops(key string) int {
	return strings.Count(key, ".") + strings.Count(key, "_has:")
}
