package siem

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/wardhealth/ward/internal/secevent"
)

// SyslogConfig configures a syslog-over-TLS sink (RFC 5425).
type SyslogConfig struct {
	// Addr is the receiver's host:port (RFC 5425's port is 6514).
	Addr string
	// RootCAs are the CAs the receiver's certificate must chain to; nil
	// means the system's.
	RootCAs *x509.CertPool
	// ServerName is the name the receiver's certificate must carry;
	// default Addr's host.
	ServerName string
	// Format of each message's MSG part; default FormatOCSF.
	Format Format
	// Hostname is RFC 5424's HOSTNAME; default os.Hostname().
	Hostname string
	// Version is Ward's version, for the product fields.
	Version string
	// Timeout bounds a connection attempt and each write; default 10s.
	Timeout time.Duration
}

// Syslog is a sink that sends each event as one RFC 5424 message over TLS
// (RFC 5425): octet-counting framing ("LEN SP MSG"), PRI from the event's
// severity under facility authpriv (10), APP-NAME ward, PROCID Ward's
// process id, MSGID the event's kind, no structured data, and the OCSF
// JSON or CEF line as MSG. The receiver's certificate is verified (TLS
// 1.2 or later); a connection that fails is dropped and dialled again at
// the next Send.
//
// What it does not guarantee: syslog has no acknowledgement, so messages
// a receiver accepted into its socket and then lost (it crashed before
// reading them) are not sent again. Before each batch the connection is
// checked for a close by the receiver, so that a receiver that restarted
// between batches loses nothing.
type Syslog struct {
	cfg  SyslogConfig
	tls  *tls.Config
	host string
	pid  string

	mu   sync.Mutex
	conn *tls.Conn
}

// NewSyslog checks cfg and returns the sink; it connects at the first Send.
func NewSyslog(cfg SyslogConfig) (*Syslog, error) {
	host, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil || host == "" || port == "" {
		return nil, fmt.Errorf("siem: syslog address %q: want host:port", cfg.Addr)
	}
	if cfg.Format == "" {
		cfg.Format = FormatOCSF
	}
	if cfg.Format != FormatOCSF && cfg.Format != FormatCEF {
		return nil, fmt.Errorf("siem: syslog format %q: want ocsf or cef", cfg.Format)
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Hostname == "" {
		cfg.Hostname, _ = os.Hostname()
	}
	s := &Syslog{
		cfg:  cfg,
		tls:  &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: cfg.RootCAs, ServerName: cfg.ServerName},
		host: headerField(cfg.Hostname, 255),
		pid:  strconv.Itoa(os.Getpid()),
	}
	return s, nil
}

// Name is "syslog".
func (s *Syslog) Name() string { return "syslog" }

// Send writes events in order on one connection, dialling it first when
// needed. On any error the connection is closed, so that the next Send
// starts afresh; the caller sends the same events again.
func (s *Syslog) Send(ctx context.Context, events []secevent.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil && closedByPeer(s.conn) {
		s.closeLocked()
	}
	if s.conn == nil {
		d := tls.Dialer{NetDialer: &net.Dialer{Timeout: s.cfg.Timeout}, Config: s.tls}
		dctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
		c, err := d.DialContext(dctx, "tcp", s.cfg.Addr)
		cancel()
		if err != nil {
			return fmt.Errorf("siem: syslog %s: %w", s.cfg.Addr, err)
		}
		s.conn = c.(*tls.Conn)
	}
	var buf bytes.Buffer
	for _, e := range events {
		s.frame(&buf, e)
	}
	if err := s.conn.SetWriteDeadline(time.Now().Add(s.cfg.Timeout)); err != nil {
		s.closeLocked()
		return fmt.Errorf("siem: syslog %s: %w", s.cfg.Addr, err)
	}
	if _, err := s.conn.Write(buf.Bytes()); err != nil {
		s.closeLocked()
		return fmt.Errorf("siem: syslog %s: %w", s.cfg.Addr, err)
	}
	return nil
}

// closedByPeer says whether the receiver closed c: syslog receivers send
// nothing, so a read that does not time out at once means the end.
func closedByPeer(c *tls.Conn) bool {
	if err := c.SetReadDeadline(time.Now().Add(time.Millisecond)); err != nil {
		return true
	}
	var one [1]byte
	_, err := c.Read(one[:])
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

func (s *Syslog) closeLocked() {
	if s.conn != nil {
		_ = s.conn.Close()
		s.conn = nil
	}
}

// Close closes the connection.
func (s *Syslog) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeLocked()
	return nil
}

// facilityAuthpriv is syslog's facility 10, security/authorization
// messages (private).
const facilityAuthpriv = 10

// syslogSeverity maps OCSF severities onto RFC 5424's.
func syslogSeverity(s secevent.Severity) int {
	switch s {
	case secevent.Critical:
		return 2 // critical
	case secevent.High:
		return 3 // error
	case secevent.Medium:
		return 4 // warning
	case secevent.Low:
		return 5 // notice
	}
	return 6 // informational
}

// frame appends one octet-counted RFC 5424 message of e to buf.
func (s *Syslog) frame(buf *bytes.Buffer, e secevent.Event) {
	msg := Message(e, s.cfg.Format, s.host, s.pid, s.cfg.Version)
	buf.WriteString(strconv.Itoa(len(msg)))
	buf.WriteByte(' ')
	buf.Write(msg)
}

// Message returns e as an RFC 5424 syslog message, without framing:
//
//	<PRI>1 TIMESTAMP HOSTNAME ward PROCID MSGID - MSG
func Message(e secevent.Event, f Format, hostname, procID, version string) []byte {
	e, _ = secevent.Clean(e, e.Time)
	var b bytes.Buffer
	fmt.Fprintf(&b, "<%d>1 %s %s ward %s %s - ",
		facilityAuthpriv*8+syslogSeverity(e.Severity),
		e.Time.UTC().Format("2006-01-02T15:04:05.000000Z07:00"),
		headerField(hostname, 255), headerField(procID, 128), headerField(string(e.Kind), 32))
	if f == FormatCEF {
		b.Write(CEF(e, version))
	} else {
		b.Write(OCSF(e, version))
	}
	return b.Bytes()
}

// headerField returns s as an RFC 5424 header field: printable US-ASCII
// without spaces, at most max bytes, "-" when empty.
func headerField(s string, max int) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s) && len(out) < max; i++ {
		if c := s[i]; c > 32 && c < 127 {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return "-"
	}
	return string(out)
}
