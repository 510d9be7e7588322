//go:build pkcs11

package pkcs11

import (
	"context"
	"errors"
	"fmt"

	p11 "github.com/miekg/pkcs11"
)

// CreateKEK creates an AES-256 KEK labelled label in the token: a token
// object, private, sensitive and not extractable, for encryption and
// decryption only. When the token already holds a key with that label it
// checks that key instead and reports created false; a key that is not
// AES-256, or that could leave the HSM, is an error.
func (p *Provider) CreateKEK(ctx context.Context, label string) (created bool, err error) {
	if !validLabel(label) {
		return false, errors.New("pkcs11: invalid kek label")
	}
	err = p.with(ctx, "create kek", func(c *conn, sh p11.SessionHandle) error {
		hs, err := p.findAll(sh, p11.CKO_SECRET_KEY, label)
		if err != nil {
			return err
		}
		if len(hs) > 0 {
			if len(hs) > 1 {
				return fmt.Errorf("several keys labelled %q in the token: %w", label, errUsage)
			}
			return p.checkKEK(sh, hs[0])
		}
		_, err = p.lib.GenerateKey(sh, []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_KEY_GEN, nil)}, []*p11.Attribute{
			p11.NewAttribute(p11.CKA_CLASS, p11.CKO_SECRET_KEY),
			p11.NewAttribute(p11.CKA_KEY_TYPE, p11.CKK_AES),
			p11.NewAttribute(p11.CKA_VALUE_LEN, 32),
			p11.NewAttribute(p11.CKA_LABEL, label),
			p11.NewAttribute(p11.CKA_TOKEN, true),
			p11.NewAttribute(p11.CKA_PRIVATE, true),
			p11.NewAttribute(p11.CKA_SENSITIVE, true),
			p11.NewAttribute(p11.CKA_EXTRACTABLE, false),
			p11.NewAttribute(p11.CKA_ENCRYPT, true),
			p11.NewAttribute(p11.CKA_DECRYPT, true),
			p11.NewAttribute(p11.CKA_WRAP, false),
			p11.NewAttribute(p11.CKA_UNWRAP, false),
			p11.NewAttribute(p11.CKA_SIGN, false),
			p11.NewAttribute(p11.CKA_VERIFY, false),
			p11.NewAttribute(p11.CKA_DERIVE, false),
		})
		created = err == nil
		return err
	})
	return created, err
}

// checkKEK checks an existing KEK: AES, 32 bytes, sensitive, never
// extractable.
func (p *Provider) checkKEK(sh p11.SessionHandle, h p11.ObjectHandle) error {
	attrs, err := p.lib.GetAttributeValue(sh, h, []*p11.Attribute{
		p11.NewAttribute(p11.CKA_KEY_TYPE, nil),
		p11.NewAttribute(p11.CKA_VALUE_LEN, nil),
		p11.NewAttribute(p11.CKA_SENSITIVE, nil),
		p11.NewAttribute(p11.CKA_EXTRACTABLE, nil),
	})
	if err != nil {
		return err
	}
	kt, err1 := ulong(attrs[0].Value)
	n, err2 := ulong(attrs[1].Value)
	if err1 != nil || err2 != nil || kt != p11.CKK_AES || n != 32 {
		return fmt.Errorf("the existing key is not AES-256: %w", errUsage)
	}
	if !isTrue(attrs[2].Value) || isTrue(attrs[3].Value) {
		return fmt.Errorf("the existing key is not sensitive or is extractable: %w", errUsage)
	}
	return nil
}

// CreateSigningKey creates a key pair of type typ labelled label in the
// token (the private key sensitive and not extractable, for signing only).
// When the token already holds a private key with that label it reports
// created false and leaves it. An HSM without the mechanism for typ
// answers an error that says so.
func (p *Provider) CreateSigningKey(ctx context.Context, label string, typ KeyType) (created bool, err error) {
	if !validLabel(label) {
		return false, errors.New("pkcs11: invalid signing key label")
	}
	var mech uint
	var params []byte
	switch typ {
	case Ed25519:
		mech, params = ckmECEdwardsKeyPairGen, oidEd25519
	case ECDSAP256:
		mech, params = p11.CKM_EC_KEY_PAIR_GEN, oidP256
	default:
		return false, errors.New("pkcs11: unknown signing key type")
	}
	err = p.with(ctx, "create signing key", func(c *conn, sh p11.SessionHandle) error {
		hs, err := p.findAll(sh, p11.CKO_PRIVATE_KEY, label)
		if err != nil || len(hs) > 0 {
			return err
		}
		_, _, err = p.lib.GenerateKeyPair(sh, []*p11.Mechanism{p11.NewMechanism(mech, nil)},
			[]*p11.Attribute{
				p11.NewAttribute(p11.CKA_TOKEN, true),
				p11.NewAttribute(p11.CKA_LABEL, label),
				p11.NewAttribute(p11.CKA_VERIFY, true),
				p11.NewAttribute(p11.CKA_EC_PARAMS, params),
			},
			[]*p11.Attribute{
				p11.NewAttribute(p11.CKA_TOKEN, true),
				p11.NewAttribute(p11.CKA_LABEL, label),
				p11.NewAttribute(p11.CKA_PRIVATE, true),
				p11.NewAttribute(p11.CKA_SENSITIVE, true),
				p11.NewAttribute(p11.CKA_EXTRACTABLE, false),
				p11.NewAttribute(p11.CKA_SIGN, true),
				p11.NewAttribute(p11.CKA_DERIVE, false),
			})
		if isCode(err, p11.CKR_MECHANISM_INVALID, p11.CKR_ATTRIBUTE_VALUE_INVALID, p11.CKR_DOMAIN_PARAMS_INVALID, p11.CKR_CURVE_NOT_SUPPORTED) {
			return fmt.Errorf("the HSM cannot make %s keys (%w): %w", typ, err, errUsage)
		}
		created = err == nil
		return err
	})
	return created, err
}

func isTrue(b []byte) bool { return len(b) == 1 && b[0] != 0 }
