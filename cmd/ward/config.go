package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

var errHelp = errors.New("help requested")

// parseFlags parses a command's flags. A flag left unset on the command line
// takes its value from the environment (WARD_<NAME>, dashes as underscores)
// or else from the JSON config file named by --config (or WARD_CONFIG):
// command line, then environment, then file, then the default.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	config := fs.String("config", "", "JSON file of flag values, e.g. {\"db\": \"postgres://...\"}")
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	path := *config
	if path == "" {
		path = os.Getenv("WARD_CONFIG")
	}
	fileValues := map[string]any{}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("config: %w", err)
		}
		dec := json.NewDecoder(strings.NewReader(string(data)))
		dec.UseNumber()
		if err := dec.Decode(&fileValues); err != nil {
			return fmt.Errorf("config %s: %w", path, err)
		}
		for k := range fileValues {
			if k != "config" && fs.Lookup(k) == nil {
				return fmt.Errorf("config %s: unknown setting %q for this command", path, k)
			}
		}
	}
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || f.Name == "config" || err != nil {
			return
		}
		env := "WARD_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("%s: %w", env, e)
			}
			return
		}
		if v, ok := fileValues[f.Name]; ok {
			if e := f.Value.Set(fmt.Sprint(v)); e != nil {
				err = fmt.Errorf("config %s: %s: %w", path, f.Name, e)
			}
		}
	})
	return err
}

// newFlagSet returns a flag set whose usage text starts with a summary.
func newFlagSet(name, summary string) *flag.FlagSet {
	fs := flag.NewFlagSet("ward "+name, flag.ContinueOnError)
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "Usage: ward %s [flags]\n\n%s\n\nFlags:\n", name, summary)
		fs.PrintDefaults()
	}
	return fs
}
