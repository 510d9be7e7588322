package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/incident"
	"github.com/wardhealth/ward/internal/store"
)

const incidentSummary = `scope   list everything one user (--actor) or client (--client) read or
        changed between --from and --to, from the audit ledger's actor
        index: the affected patients with first and last access, the data
        categories, refused attempts, and the HIPAA and GDPR notification
        deadlines (from --discovered, default now). Every entry comes with
        an inclusion proof against a signed checkpoint: with the key file,
        a fresh checkpoint is signed first so that every entry is proven;
        with --vkey only, the latest stored one is used and later entries
        are listed unproven. Output: --format json (the whole report, with
        proofs), csv (the affected patients: ids, dates, categories,
        counts) or accesses-csv (one line per entry).
verify  check a JSON report (--report FILE) with only the ledger's public
        key (--vkey, or derived from the key file): the checkpoint's
        signature, every proof, and that its lists and summary are what its
        entries say. It cannot show that no entry was left out: that rests
        on the actor index, which 'ward audit verify' checks.`

func runIncident(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, rest, err := subcommand(stdout, args, "incident", "scope", "verify")
	if err != nil {
		return err
	}
	var st storage
	fs := newFlagSet("incident "+sub, incidentSummary)
	st.register(fs)
	vkey := fs.String("vkey", "", "the ledger's verifier key (note format); default: derived from the key file")
	if sub == "verify" {
		report := fs.String("report", "", "verify: the JSON report (required)")
		if err := parseFlags(fs, rest, stderr); err != nil {
			return err
		}
		return incidentVerify(ctx, stdout, &st, *report, *vkey)
	}
	actor := fs.String("actor", "", "the user or service id whose activity to scope")
	client := fs.String("client", "", "or the OAuth2 client id whose activity to scope")
	from := fs.String("from", "", "start of the window, inclusive (RFC 3339 instant or YYYY-MM-DD, UTC; required)")
	to := fs.String("to", "", "end of the window, exclusive (RFC 3339 instant or YYYY-MM-DD, UTC; required)")
	discovered := fs.String("discovered", "", "when the breach was discovered, for the deadlines (default: now)")
	format := fs.String("format", "json", "output: json, csv (affected patients) or accesses-csv")
	out := fs.String("out", "", "write the output to this file (mode 0600) instead of standard output")
	asJSON := fs.Bool("json", false, "same as --format json, without progress or summary on standard error")
	maxEntries := fs.Int("max-entries", 0, "refuse a report of more entries than this (0: no bound)")
	if err := parseFlags(fs, rest, stderr); err != nil {
		return err
	}
	if *asJSON {
		*format = "json"
	}
	if *format != "json" && *format != "csv" && *format != "accesses-csv" {
		return usagef("--format must be json, csv or accesses-csv")
	}
	q := incident.Query{Actor: *actor, Client: *client, MaxEntries: *maxEntries}
	if q.From, err = parseInstant("--from", *from); err != nil {
		return err
	}
	if q.To, err = parseInstant("--to", *to); err != nil {
		return err
	}
	if *discovered != "" {
		if q.Discovered, err = parseInstant("--discovered", *discovered); err != nil {
			return err
		}
	}
	if err := q.Validate(); err != nil {
		return usagef("%v", err)
	}
	db, err := st.openStore(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	verifier, err := incidentVerifier(ctx, &st, db, *vkey)
	if err != nil {
		return err
	}
	prog := newProgress(stderr, !*asJSON, "scoping")
	q.Progress = func(n int) { prog.count(n, "entries") }
	r, err := incident.Scope(ctx, db, verifier, q, time.Now())
	prog.done()
	if err != nil {
		return err
	}
	w := stdout
	var file *os.File
	if *out != "" {
		if file, err = os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600); err != nil { // #nosec G703 -- a path the operator gives on the command line or in the configuration; the CLI runs with the operator's rights
			return err
		}
		defer file.Close()
		w = file
	}
	switch *format {
	case "json":
		err = r.WriteJSON(w)
	case "csv":
		err = r.WritePatientsCSV(w)
	default:
		err = r.WriteAccessesCSV(w)
	}
	if err != nil {
		return err
	}
	if file != nil {
		if err := file.Close(); err != nil {
			return err
		}
	}
	if !*asJSON {
		summarise(stderr, r)
	}
	return nil
}

// incidentVerifier returns the ledger's checkpoint verifier: from vkey,
// or from the key file after signing a checkpoint of the ledger's
// current size, so that every entry is proven.
func incidentVerifier(ctx context.Context, st *storage, db store.Store, vkey string) (note.Verifier, error) {
	if vkey != "" {
		v, err := note.NewVerifier(vkey)
		if err != nil {
			return nil, usagef("--vkey: %v", err)
		}
		return v, nil
	}
	lk, err := openLedgerKeys(ctx, st, db)
	if err != nil {
		return nil, err
	}
	size, _, err := audit.Checkpoint(ctx, db, lk)
	if err != nil {
		return nil, err
	}
	chain, err := lk.chain()
	if err != nil {
		return nil, err
	}
	return chain.At(size), nil
}

// count shows how many things a long command has handled, on a terminal,
// at most every 200 ms.
func (p *progress) count(n int, what string) {
	if p.on && time.Since(p.last) > 200*time.Millisecond {
		p.last, p.shown = time.Now(), true
		fmt.Fprintf(p.w, "\r%s: %d %s", p.label, n, what)
	}
}

// parseInstant reads a flag's instant (incident.ParseInstant).
func parseInstant(flag, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, usagef("%s is required", flag)
	}
	t, err := incident.ParseInstant(s)
	if err != nil {
		return time.Time{}, usagef("%s must be an RFC 3339 instant or a date (YYYY-MM-DD)", flag)
	}
	return t, nil
}

// summarise tells the operator what the report holds.
func summarise(w io.Writer, r *incident.Report) {
	who := "actor " + r.Actor
	if r.Actor == "" {
		who = "client " + r.Client
	}
	fmt.Fprintf(w, "%s, %s to %s: %d disclosures affecting %d patients, %d refused or failed attempts, %d other entries\n",
		who, r.From.Format(time.RFC3339), r.To.Format(time.RFC3339), len(r.Disclosures), len(r.Patients), len(r.Attempts), len(r.Other))
	fmt.Fprintf(w, "proven against the signed checkpoint of %d entries", r.CheckpointSize)
	if r.Uncovered > 0 {
		fmt.Fprintf(w, "; %d entries after it are listed unproven", r.Uncovered)
	}
	d := r.Deadlines
	fmt.Fprintf(w, "\ndeadlines from discovery at %s: GDPR supervisory authority %s; HIPAA individuals %s, HHS %s",
		d.Discovered.Format(time.RFC3339), d.GDPRAuthority.Format(time.RFC3339), d.HIPAAIndividuals.Format(time.DateOnly), d.HIPAASecretary.Format(time.DateOnly))
	if d.HIPAAMedia {
		fmt.Fprint(w, "; over 500 individuals: media notice where more than 500 live in one State")
	}
	fmt.Fprintln(w)
}

func incidentVerify(ctx context.Context, out io.Writer, st *storage, file, vkey string) error {
	if file == "" {
		return usagef("--report is required")
	}
	var keyAt func(size int64) string
	if vkey == "" {
		db, err := st.openStore(ctx)
		if err != nil {
			return err
		}
		lk, err := openLedgerKeys(ctx, st, db)
		_ = db.Close()
		if err != nil {
			return err
		}
		chain, err := lk.chain()
		if err != nil {
			return err
		}
		keyAt = chain.VerifierKeyAt
	}
	f, err := os.Open(file) // #nosec G304 G703 -- a path the operator gives on the command line or in the configuration; the CLI runs with the operator's rights
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := incident.ReadReport(f)
	if err != nil {
		return err
	}
	if keyAt != nil {
		// The key in force at the report's checkpoint, which a later
		// rotation has replaced.
		vkey = keyAt(r.CheckpointSize)
	}
	v, err := incident.Verify(r, vkey)
	if errors.Is(err, incident.ErrRejected) {
		return fmt.Errorf("report NOT verified: %w", err)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "report verified: %d entries, %d proven in the signed checkpoint of %d entries", v.Entries, v.Proven, v.Size)
	if v.Uncovered > 0 {
		fmt.Fprintf(out, "; %d after it, unproven", v.Uncovered)
	}
	fmt.Fprintln(out, "\nits patients, categories, actions and deadlines are what its entries say; completeness rests on the actor index ('ward audit verify')")
	return nil
}
