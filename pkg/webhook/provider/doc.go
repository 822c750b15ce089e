// Package provider is the injector's Athenz identity provider callback
// (seed 003's "Athenz identity callback"; ZTS-API.md, "An HTTP provider"):
// before ZTS signs a Pod's certificate, it POSTs an InstanceConfirmation to
// <provider endpoint>/instance (register) or /refresh (refresh), and signs
// only if the provider answers 200.
//
// Handler answers those calls. It confirms an instance only when all of
// these hold, and otherwise answers 403 with the failed check named first
// in the message ("policy: ...", "pod deleted: ...", "san ip: ..."):
//
//   - the attestation data is a service account token (bare, or as
//     {"identityToken":"..."}) that the API server accepts (TokenReview) for
//     the configured audience. Every token it refuses gets the same answer
//     (MsgTokenRefused): nothing is read from it and no Pod is looked up
//     for it;
//   - the token is bound to a Pod, and that Pod exists with the token's
//     uid, is not terminating, and runs as the token's service account;
//   - the requested domain and service are the Pod's identity as the
//     injector computes it (webhook.Resolver: the SidecarProfile's
//     templates, or the Pod's athenz.io/domain and athenz.io/service
//     annotations), and the identity policy allows it (webhook.Authorize),
//     checked again at every register and refresh;
//   - the instance id is the Pod's uid;
//   - the SANs ZTS forwards are the Pod's: sanIP among the Pod's IPs,
//     sanDNS among the service name and the instance id name under the
//     profile's DNS suffix, sanURI among the service's SPIFFE URIs and
//     athenz://instanceid/<provider>/<pod uid>.
//
// Malformed requests are answered 400, other methods 405, and failures to
// ask the API server 503. A client whose requests keep being refused gets
// 429 for a while (Options.RefusalRate). Pods are read from the informer
// cache, and from the API server only for a verified token whose Pod the
// cache does not have (yet).
//
// Server serves a Handler over TLS on its own address, requiring a client
// certificate (ZTS's) when given a client CA, as a controller-runtime
// Runnable. The chart always gives it one unless told it is a development
// install.
package provider
