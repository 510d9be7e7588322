package main

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/compliance"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/store"
)

const complianceSummary = `The compliance report: for each clause of HIPAA, GDPR and 21 CFR Part 11
Ward covers, the feature that carries it, the live configuration that shows
it is on, the tests that prove it (with the commit of this binary), and a
status: met, met with a condition the operator must keep, not met (with
what is missing), or the operator's.

  report  --out FILE [--format html|json] [--test-results FILE [--test-commit REV]]
          [--retention-years N] [--review-period-days 90]
          [--max-key-age-days 365] [--max-checkpoint-lag 1h]
          The live configuration is read from the data directory: the
          controls the server last started with (its server-config ledger
          entry), the key file and key rotations, the latest signed ledger
          checkpoint and its witness cosignatures, and the access review.
          --test-results is 'go test -json ./...' output: each named test
          is marked passed, failed or not run, and a failed one makes its
          clauses not met. --test-commit names the commit the tests ran
          at (git rev-parse HEAD); when this binary knows its own commit
          (built with VCS stamping) the two must agree, else the command
          refuses: results of other code prove nothing about this one.
          Writes FILE and a detached signature FILE.sig.
  verify  REPORT SIG --key KEY
          checks the signature over the exact bytes of REPORT (a
          compliance or validation report). KEY is the verifier key
          (ward-documents+...) or a file holding it.
  key     prints the verifier key that checks reports and their signatures.

Reports are signed with Ward's certificate key (the key file's, derived
from the ledger seed; the one that signs erasure certificates and
backups), over a domain-separated message ("ward signed document v1",
NUL, the document's kind, NUL, the bytes): a report signature can never
pass for a ledger checkpoint, a certificate or a token, nor a compliance
report's for a validation report's.`

func runCompliance(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, rest, err := subcommand(stdout, args, "compliance", "report", "verify", "key")
	if err != nil {
		return err
	}
	var st storage
	fs := newFlagSet("compliance "+sub, complianceSummary)
	st.register(fs)
	var positional []string
	if sub == "verify" {
		for len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
			positional, rest = append(positional, rest[0]), rest[1:]
		}
	}
	key := fs.String("key", "", "verify: the verifier key, or a file holding it")
	out := fs.String("out", "", "report: the report file (mode 0600); its signature goes to FILE.sig")
	format := fs.String("format", "html", "report: html (printable) or json")
	asJSON := fs.Bool("json", false, "report: same as --format json")
	results := fs.String("test-results", "", "report: 'go test -json' output to mark each named test")
	testCommit := fs.String("test-commit", "", "report: the commit the --test-results were produced at (git rev-parse HEAD); must match this binary's commit when it knows it")
	retention := fs.Int("retention-years", 0, "report: the retention rule in force, in years after the last encounter (ward retention report --keep-years)")
	period := fs.Int("review-period-days", 90, "report: days an access confirmation lasts")
	maxKeyAge := fs.Int("max-key-age-days", 365, "report: the oldest a key-encryption key may be")
	maxLag := fs.Duration("max-checkpoint-lag", time.Hour, "report: the oldest a ledger entry may be without a signed checkpoint over it")
	if err := parseFlags(fs, rest, stderr); err != nil {
		return err
	}
	if sub == "verify" {
		positional = append(positional, fs.Args()...)
		if len(positional) != 2 || *key == "" {
			return usagef("usage: ward compliance verify REPORT SIG --key KEY")
		}
		return verifyDocument(stdout, positional[0], positional[1], *key)
	}
	if len(fs.Args()) > 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	if sub == "key" {
		kf, err := st.openKeys()
		if err != nil {
			return err
		}
		vkey, err := compliance.VerifierKey(kf.CertificateSigner())
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(stdout, vkey)
		return err
	}
	if *asJSON {
		*format = "json"
	}
	switch {
	case *out == "":
		return usagef("--out is required: the report file (its signature goes to FILE.sig)")
	case *format != "html" && *format != "json":
		return usagef("--format must be html or json")
	case *retention < 0 || *period <= 0 || *maxKeyAge <= 0 || *maxLag <= 0:
		return usagef("--retention-years must not be negative; --review-period-days, --max-key-age-days and --max-checkpoint-lag must be positive")
	}
	in := compliance.Input{Now: time.Now(), Build: compliance.ReadBuild(version), TestsCommit: *testCommit}
	switch {
	case *testCommit != "" && *results == "":
		return usagef("--test-commit names the commit of --test-results; give both")
	case *testCommit != "" && in.Build.Revision != "unknown" && !compliance.SameCommit(*testCommit, in.Build.Revision):
		return fmt.Errorf("the test results are from commit %s but this binary was built from %s: run the tests at the binary's commit", *testCommit, in.Build.Revision)
	}
	if *results != "" {
		f, err := os.Open(*results) // #nosec G304 G703 -- a path the operator gives on the command line; the command reads or writes as the operator
		if err != nil {
			return err
		}
		in.Tests, err = compliance.ReadTestResults(f, "github.com/wardhealth/ward")
		_ = f.Close() // read only: nothing to lose
		if err != nil {
			return err
		}
		in.TestsFrom = *results
	}
	kf, err := st.openKeys()
	if err != nil {
		return err
	}
	db, err := st.openStore(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	g := factGatherer{db: db, now: in.Now, currentKEK: kf.CurrentKEK(), ledgerKey: kindAge(kf.Ages(in.Now, nil, ""), keys.KindLedger), retentionYears: *retention,
		maxKeyAge: time.Duration(*maxKeyAge) * 24 * time.Hour, maxLag: *maxLag, period: time.Duration(*period) * 24 * time.Hour}
	if in.Facts, in.Overdue, err = g.gather(ctx); err != nil {
		return err
	}
	rep := compliance.NewReport(in)
	var buf bytes.Buffer
	if *format == "json" {
		err = rep.WriteJSON(&buf)
	} else {
		err = rep.WriteHTML(&buf)
	}
	if err != nil {
		return err
	}
	vkey, err := writeSigned(*out, compliance.KindCompliance, buf.Bytes(), kf.CertificateSigner())
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "compliance report: %d clauses: %d met, %d met with a condition, %d not met, %d the operator's; commit %s\n",
		len(rep.Clauses), rep.Summary[compliance.Met], rep.Summary[compliance.MetWithCondition], rep.Summary[compliance.NotMet], rep.Summary[compliance.Operator], rep.Ward.Revision)
	if rep.Ward.Revision == "unknown" {
		fmt.Fprintln(stderr, "  this binary does not know its commit (built with -buildvcs=false or by go run); build it with go build -buildvcs=true from a git checkout to have the report name it")
	}
	for _, f := range rep.Facts {
		if !f.OK {
			fmt.Fprintf(stderr, "  does not hold: %s: %s\n", f.Name, f.Note)
		}
	}
	if failed := rep.Failed(); len(failed) > 0 {
		fmt.Fprintf(stderr, "  failed tests: %s\n", strings.Join(failed, ", "))
	}
	fmt.Fprintf(stderr, "wrote %s and %s.sig; verify with: ward compliance verify %s %s.sig --key %s\n", *out, *out, *out, *out, vkey)
	return nil
}

// writeSigned writes doc to path and its detached signature to path.sig
// (both mode 0600) and returns the verifier key.
func writeSigned(path string, kind compliance.Kind, doc []byte, key crypto.Signer) (string, error) {
	sig, err := compliance.Sign(key, kind, doc)
	if err != nil {
		return "", err
	}
	vkey, err := compliance.VerifierKey(key)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(path, doc, 0o600); err != nil { // #nosec G304 G703 -- a path the operator gives on the command line; the command reads or writes as the operator
		return "", err
	}
	if err := os.WriteFile(path+".sig", sig, 0o600); err != nil { // #nosec G304 G703 -- a path the operator gives on the command line; the command reads or writes as the operator
		return "", err
	}
	return vkey, nil
}

func verifyDocument(out io.Writer, docFile, sigFile, key string) error {
	vkey := key
	if !strings.Contains(key, "+") {
		b, err := os.ReadFile(key) // #nosec G304 G703 -- a path the operator gives on the command line; the command reads or writes as the operator
		if err != nil {
			return usagef("--key: neither a verifier key nor a readable file: %v", err)
		}
		vkey = string(b)
	}
	doc, err := os.ReadFile(docFile) // #nosec G304 G703 -- a path the operator gives on the command line; the command reads or writes as the operator
	if err != nil {
		return err
	}
	sig, err := os.ReadFile(sigFile) // #nosec G304 G703 -- a path the operator gives on the command line; the command reads or writes as the operator
	if err != nil {
		return err
	}
	kind, err := compliance.Verify(doc, sig, vkey)
	if errors.Is(err, compliance.ErrRejected) {
		return fmt.Errorf("NOT verified: %w", err)
	}
	if err != nil {
		return usagef("%v", err)
	}
	parts := strings.SplitN(strings.TrimSpace(vkey), "+", 3)
	_, err = fmt.Fprintf(out, "verified: %s %s is signed by %s+%s\n", kind, docFile, parts[0], parts[1])
	return err
}

// factGatherer reads the live facts from the data directory and ledger.
type factGatherer struct {
	db             store.Store
	now            time.Time
	currentKEK     string
	ledgerKey      keys.KeyAge // the ledger checkpoint key in force
	retentionYears int
	maxKeyAge      time.Duration
	maxLag         time.Duration
	period         time.Duration
}

func (g factGatherer) gather(ctx context.Context) ([]compliance.Fact, []compliance.ReviewSubject, error) {
	var facts []compliance.Fact
	add := func(name, value string, ok bool, note string) {
		facts = append(facts, compliance.Fact{Name: name, Value: value, OK: ok, Note: note})
	}
	sc, err := lastServerConfig(ctx, g.db)
	if err != nil {
		return nil, nil, err
	}
	field := func(k string) string {
		if sc == nil {
			return ""
		}
		return sc.fields[k]
	}
	noServer := "no server has recorded its configuration in this ledger (start ward serve once)"
	if sc == nil {
		add(compliance.FactServer, "unknown", false, noServer)
	} else {
		add(compliance.FactServer, "recorded at start "+sc.at.Format(time.RFC3339), true, "ledger entry "+strconv.FormatInt(sc.index, 10)+" (server-config)")
	}
	server := func(name, value string, ok bool, bad string) {
		switch {
		case sc == nil:
			add(name, "unknown", false, noServer)
		case ok:
			add(name, value, true, "")
		default:
			add(name, value, false, bad)
		}
	}
	server(compliance.FactTLS, "TLS 1.2 minimum, AEAD cipher suites only, no plaintext listener", field("tls") == "1.2+aead", "the server did not record its TLS floor")
	server(compliance.FactMFARoles, strings.ReplaceAll(field("mfa"), ",", ", "), slices.Contains(strings.Split(field("mfa"), ","), policy.RoleAdmin), "privileged roles without a second factor")
	server(compliance.FactKeyProvider, field("keys"), field("keys") == "file" || field("keys") == "pkcs11", "unknown key provider")
	server(compliance.FactDetector, field("detector"), field("detector") == "on", "the anomaly detector is off in the server that last started (--detect-off); run it in one replica")
	server(compliance.FactSIEM, field("siem"), field("siem") != "" && field("siem") != "off", "no SIEM sink: security events reach only the log (--siem-syslog or --siem-file)")
	idle, _ := time.ParseDuration(field("idle"))
	server(compliance.FactSessions, "idle "+field("idle")+", lifetime "+field("life")+", access tokens "+field("ttl"),
		idle > 0 && idle <= time.Hour, "sessions idle for more than an hour stay open (--session-idle-timeout)")
	server(compliance.FactRateLimits, "per principal "+field("rate")+" (rate/s:burst)", field("rate") != "", "no rate limit recorded")

	// Key age: the current KEK's rotation, else the ledger's beginning.
	since, how, err := g.kekSince(ctx)
	if err != nil {
		return nil, nil, err
	}
	age := g.now.Sub(since)
	keyNote := ""
	if age > g.maxKeyAge {
		keyNote = fmt.Sprintf("older than %d days: rotate with 'ward keys rotate'", int(g.maxKeyAge.Hours()/24))
	}
	value := fmt.Sprintf("KEK %s in use since %s (%s; %d days)", g.currentKEK, since.Format(time.DateOnly), how, int(age.Hours()/24))
	ok := keyNote == ""
	// The ledger checkpoint key, rotated by a signed key transition.
	if lk := g.ledgerKey; lk.ID != "" {
		lage := g.now.Sub(lk.Created)
		value += fmt.Sprintf("; ledger checkpoint key %s in force since %s (%d days, %d rotations)", lk.ID, lk.Created.Format(time.DateOnly), int(lage.Hours()/24), lk.Generations-1)
		if lage > g.maxKeyAge {
			ok = false
			keyNote = strings.TrimPrefix(keyNote+fmt.Sprintf("; ledger key older than %d days: rotate with 'ward keys rotate --kind ledger'", int(g.maxKeyAge.Hours()/24)), "; ")
		}
	}
	add(compliance.FactKeyAge, value, ok, keyNote)

	// The latest signed checkpoint: how much it covers, its witnesses.
	if err := g.checkpoint(ctx, add, field("publish") == "true", field("witnesses")); err != nil {
		return nil, nil, err
	}
	if g.retentionYears > 0 {
		add(compliance.FactRetention, fmt.Sprintf("%d years after the last encounter (ward retention report --keep-years %d)", g.retentionYears, g.retentionYears), true, "")
	} else {
		add(compliance.FactRetention, "none given", false, "no retention rule: give --retention-years and run 'ward retention report' on it")
	}
	subjects, err := reviewAccess(ctx, g.db, g.period, g.now)
	if err != nil {
		return nil, nil, err
	}
	overdue := compliance.Overdue(subjects)
	reviewNote := ""
	if len(overdue) > 0 {
		reviewNote = fmt.Sprintf("%d confirmations overdue: 'ward access review', then 'ward access confirm'", len(overdue))
	}
	add(compliance.FactAccessReview, fmt.Sprintf("%d people and clients, %d overdue (confirmations last %d days)", len(subjects), len(overdue), int(g.period.Hours()/24)),
		reviewNote == "", reviewNote)
	return facts, overdue, nil
}

// kekSince returns when the current KEK was rotated in, from the ledger's
// keys-rotate entries, or the ledger's first entry when none names it.
func (g factGatherer) kekSince(ctx context.Context) (time.Time, string, error) {
	q := store.ActorQuery{Client: cliClient, AfterIndex: -1, Count: 1000}
	var at time.Time
	for {
		rows, err := g.db.LedgerEntriesByActor(ctx, q)
		if err != nil {
			return time.Time{}, "", err
		}
		for _, row := range rows {
			e, err := ledger.DecodeEntry(row.Entry)
			if err != nil {
				return time.Time{}, "", fmt.Errorf("ledger entry %d: %w", row.Index, err)
			}
			if e.Action == "keys-rotate" && e.ResourceID == g.currentKEK {
				at = e.Time
			}
		}
		if len(rows) < q.Count {
			break
		}
		q.Since, q.AfterIndex = rows[len(rows)-1].Time, rows[len(rows)-1].Index
	}
	if !at.IsZero() {
		return at, "rotated in", nil
	}
	first, err := g.db.LedgerEntries(ctx, 0, 1)
	if err != nil {
		return time.Time{}, "", err
	}
	if len(first) == 0 {
		return g.now, "empty ledger", nil
	}
	return first[0].Time, "no rotation recorded since the ledger began", nil
}

func (g factGatherer) checkpoint(ctx context.Context, add func(string, string, bool, string), publish bool, witnessesConfigured string) error {
	size, err := g.db.LedgerSize(ctx)
	if err != nil {
		return err
	}
	cpSize, cpNote, err := g.db.LatestCheckpoint(ctx)
	if errors.Is(err, store.ErrNotFound) {
		add(compliance.FactCheckpoint, "none", false, "no signed checkpoint: start ward serve (it signs one every second)")
		add(compliance.FactWitnesses, "none", false, "no signed checkpoint")
		return nil
	} else if err != nil {
		return err
	}
	value := fmt.Sprintf("covers %d of %d entries", cpSize, size)
	ok, note := true, ""
	if cpSize < size {
		first, err := g.db.LedgerEntries(ctx, cpSize, cpSize+1)
		if err != nil {
			return err
		}
		if len(first) == 1 {
			lag := g.now.Sub(first[0].Time)
			value += fmt.Sprintf("; the oldest entry after it is %s old", lag.Round(time.Second))
			if lag > g.maxLag {
				ok, note = false, fmt.Sprintf("entries older than %s are not under a signed checkpoint: is ward serve running?", g.maxLag)
			}
		}
	}
	add(compliance.FactCheckpoint, value, ok, note)
	cosigned := cosignatures(cpNote)
	value = fmt.Sprintf("%d witness cosignatures on the latest checkpoint; %s witnesses configured; publication to a directory: %v", cosigned, witnessesConfigured, publish)
	witnessNote := ""
	if cosigned == 0 && !publish {
		witnessNote = "no witness cosignature and no publication: whoever controls both the database and the key file could rewrite the ledger unseen (--ledger-witness, --ledger-publish-dir)"
	}
	add(compliance.FactWitnesses, value, witnessNote == "", witnessNote)
	return nil
}

// cosignatures counts the signature lines of a signed note beyond the
// first (the ledger's own).
func cosignatures(signed []byte) int {
	_, sigs, ok := bytes.Cut(signed, []byte("\n\n"))
	if !ok {
		return 0
	}
	n := 0
	for _, l := range strings.Split(string(sigs), "\n") {
		if strings.HasPrefix(l, "\u2014 ") {
			n++
		}
	}
	return max(n-1, 0)
}

// kindAge returns the age report of one kind, or a zero one.
func kindAge(ages []keys.KeyAge, k keys.Kind) keys.KeyAge {
	for _, a := range ages {
		if a.Kind == k {
			return a
		}
	}
	return keys.KeyAge{}
}
