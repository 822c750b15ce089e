# athenz-injector. `make help` lists the targets.

GO        ?= go
BIN       := $(CURDIR)/bin
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X github.com/athenz-injector/athenz-injector/pkg/version.Version=$(VERSION)
GOBUILD   := CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)'
# Go test flags; CI and `make test` run with the race detector.
TESTFLAGS ?= -race -count=1

.DEFAULT_GOAL := help

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  %-14s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Run

.PHONY: demo
demo: ## Run the whole product locally (control plane, Helm, injector, fake ZTS), annotate a Deployment and curl its injected sidecar.
	hack/demo.sh

##@ Development

.PHONY: build
build: build-sidecar build-injector ## Build bin/injector and bin/sidecar (static, as the images do).

.PHONY: build-sidecar
build-sidecar: ## Build bin/sidecar.
	$(GOBUILD) -o $(BIN)/sidecar ./cmd/sidecar

.PHONY: build-sidecar-dev
build-sidecar-dev: ## Build bin/sidecar-dev: the sidecar with dev mode (--dev, an in-process fake ZTS); not for production.
	$(GOBUILD) -tags dev -o $(BIN)/sidecar-dev ./cmd/sidecar

.PHONY: build-floor
build-floor: ## Build bin/floor, the bare server the sidecar is measured against (test/load/floor), as the sidecar is built.
	$(GOBUILD) -o $(BIN)/floor ./test/load/floor

.PHONY: build-injector
build-injector: ## Build bin/injector.
	$(GOBUILD) -o $(BIN)/injector ./cmd/injector

# The tools the tests run, built once into ~/.cache/athenz-injector.
TEST_ENV = KUBEBUILDER_ASSETS="$$(hack/build-control-plane.sh)" ATHENZ_NODE_ASSETS="$$(hack/build-node.sh)" HELM="$$(hack/build-helm.sh)"

.PHONY: test
test: verify-fmt vet test-assets ## Run all tests (unit, fake ZTS, envtest, and the end-to-end suite on a real node: needs root on Linux).
	$(TEST_ENV) $(GO) test $(TESTFLAGS) ./...

.PHONY: test-e2e
test-e2e: test-assets ## Run only the end-to-end suite on the real node, verbosely.
	$(TEST_ENV) $(GO) test -count=1 -v ./test/e2e

.PHONY: test-assets
test-assets: ## Build (once, cached outside the repo) the control plane, the node (kubelet, containerd, runc, CNI, ...) and helm.
	@hack/build-control-plane.sh >/dev/null
	@hack/build-helm.sh >/dev/null
	@hack/build-node.sh >/dev/null

.PHONY: lint-chart
lint-chart: ## helm lint the chart (strict).
	"$$(hack/build-helm.sh)" lint --strict charts/athenz-injector

.PHONY: images
images: ## Build the container images (needs a container engine; none runs on the CI machine).
	docker build -f Dockerfile.injector --build-arg VERSION=$(VERSION) -t ghcr.io/athenz-injector/athenz-injector:$(VERSION) .
	docker build -f Dockerfile.sidecar --build-arg VERSION=$(VERSION) -t ghcr.io/athenz-injector/athenz-sidecar:$(VERSION) .

.PHONY: images-oci
images-oci: build ## Write the images as an OCI tarball (bin/images.tar) without a container engine, as the test node runs them.
	$(GO) run ./hack/ociimage -bin-dir $(BIN) -tag $(VERSION) -out $(BIN)/images.tar

.PHONY: vet
vet: ## go vet.
	$(GO) vet ./...

GOLANGCI_LINT_VERSION ?= v2.15.0
.PHONY: lint
lint: ## golangci-lint with .golangci.yml (installed once into bin/, pinned).
	"$$(hack/go-install-tool.sh golangci-lint github.com/golangci/golangci-lint/v2/cmd/golangci-lint $(GOLANGCI_LINT_VERSION))" run ./...

.PHONY: verify-fmt
verify-fmt: ## Fail if gofmt would change a file.
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null; git ls-files --others --exclude-standard '*.go' 2>/dev/null)); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

.PHONY: generate
generate: ## Regenerate deepcopy code, the CRD and the roles (config/rbac) with controller-gen.
	hack/generate.sh

.PHONY: manifests
manifests: generate ## Alias of generate (CRD and RBAC are generated together).

.PHONY: update-goldens
update-goldens: ## Rewrite the webhook's golden files from the current code.
	$(GO) test ./pkg/webhook -run TestGolden -update

.PHONY: verify
verify: generate update-goldens ## Regenerate everything, then fail if the tree changed.
	@if [ -n "$$(git status --porcelain)" ]; then git status --porcelain; echo "generated files are stale: run make generate update-goldens and commit"; exit 1; fi

FUZZTIME ?= 60s
.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME (default 60s) each.
	@set -e; for pkg in $$(git grep -l '^func Fuzz' -- '*_test.go' | xargs -n1 dirname | sort -u); do \
	  for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$pkg/*_test.go | cut -d' ' -f2); do \
	    echo "== $$pkg $$f"; $(GO) test ./$$pkg -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME); \
	  done; \
	done

.PHONY: bench
bench: ## Run Go benchmarks and the load harness; write docs/performance.md figures.
	hack/bench.sh

.PHONY: clean
clean: ## Remove build output (not the control-plane cache).
	rm -rf $(BIN)
