package incident

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/store"
)

// genConfig describes a synthetic ledger: Entries entries spread evenly
// over [Start, Start+Span), TargetEntries of them by the actor Target
// (every Entries/TargetEntries-th), the rest by a crowd of other users
// and services, with a realistic mix of reads, searches over several
// patients, writes, sign-ins, refusals and failures.
type genConfig struct {
	Entries, TargetEntries int
	Target                 string
	Start                  time.Time
	Span                   time.Duration
	Batch                  int // entries per transaction
	Seed                   uint64
}

var genTypes = []string{"Observation", "Condition", "MedicationRequest", "Encounter", "Patient", "DocumentReference",
	"Procedure", "AllergyIntolerance", "Immunization", "DiagnosticReport", "Coverage", "CarePlan", "ImagingStudy", "Device"}

// genEntry returns entry i of cfg's ledger.
func genEntry(cfg genConfig, rng *rand.Rand, i int) ledger.Entry {
	stride := max(1, cfg.Entries/max(1, cfg.TargetEntries))
	actor := fmt.Sprintf("u-%d", rng.IntN(5000))
	if cfg.TargetEntries > 0 && i%stride == 0 && i/stride < cfg.TargetEntries {
		actor = cfg.Target
	}
	e := ledger.Entry{
		Time:   cfg.Start.Add(time.Duration(int64(cfg.Span) / int64(cfg.Entries) * int64(i))),
		Actor:  actor,
		Client: fmt.Sprintf("app-%d", rng.IntN(20)),
		Source: fmt.Sprintf("10.0.%d.%d", rng.IntN(256), rng.IntN(256)),
		Action: "read", ResourceType: genTypes[rng.IntN(len(genTypes))], Outcome: "success",
		Purpose: "TREAT", RequestID: fmt.Sprintf("req-%d", i),
	}
	patient := func() string { return fmt.Sprintf("pat-%d", rng.IntN(200000)) }
	e.ResourceID = fmt.Sprintf("r-%d", rng.IntN(1<<30))
	switch x := rng.Float64(); {
	case x < 0.45:
		e.Patient = patient()
	case x < 0.65:
		e.Action, e.ResourceID = "search", ""
		ids := make([]string, 1+rng.IntN(12))
		for k := range ids {
			ids[k] = patient()
		}
		e.SetPatients(ids)
		e.Query = []string{"patient", "_count"}
	case x < 0.72:
		e.Action, e.Version, e.Patient = "create", "1", patient()
	case x < 0.78:
		e.Action, e.Version, e.Patient = "update", fmt.Sprint(2+rng.IntN(5)), patient()
	case x < 0.79:
		e.Action, e.Patient = "delete", patient()
	case x < 0.80:
		e.Action, e.ResourceType, e.Patient = "everything", "Patient", patient()
		e.ResourceID = e.Patient
	case x < 0.85:
		e.Action, e.ResourceType, e.ResourceID = "token", "", ""
	case x < 0.90:
		e.Outcome, e.Patient = "denied", patient()
	case x < 0.92:
		e.Outcome = "not-found"
	case x < 0.93:
		e.Action, e.Patient = "history", patient()
	default:
		e.Action, e.Version, e.Patient = "vread", "1", patient()
	}
	return e
}

// generate appends cfg's ledger to st in transactions of cfg.Batch
// entries, with their tree hashes (audit.AppendInTx), and signs one
// checkpoint at the end. progress, when not nil, gets the count so far.
func generate(ctx context.Context, st store.Store, signer *ledger.Signer, cfg genConfig, progress func(int)) error {
	rng := rand.New(rand.NewPCG(cfg.Seed, 1))
	for start := 0; start < cfg.Entries; start += cfg.Batch {
		end := min(start+cfg.Batch, cfg.Entries)
		recs := make([]audit.Record, 0, end-start)
		for i := start; i < end; i++ {
			rec, err := audit.NewRecord(genEntry(cfg, rng, i))
			if err != nil {
				return err
			}
			recs = append(recs, rec)
		}
		err := store.ReadWrite(ctx, st, func(tx store.Tx) error { return audit.AppendInTx(ctx, tx, recs) })
		if err != nil {
			return err
		}
		if progress != nil {
			progress(end)
		}
	}
	_, _, err := audit.Checkpoint(ctx, st, signer)
	return err
}
