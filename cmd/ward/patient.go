package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/records"
)

const patientSummary = `Place or lift a legal hold on a patient: while a hold stands, the
patient's erasure can be neither asked for nor approved (409, naming the
hold). Each change is recorded in the audit ledger.

  ward patient hold --patient ID --reason litigation|regulator|investigation|retention-law
  ward patient release --patient ID`

func runPatient(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, rest, err := subcommand(stdout, args, "patient", "hold", "release")
	if err != nil {
		return err
	}
	var st storage
	fs := newFlagSet("patient "+sub, patientSummary)
	st.register(fs)
	patient := fs.String("patient", "", "the patient's id (required)")
	reason := fs.String("reason", "", "hold: why, one of "+strings.Join(records.HoldReasons, ", "))
	if err := parseFlags(fs, rest, stderr); err != nil {
		return err
	}
	if *patient == "" {
		return usagef("--patient is required")
	}
	db, err := st.openStore(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := records.SetLegalHold(ctx, db, time.Now(), *patient, *reason, "cli", sub == "release"); err != nil {
		return err
	}
	if sub == "release" {
		_, err = fmt.Fprintf(stdout, "legal hold on %s released\n", *patient)
		return err
	}
	_, err = fmt.Fprintf(stdout, "legal hold on %s: %s\n", *patient, *reason)
	return err
}
