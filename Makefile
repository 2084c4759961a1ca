# canary-tagger — every entry point a person or CI uses.
# Tools (kube-apiserver, etcd, kubectl, controllers, kwok, Argo Rollouts) are
# built from pinned modules into bin/ by hack/tools.sh and reused when their
# version has not changed.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
GO ?= go
FUZZTIME ?= 20s
# Minimising a new input of a large seed (a Helm agent pod review) runs the
# target thousands of times and can take the whole FUZZTIME; and a worker
# still minimising when FUZZTIME ends is reported as "hung or terminated
# unexpectedly while minimizing" with an input that passes. Cap it at a
# count of runs, a fraction of a second.
FUZZMINIMIZETIME ?= 100x
# Go 1.26's fuzz coordinator can fail a run with "context deadline exceeded"
# when -fuzztime ends while a worker is busy, with no failing input
# (go.dev/issue/75804, fixed in Go 1.27). Fuzzing runs on a Go 1.27
# toolchain, fetched through the module proxy like the Argo Rollouts build's.
FUZZ_TOOLCHAIN ?= go1.27.3
KUBEBUILDER_ASSETS := $(CURDIR)/bin/k8s
export KUBEBUILDER_ASSETS

.PHONY: all build image image-test test unit integration e2e demo demo-down run lint fuzz bench scale soak tools tools-k8s tools-e2e tools-operator-render clean help

all: build

help: ## list targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build bin/canary-tagger
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/canary-tagger ./cmd/canary-tagger

# The image: built without a container engine by hack/image (its own module,
# so go-containerregistry stays out of go.mod). Timestamps come from the last
# commit, so the same commit gives the same image.
IMAGE_TAG ?= canary-tagger:$(VERSION)
IMAGE_ARCH ?= $(shell $(GO) env GOARCH)
IMAGE_TAR ?= bin/canary-tagger-image.tar
IMAGE_LAYOUT ?= bin/canary-tagger-oci
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)

image: ## OCI image without Docker: bin/canary-tagger-image.tar (docker load, kind load image-archive, crane push) and the OCI layout bin/canary-tagger-oci (IMAGE_TAG, IMAGE_ARCH)
	CGO_ENABLED=0 GOOS=linux GOARCH=$(IMAGE_ARCH) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/image/canary-tagger-linux-$(IMAGE_ARCH) ./cmd/canary-tagger
	cd hack/image && SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) $(GO) run . --binary $(CURDIR)/bin/image/canary-tagger-linux-$(IMAGE_ARCH) \
	  --arch $(IMAGE_ARCH) --tag $(IMAGE_TAG) --out $(abspath $(IMAGE_TAR)) --oci-layout $(abspath $(IMAGE_LAYOUT))

image-test: ## the image read back: entrypoint, user, platform, no shell, the binary runs `version`
	cd hack/image && $(GO) test -count=1 ./...

test: lint unit image-test integration ## unit tests, the image, integration on a real apiserver (builds the tools it needs)

# The kustomize entry points are renders of the Helm chart: the chart is the
# one source of the install's objects, and TestManifestsAreChartRenders fails
# when manifests/ and the chart differ.
# The Datadog Operator renders the tests read (test/testdata/datadog-operator):
# what the Operator's own reconcilers create for each DatadogAgent in inputs/,
# rendered offline by its operator-render. make e2e checks that the running
# Operator builds the same agent containers as pod-labels-as-tags.yaml.
OPERATOR_RENDERS := test/testdata/datadog-operator
.PHONY: operator-renders
operator-renders: tools-operator-render ## re-render test/testdata/datadog-operator from its inputs/ with the pinned Operator's operator-render
	for f in $(OPERATOR_RENDERS)/inputs/*.yaml; do \
	  bin/e2e/operator-render --kubernetes-version v1.37.2 --dda $$f --output $(OPERATOR_RENDERS)/$$(basename $$f); \
	done

.PHONY: manifests
manifests: ## write manifests/{default,opt-in,self-managed,self-managed-opt-in,policy} from charts/canary-tagger
	cd test && $(GO) run ./internal/harness/cmd/manifests

# test/agentconfig renders DatadogAgents with the pinned Operator's
# operator-render, before and after mutate (≈ 3 min cold, then cached).
unit: tools-operator-render ## rules, handlers, server and CLI tests; the agent-pod and DatadogAgent rules checked with the Datadog Agent's config code (and the Operator's renders)
	$(GO) test -race -count=1 ./...
	cd test/agentconfig && $(GO) test -count=1 ./...

integration: tools-k8s ## real kube-apiserver + etcd + kubectl, Argo Rollouts and cert-manager CRDs
	cd test && $(GO) test -count=1 -timeout 20m ./internal/harness/... ./integration/... ./install/... ./faults/...

e2e: tools-e2e ## the seed's scenario on a local control plane (controllers, scheduler, kwok, Argo Rollouts)
	cd test && $(GO) test -tags e2e -count=1 -timeout 20m -v ./e2e/...

demo: tools-e2e ## run the story: a canary with role labels and a Datadog agent that tags them (KEEP=1 leaves it up)
	cd test && $(GO) build -o ../bin/canary-tagger-demo ./e2e/demo
	bin/canary-tagger-demo $(if $(filter-out 0,$(KEEP)),-keep)

demo-down: ## stop a cluster left up by `make demo KEEP=1`
	cd test && $(GO) build -o ../bin/canary-tagger-demo ./e2e/demo
	bin/canary-tagger-demo -down

run: build ## serve locally on :9443 with a throw-away certificate in bin/certs
	$(GO) run ./hack/devcert --dir bin/certs --hosts localhost,127.0.0.1
	bin/canary-tagger serve --cert-dir bin/certs --zap-devel

lint: ## go vet and gofmt
	$(GO) vet ./...
	cd test && $(GO) vet ./...
	cd hack/image && $(GO) vet ./...
	@out=$$(gofmt -l cmd webhook certs test hack/image | grep -v '^test/tools/' || true); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

fuzz: ## run every fuzz target for FUZZTIME (default 20s)
	@for pkg in $$($(GO) list ./...); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$t ($(FUZZTIME))"; \
	    GOTOOLCHAIN=$(FUZZ_TOOLCHAIN) $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) $$pkg; \
	  done; \
	done

bench: build tools-k8s ## Rollout creates in a real apiserver, canary-tagger vs no-op webhooks, a MutatingAdmissionPolicy, none; RSS; writes docs/benchmarks.md (BENCH_N=creates per namespace)
	cd test && $(GO) run ./bench/cmd/admissionbench $(if $(BENCH_N),--n $(BENCH_N)) --out $(CURDIR)/docs/benchmarks.md

# The scale run: 1,000 kwok nodes (fewer if the memory cannot hold them; the
# report says so), the Datadog agent DaemonSet and Rollout bursts with and
# without canary-tagger, an outage healed, serve's memory with 5,000 Rollouts.
# ~8 GiB and ~15 minutes on 2 cores. SCALE_FLAGS passes flags to scalebench.
scale: build tools-e2e ## 1,000 kwok nodes: agent pods and Rollout bursts with/without canary-tagger, an outage healed, RSS with 5,000 Rollouts; writes its section of docs/benchmarks.md (SCALE_FLAGS=...)
	cd test && $(GO) run ./bench/cmd/scalebench --canary-tagger $(CURDIR)/bin/canary-tagger $(SCALE_FLAGS) --out $(CURDIR)/docs/benchmarks.md

soak: build ## 5-minute fixed-rate soak, RSS must stay flat
	cd test && $(GO) run ./bench/cmd/loadbench --soak 5m

tools: tools-e2e ## build every pinned tool into bin/

tools-k8s: ## kube-apiserver, etcd, kubectl into bin/k8s (≈ 6 min cold on 2 cores)
	bash hack/tools.sh k8s

tools-operator-render: ## the pinned Datadog Operator's operator-render into bin/e2e (≈ 3 min cold on 2 cores)
	bash hack/tools.sh operator-render

tools-e2e: ## + kube-controller-manager, kube-scheduler, kwok, Argo Rollouts, the Datadog Operator (≈ 20 min cold)
	bash hack/tools.sh e2e

clean:
	rm -rf bin/canary-tagger bin/certs bin/image $(IMAGE_TAR) $(IMAGE_LAYOUT)
