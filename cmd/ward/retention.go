package main

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/wardhealth/ward/internal/store"
)

const retentionSummary = `List the patients whose records are past a retention rule: kept
--keep-years after their last encounter (the latest end of an Encounter's
period), or after their record last changed when they have no encounter
(--after update uses the last change for everyone). It only reports:
erasing a patient stays a decision two people make ($erase). Patients
under a legal hold are listed with the hold; erased ones are not listed.`

// overdue is one patient past the retention rule.
type overdue struct {
	Patient       string     `json:"patient"`
	LastEncounter *time.Time `json:"last_encounter,omitempty"`
	LastUpdated   time.Time  `json:"last_updated"`
	DueSince      time.Time  `json:"due_since"`
	Resources     int64      `json:"resources"`
	LegalHold     string     `json:"legal_hold,omitempty"`
}

func runRetention(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	_, rest, err := subcommand(stdout, args, "retention", "report")
	if err != nil {
		return err
	}
	var st storage
	fs := newFlagSet("retention report", retentionSummary)
	st.register(fs)
	years := fs.Int("keep-years", 0, "how many years a record is kept (required; e.g. 10)")
	after := fs.String("after", "encounter", "what the years count from: encounter (the last one, else the last change) or update (the last change)")
	format := fs.String("format", "text", "output: text, csv or json")
	asJSON := fs.Bool("json", false, "same as --format json")
	if err := parseFlags(fs, rest, stderr); err != nil {
		return err
	}
	if *asJSON {
		*format = "json"
	}
	switch {
	case *years <= 0:
		return usagef("--keep-years must be a positive number of years")
	case *after != "encounter" && *after != "update":
		return usagef("--after must be encounter or update")
	case *format != "text" && *format != "csv" && *format != "json":
		return usagef("--format must be text, csv or json")
	}
	kf, err := st.openKeys()
	if err != nil {
		return err
	}
	erased, err := kf.Erasures()
	if err != nil {
		return err
	}
	db, err := st.openStore(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	now := time.Now().UTC()
	var list []overdue
	err = db.CompartmentActivity(ctx, func(a store.Activity) error {
		if _, ok := erased[a.Compartment]; ok {
			return nil
		}
		from := a.LastUpdated
		if *after == "encounter" && !a.LastEncounter.IsZero() {
			from = a.LastEncounter
		}
		due := from.AddDate(*years, 0, 0)
		if !due.Before(now) {
			return nil
		}
		o := overdue{Patient: a.Compartment, LastUpdated: a.LastUpdated, DueSince: due, Resources: a.Resources}
		if !a.LastEncounter.IsZero() {
			t := a.LastEncounter
			o.LastEncounter = &t
		}
		h, err := db.LegalHold(ctx, a.Compartment)
		switch {
		case err == nil:
			o.LegalHold = h.Reason
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		list = append(list, o)
		return nil
	})
	if err != nil {
		return err
	}
	switch *format {
	case "json":
		if list == nil {
			list = []overdue{}
		}
		return report(stdout, true, list, "")
	case "csv":
		cw := csv.NewWriter(stdout)
		_ = cw.Write([]string{"patient", "last_encounter", "last_updated", "due_since", "resources", "legal_hold"})
		for _, o := range list {
			enc := ""
			if o.LastEncounter != nil {
				enc = o.LastEncounter.Format(time.DateOnly)
			}
			_ = cw.Write([]string{o.Patient, enc, o.LastUpdated.Format(time.DateOnly), o.DueSince.Format(time.DateOnly), strconv.FormatInt(o.Resources, 10), o.LegalHold})
		}
		cw.Flush()
		return cw.Error()
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PATIENT\tLAST ENCOUNTER\tLAST CHANGE\tDUE SINCE\tRESOURCES\tLEGAL HOLD")
	for _, o := range list {
		enc := "-"
		if o.LastEncounter != nil {
			enc = o.LastEncounter.Format(time.DateOnly)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", o.Patient, enc, o.LastUpdated.Format(time.DateOnly), o.DueSince.Format(time.DateOnly), o.Resources, o.LegalHold)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%d patient(s) past %d years after their %s\n", len(list), *years, map[string]string{"encounter": "last encounter", "update": "last change"}[*after])
	return err
}
