//go:build pkcs11

package pkcs11

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	p11 "github.com/miekg/pkcs11"

	"github.com/wardhealth/ward/internal/keys"
)

// Wrapped data key format: version | 12-byte IV | AES-GCM ciphertext and
// 16-byte tag. The associated data binds wrapDomain, the KEK id and the
// caller's associated data, each length-prefixed.
const (
	wrapVersion = 1
	wrapDomain  = "ward pkcs11 kek wrap v1"
	ivSize      = 12
	tagBits     = 128
	wrapMin     = 1 + ivSize + tagBits/8
)

// Provider is a key provider over one token of a PKCS#11 module. It
// implements keys.KEKProvider and keys.KEKOwner, and hands out signers
// whose private keys stay in the token. It is safe for concurrent use.
//
// Use one Provider per module in a process: PKCS#11 initialisation is
// per process, and a Provider that recovers from a failure finalises the
// module.
type Provider struct {
	cfg  Config
	rand io.Reader
	lib  *p11.Ctx
	sem  chan struct{} // one slot per session in use

	// gate is held for reading by every operation on the module, and for
	// writing by reset and Close, so that the module is never finalised
	// while a call into it is running.
	gate sync.RWMutex

	mu     sync.Mutex // guards conn and closed
	conn   *conn      // nil until connected, and after a failure
	closed bool
}

// conn is one initialisation of the module: the token's slot, the idle
// logged-in sessions, and the object handles found so far.
type conn struct {
	slot uint
	idle []p11.SessionHandle
	objs map[objKey]p11.ObjectHandle
}

type objKey struct {
	class uint
	label string
}

// Open loads the module, finds the token by its label and logs in. It
// fails when the module cannot be loaded or the token is not there, or
// when the current KEK is missing; once open, failures are recovered from
// on later operations.
func Open(ctx context.Context, cfg Config) (*Provider, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	cfg.PIN = bytes.Clone(cfg.PIN)
	lib := p11.New(cfg.Module)
	if lib == nil {
		return nil, fmt.Errorf("pkcs11: cannot load module %s: %w", cfg.Module, keys.ErrUnavailable)
	}
	p := &Provider{cfg: cfg, rand: rand.Reader, lib: lib, sem: make(chan struct{}, cfg.Sessions)}
	if err := p.with(ctx, "open", func(*conn, p11.SessionHandle) error { return nil }); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// String names the module and token.
func (p *Provider) String() string { return "pkcs11.Provider(" + p.cfg.String() + ")" }

// Close logs out, closes the sessions and unloads the module.
func (p *Provider) Close() error {
	p.gate.Lock()
	defer p.gate.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	if p.conn != nil {
		p.lib.CloseAllSessions(p.conn.slot)
		p.conn = nil
	}
	p.lib.Finalize()
	p.lib.Destroy()
	return nil
}

// with runs fn on a logged-in session, connecting first when needed. An
// error that is not about the data (a tampered wrapped key) drops the
// connection, so the next operation starts afresh, and is returned
// wrapping keys.ErrUnavailable.
func (p *Provider) with(ctx context.Context, op string, fn func(*conn, p11.SessionHandle) error) error {
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("pkcs11: %s: %w", op, ctx.Err())
	}
	defer func() { <-p.sem }()
	p.gate.RLock()
	c, sh, err := p.session()
	if err == nil {
		err = fn(c, sh)
	}
	broken := err != nil && !errors.Is(err, keys.ErrDecrypt) && !errors.Is(err, errUsage)
	if c != nil && !broken {
		p.mu.Lock()
		c.idle = append(c.idle, sh)
		p.mu.Unlock()
	}
	p.gate.RUnlock()
	switch {
	case err == nil:
		return nil
	case !broken:
		return fmt.Errorf("pkcs11: %s: %w", op, err)
	}
	if c != nil {
		p.reset(c)
	}
	if errors.Is(err, keys.ErrUnavailable) {
		return fmt.Errorf("pkcs11: %s: %w", op, err)
	}
	return fmt.Errorf("pkcs11: %s: %w: %w", op, keys.ErrUnavailable, err)
}

// errUsage marks a caller's mistake (a wrong option, a digest of the
// wrong size): not a failure of the HSM.
var errUsage = errors.New("pkcs11: invalid use")

// session returns an idle session of the current connection, or a new
// one, connecting first when there is no connection. The caller holds
// p.gate for reading.
func (p *Provider) session() (*conn, p11.SessionHandle, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, 0, errors.New("pkcs11: provider closed")
	}
	if p.conn == nil {
		c, sh, err := p.connect()
		if err != nil {
			return nil, 0, err
		}
		p.conn = c
		return c, sh, nil
	}
	c := p.conn
	if n := len(c.idle); n > 0 {
		sh := c.idle[n-1]
		c.idle = c.idle[:n-1]
		return c, sh, nil
	}
	sh, err := p.lib.OpenSession(c.slot, p11.CKF_SERIAL_SESSION|p11.CKF_RW_SESSION)
	if err != nil {
		return c, 0, err
	}
	return c, sh, nil
}

// connect initialises the module, finds the token and logs in on a first
// session, which it returns. The caller holds p.mu.
func (p *Provider) connect() (c *conn, sh p11.SessionHandle, err error) {
	if err := p.lib.Initialize(); err != nil && !isCode(err, p11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		return nil, 0, fmt.Errorf("initialising the module: %w", err)
	}
	defer func() {
		if err != nil {
			p.lib.Finalize() // so that the next attempt reads the tokens again
		}
	}()
	slots, err := p.lib.GetSlotList(true)
	if err != nil {
		return nil, 0, fmt.Errorf("listing slots: %w", err)
	}
	found := false
	var slot uint
	for _, s := range slots {
		ti, err := p.lib.GetTokenInfo(s)
		if err == nil && strings.TrimRight(ti.Label, " \x00") == p.cfg.TokenLabel {
			slot, found = s, true
			break
		}
	}
	if !found {
		return nil, 0, fmt.Errorf("no token labelled %q", p.cfg.TokenLabel)
	}
	sh, err = p.lib.OpenSession(slot, p11.CKF_SERIAL_SESSION|p11.CKF_RW_SESSION)
	if err != nil {
		return nil, 0, fmt.Errorf("opening a session: %w", err)
	}
	if err := p.lib.Login(sh, p11.CKU_USER, string(p.cfg.PIN)); err != nil && !isCode(err, p11.CKR_USER_ALREADY_LOGGED_IN) {
		p.lib.CloseSession(sh)
		if isCode(err, p11.CKR_PIN_INCORRECT) {
			return nil, 0, errors.New("logging in: the PIN is incorrect")
		}
		return nil, 0, fmt.Errorf("logging in: %w", err)
	}
	return &conn{slot: slot, objs: make(map[objKey]p11.ObjectHandle)}, sh, nil
}

// reset drops connection c once no call into the module is running: its
// sessions are closed and the module finalised, so that the next
// operation initialises it again.
func (p *Provider) reset(c *conn) {
	p.gate.Lock()
	defer p.gate.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn != c || p.closed {
		return // another goroutine reset it already
	}
	p.conn = nil
	p.lib.CloseAllSessions(c.slot)
	p.lib.Finalize()
}

// errNoKey is a key missing from the token: the HSM answers, but Ward
// cannot work without the key, so it is unavailable (503), never a
// reason to use another key.
var errNoKey = errors.New("key not found in the token")

// find returns the handle of the object of class with label, from the
// connection's cache or by searching the token.
func (p *Provider) find(c *conn, sh p11.SessionHandle, class uint, label string) (p11.ObjectHandle, error) {
	k := objKey{class, label}
	p.mu.Lock()
	h, ok := c.objs[k]
	p.mu.Unlock()
	if ok {
		return h, nil
	}
	hs, err := p.findAll(sh, class, label)
	if err != nil {
		return 0, err
	}
	switch len(hs) {
	case 0:
		return 0, fmt.Errorf("%w: %q", errNoKey, label)
	case 1:
	default:
		return 0, fmt.Errorf("several keys labelled %q in the token", label)
	}
	p.mu.Lock()
	c.objs[k] = hs[0]
	p.mu.Unlock()
	return hs[0], nil
}

func (p *Provider) findAll(sh p11.SessionHandle, class uint, label string) ([]p11.ObjectHandle, error) {
	tmpl := []*p11.Attribute{
		p11.NewAttribute(p11.CKA_CLASS, class),
		p11.NewAttribute(p11.CKA_LABEL, label),
	}
	if err := p.lib.FindObjectsInit(sh, tmpl); err != nil {
		return nil, err
	}
	hs, _, err := p.lib.FindObjects(sh, 2)
	if ferr := p.lib.FindObjectsFinal(sh); err == nil {
		err = ferr
	}
	return hs, err
}

// CurrentKEK names the KEK that Wrap uses: KEKPrefix and its label.
func (p *Provider) CurrentKEK() string { return KEKPrefix + p.cfg.KEKLabel }

// OwnsKEK reports whether kekID names a KEK in an HSM (KEKPrefix).
func (p *Provider) OwnsKEK(kekID string) bool { return ownsKEK(kekID) }

// Wrap encrypts dek under the current KEK inside the HSM with AES-256-GCM,
// bound to aad and to the KEK id.
func (p *Provider) Wrap(ctx context.Context, dek, aad []byte) ([]byte, string, error) {
	id := p.CurrentKEK()
	iv := make([]byte, ivSize)
	if _, err := io.ReadFull(p.rand, iv); err != nil {
		return nil, "", fmt.Errorf("pkcs11: wrap: reading an IV: %w", err)
	}
	var out []byte
	err := p.with(ctx, "wrap", func(c *conn, sh p11.SessionHandle) error {
		key, err := p.find(c, sh, p11.CKO_SECRET_KEY, p.cfg.KEKLabel)
		if err != nil {
			return err
		}
		params := p11.NewGCMParams(iv, wrapAAD(id, aad), tagBits)
		defer params.Free()
		if err := p.lib.EncryptInit(sh, []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_GCM, params)}, key); err != nil {
			return err
		}
		ct, err := p.lib.Encrypt(sh, dek)
		if err != nil {
			return err
		}
		// Some HSMs choose the IV themselves: store the one used.
		used := params.IV()
		if len(used) != ivSize || len(ct) != len(dek)+tagBits/8 {
			return errors.New("the HSM returned an unexpected IV or ciphertext size")
		}
		out = make([]byte, 0, 1+ivSize+len(ct))
		out = append(append(append(out, wrapVersion), used...), ct...)
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return out, id, nil
}

// Unwrap decrypts a data key inside the HSM. A wrapped key that was
// tampered with, or bound to other associated data, is keys.ErrDecrypt; a
// KEK missing from the token is keys.ErrUnavailable.
func (p *Provider) Unwrap(ctx context.Context, wrapped []byte, kekID string, aad []byte) ([]byte, error) {
	label, ok := strings.CutPrefix(kekID, KEKPrefix)
	if !ok || !validLabel(label) {
		return nil, fmt.Errorf("pkcs11: unwrap: %q is not an HSM key id: %w", kekID, keys.ErrDecrypt)
	}
	if len(wrapped) < wrapMin || wrapped[0] != wrapVersion {
		return nil, fmt.Errorf("pkcs11: unwrap: malformed wrapped key: %w", keys.ErrDecrypt)
	}
	var dek []byte
	err := p.with(ctx, "unwrap", func(c *conn, sh p11.SessionHandle) error {
		key, err := p.find(c, sh, p11.CKO_SECRET_KEY, label)
		if err != nil {
			return err
		}
		params := p11.NewGCMParams(wrapped[1:1+ivSize], wrapAAD(kekID, aad), tagBits)
		defer params.Free()
		if err := p.lib.DecryptInit(sh, []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_GCM, params)}, key); err != nil {
			return err
		}
		dek, err = p.lib.Decrypt(sh, wrapped[1+ivSize:])
		switch {
		case isCode(err, p11.CKR_ENCRYPTED_DATA_INVALID, p11.CKR_ENCRYPTED_DATA_LEN_RANGE):
			return keys.ErrDecrypt
		case isCode(err, p11.CKR_GENERAL_ERROR):
			// SoftHSM2 and others answer a failed GCM tag check with
			// CKR_GENERAL_ERROR. If the session still answers, the HSM
			// is fine and the wrapped key was wrong.
			if _, perr := p.lib.GetSessionInfo(sh); perr == nil {
				return keys.ErrDecrypt
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return dek, nil
}

// Ping checks that the token answers and holds the current KEK.
func (p *Provider) Ping(ctx context.Context) error {
	return p.with(ctx, "ping", func(c *conn, sh p11.SessionHandle) error {
		_, err := p.find(c, sh, p11.CKO_SECRET_KEY, p.cfg.KEKLabel)
		return err
	})
}

func wrapAAD(kekID string, aad []byte) []byte {
	b := make([]byte, 0, 12+len(wrapDomain)+len(kekID)+len(aad))
	for _, f := range [][]byte{[]byte(wrapDomain), []byte(kekID), aad} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b
}

// isCode reports whether err is one of the PKCS#11 return values codes.
func isCode(err error, codes ...uint) bool {
	var e p11.Error
	if !errors.As(err, &e) {
		return false
	}
	for _, c := range codes {
		if uint(e) == c {
			return true
		}
	}
	return false
}

var (
	_ keys.KEKProvider = (*Provider)(nil)
	_ keys.KEKOwner    = (*Provider)(nil)
)
