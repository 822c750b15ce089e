// Package ztsfake is a fake Athenz ZTS that follows the public ZTS REST API
// (as the Athenz Go client github.com/AthenZ/athenz/clients/go/zts calls
// it): real TLS on loopback, a
// test CA that signs the server certificate and every certificate it issues,
// role tokens and access tokens signed with a test key (verifiable through
// SigningPublicKeyPEM, the JWKS at /oauth2/keys and the public key endpoint),
// and {"code","message"} errors.
//
// It is the one stand-in for ZTS in this module's tests, and what
// "sidecar --dev" runs in process, so it does not depend on package testing
// and works outside tests:
//
//	s, err := ztsfake.Start(ztsfake.Options{AllowAll: true})
//	...
//	defer s.Close()
//
// In tests, NewTest starts a server and closes it in t.Cleanup:
//
//	s := ztsfake.NewTest(t, ztsfake.Options{})
//	s.Grant("prov", "reader", "client.api")
//	tr, err := s.IdentityTransport("client", "api")
//	c := zts.NewClient(s.URL(), tr)
//	tok, err := c.GetRoleToken("prov", "reader", nil, nil, "")
//
// # Served endpoints (under /zts/v1)
//
//	GET    /domain/{domain}/token                          role token          EndpointRoleToken
//	POST   /oauth2/token                                   access token        EndpointAccessToken
//	GET    /oauth2/keys                                    JWKS                EndpointJWKS
//	POST   /instance                                       register (201)      EndpointInstanceRegister
//	POST   /instance/{provider}/{domain}/{service}/{id}    refresh over mTLS   EndpointInstanceRefresh
//	DELETE /instance/{provider}/{domain}/{service}/{id}    delete (204)        EndpointInstanceDelete
//	POST   /instance/{domain}/{service}/refresh            key-owner refresh   EndpointKeyRefresh
//	POST   /rolecert                                       role certificate    EndpointRoleCert
//	GET    /domain/{domain}/service/{service}/publickey/{keyId}  public key    EndpointPublicKey
//	GET    /status                                         status              EndpointStatus
//
// # Authentication and authorization
//
// A caller authenticates with a TLS client certificate issued by the fake's
// CA (the principal is the certificate's CN, e.g. IssueIdentity's or one
// from instance register), or with an N-token in Athenz-Principal-Auth
// signed by a key given to RegisterServiceKey (or, with z=zts, by the fake's
// own signing key, as in the serviceToken that register returns). Token and
// certificate requests without credentials answer 401.
//
// Roles exist per domain; Grant adds members ("domain.service", "user.x",
// or Athenz wildcards "domain.*" and "*"). Every domain has the role
// "admin", as in Athenz. With Options.AllowAll every authenticated
// principal has every role it names in any domain, and a request for all
// roles of a domain gets every role the domain has (at least "admin").
// proxyForPrincipal / proxy_for_principal requests need the caller to be an
// authorized proxy user (AllowProxy), as in ZTS; AllowAll allows everyone.
//
// Instance register checks the CSR as ZTS does (CN, SAN DNS names, SPIFFE
// URI, instance id) and asks Options.Attest in place of the provider, but
// does not require the domain or service to exist. Refresh needs the
// current or previous certificate of a registered instance, presented over
// mTLS. Issued certificates copy the CSR's subject and SANs, are signed by
// the CA (ECDSA P-256) and are valid from ZTS's "now" (not backdated, as
// ZTS's own signer) for Options.CertLifetime, which may be minutes.
//
// Register and refresh with "token": true also return an N-token signed by
// ZTS (z=zts) that lives Options.NTokenLifetime (default one day, ZTS's
// athenz.zts.instance_token_timeout), independent of the certificate: as
// in ZTS, the only way to a new one is another refresh or register.
//
// Key-owner refresh (POST /instance/{domain}/{service}/refresh) follows
// ZTS's two cases: authenticated by an N-token, it issues a first
// certificate for the N-token's key (the body's keyId is ignored);
// authenticated by a certificate of the service, it is a refresh with the
// body's keyId that must keep the certificate's DNS names and public key,
// and RestrictCertRefresh limits it by the caller's IP (ZTS's
// athenz.zts.cert_refresh_ip_fname): 403 "IP not allowed for refresh".
//
// Options.K8SProvider makes the fake act as ZTS's built-in Kubernetes
// provider instead: attestation data is {"identityToken":"<JWT>"} with a
// service account token from ServiceAccountToken (the fake plays the
// cluster's OIDC issuer), the service account must be named
// "<domain>.<service>", and refresh is refused ("cannot be refreshed"), so
// a client registers again before its certificate expires. Options.Attest
// set to HTTPProvider(url, client) makes it ask an HTTP provider service
// (the injector's callback) before signing, as ZTS does.
//
// # Knobs
//
// SetLatency, FailNext and SetFailure shape the answers of one Endpoint.
// RefuseConnections resets every TCP connection while on (ZTS down or
// firewalled, its address still there) and Connections counts them.
// SetClockOffset moves ZTS's clock ahead of or behind Options.Now: every
// time the fake writes or checks (token issue and expiry times,
// certificate validity, N-token and client certificate checks) is ZTS's.
// Like ZTS, the fake sends no Date header, so a client can learn ZTS's
// clock only from the issue times in what it issues.
// RestrictCertRefresh refuses certificate refresh by the caller's IP.
// Calls counts every request routed to an endpoint, including those that a
// knob failed; CallsFor counts per key:
//
//	EndpointRoleToken        "<domain>:<roles>" with the role query parameter
//	                         split at ',', trimmed, sorted and de-duplicated,
//	                         case kept; no roles (all roles) is "<domain>:".
//	                         Example: "prov:reader,writer".
//	EndpointAccessToken      the scope form value split at spaces, sorted,
//	                         joined by one space, case kept.
//	                         Example: "prov:role.reader prov:role.writer".
//	EndpointInstanceRegister "<domain>.<service>" from the request body
//	EndpointInstanceRefresh, EndpointInstanceDelete, EndpointKeyRefresh
//	                         "<domain>.<service>" from the path
//	EndpointRoleCert         the CSR's common name, "<domain>:role.<role>"
//	EndpointPublicKey        "<domain>.<service>:<keyId>" from the path
//	EndpointJWKS, EndpointStatus  "" (CallsFor(ep, "") == Calls(ep))
//
// Keys are computed from the request as received, before validation; a
// request whose key cannot be read (an unparsable body) counts under "".
//
// # Simplifications
//
// Where the fake is simpler than ZTS; everything not listed here is meant
// to be as strict as ZTS (lifetimes, clocks, refusals), and a test that
// relies on one of these is testing the fake, not the client:
//
//   - One process, one clock: a real ZTS fleet has several servers whose
//     clocks may differ from each other, not only from the client's.
//   - No ZMS: domains, roles and memberships are what AddDomain, Grant and
//     AllowProxy say (or AllowAll); no policies, assertions, deny rules,
//     role expiry or delegated roles. Service public keys are what
//     RegisterServiceKey registers.
//   - Instance register does not check that the domain and service exist,
//     nor that the provider is authorized to launch the service; the
//     provider's answer is Options.Attest (or the K8SProvider emulation).
//     Provider IP ranges (athenz.zts.instance_cert_ip_fname) are not
//     checked.
//   - The N-token with a certificate is always an N-token, never the JWT
//     SVID that ZTS issues instead with instanceRegisterTokenTypeJWT.
//   - No rate limiting, no read-only maintenance mode, no certificate
//     revocation or cert record expiry; the instance cert records live in
//     memory until the instance is deleted or the fake closes.
//   - The CSR checks cover the CN, SAN DNS names, SPIFFE URIs and instance
//     id; not the subject O/OU values, nor the IP address in the CSR
//     against the caller's.
//   - Error messages follow ZTS's where tests read them (status and the
//     gist), not word for word.
package ztsfake
