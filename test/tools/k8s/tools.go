//go:build tools

// Package tools pins the binaries that hack/tools.sh builds from this module.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"

	_ "sigs.k8s.io/kwok/cmd/kwok"

	// cert-manager: its API types are used by tests; its CRDs are read from
	// the module cache (hack/tools.sh crd-dirs).
	_ "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
)
