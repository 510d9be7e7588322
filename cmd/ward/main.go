// Command ward is Ward's single binary: the server and its administration
// commands. It is the only place that picks concrete implementations, sets
// up logging and exits.
//
// Exit codes: 0 success, 1 a failure at run time, 2 a usage error, 3 ward
// serve refused to start because the audit ledger failed its start check
// (it disagrees with its latest signed checkpoint or a published one).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// usageError marks an error in the command line: exit code 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "run the HTTPS FHIR server", runServe},
		{"client", "manage OAuth2 clients: services and apps (create, list, revoke)", runClient},
		{"user", "manage people who sign in (create, list, disable, enable, set-password, reset-mfa, signing)", runUser},
		{"esign", "electronic signatures: print the public keys, verify a signature record offline (key, verify)", runESign},
		{"keys", "manage keys (init, rotate, add-esign)", runKeys},
		{"audit", "verify the audit ledger, sign a checkpoint, prove an entry", runAudit},
		{"witness", "run a tlog-witness that cosigns other ledgers' checkpoints", runWitness},
		{"disclosures", "print the accounting of disclosures of one patient's data", runDisclosures},
		{"incident", "scope a breach: what a user or client read or changed, with proofs (scope, verify)", runIncident},
		{"patient", "place or lift a legal hold on a patient (hold, release)", runPatient},
		{"retention", "report the patients past a retention rule", runRetention},
		{"access", "review who has access and record a reviewer's confirmation (review, confirm)", runAccess},
		{"compliance", "the signed compliance report: clauses, live configuration, tests (report, verify, key)", runCompliance},
		{"alerts", "list the anomaly detector's alerts", runAlerts},
		{"validate", "run the scripted qualification (IQ/OQ) against a running Ward and write a signed report", runValidate},
		{"drill", "replay an attack against a running Ward and report the alerts and the response", runDrill},
		{"backup", "back up a running Ward on SQLite, sealed and signed; or verify a backup", runBackup},
		{"restore", "restore a backup into an empty data directory", runRestore},
		{"load", "load FHIR transaction Bundles into a running server and measure it", runLoad},
		{"version", "print the version", func(_ context.Context, _ []string, out, _ io.Writer) error {
			_, err := fmt.Fprintln(out, "ward", version)
			return err
		}},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:], stdout, stderr)
		var ue usageError
		var lr *ledgerRefusal
		switch {
		case err == nil:
			return 0
		case errors.Is(err, errHelp):
			return 0
		case errors.As(err, &lr):
			fmt.Fprintf(stderr, "ward %s: %s\n", c.name, lr)
			return exitLedger
		case errors.As(err, &ue):
			fmt.Fprintf(stderr, "ward %s: %s\nRun 'ward %s --help' for usage.\n", c.name, ue.msg, c.name)
			return 2
		default:
			fmt.Fprintf(stderr, "ward %s: %s\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "ward: unknown command %q\n", args[0])
	printUsage(stderr)
	return 2
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "Ward: a zero-trust FHIR R4 health data server.")
	fmt.Fprintln(w, "\nUsage: ward <command> [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'ward <command> --help' for a command's flags. Every flag can also be set")
	fmt.Fprintln(w, "as WARD_<FLAG> in the environment (e.g. WARD_DB) or in a JSON file given by --config.")
}
