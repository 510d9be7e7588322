package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// roleFile is the JSON form of configured roles:
//
//	{"roles": [{"name": "registrar", "reach": "all", "grants": ["user/Patient.cru"],
//	            "mask": ["Patient.identifier:http://hl7.org/fhir/sid/us-ssn"],
//	            "ledger": false, "relabel": false, "review": false}]}
type roleFile struct {
	Roles []struct {
		Name    string   `json:"name"`
		Reach   Reach    `json:"reach"`
		Grants  []string `json:"grants"`
		Mask    []string `json:"mask"`
		Ledger  bool     `json:"ledger"`
		Relabel bool     `json:"relabel"`
		Review  bool     `json:"review"`
	} `json:"roles"`
}

// ParseRoles reads configured roles from their JSON form, strictly: an
// unknown field, a malformed scope or trailing data is an error naming it.
func ParseRoles(data []byte) ([]Role, error) {
	if len(data) > 1<<20 {
		return nil, errors.New("policy: roles file larger than 1 MiB")
	}
	var f roleFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("policy: roles file: %w", err)
	}
	if dec.More() {
		return nil, errors.New("policy: roles file: trailing data")
	}
	out := make([]Role, 0, len(f.Roles))
	for _, r := range f.Roles {
		role := Role{Name: r.Name, Reach: r.Reach, Mask: r.Mask, Ledger: r.Ledger, Relabel: r.Relabel, Review: r.Review}
		for _, g := range r.Grants {
			sc, err := ParseScope(g)
			if err != nil {
				return nil, fmt.Errorf("policy: role %q: grant %q: %w", r.Name, g, err)
			}
			role.Grants = append(role.Grants, sc)
		}
		out = append(out, role)
	}
	return out, nil
}
