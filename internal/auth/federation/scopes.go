package federation

import (
	"errors"
	"strings"

	"github.com/wardhealth/ward/internal/policy"
)

// maxTokenScopes bounds the scope strings of one token, SMART or not.
const maxTokenScopes = 256

// tokenScopes returns the SMART resource scopes among raw, dropping the
// scopes that are not resource scopes (openid, profile, an API's own
// scopes) and query-restricted ones, which grant nothing in Ward.
func tokenScopes(raw []string) ([]policy.Scope, error) {
	var words []string
	for _, r := range raw {
		words = append(words, strings.Fields(r)...)
		if len(words) > maxTokenScopes {
			return nil, errors.New("too many scopes")
		}
	}
	var out []policy.Scope
	for _, w := range words {
		sc, err := policy.ParseScope(w)
		if err != nil || sc.Query != "" {
			continue
		}
		out = append(out, sc)
	}
	return out, nil
}

// intersectScopes returns what both lists grant: for each pair, the scope
// both cover, deduplicated. A token can never gain through the issuer's
// list what its own scopes do not grant, nor the reverse.
func intersectScopes(token, allowed []policy.Scope) []policy.Scope {
	var out []policy.Scope
	seen := map[string]bool{}
	for _, t := range token {
		for _, a := range allowed {
			sc, ok := intersect(t, a)
			if !ok || seen[sc.String()] {
				continue
			}
			seen[sc.String()] = true
			out = append(out, sc)
		}
	}
	return out
}

// intersect returns the scope granting exactly what both a and b grant,
// if anything: the same context, the narrower type, the common letters.
// Query-restricted scopes intersect with nothing.
func intersect(a, b policy.Scope) (policy.Scope, bool) {
	if a.Context != b.Context || a.Query != "" || b.Query != "" {
		return policy.Scope{}, false
	}
	out := policy.Scope{Context: a.Context}
	switch {
	case a.Type == b.Type:
		out.Type = a.Type
	case a.Type == "*":
		out.Type = b.Type
	case b.Type == "*":
		out.Type = a.Type
	default:
		return policy.Scope{}, false
	}
	out.Create = a.Create && b.Create
	out.Read = a.Read && b.Read
	out.Update = a.Update && b.Update
	out.Delete = a.Delete && b.Delete
	out.Search = a.Search && b.Search
	if out.String() == "" {
		return policy.Scope{}, false
	}
	return out, true
}
