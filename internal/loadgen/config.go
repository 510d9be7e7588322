package loadgen

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Defaults applied by Run to zero-valued Config fields.
const (
	DefaultConcurrency     = 4
	DefaultReadConcurrency = 16
	DefaultReads           = 20000
	DefaultSearches        = 2000
	DefaultTimeout         = 2 * time.Minute
)

// maxCredentialsSize bounds the credentials file read by LoadCredentials.
const maxCredentialsSize = 64 << 10

// Secret is an OAuth2 client secret. It does not print: String and GoString
// return a fixed placeholder, and Equal compares in constant time.
type Secret string

// String returns a redacted placeholder, never the secret.
func (Secret) String() string { return "[redacted]" }

// GoString returns a redacted placeholder, never the secret.
func (Secret) GoString() string { return "loadgen.Secret([redacted])" }

// MarshalJSON encodes a redacted placeholder, never the secret.
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"[redacted]"`), nil }

// Equal reports whether s and o are the same secret, in constant time.
func (s Secret) Equal(o Secret) bool {
	return subtle.ConstantTimeCompare([]byte(s), []byte(o)) == 1
}

// Config configures a load run. Zero values of the tuning fields select the
// defaults above; BaseURL, TokenURL, ClientID, ClientSecret and Dir are
// required. LoadCredentials fills the connection fields from Ward's
// credentials file.
type Config struct {
	BaseURL      string // FHIR base, e.g. https://127.0.0.1:8443/fhir
	TokenURL     string // OAuth2 token endpoint on the same host as BaseURL
	ClientID     string
	ClientSecret Secret
	Scope        string // optional OAuth2 scope for the client_credentials grant
	CAFile       string // PEM CA bundle for the server certificate; empty: system roots

	Dir             string // directory of transaction Bundles (*.json)
	Concurrency     int    // ingest workers; 0: DefaultConcurrency
	ReadConcurrency int    // read and search workers; 0: DefaultReadConcurrency
	Reads           int    // read-by-id requests; 0: DefaultReads; negative: skip the phase
	Searches        int    // search requests; 0: DefaultSearches; negative: skip the phase
	Seed            uint64 // seed of the read and search choices; runs with equal seeds choose alike
	// HTTP1 gives each worker its own HTTP/1.1 connection; otherwise the
	// workers share HTTP/2 connections (Go's default: one per host).
	HTTP1 bool

	Timeout time.Duration // per-request limit (including the body); 0: DefaultTimeout
	Out     io.Writer     // progress, first errors and the report; nil: discarded
	JSON    bool          // print the report as one JSON line instead of a table
}

// credentialsFile is the document Ward's dev mode writes to
// <data>/dev-credentials.json.
type credentialsFile struct {
	BaseURL      string `json:"base_url"`
	TokenURL     string `json:"token_url"`
	CAFile       string `json:"ca_file"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	Scope        string `json:"scope,omitempty"`
}

// LoadCredentials reads a Ward credentials file (JSON with base_url,
// token_url, ca_file, client_id and client_secret; scope optional) and
// returns a Config with those fields set. A relative ca_file is resolved
// against the file's directory. The file must not be readable by group or
// others, since it holds a client secret.
func LoadCredentials(path string) (Config, error) {
	f, err := os.Open(path) // #nosec G304 -- a file the person running ward load names
	if err != nil {
		return Config{}, fmt.Errorf("loadgen: credentials: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Config{}, fmt.Errorf("loadgen: credentials: %w", err)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm()&0o077 != 0 {
		return Config{}, fmt.Errorf("loadgen: credentials file %s has mode %04o; it holds a secret and must not be readable by group or others (chmod 600)", path, st.Mode().Perm())
	}
	data, err := io.ReadAll(io.LimitReader(f, maxCredentialsSize+1))
	if err != nil {
		return Config{}, fmt.Errorf("loadgen: credentials: %w", err)
	}
	if len(data) > maxCredentialsSize {
		return Config{}, fmt.Errorf("loadgen: credentials file %s is larger than %d bytes", path, maxCredentialsSize)
	}
	cfg, err := parseCredentials(data)
	if err != nil {
		return Config{}, fmt.Errorf("loadgen: credentials file %s: %w", path, err)
	}
	if cfg.CAFile != "" && !filepath.IsAbs(cfg.CAFile) {
		cfg.CAFile = filepath.Join(filepath.Dir(path), cfg.CAFile)
	}
	return cfg, nil
}

// parseCredentials decodes a credentials document strictly (unknown fields
// and trailing data are errors) and reports every missing required field.
// Errors never contain field values.
func parseCredentials(data []byte) (Config, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var c credentialsFile
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("invalid JSON: %w", jsonErrNoValue(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Config{}, errors.New("invalid JSON: data after the object")
	}
	var missing []string
	for _, f := range []struct{ name, v string }{
		{"base_url", c.BaseURL},
		{"token_url", c.TokenURL},
		{"ca_file", c.CAFile},
		{"client_id", c.ClientID},
		{"client_secret", c.ClientSecret},
	} {
		if strings.TrimSpace(f.v) == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return Config{}, fmt.Errorf("missing required field(s): %s", strings.Join(missing, ", "))
	}
	return Config{
		BaseURL:      c.BaseURL,
		TokenURL:     c.TokenURL,
		CAFile:       c.CAFile,
		ClientID:     c.ClientID,
		ClientSecret: Secret(c.ClientSecret),
		Scope:        c.Scope,
	}, nil
}

// jsonErrNoValue keeps JSON errors from quoting the input: syntax and type
// errors carry offsets and field names only.
func jsonErrNoValue(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("syntax error at offset %d", se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("field %q: wrong type %s", te.Field, te.Value)
	}
	return err
}

// settings is a validated Config with defaults applied.
type settings struct {
	Config
	base  *url.URL
	token *url.URL
}

// validate checks cfg once and applies defaults.
func validate(cfg Config) (settings, error) {
	s := settings{Config: cfg}
	if cfg.ClientID == "" || cfg.ClientSecret == "" {
		return s, errors.New("loadgen: client id and client secret are required")
	}
	if cfg.Dir == "" {
		return s, errors.New("loadgen: a directory of transaction bundles is required")
	}
	var err error
	if s.base, err = parseHTTPSURL("base url", cfg.BaseURL); err != nil {
		return s, err
	}
	if s.token, err = parseHTTPSURL("token url", cfg.TokenURL); err != nil {
		return s, err
	}
	if !strings.EqualFold(s.base.Host, s.token.Host) {
		return s, fmt.Errorf("loadgen: token url host %q differs from base url host %q; refusing to contact another host", s.token.Host, s.base.Host)
	}
	for _, n := range []struct {
		name string
		v    *int
		def  int
	}{
		{"concurrency", &s.Concurrency, DefaultConcurrency},
		{"read concurrency", &s.ReadConcurrency, DefaultReadConcurrency},
	} {
		if *n.v < 0 {
			return s, fmt.Errorf("loadgen: %s must not be negative", n.name)
		}
		if *n.v == 0 {
			*n.v = n.def
		}
	}
	if s.Reads == 0 {
		s.Reads = DefaultReads
	}
	if s.Searches == 0 {
		s.Searches = DefaultSearches
	}
	if s.Timeout < 0 {
		return s, errors.New("loadgen: timeout must not be negative")
	}
	if s.Timeout == 0 {
		s.Timeout = DefaultTimeout
	}
	if s.Out == nil {
		s.Out = io.Discard
	}
	return s, nil
}

func parseHTTPSURL(what, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("loadgen: %s: %w", what, err)
	}
	if u.Scheme != "https" {
		return nil, fmt.Errorf("loadgen: %s must use https, not %q", what, u.Scheme)
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("loadgen: %s must be https://host[:port]/path without credentials, query or fragment", what)
	}
	return u, nil
}
