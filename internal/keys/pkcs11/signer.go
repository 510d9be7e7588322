//go:build pkcs11

package pkcs11

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"

	p11 "github.com/miekg/pkcs11"
)

// Mechanisms and key types of PKCS#11 v3.0 that the binding does not name.
const (
	ckkECEdwards           = 0x00000040
	ckmECEdwardsKeyPairGen = 0x00001055
	ckmEdDSA               = 0x00001057
)

// DER of the curves' object identifiers, as CKA_EC_PARAMS holds them.
var (
	oidP256    = []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07} // 1.2.840.10045.3.1.7
	oidEd25519 = []byte{0x06, 0x03, 0x2b, 0x65, 0x70}                               // 1.3.101.112
)

// signer is a crypto.Signer whose private key is in the HSM. It gives out
// its public key and signatures, nothing else.
type signer struct {
	p     *Provider
	label string
	typ   KeyType
	pub   crypto.PublicKey
}

// Signer returns the signer whose key pair in the token has label: an
// Ed25519 key (Public is an ed25519.PublicKey; Sign signs the message) or
// an ECDSA P-256 key (Public is an *ecdsa.PublicKey; Sign signs a SHA-256
// digest and returns an ASN.1 signature, as crypto/ecdsa does). A missing
// key is keys.ErrUnavailable.
func (p *Provider) Signer(ctx context.Context, label string) (crypto.Signer, error) {
	if !validLabel(label) {
		return nil, errors.New("pkcs11: invalid signing key label")
	}
	s := &signer{p: p, label: label}
	err := p.with(ctx, "signer", func(c *conn, sh p11.SessionHandle) error {
		if _, err := p.find(c, sh, p11.CKO_PRIVATE_KEY, label); err != nil {
			return err
		}
		pubH, err := p.find(c, sh, p11.CKO_PUBLIC_KEY, label)
		if err != nil {
			return err
		}
		attrs, err := p.lib.GetAttributeValue(sh, pubH, []*p11.Attribute{
			p11.NewAttribute(p11.CKA_KEY_TYPE, nil),
			p11.NewAttribute(p11.CKA_EC_PARAMS, nil),
			p11.NewAttribute(p11.CKA_EC_POINT, nil),
		})
		if err != nil {
			return err
		}
		s.typ, s.pub, err = parsePublic(attrs[0].Value, attrs[1].Value, attrs[2].Value)
		return err
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// parsePublic reads a public key from its CKA_KEY_TYPE, CKA_EC_PARAMS and
// CKA_EC_POINT.
func parsePublic(keyType, params, point []byte) (KeyType, crypto.PublicKey, error) {
	kt, err := ulong(keyType)
	if err != nil {
		return 0, nil, err
	}
	// CKA_EC_POINT is a DER OCTET STRING; some modules give the raw point.
	var raw []byte
	if rest, err := asn1.Unmarshal(point, &raw); err != nil || len(rest) != 0 {
		raw = point
	}
	switch {
	case kt == ckkECEdwards && bytes.Equal(params, oidEd25519) || kt == ckkECEdwards && isEd25519Name(params):
		if len(raw) != ed25519.PublicKeySize {
			return 0, nil, errors.New("pkcs11: Ed25519 public key of the wrong size")
		}
		return Ed25519, ed25519.PublicKey(bytes.Clone(raw)), nil
	case kt == p11.CKK_EC && bytes.Equal(params, oidP256):
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
		if err != nil {
			return 0, nil, fmt.Errorf("pkcs11: P-256 public key: %w", err)
		}
		return ECDSAP256, pub, nil
	}
	return 0, nil, errors.New("pkcs11: signing key is neither Ed25519 nor ECDSA P-256")
}

// isEd25519Name reports whether params is the PrintableString
// "edwards25519", the other form PKCS#11 v3.0 allows.
func isEd25519Name(params []byte) bool {
	var name string
	rest, err := asn1.UnmarshalWithParams(params, &name, "printable")
	return err == nil && len(rest) == 0 && name == "edwards25519"
}

// ulong decodes a CK_ULONG attribute value (native byte order and size).
func ulong(b []byte) (uint, error) {
	switch len(b) {
	case 8:
		return uint(binary.NativeEndian.Uint64(b)), nil
	case 4:
		return uint(binary.NativeEndian.Uint32(b)), nil
	}
	return 0, errors.New("pkcs11: malformed CK_ULONG attribute")
}

// Public returns the public key.
func (s *signer) Public() crypto.PublicKey { return s.pub }

// Sign signs in the HSM: for Ed25519 the message itself (opts.HashFunc()
// must be 0, and no Ed25519ph or context), for ECDSA a SHA-256 digest.
func (s *signer) Sign(_ io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	var mech uint
	switch s.typ {
	case Ed25519:
		if o, ok := opts.(*ed25519.Options); ok && (o.Context != "" || o.Hash != 0) || opts.HashFunc() != 0 {
			return nil, fmt.Errorf("pkcs11: Ed25519 signs the message itself, without a hash or context: %w", errUsage)
		}
		mech = ckmEdDSA
	case ECDSAP256:
		if opts.HashFunc() != crypto.SHA256 || len(msg) != 32 {
			return nil, fmt.Errorf("pkcs11: ECDSA P-256 signs SHA-256 digests: %w", errUsage)
		}
		mech = p11.CKM_ECDSA
	}
	var sig []byte
	err := s.p.with(context.Background(), "sign", func(c *conn, sh p11.SessionHandle) error {
		key, err := s.p.find(c, sh, p11.CKO_PRIVATE_KEY, s.label)
		if err != nil {
			return err
		}
		if err := s.p.lib.SignInit(sh, []*p11.Mechanism{p11.NewMechanism(mech, nil)}, key); err != nil {
			return err
		}
		sig, err = s.p.lib.Sign(sh, msg)
		return err
	})
	if err != nil {
		return nil, err
	}
	if s.typ == ECDSAP256 {
		if len(sig) != 64 {
			return nil, errors.New("pkcs11: the HSM returned an ECDSA signature of the wrong size")
		}
		return asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])})
	}
	return sig, nil
}

// String names the key, not its value (which is not here anyway).
func (s *signer) String() string { return "pkcs11.Signer(" + s.label + ", " + s.typ.String() + ")" }
