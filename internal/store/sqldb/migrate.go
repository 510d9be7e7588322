package sqldb

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one embedded schema step, numbered by its file name prefix.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations lists the embedded migrations in order.
func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("sqldb: list migrations: %w", err)
	}
	var ms []migration
	for _, name := range names {
		base := strings.TrimPrefix(name, "migrations/")
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("sqldb: migration %q: name must start with a positive number", base)
		}
		body, err := migrationFiles.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("sqldb: read migration %q: %w", base, err)
		}
		ms = append(ms, migration{version: v, name: base, sql: string(body)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i := range ms {
		if ms[i].version != i+1 {
			return nil, fmt.Errorf("sqldb: migrations are not numbered 1..n at %q", ms[i].name)
		}
	}
	return ms, nil
}

// statements splits a migration into statements at semicolons that end a
// line. Migrations contain no semicolons inside literals.
func statements(sqlText string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(sqlText, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "--") || trimmed == "" {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(trimmed, ";") {
			out = append(out, strings.TrimSpace(cur.String()))
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, s)
	}
	return out
}

// migrate applies pending migrations in one write transaction.
func (db *DB) migrate(ctx context.Context) (err error) {
	ms, err := migrations()
	if err != nil {
		return err
	}
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return db.wrap("migrate", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, ignoreDone(tx.Rollback()))
		}
	}()
	if db.d.MigrationLock != "" {
		if _, err := tx.ExecContext(ctx, db.d.MigrationLock); err != nil {
			return db.wrap("migrate: lock", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied BIGINT NOT NULL)`); err != nil {
		return db.wrap("migrate: create table", err)
	}
	var applied int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&applied); err != nil {
		return db.wrap("migrate: read version", err)
	}
	if applied > len(ms) {
		return fmt.Errorf("sqldb: database schema version %d is newer than this binary (%d)", applied, len(ms))
	}
	for _, m := range ms[applied:] {
		text, err := db.expand(m.sql)
		if err != nil {
			return fmt.Errorf("sqldb: migration %s: %w", m.name, err)
		}
		for _, st := range statements(text) {
			if _, err := tx.ExecContext(ctx, st); err != nil {
				return db.wrap("migrate: "+m.name, err)
			}
		}
		if _, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO schema_migrations (version, applied) VALUES (?, ?)`),
			m.version, time.Now().UnixMicro()); err != nil {
			return db.wrap("migrate: record "+m.name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return db.wrap("migrate: commit", err)
	}
	return nil
}

// jsonPlaceholder is {{json column key}} in a migration.
var jsonPlaceholder = regexp.MustCompile(`\{\{json ([a-z_]+) ([a-zA-Z_]+)\}\}`)

// expand replaces the placeholders of a migration with the dialect's
// spelling: {{text}} and {{blob}} with its column types, {{json c k}} with
// its expression reading key k of the JSON in column c (Dialect.JSONText).
func (db *DB) expand(sqlText string) (string, error) {
	sqlText = strings.NewReplacer("{{text}}", db.d.TextType, "{{blob}}", db.d.BlobType).Replace(sqlText)
	if jsonPlaceholder.MatchString(sqlText) && db.d.JSONText == "" {
		return "", errors.New("the dialect has no JSONText")
	}
	sqlText = jsonPlaceholder.ReplaceAllStringFunc(sqlText, func(m string) string {
		p := jsonPlaceholder.FindStringSubmatch(m)
		return fmt.Sprintf(db.d.JSONText, p[1], p[2])
	})
	if i := strings.Index(sqlText, "{{"); i >= 0 {
		return "", fmt.Errorf("unknown placeholder at %q", sqlText[i:min(len(sqlText), i+20)])
	}
	return sqlText, nil
}

// ignoreDone drops the error of rolling back a finished transaction.
func ignoreDone(err error) error {
	if errors.Is(err, sql.ErrTxDone) {
		return nil
	}
	return err
}
