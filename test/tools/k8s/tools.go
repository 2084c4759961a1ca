//go:build tools

// Package tools pins the binaries that hack/tools.sh builds from this module.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"

	_ "sigs.k8s.io/kwok/cmd/kwok"

	// cert-manager: the tests read its types and CRDs at the version
	// test/go.mod requires (test/internal/pinned); this pin builds nothing.
	_ "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
)
