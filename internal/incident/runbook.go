package incident

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
)

// Runbooks are the steps an incident asks for, by the rule of the alert
// that opened it; "default" serves every other rule. They come from the
// operator's configuration (LoadRunbooks) or DefaultRunbooks.
type Runbooks map[string][]Step

// DefaultRunbook is the key of the runbook for rules without their own.
const DefaultRunbook = "default"

// DefaultRunbooks are the runbooks Ward starts with: the NIST SP 800-61
// phases, with the checks each kind of alert asks for first.
func DefaultRunbooks() Runbooks {
	closing := []Step{
		{ID: "scope", Title: "Scope the breach: ward incident scope --actor ... for the window (affected patients, data categories)"},
		{ID: "assess", Title: "Assess whether notification is required (HIPAA 164.402 risk assessment; GDPR Art. 33 risk to rights and freedoms)"},
		{ID: "notify", Title: "Notify as required before the deadlines shown, or record why no notification is due"},
		{ID: "review", Title: "Review: what let it happen, what changes, who signs off"},
	}
	with := func(first ...Step) []Step { return append(first, closing...) }
	return Runbooks{
		DefaultRunbook: with(
			Step{ID: "triage", Title: "Triage: confirm the alerts with the ledger evidence (ward audit prove)"},
			Step{ID: "contain", Title: "Contain: suspend the account or client and revoke its tokens, or record why not"},
		),
		"credential-stuffing": with(
			Step{ID: "triage", Title: "Triage: list the accounts tried and any that signed in from the sources"},
			Step{ID: "contain", Title: "Contain: block the sources; reset passwords and second factors of accounts that signed in"},
		),
		"token-two-sources": with(
			Step{ID: "triage", Title: "Triage: confirm the token's uses from both networks in the ledger"},
			Step{ID: "contain", Title: "Contain: revoke the person's tokens and sessions (or suspend the client) and force second-factor re-enrolment"},
		),
		"service-volume": with(
			Step{ID: "triage", Title: "Triage: compare the service's reads with its baseline and its owner's expectation"},
			Step{ID: "contain", Title: "Contain: suspend the client; rotate its secret or keys before lifting"},
		),
	}
}

// Validate checks that there is a default runbook and that every step has
// a unique id and a title.
func (r Runbooks) Validate() error {
	if len(r[DefaultRunbook]) == 0 {
		return fmt.Errorf("incident: runbooks: a %q runbook with at least one step is required", DefaultRunbook)
	}
	for rule, steps := range r {
		var ids []string
		for _, st := range steps {
			switch {
			case !ValidRef(st.ID):
				return fmt.Errorf("incident: runbook %q: step id %q must be 1 to 128 letters, digits or -._:/@", rule, st.ID)
			case slices.Contains(ids, st.ID):
				return fmt.Errorf("incident: runbook %q: step id %q twice", rule, st.ID)
			case st.Title == "" || len(st.Title) > 500:
				return fmt.Errorf("incident: runbook %q: step %q needs a title of at most 500 bytes", rule, st.ID)
			case st.Done != nil || st.DoneBy != "":
				return fmt.Errorf("incident: runbook %q: step %q is configured as done", rule, st.ID)
			}
			ids = append(ids, st.ID)
		}
	}
	return nil
}

// For returns a fresh copy of the runbook for rule.
func (r Runbooks) For(rule string) []Step {
	steps, ok := r[rule]
	if !ok {
		steps = r[DefaultRunbook]
	}
	return slices.Clone(steps)
}

// LoadRunbooks reads runbooks from a JSON file: an object from rule (or
// "default") to a list of {"id", "title"} steps. Unknown fields are
// refused.
func LoadRunbooks(path string) (Runbooks, error) {
	b, err := os.ReadFile(path) // #nosec G304 -- the runbooks file the operator names with --runbooks
	if err != nil {
		return nil, fmt.Errorf("incident: runbooks: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var r Runbooks
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("incident: runbooks %s: %w", path, err)
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return r, nil
}
