// Package identity obtains and keeps the sidecar's Athenz identity: an
// X.509 certificate from ZTS, written with its key and CA bundle to the
// identity directory for the app, and used for mTLS to ZTS.
//
// A Manager works in one of three modes (DESIGN.md, "The sidecar's
// identity"; docs/identity.md):
//
//   - copper-argos: a generated key, a CSR with the Pod's SANs, register
//     with POST /instance (the service account token as attestation data,
//     bare or as {"identityToken":...}), renewal by refresh over mTLS or by
//     registering again;
//   - key-file: the service's own key signs N-tokens, and the certificate
//     for it comes from POST /instance/{domain}/{service}/refresh;
//   - files: a certificate and key written by another tool, reloaded when
//     they change.
//
// Role certificates (POST /rolecert) for Options.RoleCerts are fetched
// with the identity key and renewed like the identity certificate.
//
// Files are replaced atomically (temporary file, fsync, rename, fsync of
// the directory); a failed renewal leaves them, and the certificate in
// use, as they were. Every call to ZTS goes through the Athenz Go client.
//
// The package imports no Kubernetes packages and does not link the Athenz
// zmssvctoken library; pkg/sidecar builds a Manager from its environment:
//
//	m, err := identity.New(identity.Options{Mode: identity.ModeCopperArgos, ...})
//	go m.Run(ctx)
//	api := zts.NewClient(url, m.Transport())
package identity
