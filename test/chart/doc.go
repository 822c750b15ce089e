// Package chart holds the tests of the Helm chart in charts/athenz-injector
// and of the Dockerfiles: helm lint, helm template in every certificate
// mode, the values schema, drift checks against config/, and a real
// install into kube-apiserver and etcd (envtest). Helm is built from source
// by hack/build-helm.sh, cached outside the repository.
package chart
