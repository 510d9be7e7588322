package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
)

func readDevCredentials(path string) (devCredentials, error) {
	var c devCredentials
	data, err := os.ReadFile(path) // #nosec G304 -- a path the operator gives on the command line or in the configuration; the CLI runs with the operator's rights
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	if c.ClientID == "" || c.ClientSecret == "" {
		return c, errors.New(path + ": incomplete")
	}
	return c, nil
}

// writeDevCredentials writes the file with mode 0600, replacing it whole.
func writeDevCredentials(path string, c devCredentials) error {
	data, err := json.MarshalIndent(c, "", "  ") // #nosec G117 -- the dev credentials file exists to hold this secret; it is written 0600 and only in --dev
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
