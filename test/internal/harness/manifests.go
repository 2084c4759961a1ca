package harness

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Mode is how the Rollout webhook selects namespaces (contract 4).
type Mode string

const (
	// ModeClusterWide: every namespace except the system ones, canary-tagger's
	// own and those labelled canary-tagger.io/inject=disabled.
	ModeClusterWide Mode = "cluster-wide"
	// ModeNamespaceOptIn: only namespaces labelled canary-tagger.io/inject=enabled.
	ModeNamespaceOptIn Mode = "namespace-opt-in"
)

// ModeEntryPoints are the kustomize entry points, under <repo>/manifests,
// that users install for each mode (README, Install). Their TLS parts
// (cert-manager or self-managed) do not matter here: the client config is
// replaced anyway.
var ModeEntryPoints = map[Mode]string{
	ModeClusterWide:    "default",
	ModeNamespaceOptIn: "opt-in",
}

// WebhookConfiguration is the MutatingWebhookConfiguration rendered from
// manifests/ for one mode, before its client config is pointed at a local server.
type WebhookConfiguration struct {
	Mode   Mode
	Object *admissionv1.MutatingWebhookConfiguration
	// OwnNamespace is canary-tagger's namespace: the namespace of the Service
	// the webhooks call.
	OwnNamespace string
}

// RenderWebhookConfiguration renders the mode's entry point with `kubectl
// kustomize` (the kubectl under test) and returns its one
// MutatingWebhookConfiguration.
func RenderWebhookConfiguration(ctx context.Context, k Kubectl, repo string, mode Mode) (*WebhookConfiguration, error) {
	entry, ok := ModeEntryPoints[mode]
	if !ok {
		return nil, fmt.Errorf("unknown mode %q", mode)
	}
	dir := filepath.Join(repo, "manifests", entry)
	res := k.Run(ctx, "kustomize", dir)
	if !res.OK() {
		return nil, fmt.Errorf("rendering %s for mode %s:\n%s", dir, mode, res)
	}
	mwc, err := pickMutatingWebhookConfiguration([]byte(res.Stdout))
	if err != nil {
		return nil, fmt.Errorf("%s (mode %s): %w", dir, mode, err)
	}
	wc := &WebhookConfiguration{Mode: mode, Object: mwc}
	for _, w := range mwc.Webhooks {
		if s := w.ClientConfig.Service; s != nil {
			if wc.OwnNamespace != "" && wc.OwnNamespace != s.Namespace {
				return nil, fmt.Errorf("%s: webhooks call services in two namespaces, %s and %s", dir, wc.OwnNamespace, s.Namespace)
			}
			wc.OwnNamespace = s.Namespace
		}
	}
	if wc.OwnNamespace == "" {
		return nil, fmt.Errorf("%s: no webhook of %s calls a Service", dir, mwc.Name)
	}
	return wc, nil
}

func pickMutatingWebhookConfiguration(stream []byte) (*admissionv1.MutatingWebhookConfiguration, error) {
	dec := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(stream)))
	var found []*admissionv1.MutatingWebhookConfiguration
	for {
		doc, err := dec.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			return nil, err
		}
		if tm.Kind != "MutatingWebhookConfiguration" {
			continue
		}
		if tm.APIVersion != admissionv1.SchemeGroupVersion.String() {
			return nil, fmt.Errorf("MutatingWebhookConfiguration has apiVersion %s, want %s", tm.APIVersion, admissionv1.SchemeGroupVersion)
		}
		mwc := &admissionv1.MutatingWebhookConfiguration{}
		if err := yaml.UnmarshalStrict(doc, mwc); err != nil {
			return nil, err
		}
		found = append(found, mwc)
	}
	if len(found) != 1 {
		return nil, fmt.Errorf("rendered manifests hold %d MutatingWebhookConfigurations, want 1", len(found))
	}
	return found[0], nil
}
