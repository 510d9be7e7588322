package detect

import (
	"slices"
	"time"
)

// Alert is what a rule raised. It names the actor (or the source) and the
// ledger entries that triggered it, never a patient or any value of a
// resource: Summary is fixed text with numbers.
//
// An alert that keeps firing within its rule's dedupe period is updated,
// not repeated: Observe returns it again with the same Key, a later Last,
// a higher Count and more Evidence. Key is a function of the rule, the
// actor (or source) and the start of the period, so replays of the same
// ledger and several replicas reading it produce the same keys.
type Alert struct {
	Key      string // rule|subject|period start (RFC 3339, UTC)
	Rule     string // one of Rules
	Severity string // low, medium, high
	Actor    string // the actor concerned; "" for rules about sources
	Client   string // the client of the latest triggering entry
	// Source is a network address, set only when the rule concerns
	// sources (credential-stuffing, denial-burst of callers that proved
	// no one, token-two-sources).
	Source      string
	First, Last time.Time // times of the first and latest triggering entries
	// Evidence lists ledger indexes of triggering entries, in the order
	// seen, at most Config.MaxEvidence; Count is how many there were in
	// all.
	Evidence []int64
	Count    int
	Summary  string
}

func (a Alert) clone() Alert {
	a.Evidence = slices.Clone(a.Evidence)
	return a
}
