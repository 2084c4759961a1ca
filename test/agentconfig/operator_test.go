package agentconfig_test

// The DatadogAgent rule (webhook/datadogagent, run by `mutate`) proved with
// the Datadog Operator's own reconcilers and the Datadog Agent's config code:
// every DatadogAgent of the Operator's examples (read from the module cache
// at the version test/tools/datadog-operator pins, never copied here), the
// inputs of test/testdata/datadog-operator, and a few DatadogAgents written
// here for the cases that must be left alone, is rendered by the pinned
// Operator's operator-render before and after `mutate`; each Agent
// container of the render is then loaded with the Agent's config code.

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	syaml "sigs.k8s.io/yaml"

	"github.com/canary-tagger/canary-tagger/webhook/config"
	"github.com/canary-tagger/canary-tagger/webhook/offline"
	"github.com/canary-tagger/canary-tagger/webhook/outcome"
)

// operatorModule is the Operator's module path; operatorGoMod pins it.
const (
	operatorModule = "github.com/DataDog/datadog-operator"
	operatorGoMod  = "test/tools/datadog-operator/go.mod"
)

// renderRefused are the Operator's example files whose DatadogAgent
// operator-render refuses, and why. Only these are not checked.
var renderRefused = map[string]string{}

// naive is what adding role → kube_role to spec.global.podLabelsAsTags
// blindly does in a case the rule leaves alone.
type naive string

const (
	// naiveLoses: some Agent container loses a mapping it had.
	naiveLoses naive = "loses a mapping"
	// naiveUnreached: nothing is lost, but some Agent container does not
	// end up mapping role → kube_role (another setting wins).
	naiveUnreached naive = "does not reach every Agent container"
	// naiveUnseen: the mapping may come from where neither mutate nor this
	// test can see (an envFrom source in the cluster); only the note is
	// checked.
	naiveUnseen naive = "not checked: the variables come from a ConfigMap or Secret in the cluster"
)

// leftAlone are the DatadogAgents the rule must leave alone, by case name,
// with the reason it must give and what a naive merge would do.
var leftAlone = map[string]struct {
	reason string
	naive  naive
}{
	"inputs/custom-config-without-env": {"a custom Datadog config maps pod labels", naiveLoses},
	"here/override-env":                {"an override sets DD_KUBERNETES_POD_LABELS_AS_TAGS", naiveUnreached},
	"here/container-override-env":      {"an override sets DD_KUBERNETES_POD_LABELS_AS_TAGS", naiveUnreached},
	"here/global-env":                  {"spec.global.env sets DD_KUBERNETES_POD_LABELS_AS_TAGS", naiveLoses},
	"here/resources-maps-role":         {"DD_KUBERNETES_RESOURCES_LABELS_AS_TAGS maps this label for pods", naiveUnreached},
	// The OTel Agent Gateway's otel-agent container gets the global
	// variable too (merger.AllAgentContainers), and its envFrom ConfigMap
	// is the cluster's.
	"examples/datadogagent/datadog-agent-with-otelagentgateway": {"an override's envFrom may set DD_KUBERNETES_POD_LABELS_AS_TAGS", naiveUnseen},
}

// hereCases are DatadogAgents for the cases the Operator's examples and
// the render inputs do not have.
var hereCases = map[string]string{
	// The node Agent's override env wins over the global variable
	// (override.PodTemplateSpec runs after applyGlobalSettings).
	"override-env": `
  global:
    podLabelsAsTags: {app: kube_app}
  override:
    nodeAgent:
      env:
      - name: DD_KUBERNETES_POD_LABELS_AS_TAGS
        value: '{"app":"kube_app","team":"team"}'`,
	// So does a container's (override.Container).
	"container-override-env": `
  override:
    nodeAgent:
      containers:
        trace-agent:
          env:
          - name: DD_KUBERNETES_POD_LABELS_AS_TAGS
            value: '{"team":"team"}'`,
	// spec.global.env is applied before podLabelsAsTags, which replaces it.
	"global-env": `
  global:
    env:
    - name: DD_KUBERNETES_POD_LABELS_AS_TAGS
      value: '{"team":"team"}'`,
	// The resources mapping's role wins over podLabelsAsTags in the Agent.
	"resources-maps-role": `
  global:
    kubernetesResourcesLabelsAsTags:
      pods: {role: team_role}`,
	// Nothing to lose: a custom datadog.yaml that maps no pod labels, an
	// override env of other variables, another label already mapped to
	// the tag.
	"custom-config-no-mapping": `
  global:
    podLabelsAsTags: {tier: kube_role}
  override:
    nodeAgent:
      env:
      - {name: DD_LOG_LEVEL, value: debug}
      customConfigurations:
        datadog.yaml:
          configData: "log_level: debug\n"`,
}

// hereHead is what every DatadogAgent written here starts with: the render
// inputs' settings (a fixed token and placeholder keys).
const hereHead = `apiVersion: datadoghq.com/v2alpha1
kind: DatadogAgent
metadata:
  name: datadog
  namespace: datadog-operator
spec:
  features:
    clusterChecks:
      enabled: true
      useClusterChecksRunners: true
  global:
    clusterAgentToken: "00000000000000000000000000000000"
    credentials:
      apiKey: "00000000000000000000000000000000"
      appKey: "0000000000000000000000000000000000000000"
`

// ddaCase is one DatadogAgent document.
type ddaCase struct {
	name string
	yaml []byte
}

// TestOperatorDatadogAgents: for every DatadogAgent, `mutate` either merges
// the mapping — and then every Agent container of the Operator's render
// keeps every mapping it had and maps role → kube_role — or leaves the
// document as it is with a note saying why, and then merging naively would
// have lost a mapping or not reached every Agent container.
func TestOperatorDatadogAgents(t *testing.T) {
	root := repoRoot(t)
	renderBin := filepath.Join(root, "bin", "e2e", "operator-render")
	if _, err := os.Stat(renderBin); err != nil {
		t.Fatalf("%s is missing: build it with `bash hack/tools.sh operator-render` (make unit does): %v", renderBin, err)
	}
	dir := operatorDir(t, root)
	cases := operatorExamples(t, dir)
	if len(cases) < 30 {
		t.Fatalf("%d DatadogAgents in the Operator's examples (%s), want at least 30", len(cases), dir)
	}
	inputs, err := filepath.Glob(filepath.Join(root, "test", "testdata", "datadog-operator", "inputs", "*.yaml"))
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no render inputs: %v", err)
	}
	for _, f := range inputs {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, ddaCase{"inputs/" + strings.TrimSuffix(filepath.Base(f), ".yaml"), b})
	}
	for _, name := range slices.Sorted(maps.Keys(hereCases)) {
		cases = append(cases, ddaCase{"here/" + name, []byte(mergeSpec(t, hereHead, hereCases[name]))})
	}

	// mutate each, and the naive merge where mutate leaves it alone.
	type prepared struct {
		ddaCase
		mutated []byte
		result  offline.Note
		naive   []byte
	}
	var all []*prepared
	var jobs []renderJob
	work := t.TempDir()
	for i, c := range cases {
		p := &prepared{ddaCase: c}
		p.mutated, p.result = mutate(t, c)
		if p.result.Outcome != outcome.Injected {
			p.naive = naiveMerge(t, c.yaml)
		}
		all = append(all, p)
		for _, v := range []struct {
			kind string
			doc  []byte
		}{{"original", c.yaml}, {"mutated", p.mutated}, {"naive", p.naive}} {
			if v.doc != nil {
				jobs = append(jobs, renderJob{key: c.name + "/" + v.kind, in: filepath.Join(work, fmt.Sprintf("%02d-%s.yaml", i, v.kind)), doc: v.doc})
			}
		}
	}
	renders := renderAll(t, renderBin, jobs)

	injected, checked := 0, 0
	for _, p := range all {
		t.Run(p.name, func(t *testing.T) {
			if why, refused := renderRefused[p.name]; refused {
				t.Logf("not checked: %s", why)
				return
			}
			orig := renders[p.name+"/original"]
			if orig.err != nil {
				t.Fatalf("operator-render refuses the original DatadogAgent (list it in renderRefused with the reason if that is expected): %v", orig.err)
			}
			checked++
			want, mustLeave := leftAlone[p.name]
			t.Logf("mutate: %s", p.result.Text)
			if p.result.Outcome != outcome.Injected {
				if !bytes.Equal(p.mutated, p.yaml) {
					t.Errorf("%s, but the document changed", p.result.Outcome)
				}
				if !mustLeave {
					t.Fatalf("mutate left it alone (%s), but nothing here says it must", p.result.Text)
				}
				if !strings.Contains(p.result.Text, want.reason) {
					t.Errorf("the note %q does not say %q", p.result.Text, want.reason)
				}
				if want.naive == naiveUnseen {
					t.Logf("naive merge %s", want.naive)
					return
				}
				naiveRender := renders[p.name+"/naive"]
				if naiveRender.err != nil {
					t.Fatalf("operator-render on the naive merge: %v", naiveRender.err)
				}
				lost, unreached := compareRenders(t, orig.docs, naiveRender.docs)
				t.Logf("naive merge: lost %q, unreached %q", lost, unreached)
				switch want.naive {
				case naiveLoses:
					if len(lost) == 0 {
						t.Errorf("mutate left it alone, but merging naively loses no mapping")
					}
				case naiveUnreached:
					if len(lost) > 0 || len(unreached) == 0 {
						t.Errorf("merging naively should lose nothing and miss some container; lost %q, missed %q", lost, unreached)
					}
				}
				return
			}
			if mustLeave {
				t.Fatalf("mutate merged the mapping (%s), but it must leave this DatadogAgent alone (%s)", p.result.Text, want.reason)
			}
			injected++
			mut := renders[p.name+"/mutated"]
			if mut.err != nil {
				t.Fatalf("operator-render refuses the mutated DatadogAgent: %v", mut.err)
			}
			lost, unreached := compareRenders(t, orig.docs, mut.docs)
			for _, l := range lost {
				t.Error("lost: " + l)
			}
			for _, u := range unreached {
				t.Error("role not mapped: " + u)
			}
		})
	}
	if injected < 30 {
		t.Errorf("the mapping was merged into %d DatadogAgents of %d checked: the property was hardly exercised", injected, checked)
	}
}

// mutate runs `mutate`'s own processing (offline.Process, with the flags'
// defaults) on one DatadogAgent document, and returns what it writes and
// its note.
func mutate(t *testing.T, c ddaCase) ([]byte, offline.Note) {
	t.Helper()
	var flags config.Flags
	flags.Register(flag.NewFlagSet("mutate", flag.ContinueOnError))
	rules, err := flags.Validate()
	if err != nil {
		t.Fatal(err)
	}
	res, err := offline.Process([]offline.Input{{Name: c.name, Data: c.yaml}}, offline.Options{Rollout: rules.Rollout, AgentPod: rules.AgentPod})
	if err != nil {
		t.Fatalf("%s: mutate: %v", c.name, err)
	}
	var out bytes.Buffer
	if _, err := res.WriteTo(&out); err != nil {
		t.Fatal(err)
	}
	var notes []offline.Note
	for _, n := range res.Notes {
		if !n.Warning {
			notes = append(notes, n)
		}
	}
	if len(notes) != 1 || notes[0].Kind != "DatadogAgent" {
		t.Fatalf("%s: mutate's report has %d notes, want one on the DatadogAgent: %v", c.name, len(notes), res.Notes)
	}
	return out.Bytes(), notes[0]
}

// naiveMerge adds role → kube_role to spec.global.podLabelsAsTags, blind
// to everything else: what the rule must not do where it leaves a
// DatadogAgent alone.
func naiveMerge(t *testing.T, doc []byte) []byte {
	t.Helper()
	var o map[string]any
	if err := syaml.Unmarshal(doc, &o); err != nil {
		t.Fatal(err)
	}
	spec := asMap(o["spec"])
	global := asMap(spec["global"])
	m := asMap(global["podLabelsAsTags"])
	if m == nil {
		m = map[string]any{}
	}
	m[labelKey] = tagName
	global["podLabelsAsTags"] = m
	spec["global"] = global
	o["spec"] = spec
	b, err := syaml.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// compareRenders loads every Agent container of two renders of the same
// DatadogAgent with the Agent's config code and returns what the second
// lost (a mapping of the first gone or changed) and the containers that do
// not map role → kube_role in it.
func compareRenders(t *testing.T, before, after []map[string]any) (lost, unreached []string) {
	t.Helper()
	bw, aw := agentWorkloads(t, before), agentWorkloads(t, after)
	if len(bw) == 0 {
		t.Fatal("the render has no Agent workload")
	}
	if !slices.Equal(slices.Sorted(maps.Keys(bw)), slices.Sorted(maps.Keys(aw))) {
		t.Fatalf("the Agent workloads differ: %v before, %v after", slices.Sorted(maps.Keys(bw)), slices.Sorted(maps.Keys(aw)))
	}
	bObjects, aObjects := renderObjects(t, before), renderObjects(t, after)
	for _, key := range slices.Sorted(maps.Keys(bw)) {
		bPod, aPod := controllerPod(t, bw[key]), controllerPod(t, aw[key])
		unseenCheckConfigs(t, bPod, bObjects)
		unseenCheckConfigs(t, aPod, aObjects)
		aByRef := map[containerRef]map[string]any{}
		for _, pc := range podContainers(aPod) {
			aByRef[pc.ref] = pc.c
		}
		for _, pc := range podContainers(bPod) {
			ac, ok := aByRef[pc.ref]
			if !ok {
				lost = append(lost, fmt.Sprintf("%s %s: gone", key, pc.ref))
				continue
			}
			for _, lib := range configLibs {
				var b, a map[string]string
				t.Run(key+"/"+pc.ref.String()+"/"+lib.name, func(t *testing.T) {
					b = agentPodLabelsAsTags(t, lib.name, lib.param, configName(pc.ref.name), containerEnv(t, pc.c), mountedConfig(t, bPod, pc.c, bObjects))
					a = agentPodLabelsAsTags(t, lib.name, lib.param, configName(pc.ref.name), containerEnv(t, ac), mountedConfig(t, aPod, ac, aObjects))
				})
				if a == nil || b == nil {
					t.Fatalf("%s %s [%s]: the Agent's config could not be loaded", key, pc.ref, lib.name)
				}
				at := fmt.Sprintf("%s %s [%s]", key, pc.ref, lib.name)
				for _, k := range sortedKeys(b) {
					if a[k] != b[k] {
						lost = append(lost, fmt.Sprintf("%s: %s → %s before, %q after (before %v, after %v)", at, k, b[k], a[k], b, a))
					}
				}
				// Init containers run no Agent process that tags pods.
				if !pc.ref.init && a[labelKey] != tagName {
					unreached = append(unreached, fmt.Sprintf("%s maps %v", at, a))
				}
			}
		}
	}
	return lost, unreached
}

// unseenCheckConfigs: a ConfigMap the DatadogAgent names but does not
// hold (the user's, in the cluster), mounted only under conf.d or
// checks.d, holds check configurations, which map no pod labels: it
// counts as empty. Any other unseen volume under /etc/datadog-agent
// still fails the test (mountedConfig).
func unseenCheckConfigs(t *testing.T, pod map[string]any, objects map[string]map[string]string) {
	t.Helper()
	mounts := map[string][]string{}
	for _, pc := range podContainers(pod) {
		for _, vm := range asSlice(pc.c["volumeMounts"]) {
			m := asMap(vm)
			name, _ := m["name"].(string)
			p, _ := m["mountPath"].(string)
			mounts[name] = append(mounts[name], p)
		}
	}
	for _, v := range asSlice(asMap(pod["spec"])["volumes"]) {
		vol := asMap(v)
		cm := str(vol, "configMap", "name")
		if cm == "" {
			continue
		}
		if _, ok := objects["ConfigMap/"+cm]; ok {
			continue
		}
		name, _ := vol["name"].(string)
		checksOnly := len(mounts[name]) > 0
		for _, p := range mounts[name] {
			if !strings.HasPrefix(p, agentConfDir+"/conf.d") && !strings.HasPrefix(p, agentConfDir+"/checks.d") {
				checksOnly = false
			}
		}
		if checksOnly {
			t.Logf("ConfigMap %s (not in the render) is mounted at %v only: check configurations, no pod label mapping", cm, mounts[name])
			objects["ConfigMap/"+cm] = map[string]string{}
		}
	}
}

// agentComponents are the components the agent-pod rule's default
// selector names, whose containers run Agent processes that tag pods.
var agentComponents = []string{"agent", "cluster-agent", "cluster-checks-runner"}

// agentWorkloads are the render's DaemonSets and Deployments of Agent
// components, by "Kind/name".
func agentWorkloads(t *testing.T, docs []map[string]any) map[string]map[string]any {
	t.Helper()
	w := map[string]map[string]any{}
	for _, d := range docs {
		kind, _ := d["kind"].(string)
		if kind != "DaemonSet" && kind != "Deployment" {
			continue
		}
		if !slices.Contains(agentComponents, str(d, "spec", "template", "metadata", "labels", "agent.datadoghq.com/component")) {
			continue
		}
		w[kind+"/"+str(d, "metadata", "name")] = d
	}
	return w
}

// renderJob is one operator-render run.
type renderJob struct {
	key string
	in  string
	doc []byte
}

type rendered struct {
	docs []map[string]any
	err  error
}

// renderAll runs operator-render on every job, two at a time.
func renderAll(t *testing.T, bin string, jobs []renderJob) map[string]rendered {
	t.Helper()
	out := make(map[string]rendered, len(jobs))
	var mu sync.Mutex
	sem := make(chan struct{}, 2)
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			r := renderOne(bin, j)
			mu.Lock()
			out[j.key] = r
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

func renderOne(bin string, j renderJob) rendered {
	if err := os.WriteFile(j.in, j.doc, 0o644); err != nil {
		return rendered{err: err}
	}
	outPath := strings.TrimSuffix(j.in, ".yaml") + ".render.yaml"
	cmd := exec.Command(bin, "--kubernetes-version", "v1.37.2", "--dda", j.in, "--output", outPath)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return rendered{err: fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))}
	}
	f, err := os.Open(outPath)
	if err != nil {
		return rendered{err: err}
	}
	defer f.Close()
	docs, err := decodeAll(f)
	return rendered{docs: docs, err: err}
}

func decodeAll(r io.Reader) ([]map[string]any, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(r, 4096)
	var docs []map[string]any
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			return docs, nil
		} else if err != nil {
			return nil, err
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
}

// operatorExamples are the DatadogAgent documents of the Operator's
// examples/datadogagent and its config/samples, one case each, as YAML.
func operatorExamples(t *testing.T, dir string) []ddaCase {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "examples", "datadogagent", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	samples, err := filepath.Glob(filepath.Join(dir, "config", "samples", "*datadogagent*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []ddaCase
	for _, f := range append(files, samples...) {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs := splitDocs(raw)
		n := 0
		for _, d := range docs {
			var head struct{ APIVersion, Kind string }
			if err := syaml.Unmarshal(d, &head); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if head.Kind != "DatadogAgent" {
				continue
			}
			name := strings.TrimPrefix(filepath.ToSlash(strings.TrimPrefix(f, dir)), "/")
			name = strings.TrimSuffix(name, ".yaml")
			if n > 0 {
				name += fmt.Sprintf("#%d", n)
			}
			n++
			cases = append(cases, ddaCase{name, d})
		}
	}
	return cases
}

var docSep = regexp.MustCompile(`(?m)^---[ \t]*$\n?`)

// splitDocs splits a YAML stream at its "---" lines.
func splitDocs(raw []byte) [][]byte {
	var docs [][]byte
	for _, d := range docSep.Split(string(raw), -1) {
		if strings.TrimSpace(d) != "" {
			docs = append(docs, []byte(d))
		}
	}
	return docs
}

// mergeSpec adds the case's spec lines to head's spec: its global keys to
// head's global, its other keys to the spec.
func mergeSpec(t *testing.T, head, spec string) string {
	t.Helper()
	var base, extra map[string]any
	if err := syaml.Unmarshal([]byte(head), &base); err != nil {
		t.Fatal(err)
	}
	if err := syaml.Unmarshal([]byte("spec:"+spec), &extra); err != nil {
		t.Fatalf("%v\n%s", err, spec)
	}
	bs, es := asMap(base["spec"]), asMap(extra["spec"])
	for k, v := range es {
		if k == "global" {
			maps.Copy(asMap(bs["global"]), asMap(v))
			continue
		}
		bs[k] = v
	}
	b, err := syaml.Marshal(base)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// operatorDir is the Operator module's directory: $DATADOG_OPERATOR_DIR,
// or the module cache's at the version test/tools/datadog-operator pins
// (the lookup test/internal/pinned does for the CRDs), downloaded if needed.
func operatorDir(t *testing.T, root string) string {
	t.Helper()
	if dir := os.Getenv("DATADOG_OPERATOR_DIR"); dir != "" {
		return dir
	}
	data, err := os.ReadFile(filepath.Join(root, operatorGoMod))
	if err != nil {
		t.Fatal(err)
	}
	version := regexp.MustCompile(`(?m)^\s*(?:require\s+)?` + regexp.QuoteMeta(operatorModule) + `\s+(v\S+)`).FindSubmatch(data)
	if version == nil {
		t.Fatalf("%s does not require %s", operatorGoMod, operatorModule)
	}
	query := operatorModule + "@" + string(version[1])
	cmd := exec.Command("go", "mod", "download", "-json", query)
	cmd.Dir = os.TempDir()
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off")
	if tc := regexp.MustCompile(`(?m)^toolchain\s+(\S+)`).FindSubmatch(data); tc != nil {
		cmd.Env = append(cmd.Env, "GOTOOLCHAIN="+string(tc[1]))
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var info struct{ Dir, Error string }
	if err := json.Unmarshal(stdout.Bytes(), &info); err != nil || info.Error != "" || info.Dir == "" {
		t.Fatalf("go mod download -json %s: %v %v %s %s", query, runErr, err, info.Error, stderr.String())
	}
	return info.Dir
}
