package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
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
	fileValues := map[string]string{}
	if path != "" {
		data, err := os.ReadFile(path) // #nosec G304 G703 -- a path the operator gives on the command line or in the configuration; the CLI runs with the operator's rights
		if err != nil {
			return fmt.Errorf("config: %w", err)
		}
		if fileValues, err = readConfig(data); err != nil {
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
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("config %s: %s: %w", path, f.Name, e)
			}
		}
	})
	return err
}

// readConfig decodes a config file: one JSON object whose values are
// strings, numbers or booleans. Duplicate names and data after the object
// are errors, so that a file never means something other than it reads.
func readConfig(data []byte) (map[string]string, error) {
	dec := jsontext.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.ReadToken(); err != nil {
		return nil, err
	} else if tok.Kind() != '{' {
		return nil, errors.New("want a JSON object of flag names and values")
	}
	values := map[string]string{}
	for dec.PeekKind() != '}' {
		tok, err := dec.ReadToken()
		if err != nil {
			return nil, err
		}
		name := tok.String() // before the next read voids tok
		v, err := dec.ReadValue()
		if err != nil {
			return nil, err
		}
		switch v.Kind() {
		case '"':
			s, err := jsontext.AppendUnquote(nil, v)
			if err != nil {
				return nil, err
			}
			values[name] = string(s)
		case '0', 't', 'f':
			values[name] = string(v)
		default:
			return nil, fmt.Errorf("%q: want a string, number or boolean", name)
		}
	}
	if _, err := dec.ReadToken(); err != nil {
		return nil, err
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return values, nil
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
