package incident

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/wardhealth/ward/internal/ledger"
)

// FormatV1 names the report format in Report.Format.
const FormatV1 = "ward-incident-scope/1"

// Report is the scope of an incident: what one actor or client read or
// changed in a window, from the ledger, with proofs.
type Report struct {
	Format string `json:"format"`
	// Actor or Client: whose activity this is (as in Query).
	Actor  string `json:"actor,omitempty"`
	Client string `json:"client,omitempty"`
	// From and To bound the window: From <= entry time < To.
	From      time.Time `json:"from"`
	To        time.Time `json:"to"`
	Generated time.Time `json:"generated"`
	// Checkpoint is the signed checkpoint (a C2SP tlog-checkpoint note)
	// the proofs are against; CheckpointSize the tree size it commits to.
	Checkpoint     string `json:"checkpoint"`
	CheckpointSize int64  `json:"checkpointSize"`
	// Uncovered counts the listed entries the checkpoint does not cover
	// yet (appended after it): they have no proof.
	Uncovered int `json:"uncovered"`

	Deadlines Deadlines `json:"deadlines"`
	// Patients are the affected patients: every patient whose data a
	// disclosure returned or changed, by id.
	Patients []Patient `json:"patients"`
	// Categories are the data categories disclosed, Actions the
	// disclosures' actions with their counts.
	Categories []string       `json:"categories"`
	Actions    map[string]int `json:"actions"`

	// Disclosures are the entries that returned or changed data: a data
	// action (see DataActions) that succeeded. Attempts are data actions
	// that were denied or failed: nothing was disclosed, but they show
	// intent. Other is the rest of the actor's activity in the window
	// (sign-ins, tokens, administration). Each list is oldest first.
	Disclosures []Access `json:"disclosures"`
	Attempts    []Access `json:"attempts"`
	Other       []Access `json:"other"`
}

// Access is one ledger entry of the report.
type Access struct {
	Index        int64     `json:"index"`
	Time         time.Time `json:"time"`
	Action       string    `json:"action"`
	Outcome      string    `json:"outcome"`
	ResourceType string    `json:"resourceType,omitempty"`
	ResourceID   string    `json:"resourceId,omitempty"`
	Version      string    `json:"version,omitempty"`
	// Patients are the patients whose data the entry names: its patient
	// and its list of patients (a search or export answer).
	Patients []string `json:"patients,omitempty"`
	// Asked are the patients a request named in its criteria, whatever
	// it answered (an attempt shows whom it was after).
	Asked    []string `json:"asked,omitempty"`
	Category string   `json:"category"`
	Actor    string   `json:"actor"`
	Client   string   `json:"client"`
	Source   string   `json:"source,omitempty"`
	// Entry is the entry's canonical encoding, which the proof covers.
	Entry string `json:"entry"`
	// Proof is the RFC 6962 inclusion proof of the entry in the
	// checkpoint's tree; empty when the checkpoint does not cover it.
	Proof Proof `json:"proof,omitempty"`
}

// Patient is one affected patient.
type Patient struct {
	ID         string    `json:"id"`
	First      time.Time `json:"first"`
	Last       time.Time `json:"last"`
	Accesses   int       `json:"accesses"`
	Actions    []string  `json:"actions"`
	Categories []string  `json:"categories"`
}

// Deadlines are the notification deadlines that run from the discovery
// of a breach. They are the statutory outer limits; notice is due
// without unreasonable delay, and which apply depends on the facts (an
// assessment of risk, who the individuals are).
type Deadlines struct {
	Discovered time.Time `json:"discovered"`
	// GDPRAuthority: the supervisory authority, within 72 hours of
	// becoming aware (GDPR Art. 33(1)); the data subjects without undue
	// delay when the risk to them is high (Art. 34).
	GDPRAuthority time.Time `json:"gdprSupervisoryAuthority"`
	// HIPAAIndividuals: each affected individual, no later than 60
	// calendar days after discovery (45 CFR 164.404(b)).
	HIPAAIndividuals time.Time `json:"hipaaIndividuals"`
	// HIPAASecretary: the Secretary of HHS, with the individuals' notice
	// when 500 or more individuals are affected (164.408(b)), else within
	// 60 days of the end of the calendar year of discovery (164.408(c)).
	HIPAASecretary time.Time `json:"hipaaSecretary"`
	// HIPAAMedia: more than 500 individuals are affected, so prominent
	// media must be notified, by HIPAAIndividuals, if more than 500 are
	// residents of one State or jurisdiction (164.406).
	HIPAAMedia bool `json:"hipaaMediaNoticeMayApply"`
}

// The notification periods that run from discovery: GDPR Art. 33(1) (the
// supervisory authority) and HIPAA 164.404(b) (the individuals).
const (
	gdprAuthorityPeriod  = 72 * time.Hour
	hipaaIndividualsDays = 60
)

// deadlines computes the deadlines of a breach affecting n individuals.
func deadlines(discovered time.Time, n int) Deadlines {
	d := Deadlines{
		Discovered:       discovered,
		GDPRAuthority:    discovered.Add(gdprAuthorityPeriod),
		HIPAAIndividuals: discovered.AddDate(0, 0, hipaaIndividualsDays),
		HIPAAMedia:       n > 500,
	}
	d.HIPAASecretary = d.HIPAAIndividuals
	if n < 500 {
		d.HIPAASecretary = time.Date(discovered.Year()+1, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, 60)
	}
	return d
}

// Proof is an inclusion proof; in JSON, a list of base64 hashes.
type Proof tlog.RecordProof

// MarshalJSON implements json.Marshaler.
func (p Proof) MarshalJSON() ([]byte, error) {
	out := make([]string, len(p))
	for i, h := range p {
		out[i] = base64.StdEncoding.EncodeToString(h[:])
	}
	return json.Marshal(out)
}

// UnmarshalJSON implements json.Unmarshaler: canonical base64 of 32 bytes
// each.
func (p *Proof) UnmarshalJSON(b []byte) error {
	var hs []string
	if err := json.Unmarshal(b, &hs); err != nil {
		return err
	}
	if len(hs) > 64 {
		return errors.New("incident: proof too long")
	}
	out := make(Proof, len(hs))
	for i, s := range hs {
		raw, err := base64.StdEncoding.Strict().DecodeString(s)
		if err != nil || len(raw) != tlog.HashSize {
			return errors.New("incident: proof hash is not base64 of 32 bytes")
		}
		out[i] = tlog.Hash(raw)
	}
	*p = out
	return nil
}

// DataActions are the ledger actions that return or change patient data;
// Disclosures holds those that succeeded.
var DataActions = map[string]bool{
	"read": true, "vread": true, "search": true, "history": true, "everything": true, "export": true, "notify": true,
	"create": true, "update": true, "patch": true, "delete": true, "transaction": true, "batch": true,
}

// disclosed reports whether an outcome means the data was returned or
// changed (or a change found it already so).
func disclosed(outcome string) bool { return outcome == "success" || outcome == "no-change" }

// accessOf decodes a stored entry into its Access, without a proof.
func accessOf(index int64, enc []byte) (Access, error) {
	e, err := ledger.DecodeEntry(enc)
	if err != nil {
		return Access{}, err
	}
	var patients []string
	if e.Patient != "" {
		patients = append(patients, e.Patient)
	}
	for _, p := range e.Patients {
		if p != e.Patient {
			patients = append(patients, p)
		}
	}
	slices.Sort(patients)
	return Access{
		Index: index, Time: e.Time.UTC(), Action: e.Action, Outcome: e.Outcome,
		ResourceType: e.ResourceType, ResourceID: e.ResourceID, Version: e.Version,
		Patients: patients, Asked: e.Asked, Category: CategoryOf(e.Action, e.ResourceType),
		Actor: e.Actor, Client: e.Client, Source: e.Source, Entry: string(enc),
	}, nil
}

// check says why an entry does not belong in r: another actor or client,
// or a time outside the window.
func (r *Report) check(a Access) error {
	switch {
	case r.Actor != "" && a.Actor != r.Actor:
		return fmt.Errorf("its actor is %q", a.Actor)
	case r.Actor == "" && a.Client != r.Client:
		return fmt.Errorf("its client is %q", a.Client)
	case a.Time.Before(r.From) || !a.Time.Before(r.To):
		return fmt.Errorf("its time %s is outside the window", a.Time.Format(time.RFC3339Nano))
	}
	return nil
}

// fill sorts accesses into r's lists and computes the summary.
func (r *Report) fill(accesses []Access, discovered time.Time) {
	r.Disclosures, r.Attempts, r.Other = []Access{}, []Access{}, []Access{}
	r.Uncovered = 0
	patients := map[string]*Patient{}
	categories := map[string]bool{}
	r.Actions = map[string]int{}
	for _, a := range accesses {
		if a.Index >= r.CheckpointSize {
			r.Uncovered++
		}
		switch {
		case !DataActions[a.Action]:
			r.Other = append(r.Other, a)
			continue
		case !disclosed(a.Outcome):
			r.Attempts = append(r.Attempts, a)
			continue
		}
		r.Disclosures = append(r.Disclosures, a)
		r.Actions[a.Action]++
		categories[a.Category] = true
		for _, id := range a.Patients {
			p := patients[id]
			if p == nil {
				p = &Patient{ID: id, First: a.Time, Last: a.Time}
				patients[id] = p
			}
			if a.Time.Before(p.First) {
				p.First = a.Time
			}
			if a.Time.After(p.Last) {
				p.Last = a.Time
			}
			p.Accesses++
			if !slices.Contains(p.Actions, a.Action) {
				p.Actions = append(p.Actions, a.Action)
			}
			if !slices.Contains(p.Categories, a.Category) {
				p.Categories = append(p.Categories, a.Category)
			}
		}
	}
	r.Patients = make([]Patient, 0, len(patients))
	for _, id := range slices.Sorted(maps.Keys(patients)) {
		p := *patients[id]
		slices.Sort(p.Actions)
		slices.Sort(p.Categories)
		r.Patients = append(r.Patients, p)
	}
	r.Categories = slices.Sorted(maps.Keys(categories))
	if r.Categories == nil {
		r.Categories = []string{}
	}
	r.Deadlines = deadlines(discovered, len(r.Patients))
}
