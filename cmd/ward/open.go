package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/postgres"
	"github.com/wardhealth/ward/internal/store/sqlite"
)

// storage holds the flags every command that opens Ward's data shares.
type storage struct {
	data           string
	db             string
	passphraseFile string
	hsm            hsmFlags
}

func (s *storage) register(fs *flag.FlagSet) {
	fs.StringVar(&s.data, "data", "./ward-data", "data directory (key file, TLS files, SQLite database)")
	fs.StringVar(&s.db, "db", "", "database: empty for SQLite in the data directory, or a postgres:// URL")
	fs.StringVar(&s.passphraseFile, "key-passphrase-file", "", "file holding the passphrase that seals the key file (or set WARD_KEY_PASSPHRASE)")
	s.hsm.register(fs)
}

func (s *storage) keyFile() string { return filepath.Join(s.data, "keys.json") }

// passphrase returns the key file's passphrase, or nil for an unsealed file.
func (s *storage) passphrase() ([]byte, error) {
	if s.passphraseFile != "" {
		b, err := os.ReadFile(s.passphraseFile)
		if err != nil {
			return nil, fmt.Errorf("key passphrase: %w", err)
		}
		return []byte(strings.TrimRight(string(b), "\r\n")), nil
	}
	if v, ok := os.LookupEnv("WARD_KEY_PASSPHRASE"); ok {
		return []byte(v), nil
	}
	return nil, nil
}

// createKeys writes a new key file; it refuses to replace one.
func (s *storage) createKeys() error {
	if err := os.MkdirAll(s.data, 0o700); err != nil {
		return err
	}
	pass, err := s.passphrase()
	if err != nil {
		return err
	}
	return keys.CreateLocalFile(s.keyFile(), keys.LocalParams{Passphrase: pass}, rand.Reader)
}

// openKeys opens the key file. A missing file is an error that says how to
// make one: Ward never starts without its keys.
func (s *storage) openKeys() (*keys.LocalFile, error) {
	pass, err := s.passphrase()
	if err != nil {
		return nil, err
	}
	kf, err := keys.OpenLocalFile(s.keyFile(), pass)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("no key file at %s: create one with 'ward keys init --data %s' (or start with --dev)", s.keyFile(), s.data)
	case errors.Is(err, keys.ErrPassphrase) && len(pass) == 0:
		return nil, fmt.Errorf("key file %s is sealed: give its passphrase with --key-passphrase-file or WARD_KEY_PASSPHRASE: %w", s.keyFile(), err)
	case errors.Is(err, keys.ErrPassphrase):
		return nil, fmt.Errorf("key file %s: the passphrase from --key-passphrase-file or WARD_KEY_PASSPHRASE does not open it: %w", s.keyFile(), err)
	}
	return kf, err
}

// sqlitePath returns the SQLite database file, or "" for PostgreSQL.
func (s *storage) sqlitePath() string {
	switch {
	case strings.HasPrefix(s.db, "postgres://"), strings.HasPrefix(s.db, "postgresql://"):
		return ""
	case s.db == "":
		return filepath.Join(s.data, "ward.db")
	}
	return s.db
}

// spoolDir is where a Ward process on the SQLite database makes its read
// entries durable before they are folded into the ledger (package audit,
// OpenSpooled), named after the database file as SQLite names its -wal:
// "" on PostgreSQL, where each group of entries commits to the database.
func (s *storage) spoolDir() string {
	if p := s.sqlitePath(); p != "" {
		return p + "-ledger-spool"
	}
	return ""
}

// openStore opens the configured database.
func (s *storage) openStore(ctx context.Context) (store.Store, error) {
	if strings.HasPrefix(s.db, "postgres://") || strings.HasPrefix(s.db, "postgresql://") {
		db, err := postgres.Open(ctx, s.db)
		if err != nil {
			return nil, err
		}
		return db, nil
	}
	path := s.db
	if path == "" {
		if err := os.MkdirAll(s.data, 0o700); err != nil {
			return nil, err
		}
		path = filepath.Join(s.data, "ward.db")
	} else if strings.Contains(path, "://") {
		return nil, usagef("--db must be a postgres:// URL or a SQLite file path")
	}
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		return nil, err
	}
	return db, nil
}
