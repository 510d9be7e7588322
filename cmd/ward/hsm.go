package main

import (
	"context"
	"crypto"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/keys/pkcs11"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/store"
)

// hsmFlags choose the key provider that holds the key-encryption keys:
// the key file, or a PKCS#11 token (a binary built with -tags pkcs11).
// The key file stays in use either way: it holds the blind-index root,
// the paging key, the ledger and certificate signing keys and the erasure
// register.
type hsmFlags struct {
	provider string
	module   string
	token    string
	pinFile  string
	kekLabel string
	tokenKey string
	esignKey string
}

func (h *hsmFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&h.provider, "key-provider", "file", "where the key-encryption keys live: file (the key file) or pkcs11 (an HSM; needs a ward built with -tags pkcs11)")
	fs.StringVar(&h.module, "pkcs11-module", "", "pkcs11: path of the HSM's PKCS#11 library (SoftHSM2: /usr/lib/softhsm/libsofthsm2.so)")
	fs.StringVar(&h.token, "pkcs11-token", "", "pkcs11: label of the token")
	fs.StringVar(&h.pinFile, "pkcs11-pin-file", "", "pkcs11: file holding the user PIN (or set WARD_PKCS11_PIN)")
	fs.StringVar(&h.kekLabel, "pkcs11-kek", pkcs11.DefaultKEKLabel, "pkcs11: label of the current key-encryption key in the token")
	fs.StringVar(&h.tokenKey, "pkcs11-token-signing-key", "", "pkcs11: label of an Ed25519 key in the token that signs access and id tokens (default: the key file's)")
	fs.StringVar(&h.esignKey, "pkcs11-esign-key", "", "pkcs11: label of an Ed25519 key in the token that signs electronic signatures and nothing else (default: the key file's)")
}

func (h *hsmFlags) usesHSM() bool { return h.provider == "pkcs11" }

// config checks the flags and reads the PIN.
func (h *hsmFlags) config() (pkcs11.Config, error) {
	var cfg pkcs11.Config
	switch h.provider {
	case "file":
		return cfg, errors.New("the key provider is the key file")
	case "pkcs11":
	default:
		return cfg, usagef("--key-provider must be file or pkcs11")
	}
	if h.module == "" || h.token == "" {
		return cfg, usagef("--key-provider pkcs11 needs --pkcs11-module and --pkcs11-token")
	}
	var pin []byte
	switch v, ok := os.LookupEnv("WARD_PKCS11_PIN"); {
	case h.pinFile != "":
		b, err := os.ReadFile(h.pinFile)
		if err != nil {
			return cfg, fmt.Errorf("--pkcs11-pin-file: %w", err)
		}
		pin = []byte(strings.TrimRight(string(b), "\r\n"))
	case ok:
		pin = []byte(v)
	default:
		return cfg, usagef("--key-provider pkcs11 needs the PIN: --pkcs11-pin-file or WARD_PKCS11_PIN")
	}
	return pkcs11.Config{Module: h.module, TokenLabel: h.token, PIN: pin, KEKLabel: h.kekLabel}, nil
}

// open opens the HSM.
func (h *hsmFlags) open(ctx context.Context) (*pkcs11.Provider, error) {
	cfg, err := h.config()
	if err != nil {
		return nil, err
	}
	return pkcs11.Open(ctx, cfg)
}

// keyring returns the keyring over the chosen provider. With pkcs11, data
// keys are wrapped by the HSM's current KEK; those that the key file still
// wraps (before or during the move, ward keys rotate --key-provider
// pkcs11) are unwrapped by the file, decided by their KEK id, never as a
// fallback. The erasure register stays in the key file. close releases
// the HSM.
func (h *hsmFlags) keyring(ctx context.Context, kf *keys.LocalFile, db store.Store) (kr *keys.Keyring, hsm *pkcs11.Provider, release func(), err error) {
	return h.keyringVia(ctx, kf, db, nil)
}

// keyringVia is keyring with the key provider passed through via (nil:
// as it is), e.g. to time it for metrics. The keyring enforces the key
// file's erasure register whichever provider wraps the data keys.
func (h *hsmFlags) keyringVia(ctx context.Context, kf *keys.LocalFile, db store.Store, via func(keys.KEKProvider) keys.KEKProvider) (kr *keys.Keyring, hsm *pkcs11.Provider, release func(), err error) {
	if via == nil {
		via = func(p keys.KEKProvider) keys.KEKProvider { return p }
	}
	if !h.usesHSM() {
		if h.provider != "file" {
			return nil, nil, nil, usagef("--key-provider must be file or pkcs11")
		}
		kr, err := keys.NewKeyring(via(kf), records.KeyStore(db), keys.Config{Register: kf})
		return kr, nil, func() {}, err
	}
	hsm, err = h.open(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	moving, err := keys.Moving(hsm, kf)
	if err == nil {
		kr, err = keys.NewKeyring(via(moving), records.KeyStore(db), keys.Config{Register: kf})
	}
	if err != nil {
		_ = hsm.Close()
		return nil, nil, nil, err
	}
	return kr, hsm, func() { _ = hsm.Close() }, nil
}

// tokenSigner returns the signer of access and id tokens: the HSM's
// Ed25519 key when --pkcs11-token-signing-key names one, else the key
// file's.
func (h *hsmFlags) tokenSigner(ctx context.Context, kf *keys.LocalFile, hsm *pkcs11.Provider) (crypto.Signer, error) {
	if hsm == nil || h.tokenKey == "" {
		if h.tokenKey != "" {
			return nil, usagef("--pkcs11-token-signing-key needs --key-provider pkcs11")
		}
		return kf.TokenSigner(), nil
	}
	return hsm.Signer(ctx, h.tokenKey)
}

// initHSM creates, or checks, the KEK and the token signing key in the
// token; it reports what it did to out.
func (h *hsmFlags) initHSM(ctx context.Context, out io.Writer) error {
	hsm, err := h.open(ctx)
	if err != nil {
		return err
	}
	defer hsm.Close()
	created, err := hsm.CreateKEK(ctx, h.kekLabel)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "key-encryption key %s in token %s: %s\n", hsm.CurrentKEK(), h.token, map[bool]string{true: "created", false: "already there, checked"}[created])
	label := h.tokenKey
	if label == "" {
		label = pkcs11.DefaultTokenLabel
	}
	created, err = hsm.CreateSigningKey(ctx, label, pkcs11.Ed25519)
	if errors.Is(err, keys.ErrUnavailable) {
		return err
	}
	if err != nil {
		fmt.Fprintf(out, "no token signing key in the HSM (%v): tokens stay signed by the key file\n", err)
		return nil
	}
	fmt.Fprintf(out, "token signing key %s (Ed25519): %s; serve with --pkcs11-token-signing-key %s to use it\n", label, map[bool]string{true: "created", false: "already there"}[created], label)
	label = h.esignKey
	if label == "" {
		label = pkcs11.DefaultESignLabel
	}
	created, err = hsm.CreateSigningKey(ctx, label, pkcs11.Ed25519)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "e-signature key %s (Ed25519): %s; serve with --pkcs11-esign-key %s to use it\n", label, map[bool]string{true: "created", false: "already there"}[created], label)
	return nil
}
