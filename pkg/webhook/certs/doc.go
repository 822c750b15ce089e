// Package certs is the injector's built-in certificate rotator (the chart's
// "auto" certificate mode). It keeps a CA and a serving certificate for the
// webhook Service in one Secret, writes the serving certificate and key to
// the directory the webhook server loads them from, and keeps the caBundle
// of every webhook in the MutatingWebhookConfiguration equal to the
// Secret's CA bundle.
//
// Every replica runs a Manager (it needs no leader election). The Secret is
// the only shared state: a replica replaces what is in it only when it is
// missing, unreadable, not valid for the Service's names or due for
// renewal, and writes with optimistic concurrency (Create, or Update at the
// resourceVersion it read). The loser of a race re-reads the Secret and
// uses the winner's certificates, so replicas converge on one CA and never
// replace a valid one because of a local difference.
//
// One reconciliation (Sync) runs in this order: the Secret, then the
// caBundle, then the files. A replica therefore serves a certificate only
// after the API server has been told to trust its CA. When the CA itself is
// replaced, the old CA stays in the bundle (Secret key ca-bundle.crt) until
// it expires, so replicas still serving a certificate signed by it keep
// working until they pick up the new one.
//
// docs/webhook-certificates.md describes the Secret, the renewal schedule
// and the RBAC the Manager needs.
package certs
