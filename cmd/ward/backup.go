package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/sqlite"
)

const backupSummary = `Back up a running Ward on SQLite, or check a backup.

  ward backup --to FILE     an online, consistent copy of the database,
                            sealed with AES-256-GCM under a backup key
                            derived from the key file, and signed
  ward backup verify FILE   check a backup's signature and every chunk,
                            without restoring it

The key file is not in the backup: keep a copy of it elsewhere (it is what
opens the backup, and it holds the erasure register). On PostgreSQL, back
up with pg_dump and restore with pg_restore (README, Operations); ward
serve re-applies erasures at start either way.`

const restoreSummary = `Restore a backup into a data directory that holds the key file and no
database: ward restore FILE --data DIR. The backup is checked first; the
restored ledger is verified; erasures the key file records are applied
again; a backup whose ledger is older than a checkpoint you saved
(--checkpoint) is refused unless --accept-rollback, which is recorded.`

// backupTrailer ends a backup file: a signed note, its length, and this.
const backupTrailer = "WARDSIG1"

// backupCertifierName names the key that signs backups.
const backupCertifierName = "ward-backup"

// backupInfo is what a backup's signed note says.
type backupInfo struct {
	ID            string    `json:"id"`
	Created       time.Time `json:"created"`
	SealedSHA256  string    `json:"sealed_sha256"`
	SealedBytes   int64     `json:"sealed_bytes"`
	DatabaseBytes int64     `json:"database_bytes"`
	LedgerSize    int64     `json:"ledger_size"`
	LedgerRoot    string    `json:"ledger_root"`
}

func (b backupInfo) lines() []string {
	return []string{
		"backup " + b.ID, "created " + b.Created.UTC().Format(time.RFC3339Nano),
		"sealed-sha256 " + b.SealedSHA256, "sealed-bytes " + strconv.FormatInt(b.SealedBytes, 10),
		"database-bytes " + strconv.FormatInt(b.DatabaseBytes, 10),
		"ledger-size " + strconv.FormatInt(b.LedgerSize, 10), "ledger-root " + b.LedgerRoot,
	}
}

func parseBackupInfo(lines []string) (backupInfo, error) {
	var b backupInfo
	fields := map[string]string{}
	for _, l := range lines {
		k, v, ok := strings.Cut(l, " ")
		if !ok {
			return b, errors.New("malformed backup note")
		}
		fields[k] = v
	}
	var err error
	b.ID, b.SealedSHA256, b.LedgerRoot = fields["backup"], fields["sealed-sha256"], fields["ledger-root"]
	if b.Created, err = time.Parse(time.RFC3339Nano, fields["created"]); err != nil {
		return b, errors.New("malformed backup note")
	}
	for k, p := range map[string]*int64{"sealed-bytes": &b.SealedBytes, "database-bytes": &b.DatabaseBytes, "ledger-size": &b.LedgerSize} {
		if *p, err = strconv.ParseInt(fields[k], 10, 64); err != nil {
			return b, errors.New("malformed backup note")
		}
	}
	return b, nil
}

func runBackup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	verify := len(args) > 0 && args[0] == "verify"
	var file string
	if verify {
		args = args[1:]
		if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
			file, args = args[0], args[1:]
		}
	}
	var st storage
	name := "backup"
	if verify {
		name = "backup verify"
	}
	fs := newFlagSet(name, backupSummary)
	st.register(fs)
	to := fs.String("to", "", "the backup file to write (ward backup)")
	asJSON := fs.Bool("json", false, "print the result as JSON, without progress")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	kf, err := st.openKeys()
	if err != nil {
		return err
	}
	if verify {
		if file == "" {
			return usagef("usage: ward backup verify FILE")
		}
		info, err := verifyBackup(file, kf, nil, newProgress(stderr, !*asJSON, "verifying"))
		if err != nil {
			return err
		}
		return report(stdout, *asJSON, info, fmt.Sprintf("backup %s intact: %d database bytes, ledger of %d entries, taken %s\n",
			info.ID, info.DatabaseBytes, info.LedgerSize, info.Created.Format(time.RFC3339)))
	}
	if *to == "" {
		return usagef("--to is required")
	}
	path := st.sqlitePath()
	if path == "" {
		return usagef("ward backup copies a SQLite database; on PostgreSQL use pg_dump (README, Operations)")
	}
	info, err := writeBackup(ctx, path, *to, kf, newProgress(stderr, !*asJSON, "backing up"))
	if err != nil {
		return err
	}
	return report(stdout, *asJSON, info, fmt.Sprintf("backup %s written to %s: %d database bytes sealed into %d, ledger of %d entries\n",
		info.ID, *to, info.DatabaseBytes, info.SealedBytes, info.LedgerSize))
}

func report(out io.Writer, asJSON bool, v any, text string) error {
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	_, err := io.WriteString(out, text)
	return err
}

// writeBackup copies the database at path consistently (VACUUM INTO, which
// a running server does not block), seals the copy and signs it.
func writeBackup(ctx context.Context, path, to string, kf *keys.LocalFile, prog *progress) (backupInfo, error) {
	if _, err := os.Stat(to); err == nil {
		return backupInfo{}, fmt.Errorf("%s exists: ward backup does not overwrite a file", to)
	}
	tmpDir, err := os.MkdirTemp(filepath.Dir(to), ".ward-backup-")
	if err != nil {
		return backupInfo{}, err
	}
	defer os.RemoveAll(tmpDir)
	snapshot := filepath.Join(tmpDir, "ward.db")
	raw, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return backupInfo{}, err
	}
	_, err = raw.ExecContext(ctx, `VACUUM INTO ?`, snapshot)
	_ = raw.Close()
	if err != nil {
		return backupInfo{}, fmt.Errorf("copying the database: %w", err)
	}
	info := backupInfo{Created: time.Now().UTC()}
	size, root, err := ledgerHead(ctx, snapshot)
	if err != nil {
		return backupInfo{}, err
	}
	info.LedgerSize, info.LedgerRoot = size, base64.StdEncoding.EncodeToString(root[:])
	in, err := os.Open(snapshot) // #nosec G304 -- a path the operator gives on the command line or in the configuration; the CLI runs with the operator's rights
	if err != nil {
		return backupInfo{}, err
	}
	defer in.Close()
	if st, err := in.Stat(); err == nil {
		info.DatabaseBytes = st.Size()
	}
	partial := to + ".partial"
	out, err := os.OpenFile(partial, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600) // #nosec G304 -- a path the operator gives on the command line or in the configuration; the CLI runs with the operator's rights
	if err != nil {
		return backupInfo{}, err
	}
	defer os.Remove(partial)
	defer out.Close()
	sum := sha256.New()
	counted := &countWriter{w: io.MultiWriter(out, sum)}
	bw, id, err := kf.NewBackupWriter(counted)
	if err != nil {
		return backupInfo{}, err
	}
	prog.total = info.DatabaseBytes
	if _, err := io.Copy(bw, io.TeeReader(in, prog)); err != nil {
		return backupInfo{}, err
	}
	if err := bw.Close(); err != nil {
		return backupInfo{}, err
	}
	prog.done()
	info.ID, info.SealedBytes, info.SealedSHA256 = hex.EncodeToString(id), counted.n, hex.EncodeToString(sum.Sum(nil))
	certifier, err := ledger.NewCertifier(backupCertifierName, kf.CertificateSigner())
	if err != nil {
		return backupInfo{}, err
	}
	signed, err := certifier.Certify(info.lines()...)
	if err != nil {
		return backupInfo{}, err
	}
	var trailer []byte
	trailer = append(trailer, signed...)
	trailer = binary.BigEndian.AppendUint64(trailer, uint64(len(signed)))
	trailer = append(trailer, backupTrailer...)
	if _, err := out.Write(trailer); err != nil {
		return backupInfo{}, err
	}
	if err := out.Sync(); err != nil {
		return backupInfo{}, err
	}
	if err := out.Close(); err != nil {
		return backupInfo{}, err
	}
	return info, os.Rename(partial, to)
}

// ledgerHead returns the size and root of the ledger in the SQLite
// database at path.
func ledgerHead(ctx context.Context, path string) (int64, tlog.Hash, error) {
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		return 0, tlog.Hash{}, err
	}
	defer db.Close()
	size, err := db.LedgerSize(ctx)
	if err != nil {
		return 0, tlog.Hash{}, err
	}
	if size == 0 {
		return 0, tlog.Hash{}, nil
	}
	root, err := tlog.TreeHash(size, audit.HashReader(ctx, db))
	return size, root, err
}

// verifyBackup checks a backup's signature and hash, and opens every
// chunk, writing the database to to when it is not nil.
func verifyBackup(file string, kf *keys.LocalFile, to io.Writer, prog *progress) (backupInfo, error) {
	f, err := os.Open(file) // #nosec G304 G703 -- a path the operator gives on the command line or in the configuration; the CLI runs with the operator's rights
	if err != nil {
		return backupInfo{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return backupInfo{}, err
	}
	refused := func(why string) error { return fmt.Errorf("backup %s refused: %s", file, why) }
	size := st.Size()
	tail := make([]byte, 16)
	if size < int64(len(tail)) {
		return backupInfo{}, refused("too short to be a backup")
	}
	if _, err := f.ReadAt(tail, size-16); err != nil || string(tail[8:]) != backupTrailer {
		return backupInfo{}, refused("no signature at its end (truncated?)")
	}
	noteLen := int64(binary.BigEndian.Uint64(tail[:8])) // #nosec G115 -- the value is checked to be in 1..64 KiB on the next line before any use
	if noteLen <= 0 || noteLen > 64<<10 || noteLen > size-16 {
		return backupInfo{}, refused("a malformed signature")
	}
	signed := make([]byte, noteLen)
	if _, err := f.ReadAt(signed, size-16-noteLen); err != nil {
		return backupInfo{}, err
	}
	certifier, err := ledger.NewCertifier(backupCertifierName, kf.CertificateSigner())
	if err != nil {
		return backupInfo{}, err
	}
	lines, err := ledger.OpenCertificate(signed, certifier.VerifierKey())
	if err != nil {
		return backupInfo{}, refused("its signature does not verify with this key file")
	}
	info, err := parseBackupInfo(lines)
	if err != nil {
		return backupInfo{}, refused(err.Error())
	}
	sealedLen := size - 16 - noteLen
	if sealedLen != info.SealedBytes {
		return backupInfo{}, refused("its length is not the signed length (truncated or extended)")
	}
	sum := sha256.New()
	prog.total = sealedLen
	r, _, err := kf.NewBackupReader(io.TeeReader(io.TeeReader(io.LimitReader(f, sealedLen), sum), prog))
	if err != nil {
		return backupInfo{}, refused(err.Error())
	}
	if to == nil {
		to = io.Discard
	}
	if _, err := io.Copy(to, r); err != nil {
		return backupInfo{}, refused(err.Error())
	}
	prog.done()
	if hex.EncodeToString(sum.Sum(nil)) != info.SealedSHA256 {
		return backupInfo{}, refused("its content is not the signed content")
	}
	return info, nil
}

// restoreResult is what ward restore reports.
type restoreResult struct {
	Backup             backupInfo `json:"backup"`
	Database           string     `json:"database"`
	ReappliedErasures  int        `json:"reapplied_erasures"`
	RollbackAccepted   bool       `json:"rollback_accepted"`
	LedgerVerification string     `json:"ledger_verification"`
}

func runRestore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var file string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		file, args = args[0], args[1:]
	}
	var st storage
	fs := newFlagSet("restore", restoreSummary)
	st.register(fs)
	checkpointFile := fs.String("checkpoint", "", "a checkpoint saved earlier: a backup whose ledger is older is a rollback")
	acceptRollback := fs.Bool("accept-rollback", false, "restore a backup older than --checkpoint all the same (recorded in the ledger)")
	asJSON := fs.Bool("json", false, "print the result as JSON, without progress")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if file == "" {
		return usagef("usage: ward restore FILE --data DIR")
	}
	path := st.sqlitePath()
	if path == "" {
		return usagef("ward restore restores a SQLite database; on PostgreSQL use pg_restore (README, Operations)")
	}
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("%s exists: ward restore writes only into a data directory without a database", path)
	}
	kf, err := st.openKeys()
	if err != nil {
		return err
	}
	restoring := path + ".restoring"
	out, err := os.OpenFile(restoring, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600) // #nosec G304 -- a path the operator gives on the command line or in the configuration; the CLI runs with the operator's rights
	if err != nil {
		return err
	}
	defer os.Remove(restoring)
	info, err := verifyBackup(file, kf, out, newProgress(stderr, !*asJSON, "restoring"))
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	res := restoreResult{Backup: info, Database: path}
	var rollbackFrom int64 = -1
	if *checkpointFile != "" {
		b, err := os.ReadFile(*checkpointFile)
		if err != nil {
			return err
		}
		lines := strings.SplitN(string(b), "\n", 3)
		size, err := strconv.ParseInt(strings.TrimSpace(safeIndex(lines, 1)), 10, 64)
		if err != nil {
			return usagef("--checkpoint: not a checkpoint")
		}
		if info.LedgerSize < size {
			if !*acceptRollback {
				return fmt.Errorf("the backup's ledger has %d entries, the checkpoint %s %d: restoring it rolls the ledger back; give --accept-rollback to restore it all the same", info.LedgerSize, *checkpointFile, size)
			}
			rollbackFrom, res.RollbackAccepted = size, true
		}
	}
	if err := os.Rename(restoring, path); err != nil {
		return err
	}
	db, err := st.openStore(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	cp := *checkpointFile
	if res.RollbackAccepted {
		cp = "" // the ledger cannot extend a checkpoint it is older than
	}
	var verified bytes.Buffer
	if err := auditVerify(ctx, &verified, &st, db, cp, "", ""); err != nil && !errors.Is(err, errNoCheckpoint) {
		return fmt.Errorf("the restored ledger does not verify (the database is left at %s for an investigation): %w", path, err)
	}
	res.LedgerVerification = strings.TrimSpace(verified.String())
	erased, err := kf.Erasures()
	if err != nil {
		return err
	}
	if res.ReappliedErasures, err = records.ReapplyErasures(ctx, db, erased, time.Now()); err != nil {
		return err
	}
	detail := "backup=" + info.ID + " reapplied=" + strconv.Itoa(res.ReappliedErasures)
	if res.RollbackAccepted {
		detail += " rollback-accepted from=" + strconv.FormatInt(rollbackFrom, 10) + " to=" + strconv.FormatInt(info.LedgerSize, 10)
	}
	rec, err := audit.NewRecord(ledger.Entry{Time: time.Now().UTC(), Actor: "cli", Client: "cli", Action: "restore", Outcome: "success", Detail: detail})
	if err != nil {
		return err
	}
	if err := store.ReadWrite(ctx, db, func(tx store.Tx) error { return audit.AppendInTx(ctx, tx, []audit.Record{rec}) }); err != nil {
		return err
	}
	return report(stdout, *asJSON, res, fmt.Sprintf("restored backup %s (taken %s) into %s\n%s\nre-applied %d erasure(s) the key file records\n",
		info.ID, info.Created.Format(time.RFC3339), path, res.LedgerVerification, res.ReappliedErasures))
}

func safeIndex(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return ""
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// progress reports the bytes a long command has handled on a terminal,
// at most every 200 ms; it is quiet when output is for a script.
type progress struct {
	w     io.Writer
	on    bool
	label string
	total int64
	n     int64
	last  time.Time
	shown bool
}

func newProgress(w io.Writer, wanted bool, label string) *progress {
	f, ok := w.(*os.File)
	on := false
	if ok && wanted {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			on = true
		}
	}
	return &progress{w: w, on: on, label: label}
}

func (p *progress) Write(b []byte) (int, error) {
	p.n += int64(len(b))
	if p.on && time.Since(p.last) > 200*time.Millisecond {
		p.last, p.shown = time.Now(), true
		if p.total > 0 {
			fmt.Fprintf(p.w, "\r%s: %d%% of %d MB", p.label, p.n*100/p.total, p.total>>20)
		} else {
			fmt.Fprintf(p.w, "\r%s: %d MB", p.label, p.n>>20)
		}
	}
	return len(b), nil
}

func (p *progress) done() {
	if p.shown {
		fmt.Fprintf(p.w, "\r%s: done%s\n", p.label, strings.Repeat(" ", 20))
	}
}
