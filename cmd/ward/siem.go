package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"time"

	"github.com/wardhealth/ward/internal/secevent"
	"github.com/wardhealth/ward/internal/siem"
	"github.com/wardhealth/ward/internal/tlsconfig"
)

// siemFlags are ward serve's settings for security events (README,
// Security events and SIEM).
type siemFlags struct {
	syslog, ca, format, file string
}

func (s *siemFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&s.syslog, "siem-syslog", "", "host:port of a syslog receiver over TLS (RFC 5425, usually port 6514) that receives every security event")
	fs.StringVar(&s.ca, "siem-ca", "", "PEM CA certificates the --siem-syslog receiver's certificate must chain to (default: the system's)")
	fs.StringVar(&s.format, "siem-format", "ocsf", "format of the events sent to --siem-syslog: ocsf (OCSF 1.3 JSON) or cef (ArcSight CEF)")
	fs.StringVar(&s.file, "siem-file", "", "file to which every security event is appended as a line of OCSF JSON (mode 0600)")
}

func (s *siemFlags) enabled() bool { return s.syslog != "" || s.file != "" }

// open starts the durable stream of security events to the configured
// sinks, buffered in <data>/siem; nil without a sink.
func (s *siemFlags) open(data string, logger *slog.Logger) (*siem.Stream, error) {
	if s.format != string(siem.FormatOCSF) && s.format != string(siem.FormatCEF) {
		return nil, usagef("--siem-format must be ocsf or cef")
	}
	if s.ca != "" && s.syslog == "" {
		return nil, usagef("--siem-ca needs --siem-syslog")
	}
	if !s.enabled() {
		return nil, nil
	}
	var sinks []siem.Sink
	if s.syslog != "" {
		cfg := siem.SyslogConfig{Addr: s.syslog, Format: siem.Format(s.format), Version: version}
		if s.ca != "" {
			pool, err := tlsconfig.CertPool(s.ca)
			if err != nil {
				return nil, usagef("--siem-ca: %v", err)
			}
			cfg.RootCAs = pool
		}
		sink, err := siem.NewSyslog(cfg)
		if err != nil {
			return nil, usagef("--siem-syslog: %v", err)
		}
		sinks = append(sinks, sink)
	}
	if s.file != "" {
		sink, err := siem.NewFile(s.file, version)
		if err != nil {
			return nil, usagef("--siem-file: %v", err)
		}
		sinks = append(sinks, sink)
	}
	stream, err := siem.Open(siem.Config{Dir: filepath.Join(data, "siem"), Sinks: sinks, Logger: logger})
	if err != nil {
		return nil, err
	}
	if _, err := stream.Ingest(); err != nil {
		logger.Warn("taking in security events of ward user failed; retried", "error", err.Error())
	}
	if n := stream.Stats().Sinks[0].Backlog; n > 0 {
		logger.Info("security events buffered by a previous process are being delivered", "events", n)
	}
	return stream, nil
}

// configEvent is config.loaded: the settings that change who may do what,
// as codes (never file contents or secrets).
func (f *serveFlags) configEvent(base string, p publishFlags) secevent.Event {
	e := secevent.New(secevent.ConfigLoaded, time.Now())
	e.Actor, e.Source, e.Outcome = "ward", f.addr, secevent.Success
	e.Attrs = map[string]string{secevent.AttrVersion: version}
	for k, v := range map[string]string{
		"url": base, "db": dbKind(f.db), "dev": strconv.FormatBool(f.dev), "mtls": strconv.FormatBool(f.mtls),
		"token_ttl": f.tokenTTL.String(), "read_only": strconv.FormatBool(f.readOnly),
		"federation": strconv.FormatBool(f.federation != ""), "roles_file": strconv.FormatBool(f.rolesFile != ""),
		"rate_limits_file": strconv.FormatBool(f.rateLimitsFile != ""), "ledger_publish": strconv.FormatBool(p.dir != ""),
		"ledger_witnesses": strconv.Itoa(len(p.witnesses)), "siem_syslog": strconv.FormatBool(f.siem.syslog != ""),
		"siem_file": strconv.FormatBool(f.siem.file != ""), "siem_format": f.siem.format,
	} {
		e.Attrs[secevent.SettingPrefix+k] = v
	}
	return e
}

// ledgerFault is the event of a ledger check that failed.
func ledgerFault(check string) secevent.Event {
	e := secevent.New(secevent.LedgerFault, time.Now())
	e.Actor, e.Outcome = "ward", secevent.Failure
	return e.With(secevent.AttrCheck, check)
}

// ingest takes in, every ten seconds until ctx ends, the events other
// commands (ward user) enqueued for the stream.
func ingest(ctx context.Context, stream *siem.Stream, logger *slog.Logger) {
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if _, err := stream.Ingest(); err != nil {
			logger.Warn("taking in security events of ward user failed; retried", "error", err.Error())
		}
	}
}

// changeEvent hands account.changed (a user) or client.changed (a client)
// for a change ward user or ward client made to the SIEM stream of the
// data directory's server, if one streams; otherwise the change is in the
// ledger only, as every change is.
func changeEvent(st *storage, stderr io.Writer, kind secevent.Kind, id, change, role string) {
	e := secevent.New(kind, time.Now())
	e.Actor, e.Client, e.Outcome = "ward-cli", "ward-cli", secevent.Success
	e.Attrs = map[string]string{secevent.AttrChange: change}
	if kind == secevent.ClientChanged {
		e.Client = id
	} else {
		e.Attrs[secevent.AttrUser] = id
	}
	if role != "" {
		e.Attrs[secevent.AttrRole] = role
	}
	if err := siem.Enqueue(filepath.Join(st.data, "siem"), e); err != nil && !errors.Is(err, siem.ErrNoStream) {
		fmt.Fprintf(stderr, "warning: the change is recorded in the ledger but not queued for the SIEM: %v\n", err)
	}
}
