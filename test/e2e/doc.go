// Package e2e is the seed's scenario end to end (issue 4) on a local control
// plane with real controllers: kube-controller-manager, kube-scheduler, kwok
// nodes and the Argo Rollouts controller, with canary-tagger running as a
// local process. After the seed's story, the shipped analysis templates
// (manifests/analysis) judge canaries with the real controller's Datadog
// provider, pointed at a stand-in of the Datadog API (issue 12), and the real
// Datadog Operator builds Agents whose pods canary-tagger patches (issue 11).
// The test is behind the e2e build tag:
//
//	make e2e    # hack/tools.sh e2e && cd test && go test -tags e2e -count=1 -v ./e2e/
//	E2E_STEPS=1,7,14-18 make e2e    # some steps only, with those they build on
//
// The story itself is package scenario, shared with `make demo` (./demo).
package e2e
