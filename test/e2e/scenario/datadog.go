package scenario

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"text/tabwriter"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

var metav1GetOptions = metav1.GetOptions{}

func listOptions(selector string) metav1.ListOptions {
	return metav1.ListOptions{LabelSelector: selector}
}

// What the agents must end up with.
const (
	// pod-labels-as-tags.yaml maps {"app":"kube_app","team":"team"}; role is added, keys sorted.
	wantLabelsAsTags = `{"app":"kube_app","role":"kube_role","team":"team"}`
	wantBefore       = `{"app":"kube_app","team":"team"}`
	// default.yaml has no mapping: the variable is appended.
	wantDefault = `{"role":"kube_role"}`
)

func (s *Scenario) stepDatadogAgents(ctx context.Context, n Narrator) error {
	n.Say("The Datadog Helm chart (3.240.0) as rendered with podLabelsAsTags={app: kube_app, team: team}, applied whole into namespace %s:", DatadogNS)
	if err := s.ensureNamespace(ctx, DatadogNS); err != nil {
		return err
	}
	out, errOut, err := s.Kubectl(ctx, nil, "apply", "-n", DatadogNS, "-f", s.fixture("pod-labels-as-tags.yaml"))
	if err != nil {
		return err
	}
	n.Show("$ kubectl apply -n "+DatadogNS+" -f test/testdata/datadog-helm/pod-labels-as-tags.yaml", summarizeApply(out, errOut))
	pods, err := s.checkAgents(ctx, n, DatadogNS, AgentDS, wantBefore, wantLabelsAsTags)
	if err != nil {
		return err
	}
	if err := s.showAgent(ctx, n, DatadogNS, pods[0]); err != nil {
		return err
	}
	if err := s.checkAgentDeployment(ctx, n, DatadogNS, ClusterAgent, "cluster-agent", wantLabelsAsTags); err != nil {
		return err
	}

	n.Say("The chart's defaults (no podLabelsAsTags at all), as a second release in namespace %s:", DatadogNS2)
	if err := s.ensureNamespace(ctx, DatadogNS2); err != nil {
		return err
	}
	docs, skipped, err := relocate(s.fixture("default.yaml"), DatadogNS, DatadogNS2)
	if err != nil {
		return err
	}
	out, errOut, err = s.Kubectl(ctx, docs, "apply", "-n", DatadogNS2, "-f", "-")
	if err != nil {
		return err
	}
	n.Show("$ kubectl apply -n "+DatadogNS2+" -f - < default.yaml (namespace "+DatadogNS+" → "+DatadogNS2+
		"; the cluster-scoped "+strings.Join(skipped, ", ")+" are the first release's)", summarizeApply(out, errOut))
	pods, err = s.checkAgents(ctx, n, DatadogNS2, AgentDS, "", wantDefault)
	if err != nil {
		return err
	}
	if err := s.showAgent(ctx, n, DatadogNS2, pods[0]); err != nil {
		return err
	}
	return s.checkAgentDeployment(ctx, n, DatadogNS2, ClusterAgent, "cluster-agent", wantDefault)
}

func (s *Scenario) fixture(name string) string {
	return s.env.FixturesDir + string(os.PathSeparator) + name
}

func (s *Scenario) ensureNamespace(ctx context.Context, name string) error {
	_, err := s.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}

// summarizeApply keeps kubectl apply's lines about the workloads and counts the rest.
func summarizeApply(out, errOut string) string {
	var keep []string
	other := 0
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(l, "daemonset.apps/") || strings.HasPrefix(l, "deployment.apps/") {
			keep = append(keep, l)
		} else if l != "" {
			other++
		}
	}
	keep = append(keep, fmt.Sprintf("(and %d more objects: service accounts, secrets, config maps, RBAC, services)", other))
	if w := strings.TrimSpace(errOut); w != "" {
		keep = append(keep, w)
	}
	return strings.Join(keep, "\n")
}

var nsLine = regexp.MustCompile(`(?m)^(\s*namespace:\s*)"?([a-z0-9-]+)"?\s*$`)

// relocate renders a chart file for another namespace, the way `helm template
// -n` would: every `namespace: from` becomes `namespace: to`. Cluster-scoped
// documents (no metadata.namespace) are left out: the first release created
// them under the same names. It returns the documents and the kinds left out.
func relocate(path, from, to string) ([]byte, []string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	r := utilyaml.NewYAMLReader(bufio.NewReader(f))
	var out bytes.Buffer
	skipped := map[string]bool{}
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		var meta struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		if meta.Kind == "" {
			continue
		}
		if meta.Metadata.Namespace == "" {
			skipped[meta.Kind+"s"] = true
			continue
		}
		doc = nsLine.ReplaceAllFunc(doc, func(line []byte) []byte {
			m := nsLine.FindSubmatch(line)
			if string(m[2]) != from {
				return line
			}
			return append(append([]byte{}, m[1]...), to...)
		})
		out.WriteString("---\n")
		out.Write(doc)
		if !bytes.HasSuffix(doc, []byte("\n")) {
			out.WriteByte('\n')
		}
	}
	kinds := make([]string, 0, len(skipped))
	for k := range skipped {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	return out.Bytes(), kinds, nil
}

// effectiveEnv returns the value of the last entry named name (Kubernetes
// uses the last) and whether there is one.
func effectiveEnv(c corev1.Container, name string) (string, bool) {
	val, ok := "", false
	for _, e := range c.Env {
		if e.Name == name {
			val, ok = e.Value, true
		}
	}
	return val, ok
}

func withoutEnv(env []corev1.EnvVar, name string) []corev1.EnvVar {
	var out []corev1.EnvVar
	for _, e := range env {
		if e.Name != name {
			out = append(out, e)
		}
	}
	return out
}

// checkAgents waits for the agent DaemonSet dsName to run one Ready pod per
// node, all from its current template, and checks each pod against the DaemonSet's template: every container and every
// init container that declares the variable maps role → kube_role (want is the
// whole value), nothing else in their env changed, the other init containers
// are untouched, and the status annotation names each handled container.
// The DaemonSet's own template keeps before (empty: no variable): only pods
// are mutated.
func (s *Scenario) checkAgents(ctx context.Context, n Narrator, ns, dsName, before, want string) ([]corev1.Pod, error) {
	var ds *appsv1.DaemonSet
	var pods []corev1.Pod
	err := s.waitFor(ctx, fmt.Sprintf("DaemonSet %s/%s to run %d Ready pods of its current template", ns, dsName, s.env.Nodes), func(ctx context.Context) (bool, string, error) {
		var err error
		ds, err = s.cs.AppsV1().DaemonSets(ns).Get(ctx, dsName, metav1GetOptions)
		if err != nil {
			return false, "", err
		}
		st := ds.Status
		seen := fmt.Sprintf("desired=%d current=%d updated=%d ready=%d", st.DesiredNumberScheduled, st.CurrentNumberScheduled, st.UpdatedNumberScheduled, st.NumberReady)
		if st.ObservedGeneration != ds.Generation || int(st.DesiredNumberScheduled) != s.env.Nodes ||
			int(st.UpdatedNumberScheduled) != s.env.Nodes || int(st.NumberReady) != s.env.Nodes {
			return false, seen, nil
		}
		live, err := s.livePods(ctx, ns, ds.Spec.Selector)
		if err != nil {
			return false, seen, err
		}
		pods = nil
		nodes := map[string]bool{}
		for _, p := range live {
			if !ownedBy(p, "DaemonSet", ds.Name) {
				continue
			}
			pods = append(pods, p)
			nodes[p.Spec.NodeName] = p.Status.Phase == corev1.PodRunning
		}
		seen += fmt.Sprintf("; %d pods on nodes %v", len(pods), nodes)
		if len(pods) != s.env.Nodes || len(nodes) != s.env.Nodes {
			return false, seen, nil
		}
		for _, running := range nodes {
			if !running {
				return false, seen, nil
			}
		}
		return true, seen, nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(pods, func(i, j int) bool { return pods[i].Spec.NodeName < pods[j].Spec.NodeName })
	nodes := make([]string, len(pods))
	for i, p := range pods {
		nodes[i] = p.Spec.NodeName
	}
	n.Check("DaemonSet %s/%s: %d/%d pods Running, one per node (%s)", ns, dsName, len(pods), s.env.Nodes, strings.Join(nodes, ", "))

	tmpl := ds.Spec.Template.Spec
	tmplContainers := map[string]corev1.Container{}
	for _, c := range allContainers(tmpl) {
		tmplContainers[c.Name] = c
	}
	var handled []string
	for _, p := range pods {
		ann := p.Annotations[StatusAnnot]
		if ann == "" {
			return nil, fmt.Errorf("pod %s/%s has no %s annotation", ns, p.Name, StatusAnnot)
		}
		handled = handled[:0]
		check := func(c corev1.Container, init bool) error {
			tc, ok := tmplContainers[c.Name]
			if !ok {
				return fmt.Errorf("pod %s/%s: container %s is not in the DaemonSet template", ns, p.Name, c.Name)
			}
			_, declared := effectiveEnv(tc, AgentEnv)
			if init && !declared {
				// contract 3.2: an init container without the variable is left alone.
				if !reflect.DeepEqual(c.Env, tc.Env) {
					return fmt.Errorf("pod %s/%s: init container %s does not declare %s but its env changed", ns, p.Name, c.Name, AgentEnv)
				}
				if strings.Contains(ann, c.Name+":") {
					return fmt.Errorf("pod %s/%s: status annotation mentions init container %s, which canary-tagger must not handle: %q", ns, p.Name, c.Name, ann)
				}
				return nil
			}
			got, ok := effectiveEnv(c, AgentEnv)
			if !ok || got != want {
				return fmt.Errorf("pod %s/%s container %s: %s = %q (present %t), want %q", ns, p.Name, c.Name, AgentEnv, got, ok, want)
			}
			if !reflect.DeepEqual(withoutEnv(c.Env, AgentEnv), withoutEnv(tc.Env, AgentEnv)) {
				return fmt.Errorf("pod %s/%s container %s: env entries other than %s changed", ns, p.Name, c.Name, AgentEnv)
			}
			if !strings.Contains(ann, c.Name+": injected") {
				return fmt.Errorf("pod %s/%s: status annotation %q does not say %q", ns, p.Name, ann, c.Name+": injected")
			}
			handled = append(handled, c.Name)
			return nil
		}
		for _, c := range p.Spec.InitContainers {
			if err := check(c, true); err != nil {
				return nil, err
			}
		}
		for _, c := range p.Spec.Containers {
			if err := check(c, false); err != nil {
				return nil, err
			}
		}
	}
	n.Check("every agent pod: %s = %s in %s; status annotation set", AgentEnv, want, strings.Join(handled, ", "))
	for _, c := range tmpl.Containers {
		if v, ok := effectiveEnv(c, AgentEnv); v != before || ok != (before != "") {
			return nil, fmt.Errorf("DaemonSet %s/%s template container %s: %s = %q (present %t), want it as rendered (%q): only pods may be mutated",
				ns, dsName, c.Name, AgentEnv, v, ok, before)
		}
	}
	n.Check("the DaemonSet's own template is unchanged: only pods are patched, nothing for Helm, GitOps or the Operator to revert")
	return pods, nil
}

// showAgent prints the variable per container of one agent pod, and its status annotation.
func (s *Scenario) showAgent(ctx context.Context, n Narrator, ns string, p corev1.Pod) error {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "CONTAINER\t%s\n", AgentEnv)
	for _, c := range p.Spec.InitContainers {
		if v, ok := effectiveEnv(c, AgentEnv); ok {
			fmt.Fprintf(tw, "%s (init)\t%s\n", c.Name, v)
		}
	}
	for _, c := range p.Spec.Containers {
		v, _ := effectiveEnv(c, AgentEnv)
		fmt.Fprintf(tw, "%s\t%s\n", c.Name, v)
	}
	_ = tw.Flush()
	fmt.Fprintf(&b, "%s: %s", StatusAnnot, p.Annotations[StatusAnnot])
	n.Show(fmt.Sprintf("pod %s/%s on %s", ns, p.Name, p.Spec.NodeName), b.String())
	return nil
}

// checkAgentDeployment: the pod of a Cluster Agent or Cluster Checks Runner
// Deployment (owned by a ReplicaSet), of its current template, gets the same
// mapping as the node Agents (contract 3.1): want is its variable's value;
// nothing else in its env changes; the status annotation names container.
func (s *Scenario) checkAgentDeployment(ctx context.Context, n Narrator, ns, name, container, want string) error {
	var dep *appsv1.Deployment
	var pods []corev1.Pod
	err := s.waitFor(ctx, fmt.Sprintf("Deployment %s/%s 1/1", ns, name), func(ctx context.Context) (bool, string, error) {
		var err error
		dep, err = s.cs.AppsV1().Deployments(ns).Get(ctx, name, metav1GetOptions)
		if err != nil {
			return false, "", err
		}
		st := dep.Status
		seen := fmt.Sprintf("replicas=%d ready=%d updated=%d", st.Replicas, st.ReadyReplicas, st.UpdatedReplicas)
		if st.ObservedGeneration != dep.Generation || st.Replicas != 1 || st.ReadyReplicas != 1 || st.UpdatedReplicas != 1 {
			return false, seen, nil
		}
		if pods, err = s.livePods(ctx, ns, dep.Spec.Selector); err != nil {
			return false, seen, err
		}
		return len(pods) == 1, seen + fmt.Sprintf("; %d pods", len(pods)), nil
	})
	if err != nil {
		return err
	}
	p := pods[0]
	if a := p.Annotations[StatusAnnot]; !strings.Contains(a, container+": injected") {
		return fmt.Errorf("pod %s/%s: %s = %q, want %s: injected", ns, p.Name, StatusAnnot, a, container)
	}
	tmpl := map[string]corev1.Container{}
	for _, c := range allContainers(dep.Spec.Template.Spec) {
		tmpl[c.Name] = c
	}
	for _, c := range p.Spec.Containers {
		if !reflect.DeepEqual(withoutEnv(c.Env, AgentEnv), withoutEnv(tmpl[c.Name].Env, AgentEnv)) {
			return fmt.Errorf("pod %s/%s container %s: env differs from its Deployment's template beyond %s", ns, p.Name, c.Name, AgentEnv)
		}
		if got, _ := effectiveEnv(c, AgentEnv); got != want {
			return fmt.Errorf("pod %s/%s container %s: %s = %q, want %q", ns, p.Name, c.Name, AgentEnv, got, want)
		}
	}
	n.Check("%s/%s 1/1, patched like the node Agents: %s = %s, so the kubernetes_state.* metrics it collects split by %s too", ns, name, AgentEnv, want, "kube_role")
	return nil
}

// livePods lists the pods of ns that selector selects, leaving out those
// being deleted.
func (s *Scenario) livePods(ctx context.Context, ns string, selector *metav1.LabelSelector) ([]corev1.Pod, error) {
	sel, err := metav1.LabelSelectorAsSelector(selector)
	if err != nil {
		return nil, err
	}
	list, err := s.cs.CoreV1().Pods(ns).List(ctx, listOptions(sel.String()))
	if err != nil {
		return nil, err
	}
	var pods []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			pods = append(pods, p)
		}
	}
	return pods, nil
}

// allContainers is the init containers, then the containers, of spec.
func allContainers(spec corev1.PodSpec) []corev1.Container {
	return append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...)
}

func ownedBy(p corev1.Pod, kind, name string) bool {
	for _, r := range p.OwnerReferences {
		if r.Kind == kind && r.Name == name {
			return true
		}
	}
	return false
}
