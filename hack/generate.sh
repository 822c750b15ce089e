#!/usr/bin/env bash
# Regenerates what controller-gen derives from the Go sources: deepcopy
# functions (api/v1alpha1/zz_generated.deepcopy.go), the CRD
# (config/crd/bases/, copied into the chart) and the injector's roles
# (config/rbac/role.yaml and config/rbac/provider/role.yaml, from the
# +kubebuilder:rbac markers in pkg/webhook).
#
# Environment:
#   CONTROLLER_TOOLS_VERSION  default v0.23.0 (installed into ./bin)
set -o errexit -o nounset -o pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
controller_gen=$(hack/go-install-tool.sh controller-gen sigs.k8s.io/controller-tools/cmd/controller-gen "${CONTROLLER_TOOLS_VERSION:-v0.23.0}")

"$controller_gen" object paths=./api/...
"$controller_gen" crd paths=./api/... output:crd:dir=config/crd/bases
# The chart ships the same CRD; test/chart fails if the copies drift.
cp config/crd/bases/*.yaml charts/athenz-injector/crds/
# The injector's roles, without the provider callback's, which get a
# ClusterRole of their own (config/rbac/provider): an injector without the
# callback must not read every Pod or review tokens.
"$controller_gen" rbac:roleName=athenz-injector paths="./pkg/webhook;./pkg/webhook/app;./pkg/webhook/certs" output:rbac:dir=config/rbac
"$controller_gen" rbac:roleName=athenz-injector-provider paths=./pkg/webhook/provider output:rbac:dir=config/rbac/provider
