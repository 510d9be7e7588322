package federation

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// maxConfigFile bounds a federation configuration file.
const maxConfigFile = 1 << 20

// ParseConfig reads a federation configuration file (the JSON shape below),
// strictly: unknown fields and duplicate keys are errors. Durations are Go
// duration strings ("30s", "10m"); omitted values mean the defaults. It
// validates the shape only; New validates the values. RootCAs and Now are
// not part of the file, and neither are client secrets: client_secret_file
// names a file (ClientSecretFile) that the caller reads into ClientSecret,
// so that the secret is never in the configuration itself.
//
//	{
//	  "fetch_timeout": "5s", "refresh_interval": "10m", "min_refetch_interval": "30s",
//	  "max_staleness": "24h", "max_response_bytes": 262144, "max_keys": 50,
//	  "privileged_roles": ["security-officer"],
//	  "fhir_base": "https://ward.example/fhir",
//	  "issuers": [{
//	    "name": "hospital", "issuer": "https://idp.hospital.example/realms/staff",
//	    "audiences": ["https://ward.example/fhir"], "client_id": "ward",
//	    "client_secret_file": "hospital-secret.txt", "sign_in_scopes": ["openid"],
//	    "algorithms": ["RS256"], "jwks_uri": "", "allow_cross_origin_jwks": false,
//	    "access_token_types": ["at+jwt", "JWT"],
//	    "subject_claim": "sub", "client_id_claim": "azp", "scope_claim": "scope",
//	    "allowed_scopes": ["user/*.rs"], "fhir_user_claim": "fhirUser",
//	    "roles": [
//	      {"claim": "/realm_access/roles", "value": "ward-admin", "role": "admin"},
//	      {"claim": "groups", "value": "clinicians", "role": "practitioner"}
//	    ],
//	    "privileged_roles": [], "mfa_amr": ["mfa", "otp", "hwk", "swk"], "mfa_acr": ["gold"],
//	    "clock_skew": "30s", "max_lifetime": "1h",
//	    "allow_private_networks": true, "allow_loopback": false
//	  }]
//	}
func ParseConfig(data []byte) (Config, error) {
	if len(data) > maxConfigFile {
		return Config{}, errors.New("federation: configuration file larger than 1 MiB")
	}
	if err := checkJSON(data); err != nil {
		return Config{}, fmt.Errorf("federation: configuration: %w", err)
	}
	var f configFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return Config{}, fmt.Errorf("federation: configuration: %w", err)
	}
	c := Config{
		MaxResponseBytes: f.MaxResponseBytes, MaxKeys: f.MaxKeys,
		PrivilegedRoles: f.PrivilegedRoles, FHIRBase: f.FHIRBase,
	}
	var err error
	for _, d := range []struct {
		name string
		in   string
		out  *time.Duration
	}{
		{"fetch_timeout", f.FetchTimeout, &c.FetchTimeout},
		{"refresh_interval", f.RefreshInterval, &c.RefreshInterval},
		{"min_refetch_interval", f.MinRefetchInterval, &c.MinRefetchInterval},
		{"max_staleness", f.MaxStaleness, &c.MaxStaleness},
	} {
		if *d.out, err = parseDuration(d.name, d.in); err != nil {
			return Config{}, err
		}
	}
	for _, fi := range f.Issuers {
		is := Issuer{
			Name: fi.Name, URL: fi.Issuer, Audiences: fi.Audiences, ClientID: fi.ClientID,
			ClientSecretFile: fi.ClientSecretFile, SignInScopes: fi.SignInScopes,
			Algorithms: fi.Algorithms, JWKSURL: fi.JWKSURI, AllowCrossOriginJWKS: fi.AllowCrossOriginJWKS,
			AccessTokenTypes: fi.AccessTokenTypes, SubjectClaim: fi.SubjectClaim, ClientIDClaim: fi.ClientIDClaim,
			ScopeClaim: fi.ScopeClaim, AllowedScopes: fi.AllowedScopes, FHIRUserClaim: fi.FHIRUserClaim,
			PrivilegedRoles: fi.PrivilegedRoles, MFAMethods: fi.MFAAMR, MFAACRs: fi.MFAACR,
			AllowLoopback: fi.AllowLoopback, AllowPrivateNetworks: fi.AllowPrivateNetworks,
		}
		for _, r := range fi.Roles {
			is.Roles = append(is.Roles, RoleRule(r))
		}
		if is.ClockSkew, err = parseDuration("clock_skew", fi.ClockSkew); err != nil {
			return Config{}, err
		}
		if is.MaxLifetime, err = parseDuration("max_lifetime", fi.MaxLifetime); err != nil {
			return Config{}, err
		}
		c.Issuers = append(c.Issuers, is)
	}
	return c, nil
}

func parseDuration(name, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("federation: configuration: %s is not a positive duration", name)
	}
	return d, nil
}

type configFile struct {
	FetchTimeout       string       `json:"fetch_timeout"`
	RefreshInterval    string       `json:"refresh_interval"`
	MinRefetchInterval string       `json:"min_refetch_interval"`
	MaxStaleness       string       `json:"max_staleness"`
	MaxResponseBytes   int64        `json:"max_response_bytes"`
	MaxKeys            int          `json:"max_keys"`
	PrivilegedRoles    []string     `json:"privileged_roles"`
	FHIRBase           string       `json:"fhir_base"`
	Issuers            []issuerFile `json:"issuers"`
}

type issuerFile struct {
	Name                 string     `json:"name"`
	Issuer               string     `json:"issuer"`
	Audiences            []string   `json:"audiences"`
	ClientID             string     `json:"client_id"`
	ClientSecretFile     string     `json:"client_secret_file"`
	SignInScopes         []string   `json:"sign_in_scopes"`
	Algorithms           []string   `json:"algorithms"`
	JWKSURI              string     `json:"jwks_uri"`
	AllowCrossOriginJWKS bool       `json:"allow_cross_origin_jwks"`
	AccessTokenTypes     []string   `json:"access_token_types"`
	SubjectClaim         string     `json:"subject_claim"`
	ClientIDClaim        string     `json:"client_id_claim"`
	ScopeClaim           string     `json:"scope_claim"`
	AllowedScopes        []string   `json:"allowed_scopes"`
	FHIRUserClaim        string     `json:"fhir_user_claim"`
	Roles                []roleFile `json:"roles"`
	PrivilegedRoles      []string   `json:"privileged_roles"`
	MFAAMR               []string   `json:"mfa_amr"`
	MFAACR               []string   `json:"mfa_acr"`
	ClockSkew            string     `json:"clock_skew"`
	MaxLifetime          string     `json:"max_lifetime"`
	AllowLoopback        bool       `json:"allow_loopback"`
	AllowPrivateNetworks bool       `json:"allow_private_networks"`
}

type roleFile struct {
	Claim string `json:"claim"`
	Value string `json:"value"`
	Role  string `json:"role"`
}
