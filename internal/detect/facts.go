package detect

import "sync"

// Facts answers what the ledger cannot say about a patient: whether the
// person reading is the patient, a colleague, namesake or neighbour of
// the patient, and whether the patient is a VIP. Ward decides these over
// blind indexes (keyed hashes of names and addresses), never over
// plaintext, and caches the answers: the detector calls them for every
// patient an access names while the rules that need them are on, so they
// must be cheap and must not fail (an unknown answer is false).
type Facts interface {
	// Self reports whether actor is the patient (a patient user's own
	// record): such access raises neither colleague-or-namesake nor vip.
	Self(actor, patient string) bool
	// Colleague reports whether patient is a Ward user other than actor
	// (staff reading a colleague), or shares actor's surname or address.
	Colleague(actor, patient string) bool
	// VIP reports whether patient is flagged VIP.
	VIP(patient string) bool
}

// MemoryFacts is an in-memory Facts for tests, scenario suites and
// drills. The zero value knows no one; it is safe for concurrent use.
type MemoryFacts struct {
	mu         sync.RWMutex
	self       map[[2]string]bool
	colleagues map[[2]string]bool
	vip        map[string]bool
}

// AddSelf records that actor is patient.
func (f *MemoryFacts) AddSelf(actor, patient string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.self == nil {
		f.self = map[[2]string]bool{}
	}
	f.self[[2]string{actor, patient}] = true
}

// AddColleague records that patient is a colleague, namesake or
// neighbour of actor.
func (f *MemoryFacts) AddColleague(actor, patient string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.colleagues == nil {
		f.colleagues = map[[2]string]bool{}
	}
	f.colleagues[[2]string{actor, patient}] = true
}

// AddVIP flags patient as a VIP.
func (f *MemoryFacts) AddVIP(patient string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.vip == nil {
		f.vip = map[string]bool{}
	}
	f.vip[patient] = true
}

// Self implements Facts.
func (f *MemoryFacts) Self(actor, patient string) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.self[[2]string{actor, patient}]
}

// Colleague implements Facts.
func (f *MemoryFacts) Colleague(actor, patient string) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.colleagues[[2]string{actor, patient}]
}

// VIP implements Facts.
func (f *MemoryFacts) VIP(patient string) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.vip[patient]
}
