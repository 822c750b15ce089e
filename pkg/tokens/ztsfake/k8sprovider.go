package ztsfake

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"strings"
	"time"
)

// K8SProvider makes the fake act as ZTS's built-in Kubernetes provider
// (InstanceK8SProvider in the Athenz instance provider library) in place of
// Options.Attest, for register and refresh requests of its provider:
//
//   - attestationData must be the JSON object {"identityToken":"<service
//     account JWT>"}, not the bare token;
//   - the token must be one that ServiceAccountToken issued (the fake plays
//     the cluster's OIDC issuer: its signing key verifies the token), not
//     expired, for Audience, with the subject
//     system:serviceaccount:<namespace>:<domain>.<service> of the request;
//   - a SPIFFE URI with a namespace in the CSR
//     (spiffe://<trust domain>/ns/<namespace>/sa/...) must name the token's
//     namespace;
//   - refresh is refused with 403 "K8S X.509 certificates cannot be
//     refreshed": the instance registers again with a fresh token.
//
// Refusals are 403 answers whose message says what is wrong.
type K8SProvider struct {
	// Provider is the provider service handled as the built-in provider,
	// e.g. "sys.auth.k8s". Empty: every provider.
	Provider string
	// Audience is the audience the service account token must carry (ZTS's
	// athenz.zts.k8s_provider_attestation_expected_audience). Empty: the
	// audience is not checked.
	Audience string
}

// k8sRefreshRefused is the message of a refused refresh, worded as ZTS's
// built-in providers word theirs.
const k8sRefreshRefused = "K8S X.509 certificates cannot be refreshed"

// serviceAccountSubjectPrefix starts the subject of a service account token.
const serviceAccountSubjectPrefix = "system:serviceaccount:"

// tokenClockSkew is the leeway for a service account token's nbf and iat.
const tokenClockSkew = time.Minute

// K8SIssuer returns the issuer (iss) of the service account tokens that
// ServiceAccountToken signs: the fake's URL with the path /k8s-issuer.
func (s *Server) K8SIssuer() string {
	u, err := url.Parse(s.url)
	if err != nil {
		return s.url + "/k8s-issuer"
	}
	return u.Scheme + "://" + u.Host + "/k8s-issuer"
}

// serviceAccountClaims are the claims of a projected service account token
// that the built-in provider looks at.
type serviceAccountClaims struct {
	Issuer    string          `json:"iss"`
	Subject   string          `json:"sub"`
	Audience  audienceClaim   `json:"aud"`
	IssuedAt  int64           `json:"iat"`
	NotBefore int64           `json:"nbf"`
	Expiry    int64           `json:"exp"`
	K8S       *k8sTokenClaims `json:"kubernetes.io,omitempty"`
}

type k8sTokenClaims struct {
	Namespace      string `json:"namespace"`
	ServiceAccount struct {
		Name string `json:"name"`
	} `json:"serviceaccount"`
}

// audienceClaim is a JWT "aud": one string or a list.
type audienceClaim []string

func (a *audienceClaim) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = []string{one}
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return errors.New("aud is neither a string nor a list of strings")
	}
	*a = list
	return nil
}

// ServiceAccountToken returns a projected service account token (a JWT
// signed by the fake's signing key, issuer K8SIssuer) for serviceAccount in
// namespace, for audience, valid for lifetime (default 1 h) from the fake's
// "now". It is what kubelet would write into the Pod's token file; the
// K8SProvider emulation accepts it.
func (s *Server) ServiceAccountToken(namespace, serviceAccount, audience string, lifetime time.Duration) (string, error) {
	if lifetime <= 0 {
		lifetime = time.Hour
	}
	now := s.now().Unix()
	claims := serviceAccountClaims{
		Issuer:    s.K8SIssuer(),
		Subject:   serviceAccountSubjectPrefix + namespace + ":" + serviceAccount,
		IssuedAt:  now,
		NotBefore: now,
		Expiry:    now + int64(lifetime/time.Second),
		K8S:       &k8sTokenClaims{Namespace: namespace},
	}
	if audience != "" {
		claims.Audience = audienceClaim{audience}
	}
	claims.K8S.ServiceAccount.Name = serviceAccount
	return s.key.signJWT("JWT", claims)
}

// isK8SProvider reports whether requests for provider go to the built-in
// Kubernetes provider emulation.
func (s *Server) isK8SProvider(provider string) bool {
	p := s.opts.K8SProvider
	return p != nil && (p.Provider == "" || strings.EqualFold(p.Provider, provider))
}

// attestK8S confirms an instance as ZTS's built-in Kubernetes provider does.
func (s *Server) attestK8S(c InstanceConfirmation) (map[string]string, error) {
	if c.Refresh {
		return nil, forbidden("%s", k8sRefreshRefused)
	}
	var data struct {
		IdentityToken string `json:"identityToken"`
	}
	if err := json.Unmarshal([]byte(c.AttestationData), &data); err != nil || data.IdentityToken == "" {
		return nil, forbidden(`unable to validate instance: attestation data is not {"identityToken":"<service account token>"}`)
	}
	claims, err := s.verifyServiceAccountToken(data.IdentityToken)
	if err != nil {
		return nil, forbidden("id_token in the attestation data is invalid: %v", err)
	}
	ns, sa, ok := strings.Cut(strings.TrimPrefix(claims.Subject, serviceAccountSubjectPrefix), ":")
	if !strings.HasPrefix(claims.Subject, serviceAccountSubjectPrefix) || !ok || ns == "" || sa == "" {
		return nil, forbidden("id_token subject %q is not system:serviceaccount:<namespace>:<name>", claims.Subject)
	}
	if want := c.Domain + "." + c.Service; !strings.EqualFold(sa, want) {
		return nil, forbidden("id_token service account %q does not match %s: the service account must be named <domain>.<service>", sa, want)
	}
	for u := range strings.SplitSeq(c.Attributes["sanURI"], ",") {
		parsed, err := url.Parse(u)
		if u == "" || err != nil || parsed.Scheme != "spiffe" {
			continue
		}
		parts := strings.Split(strings.TrimPrefix(parsed.Path, "/"), "/")
		if len(parts) == 4 && parts[0] == "ns" && parts[1] != ns {
			return nil, forbidden("SAN URI %q names namespace %q, the id_token namespace is %q", u, parts[1], ns)
		}
	}
	return nil, nil
}

// verifyServiceAccountToken checks a token from ServiceAccountToken: the
// signature, the issuer, the times and the audience.
func (s *Server) verifyServiceAccountToken(tok string) (*serviceAccountClaims, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a compact JWT")
	}
	enc := base64.RawURLEncoding
	hb, err := enc.DecodeString(parts[0])
	if err != nil {
		return nil, errors.New("header is not base64url")
	}
	var header struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(hb, &header); err != nil {
		return nil, errors.New("header is not JSON")
	}
	if header.Alg != s.key.alg || header.Kid != s.key.id {
		return nil, fmt.Errorf("signed with alg %q key %q, not by the issuer's key", header.Alg, header.Kid)
	}
	sig, err := enc.DecodeString(parts[2])
	if err != nil {
		return nil, errors.New("signature is not base64url")
	}
	if err := verifyJWTSignature(s.key.signer.Public(), parts[0]+"."+parts[1], sig); err != nil {
		return nil, err
	}
	cb, err := enc.DecodeString(parts[1])
	if err != nil {
		return nil, errors.New("claims are not base64url")
	}
	var claims serviceAccountClaims
	if err := json.Unmarshal(cb, &claims); err != nil {
		return nil, fmt.Errorf("claims: %v", err)
	}
	now := s.now()
	switch {
	case claims.Issuer != s.K8SIssuer():
		return nil, fmt.Errorf("issuer %q is not %q", claims.Issuer, s.K8SIssuer())
	case claims.Expiry == 0 || !now.Before(time.Unix(claims.Expiry, 0)):
		return nil, fmt.Errorf("expired at %s", time.Unix(claims.Expiry, 0).UTC().Format(time.RFC3339))
	case claims.NotBefore != 0 && now.Add(tokenClockSkew).Before(time.Unix(claims.NotBefore, 0)):
		return nil, fmt.Errorf("not valid before %s", time.Unix(claims.NotBefore, 0).UTC().Format(time.RFC3339))
	}
	if want := s.opts.K8SProvider.Audience; want != "" && !containsFold(claims.Audience, want) {
		return nil, fmt.Errorf("audience %v does not include %q", []string(claims.Audience), want)
	}
	return &claims, nil
}

// verifyJWTSignature checks an RS256 or ES256 (r||s) signature.
func verifyJWTSignature(pub crypto.PublicKey, signed string, sig []byte) error {
	sum := sha256.Sum256([]byte(signed))
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if rsa.VerifyPKCS1v15(k, crypto.SHA256, sum[:], sig) != nil {
			return errors.New("signature does not verify")
		}
		return nil
	case *ecdsa.PublicKey:
		if len(sig) != 64 || !ecdsa.Verify(k, sum[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
			return errors.New("signature does not verify")
		}
		return nil
	}
	return fmt.Errorf("unsupported key type %T", pub)
}
