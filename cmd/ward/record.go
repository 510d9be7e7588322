package main

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/store"
)

// recordAdmin puts an administrative change made from the command line
// (clients, users, keys) into the audit ledger, naming the operating-system
// account that ran the command. A change that cannot be recorded makes the
// command fail, so it does not go unnoticed.
func recordAdmin(ctx context.Context, db store.Store, action, typ, id, detail string) error {
	host, _ := os.Hostname()
	return appendEntry(ctx, db, ledger.Entry{
		Time: time.Now().UTC(), Actor: localActor(), Client: "ward-cli", Source: host,
		Action: action, ResourceType: typ, ResourceID: id, Outcome: "success", Detail: detail,
	})
}

// localActor names the operating-system account running the command, as
// the ledger records it: "local:<username>".
func localActor() string {
	if u, err := user.Current(); err == nil {
		return "local:" + u.Username
	}
	return "local"
}

func appendEntry(ctx context.Context, db store.Store, e ledger.Entry) error {
	rec, err := audit.NewRecord(e)
	if err != nil {
		return err
	}
	log := audit.New(db, audit.Config{})
	defer log.Close()
	if err := log.Append(ctx, rec); err != nil {
		return fmt.Errorf("the change was made but could not be recorded in the audit ledger: %w", err)
	}
	return nil
}
