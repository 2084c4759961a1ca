package install

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/canary-tagger/canary-tagger/test/internal/harness"
)

// The namespace the kustomize tests' objects are in (their server-side
// dry-run needs it to exist).
const krmNamespace = "krm-function"

// kustomizeBinary is the standalone kustomize hack/tools.sh k8s builds into
// the assets folder ($KUSTOMIZE overrides it). kubectl's embedded kustomize
// cannot run exec functions, so there is no stand-in.
func kustomizeBinary(t *testing.T) string {
	t.Helper()
	path := os.Getenv("KUSTOMIZE")
	if path == "" {
		path = filepath.Join(env.Assets, "kustomize")
	}
	if st, err := os.Stat(path); err != nil || st.Mode()&0o111 == 0 {
		t.Fatalf("no kustomize at %s: build it with `hack/tools.sh k8s` (test/tools/kustomize pins it) or set KUSTOMIZE", path)
	}
	return path
}

// krmBase writes the base the tests transform: the seed's Rollout, a
// blue-green Rollout, the Datadog chart's agent DaemonSet and Cluster Agent
// Deployment (test/testdata/datadog-helm/default.yaml), a ConfigMap. It
// returns the base directory and its resource files.
func krmBase(t *testing.T) (string, []string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "base")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	seed, err := os.ReadFile(harness.SeedRolloutPath(env.Repo))
	if err != nil {
		t.Fatal(err)
	}
	chart, err := os.ReadFile(filepath.Join(env.Repo, "test", "testdata", "datadog-helm", "default.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	docs, err := splitDocs(chart)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"rollout.yaml": strings.Replace(string(seed), "\n  name: demo\n", "\n  name: demo\n  namespace: "+krmNamespace+"\n", 1),
		"blue-green.yaml": `apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: bg
  namespace: ` + krmNamespace + `
spec:
  selector: {matchLabels: {app: bg}}
  template:
    metadata: {labels: {app: bg}}
    spec: {containers: [{name: app, image: app:1}]}
  strategy:
    blueGreen: {activeService: bg, previewService: bg-preview}
`,
		"configmap.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: " + krmNamespace + "\ndata:\n  role: web\n",
	}
	for _, d := range docs {
		if d.Kind == "DaemonSet" || d.Kind == "Deployment" && d.Name == "dd-datadog-cluster-agent" {
			files[strings.ToLower(d.Kind)+".yaml"] = strings.Replace(string(d.Raw), "\n  namespace: datadog\n", "\n  namespace: "+krmNamespace+"\n", 1)
		}
	}
	if len(files) != 5 {
		t.Fatalf("the chart render has no agent DaemonSet or Cluster Agent Deployment: %d files", len(files))
	}
	var names []string
	kustomization := "resources:\n"
	for _, name := range []string{"rollout.yaml", "blue-green.yaml", "daemonset.yaml", "deployment.yaml", "configmap.yaml"} {
		writeFile(t, filepath.Join(dir, name), files[name])
		names = append(names, filepath.Join(dir, name))
		kustomization += "- " + name + "\n"
	}
	writeFile(t, filepath.Join(dir, "kustomization.yaml"), kustomization)
	return dir, names
}

// krmOverlay writes an overlay of base whose transformer is canary-tagger
// mutate as an exec KRM function, its functionConfig data as given.
func krmOverlay(t *testing.T, base, name, bin, data string) string {
	t.Helper()
	dir := filepath.Join(filepath.Dir(base), name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "kustomization.yaml"), "resources:\n- ../base\ntransformers:\n- canary-tagger.yaml\n")
	writeFile(t, filepath.Join(dir, "canary-tagger.yaml"), fmt.Sprintf(`apiVersion: v1
kind: ConfigMap
metadata:
  name: canary-tagger
  annotations:
    config.kubernetes.io/function: |
      exec:
        path: %s
        args: [mutate]
%s`, bin, data))
	return dir
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

type run struct {
	code           int
	stdout, stderr string
}

func command(t *testing.T, name string, args ...string) run {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), harness.KubectlTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := run{stdout: stdout.String(), stderr: stderr.String()}
	if exit, ok := err.(*exec.ExitError); ok {
		r.code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return r
}

// objects decodes a YAML stream into its objects by kind/name.
func objects(t *testing.T, stream string) map[string]map[string]any {
	t.Helper()
	docs, err := splitDocs([]byte(stream))
	if err != nil {
		t.Fatalf("%v\n%s", err, stream)
	}
	out := map[string]map[string]any{}
	for _, d := range docs {
		var o map[string]any
		if err := yaml.Unmarshal(d.Raw, &o); err != nil {
			t.Fatal(err)
		}
		out[d.Kind+"/"+d.Name] = o
	}
	return out
}

// TestKustomizeExecFunction: `kustomize build --enable-alpha-plugins
// --enable-exec` with canary-tagger mutate as an exec transformer gives the
// objects `canary-tagger mutate` gives for the same files — with the
// default settings, and with settings from the transformer's data, which
// equal the same flags — and the apiserver accepts them (server-side
// dry-run). An invalid setting fails the build, naming the key.
func TestKustomizeExecFunction(t *testing.T) {
	kustomize := kustomizeBinary(t)
	bin := canaryTaggerBinary(t)
	base, files := krmBase(t)
	if err := env.CreateNamespace(t.Context(), krmNamespace, nil); err != nil {
		t.Fatal(err)
	}
	untransformed := command(t, kustomize, "build", base)
	if untransformed.code != 0 {
		t.Fatalf("kustomize build base: %+v", untransformed)
	}
	for _, c := range []struct {
		name, data string
		flags      []string
		// want are strings the build's output must hold: the settings at work.
		want []string
	}{
		{name: "defaults", want: []string{"role: canary", "role: stable", `{"role":"kube_role"}`}},
		{name: "settings", data: "data:\n  labelKey: track\n  stableValue: main\n  canaryValue: next\n  tagName: kube_track\n  blueGreen: \"true\"\n",
			flags: []string{"--label-key=track", "--stable-value=main", "--canary-value=next", "--tag-name=kube_track", "--blue-green"},
			want:  []string{"track: next", "track: main", `{"track":"kube_track"}`, "activeMetadata:", "previewMetadata:"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			overlay := krmOverlay(t, base, c.name, bin, c.data)
			built := command(t, kustomize, "build", "--enable-alpha-plugins", "--enable-exec", overlay)
			if built.code != 0 {
				t.Fatalf("kustomize build: exit %d\n%s", built.code, built.stderr)
			}
			args := append([]string{"mutate"}, c.flags...)
			for _, f := range files {
				args = append(args, "-f", f)
			}
			mutated := command(t, bin, args...)
			if mutated.code != 0 {
				t.Fatalf("canary-tagger %s: exit %d\n%s", strings.Join(args, " "), mutated.code, mutated.stderr)
			}
			got, want := objects(t, built.stdout), objects(t, mutated.stdout)
			if diff := cmp.Diff(want, got); len(got) != 5 || diff != "" {
				t.Errorf("kustomize build gives %d objects, not those canary-tagger mutate gives (-mutate +kustomize):\n%s", len(got), diff)
			}
			if reflect.DeepEqual(got, objects(t, untransformed.stdout)) {
				t.Errorf("the transformer changed nothing")
			}
			for _, s := range c.want {
				if !strings.Contains(built.stdout, s) {
					t.Errorf("no %q in the build's output:\n%s", s, built.stdout)
				}
			}
			if !strings.Contains(built.stderr, "Rollout/demo: injected") {
				t.Errorf("the report is not on kustomize's stderr:\n%s", built.stderr)
			}
			dryRun := env.Kubectl.RunStdin(t.Context(), strings.NewReader(built.stdout), "apply", "--server-side", "--dry-run=server", "--field-manager=krm-test", "-f", "-")
			if !dryRun.OK() {
				t.Errorf("the apiserver refuses the build's output: %s", dryRun)
			}
		})
	}

	t.Run("invalid setting", func(t *testing.T) {
		overlay := krmOverlay(t, base, "invalid", bin, "data:\n  labelKey: not a key\n")
		built := command(t, kustomize, "build", "--enable-alpha-plugins", "--enable-exec", overlay)
		if built.code == 0 || built.stdout != "" || !strings.Contains(built.stderr, `data.labelKey="not a key": not a valid label key`) {
			t.Errorf("want a failed build naming data.labelKey; got exit %d, stdout %d bytes, stderr:\n%s", built.code, len(built.stdout), built.stderr)
		}
	})

	// What the README says of kubectl's kustomize: no --enable-exec, and
	// with --enable-alpha-plugins the exec function is skipped without a word.
	t.Run("kubectl kustomize skips it", func(t *testing.T) {
		overlay := krmOverlay(t, base, "kubectl", bin, "")
		if r := env.Kubectl.Run(t.Context(), "kustomize", "--enable-alpha-plugins", "--enable-exec", overlay); r.OK() || !strings.Contains(r.Stderr, "unknown flag: --enable-exec") {
			t.Errorf("kubectl kustomize --enable-exec: %s", r)
		}
		r := env.Kubectl.Run(t.Context(), "kustomize", "--enable-alpha-plugins", overlay)
		if !r.OK() || !reflect.DeepEqual(objects(t, r.Stdout), objects(t, untransformed.stdout)) || r.Stderr != "" {
			t.Errorf("kubectl kustomize --enable-alpha-plugins no longer skips the exec function silently (update the README): %s", r)
		}
	})
}
