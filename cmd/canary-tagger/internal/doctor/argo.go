package doctor

import (
	"context"
	"fmt"
	"path"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// argoVersionLabel is the version label the Argo Rollouts Helm chart and
// manifests put on the controller's Deployment and pods.
const argoVersionLabel = "app.kubernetes.io/version"

// TestedArgoRollouts is the controller version canary-tagger's tests run
// (test/tools/argo), suggested as the upgrade.
const TestedArgoRollouts = "v1.10.2"

// deploymentList is every Deployment, read once for the checks that look
// for a program among them (serve, the Argo Rollouts controller); err when
// listing failed, which each of them reports.
type deploymentList struct {
	items []appsv1.Deployment
	err   error
}

func loadDeployments(ctx context.Context, c *cluster, in *inputs) error {
	in.deployments = listDeployments(ctx, c)
	return nil
}

func listDeployments(ctx context.Context, c *cluster) deploymentList {
	list, err := c.core.AppsV1().Deployments("").List(ctx, listOptions(""))
	if err != nil {
		return deploymentList{err: err}
	}
	return deploymentList{items: list.Items}
}

// checkArgoController finds Argo Rollouts controller Deployments (image
// repository named argo-rollouts) and reads their version from the image
// tag, else from the version label.
func checkArgoController(_ context.Context, c *cluster, in inputs) []Finding {
	minimum, ok := parseVersion(c.opts.MinArgoRollouts)
	if !ok {
		return []Finding{{Status: Error, Message: fmt.Sprintf("minimum Argo Rollouts version %q is not a version", c.opts.MinArgoRollouts)}}
	}
	if err := in.deployments.err; err != nil {
		return []Finding{errorFinding("", err, "listing Deployments to find the Argo Rollouts controller")}
	}
	var out []Finding
	for i := range in.deployments.items {
		dep := &in.deployments.items[i]
		ctr := controllerContainer(dep)
		if ctr == nil {
			continue
		}
		obj := "deployment/" + dep.Namespace + "/" + dep.Name
		repo, tag := splitImage(ctr.Image)
		version, from := tag, "image tag"
		v, ok := parseVersion(version)
		if !ok {
			for _, l := range []map[string]string{dep.Spec.Template.Labels, dep.Labels} {
				if lv, has := l[argoVersionLabel]; has {
					version, from = lv, "label "+argoVersionLabel
					v, ok = parseVersion(lv)
					break
				}
			}
		}
		switch {
		case !ok:
			out = append(out, Finding{Status: Info, Object: obj,
				Message: fmt.Sprintf("Argo Rollouts controller image %s: version not known (no version tag, no %s label); canary-tagger needs %s or later", ctr.Image, argoVersionLabel, c.opts.MinArgoRollouts)})
		case less(v, minimum):
			out = append(out, Finding{Status: Action, Object: obj,
				Message: fmt.Sprintf("Argo Rollouts controller is %s (from its %s), older than %s: canary-tagger is tested with %s", version, from, c.opts.MinArgoRollouts, TestedArgoRollouts),
				Fix:     argoImageFix(dep.Namespace, dep.Name, ctr.Name, repo)})
		default:
			out = append(out, Finding{Status: OK, Object: obj, Message: fmt.Sprintf("Argo Rollouts controller %s (from its %s)", version, from)})
		}
	}
	if len(out) == 0 {
		out = append(out, Finding{Status: Info, Message: "no Argo Rollouts controller Deployment found (none runs an argo-rollouts image): its version was not checked"})
	}
	return out
}

// controllerContainer is the Deployment's argo-rollouts container: its image
// repository's last element is argo-rollouts (the kubectl plugin and the
// dashboard use kubectl-argo-rollouts).
func controllerContainer(dep *appsv1.Deployment) *corev1.Container {
	for i := range dep.Spec.Template.Spec.Containers {
		c := &dep.Spec.Template.Spec.Containers[i]
		if repo, _ := splitImage(c.Image); path.Base(repo) == "argo-rollouts" {
			return c
		}
	}
	return nil
}

// splitImage splits an image reference into repository and tag (a digest is dropped).
func splitImage(image string) (repo, tag string) {
	image, _, _ = strings.Cut(image, "@")
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		return image[:i], image[i+1:]
	}
	return image, ""
}

// parseVersion reads v1.2.3, 1.2, v1.10.2-rc1 or v1.10.2+build as numbers.
func parseVersion(s string) ([3]int, bool) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "v")
	if i := strings.IndexAny(s, "-+"); i >= 0 {
		s = s[:i]
	}
	parts := strings.Split(s, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return [3]int{}, false
	}
	var v [3]int
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return [3]int{}, false
		}
		v[i] = n
	}
	return v, true
}

func less(a, b [3]int) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}
