package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/secevent"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/tlsconfig"
)

const witnessSummary = `Runs a C2SP tlog-witness (POST /add-checkpoint) over HTTPS for the logs
given with --log: it cosigns a checkpoint only if the log's key signed it and
a consistency proof shows it extends the last checkpoint it cosigned, and it
keeps that checkpoint per log in <data>/state. Its Ed25519 witness key is
created on first start in <data>/witness-key.json (mode 0600); the verifier
key that logs and auditors configure is printed at every start. Two Ward
deployments can witness each other's audit ledgers.`

// witnessKeyFile is the witness's key on disk.
type witnessKeyFile struct {
	Name string `json:"name"`
	Seed string `json:"ed25519_seed"`
}

func runWitness(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var addr, data, name, tlsCert, tlsKey, logLevel string
	var dev bool
	logs := logsFlag{}
	flags := newFlagSet("witness", witnessSummary)
	flags.StringVar(&addr, "addr", "127.0.0.1:8444", "address to listen on (HTTPS only)")
	flags.StringVar(&data, "data", "./ward-witness", "data directory (witness key, state, dev TLS files)")
	flags.StringVar(&name, "name", "", "the witness's key name, e.g. witness.example.org/w1 (default <hostname>/ward-witness; fixed at first start)")
	flags.Var(logs, "log", "a log to witness, ORIGIN=VKEY (the log's note verifier key); repeatable")
	flags.StringVar(&tlsCert, "tls-cert", "", "PEM certificate chain (required without --dev)")
	flags.StringVar(&tlsKey, "tls-key", "", "PEM private key, mode 0600 (required without --dev)")
	flags.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	flags.BoolVar(&dev, "dev", false, "development mode: create a local CA and certificate in <data>/tls")
	if err := parseFlags(flags, args, stderr); err != nil {
		return err
	}
	if len(logs) == 0 {
		return usagef("at least one --log ORIGIN=VKEY is required")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return usagef("--log-level: %v", err)
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	if err := os.MkdirAll(data, 0o700); err != nil {
		return err
	}
	if tlsCert == "" && tlsKey == "" && dev {
		files, _, err := tlsconfig.EnsureDev(filepath.Join(data, "tls"), time.Now())
		if err != nil {
			return err
		}
		tlsCert, tlsKey = files.Cert, files.Key
	}
	if tlsCert == "" || tlsKey == "" {
		return usagef("a TLS certificate and key are required: pass --tls-cert and --tls-key, or --dev for a local development CA")
	}
	tlsConf, err := tlsconfig.Server(tlsCert, tlsKey)
	if err != nil {
		return err
	}
	cosigner, err := loadWitnessKey(filepath.Join(data, "witness-key.json"), name)
	if err != nil {
		return err
	}
	state, err := ledger.NewFileWitnessState(filepath.Join(data, "state"))
	if err != nil {
		return err
	}
	w, err := ledger.NewWitness(ledger.WitnessConfig{
		Cosigner: cosigner, Logs: logs, State: state,
		OnServerError: func(err error) { logger.Error("witness state failed", "error", err.Error()) },
	})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("POST /add-checkpoint", w)

	srv, errc, err := serveTLS(addr, mux, tlsConf, logger, limits{read: 30 * time.Second, write: 30 * time.Second, header: 16 << 10})
	if err != nil {
		return err
	}
	origins := make([]string, 0, len(logs))
	for o := range logs {
		origins = append(origins, o)
	}
	slices.Sort(origins)
	logger.Info("ward witness listening", "url", "https://"+addr, "name", cosigner.Name(), "verifier_key", cosigner.VerifierKey(), "logs", origins)
	fmt.Fprintf(stdout, "Ward witness %s listening at https://%s\nverifier key: %s\n", cosigner.Name(), addr, cosigner.VerifierKey())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}

// loadWitnessKey reads the witness key, creating it (mode 0600) on first
// start. A name given on the command line must match the stored one: the
// key ID commits to it.
func loadWitnessKey(path, name string) (*ledger.Cosigner, error) {
	b, err := os.ReadFile(path) // #nosec G304 -- a path the operator gives on the command line or in the configuration; the CLI runs with the operator's rights
	if errors.Is(err, fs.ErrNotExist) {
		return createWitnessKey(path, name)
	}
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("witness key file %s must be mode 0600: run chmod 600 %s", path, path)
	}
	var kf witnessKeyFile
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&kf); err != nil {
		return nil, fmt.Errorf("witness key file %s: %w", path, err)
	}
	seed, err := base64.StdEncoding.DecodeString(kf.Seed)
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("witness key file %s: bad seed", path)
	}
	if name != "" && name != kf.Name {
		return nil, usagef("--name %q differs from the witness key's name %q (fixed at first start)", name, kf.Name)
	}
	return ledger.NewCosigner(kf.Name, ed25519.NewKeyFromSeed(seed), nil)
}

func createWitnessKey(path, name string) (*ledger.Cosigner, error) {
	if name == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "localhost"
		}
		name = host + "/ward-witness"
	}
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, err
	}
	c, err := ledger.NewCosigner(name, ed25519.NewKeyFromSeed(seed), nil)
	if err != nil {
		return nil, usagef("--name: %v", err)
	}
	b, err := json.Marshal(witnessKeyFile{Name: name, Seed: base64.StdEncoding.EncodeToString(seed)})
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600) // #nosec G304 -- a path the operator gives on the command line or in the configuration; the CLI runs with the operator's rights
	if err != nil {
		return nil, err
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return nil, err
	}
	return c, nil
}

// logsFlag collects --log ORIGIN=VKEY values.
type logsFlag map[string]note.Verifier

func (l logsFlag) String() string {
	names := make([]string, 0, len(l))
	for o := range l {
		names = append(names, o)
	}
	slices.Sort(names)
	return strings.Join(names, ",")
}

func (l logsFlag) Set(v string) error {
	origin, vkey, ok := strings.Cut(v, "=")
	if !ok || origin == "" {
		return errors.New("want ORIGIN=VKEY")
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return fmt.Errorf("log %s: %w", origin, err)
	}
	if _, dup := l[origin]; dup {
		return fmt.Errorf("log %s given twice", origin)
	}
	l[origin] = verifier
	return nil
}

// listFlag collects a repeatable, comma-separated flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// publishFlags are serve's flags for publishing ledger checkpoints.
type publishFlags struct {
	dir       string
	witnesses listFlag
	witnessCA string
}

func (p *publishFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.dir, "ledger-publish-dir", "", "directory to publish every ledger checkpoint to, write-once, as <size>.checkpoint")
	fs.Var(&p.witnesses, "ledger-witness", "tlog-witness URL (submission prefix) to get ledger checkpoints cosigned by, as URL or URL=VKEY to check its cosignatures with the witness's verifier key; repeatable or comma-separated")
	fs.StringVar(&p.witnessCA, "ledger-witness-ca", "", "PEM CA certificates to trust for the witnesses (default: the system roots)")
}

// start runs the publisher in the background until stop is called. It
// does nothing when no destination is configured.
func (p *publishFlags) start(db store.Store, keys audit.Keys, halt *audit.Halt, logger *slog.Logger, events secevent.Emitter) (stop func(), err error) {
	if p.dir == "" && len(p.witnesses) == 0 {
		return func() {}, nil
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if p.witnessCA != "" {
		if tlsConf, err = tlsconfig.Client(p.witnessCA); err != nil {
			return nil, err
		}
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf}, Timeout: 10 * time.Second}
	cfg := audit.PublishConfig{Keys: keys, Dir: p.dir, HTTPClient: hc}
	for _, w := range p.witnesses {
		target, err := witnessTarget(w)
		if err != nil {
			return nil, err
		}
		cfg.Witnesses = append(cfg.Witnesses, target)
	}
	pub, err := audit.NewPublisher(cfg, audit.Source(db))
	if err != nil {
		return nil, usagef("%v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		audit.RunPublishing(ctx, db, pub, time.Second, halt,
			func(c audit.Cosigned) {
				logger.Info("ledger checkpoint cosigned", "witness", c.Witness, "size", c.Size)
				// Keep the witness's cosignature with the stored checkpoint:
				// the signature lines follow the note's blank line.
				if i := bytes.Index(c.Note, []byte("\n\n")); i >= 0 {
					if err := db.AddCosignatures(ctx, c.Size, c.Note[i+2:]); err != nil {
						logger.Warn("storing a ledger cosignature failed", "witness", c.Witness, "size", c.Size, "error", err.Error())
					}
				}
			},
			func(err error) {
				if errors.Is(err, audit.ErrHistoryRewritten) {
					// RunPublishing has stopped halt: nothing more is signed.
					ledgerFinding(ctx, db, logger, events, "publishing", err)
					return
				}
				logger.Warn("ledger checkpoint publishing failed", "error", err.Error())
			})
	}()
	logger.Info("publishing ledger checkpoints", "dir", p.dir, "witnesses", []string(p.witnesses))
	return func() { cancel(); <-done }, nil
}

// witnessTarget reads URL or URL=VKEY. The key, when given, is the
// witness's cosignature verifier key: cosignatures that do not verify
// under it are refused.
func witnessTarget(v string) (audit.WitnessTarget, error) {
	if i := strings.LastIndex(v, "="); i > 0 {
		if key, err := ledger.NewCosignatureVerifier(v[i+1:]); err == nil {
			return audit.WitnessTarget{URL: v[:i], Key: key}, nil
		}
	}
	if !strings.HasPrefix(v, "https://") {
		return audit.WitnessTarget{}, usagef("--ledger-witness %q: want an https:// URL, optionally followed by =<verifier key>", v)
	}
	return audit.WitnessTarget{URL: v}, nil
}
