package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
)

func readDevCredentials(path string) (devCredentials, error) {
	var c devCredentials
	data, err := os.ReadFile(path)
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
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
