package scenario

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/canary-tagger/canary-tagger/test/internal/datadogapi"
)

// Steps 7-11: the shipped ClusterAnalysisTemplates judge canaries by the
// role tag, with the real Argo Rollouts controller and its Datadog provider
// talking to a stand-in of the Datadog API (package datadogapi).

// The names and values the analysis steps use.
const (
	ErrorRatioTemplate = "canary-tagger-error-ratio"
	LatencyTemplate    = "canary-tagger-latency"
	ErrorRatioMetric   = "error-ratio" // the template's metric name
	ImageGood          = "argoproj/demo:green"
	ImageBad           = "argoproj/demo:red"
	DatadogSecret      = "datadog"
	// The analysis arguments the Rollout sets: the stand-in does not care
	// about the service, the measurements are fast.
	AnalysisService  = "demo"
	AnalysisInterval = "2s"
	AnalysisCount    = "3"
	// The template's defaults for the metrics and the look-back window.
	RequestsMetric = "http.requests"
	ErrorsMetric   = "http.errors"
	DefaultWindow  = 5 * time.Minute
	// Non-default label values of step 11.
	CustomNamespace   = "custom-values"
	CustomCanaryValue = "preview"
	CustomStableValue = "live"
)

var analysisRunGVR = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "analysisruns"}

// analysisState is what the analysis steps share.
type analysisState struct {
	apiKey, appKey string
	// The label values canary-tagger injected into the Rollout, read back
	// from the stored object.
	canaryValue, stableValue string
	// Every AnalysisRun already judged, by UID.
	seenRuns map[string]bool
}

// Close stops the Datadog stand-in, if one was started.
func (s *Scenario) Close() {
	if s.datadog != nil {
		s.datadog.Close()
	}
}

// goodTable: the canary fails as often as the stable (1 %).
func goodTable(canary, stable string) datadogapi.Scenario {
	return datadogapi.Scenario{Values: map[datadogapi.Series]float64{
		{Metric: ErrorsMetric, Role: canary}: 1, {Metric: RequestsMetric, Role: canary}: 100,
		{Metric: ErrorsMetric, Role: stable}: 4, {Metric: RequestsMetric, Role: stable}: 400,
	}}
}

// badTable: the canary fails on 20 % of its requests, the stable on 1 %.
func badTable(canary, stable string) datadogapi.Scenario {
	return datadogapi.Scenario{Values: map[datadogapi.Series]float64{
		{Metric: ErrorsMetric, Role: canary}: 20, {Metric: RequestsMetric, Role: canary}: 100,
		{Metric: ErrorsMetric, Role: stable}: 4, {Metric: RequestsMetric, Role: stable}: 400,
	}}
}

// analysisSteps are the Rollout's steps with the error-ratio template as an
// analysis step after the first weight: a canary is promoted only once the
// analysis has measured it `count` times and passed.
func analysisSteps(extra ...[2]string) []any {
	args := []any{
		map[string]any{"name": "service", "value": AnalysisService},
		map[string]any{"name": "interval", "value": AnalysisInterval},
		map[string]any{"name": "count", "value": AnalysisCount},
	}
	for _, a := range extra {
		args = append(args, map[string]any{"name": a[0], "value": a[1]})
	}
	return []any{
		map[string]any{"setWeight": int64(20)},
		map[string]any{"analysis": map[string]any{
			"templates": []any{map[string]any{"templateName": ErrorRatioTemplate, "clusterScope": true}},
			"args":      args,
		}},
	}
}

// setAnalysisSteps replaces the Rollout's steps with kubectl patch.
func (s *Scenario) setAnalysisSteps(ctx context.Context, n Narrator, extra ...[2]string) error {
	patch, err := json.Marshal([]any{map[string]any{"op": "replace", "path": "/spec/strategy/canary/steps", "value": analysisSteps(extra...)}})
	if err != nil {
		return err
	}
	_, _, err = s.show(ctx, n, nil, "patch", "rollout", RolloutName, "-n", s.env.Namespace, "--type=json", "-p", string(patch))
	return err
}

// injectedValues reads the role values canary-tagger wrote into the stored Rollout.
func (s *Scenario) injectedValues(ctx context.Context) (canary, stable string, err error) {
	st, err := s.rollout(ctx)
	if err != nil {
		return "", "", err
	}
	canary, okC, _ := unstructured.NestedString(st.Obj.Object, "spec", "strategy", "canary", "canaryMetadata", "labels", LabelKey)
	stable, okS, _ := unstructured.NestedString(st.Obj.Object, "spec", "strategy", "canary", "stableMetadata", "labels", LabelKey)
	if !okC || !okS || canary == "" || stable == "" {
		return "", "", fmt.Errorf("the stored Rollout %s/%s has no %s in canaryMetadata/stableMetadata: %q / %q",
			s.env.Namespace, RolloutName, LabelKey, canary, stable)
	}
	return canary, stable, nil
}

func (s *Scenario) stepAnalysis(ctx context.Context, n Narrator) error {
	if s.env.AnalysisDir == "" || s.env.ControllerNamespace == "" {
		return fmt.Errorf("the analysis steps need Env.AnalysisDir and Env.ControllerNamespace")
	}
	// The provider takes DD_API_KEY/DD_APP_KEY/DD_ADDRESS from its own
	// environment before the Secret; the controller inherits ours.
	if os.Getenv("DD_API_KEY") != "" && os.Getenv("DD_APP_KEY") != "" {
		if _, ok := os.LookupEnv("DD_ADDRESS"); ok {
			return fmt.Errorf("DD_API_KEY, DD_APP_KEY and DD_ADDRESS are set in this environment: the Argo Rollouts controller would use them instead of the datadog Secret; unset them")
		}
	}

	n.Say("The two ClusterAnalysisTemplates canary-tagger ships, installed as a person would:")
	if _, _, err := s.show(ctx, n, nil, "apply", "-k", s.env.AnalysisDir); err != nil {
		return err
	}
	for _, name := range []string{ErrorRatioTemplate, LatencyTemplate} {
		if _, _, err := s.Kubectl(ctx, nil, "get", "clusteranalysistemplate", name); err != nil {
			return err
		}
	}
	n.Check("%s and %s stored by the apiserver (schema of the real Argo Rollouts CRD)", ErrorRatioTemplate, LatencyTemplate)

	if s.datadog == nil {
		s.datadog = datadogapi.Start(datadogapi.Scenario{})
	}
	s.analysis.apiKey, s.analysis.appKey = "e2e-api-key", "e2e-app-key"
	s.analysis.seenRuns = map[string]bool{}
	n.Say("A stand-in for the Datadog API (POST /api/v2/query/scalar) at %s answers by the kube_role filter of each query.", s.datadog.URL())
	n.Say("The controller finds Datadog through the Secret %q in its own namespace %q (keys api-key, app-key, address):", DatadogSecret, s.env.ControllerNamespace)
	if err := s.ensureNamespace(ctx, s.env.ControllerNamespace); err != nil {
		return err
	}
	secret, _, err := s.Kubectl(ctx, nil, "create", "secret", "generic", DatadogSecret, "-n", s.env.ControllerNamespace,
		"--from-literal=api-key="+s.analysis.apiKey, "--from-literal=app-key="+s.analysis.appKey,
		"--from-literal=address="+s.datadog.URL(), "--dry-run=client", "-o", "yaml")
	if err != nil {
		return err
	}
	if _, _, err := s.show(ctx, n, []byte(secret), "apply", "-f", "-"); err != nil {
		return err
	}

	before, err := s.rollout(ctx)
	if err != nil {
		return err
	}
	n.Say("The seed's Rollout gets an analysis step after its first weight (the template's defaults, except service and a fast interval/count for the test):")
	if err := s.setAnalysisSteps(ctx, n); err != nil {
		return err
	}
	if s.analysis.canaryValue, s.analysis.stableValue, err = s.injectedValues(ctx); err != nil {
		return err
	}
	_, err = s.waitForRollout(ctx, "the Rollout to take the new steps and stay Healthy on the same pods", func(ctx context.Context, st rolloutState, pods []podInfo, seen string) (bool, string, error) {
		counts, settled := countPods(pods)
		return st.upToDate() && st.Phase == "Healthy" && st.StableRS == before.StableRS && st.PodHash == before.StableRS &&
			settled && len(pods) == 5 && counts[[2]string{s.analysis.stableValue, before.StableRS}] == 5, seen, nil
	})
	if err != nil {
		return err
	}
	n.Check("Rollout Healthy with the analysis step; canary-tagger's labels still %s=%s / %s=%s; no pod replaced",
		LabelKey, s.analysis.canaryValue, LabelKey, s.analysis.stableValue)
	return nil
}

// ---- AnalysisRuns ----

type measurement struct {
	Phase, Value, Message string
	StartedAt             string
}

type analysisRun struct {
	Name, UID, Phase, Message string
	Created                   time.Time
	Measurements              []measurement
}

func (r analysisRun) String() string {
	if r.Name == "" {
		return "no new AnalysisRun"
	}
	phases := make([]string, len(r.Measurements))
	for i, m := range r.Measurements {
		phases[i] = m.Phase
		if m.Value != "" {
			phases[i] += "(" + m.Value + ")"
		}
	}
	return fmt.Sprintf("AnalysisRun %s phase=%q message=%q measurements=[%s]", r.Name, r.Phase, r.Message, strings.Join(phases, " "))
}

func parseAnalysisRun(u *unstructured.Unstructured) analysisRun {
	r := analysisRun{Name: u.GetName(), UID: string(u.GetUID()), Created: u.GetCreationTimestamp().Time}
	r.Phase, _, _ = unstructured.NestedString(u.Object, "status", "phase")
	r.Message, _, _ = unstructured.NestedString(u.Object, "status", "message")
	results, _, _ := unstructured.NestedSlice(u.Object, "status", "metricResults")
	for _, res := range results {
		rm, _ := res.(map[string]any)
		if rm["name"] != ErrorRatioMetric {
			continue
		}
		ms, _, _ := unstructured.NestedSlice(rm, "measurements")
		for _, m := range ms {
			mm, _ := m.(map[string]any)
			var out measurement
			out.Phase, _ = mm["phase"].(string)
			out.Value, _ = mm["value"].(string)
			out.Message, _ = mm["message"].(string)
			out.StartedAt, _ = mm["startedAt"].(string)
			r.Measurements = append(r.Measurements, out)
		}
	}
	return r
}

// newestRun is the newest AnalysisRun of the Rollout's pods with hash that
// no earlier step judged.
func (s *Scenario) newestRun(ctx context.Context, hash string) (analysisRun, error) {
	list, err := s.dyn.Resource(analysisRunGVR).Namespace(s.env.Namespace).List(ctx, listOptions(HashLabel+"="+hash))
	if err != nil {
		return analysisRun{}, err
	}
	var newest analysisRun
	for i := range list.Items {
		r := parseAnalysisRun(&list.Items[i])
		if s.analysis.seenRuns[r.UID] {
			continue
		}
		if newest.Name == "" || r.Created.After(newest.Created) {
			newest = r
		}
	}
	return newest, nil
}

// showRun prints the run's measurements the way a person would want them.
func (s *Scenario) showRun(n Narrator, r analysisRun) {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tPHASE\tVALUE\tSTARTED\tMESSAGE")
	for i, m := range r.Measurements {
		v := m.Value
		if v == "" {
			v = "-"
		}
		msg := m.Message
		if len(msg) > 110 {
			msg = msg[:110] + "…"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", i+1, m.Phase, v, m.StartedAt, msg)
	}
	_ = tw.Flush()
	title := fmt.Sprintf("AnalysisRun %s: %s", r.Name, r.Phase)
	if r.Message != "" {
		title += " (" + r.Message + ")"
	}
	n.Show(title+", metric "+ErrorRatioMetric+":", strings.TrimRight(b.String(), "\n"))
}

// ---- the canary under analysis ----

// outcome is what a canary under analysis must come to.
type outcome struct {
	runPhase string // Successful, Failed or Error
	promoted bool   // else aborted
	// checkMeasurements judges the run's measurements.
	checkMeasurements func(ms []measurement) error
}

// valuesMeasured: at least count measurements, all of phase, each with a
// numeric value (a measurement that ran and got an answer).
func valuesMeasured(phase string, atLeast int, check func(v float64) bool) func([]measurement) error {
	return func(ms []measurement) error {
		judged := 0
		for i, m := range ms {
			if m.Phase != phase {
				continue
			}
			v, err := strconv.ParseFloat(m.Value, 64)
			if err != nil {
				return fmt.Errorf("measurement %d is %s without a numeric value: %q (%s)", i+1, m.Phase, m.Value, m.Message)
			}
			if !check(v) {
				return fmt.Errorf("measurement %d is %s with value %v, not what the stand-in's table gives", i+1, m.Phase, v)
			}
			judged++
		}
		if judged < atLeast {
			return fmt.Errorf("%d %s measurements with a value, want at least %d", judged, phase, atLeast)
		}
		return nil
	}
}

// erred: at least atLeast Error measurements whose message contains want,
// and none that passed.
func erred(atLeast int, want string) func([]measurement) error {
	return func(ms []measurement) error {
		errs := 0
		for i, m := range ms {
			switch m.Phase {
			case "Error":
				if !strings.Contains(m.Message, want) {
					return fmt.Errorf("measurement %d: Error %q does not say %q", i+1, m.Message, want)
				}
				errs++
			case "Successful":
				return fmt.Errorf("measurement %d passed: %+v", i+1, m)
			}
		}
		if errs < atLeast {
			return fmt.Errorf("%d Error measurements, want at least %d (consecutiveErrorLimit 1)", errs, atLeast)
		}
		return nil
	}
}

// canaryResult is what judgeCanary saw.
type canaryResult struct {
	run            analysisRun
	canaryHash     string
	stableHash     string
	sawCanaryLabel bool // a pod of the canary's hash carried the canary value
	requests       []datadogapi.Request
}

// judgeCanary runs prepare (optional), starts a canary with start (kubectl
// argo rollouts set image, or retry), waits for its AnalysisRun to end as
// want says and for the Rollout to be promoted or aborted, and checks the
// pods. The requests the stand-in received from prepare on are the run's.
func (s *Scenario) judgeCanary(ctx context.Context, n Narrator, what string, prepare func(context.Context) error, start []string, want outcome) (canaryResult, error) {
	var res canaryResult
	before, err := s.rollout(ctx)
	if err != nil {
		return res, err
	}
	res.stableHash = before.StableRS
	from := len(s.datadog.Requests())
	if prepare != nil {
		if err := prepare(ctx); err != nil {
			return res, err
		}
	}
	if _, _, err := s.show(ctx, n, nil, start...); err != nil {
		return res, err
	}
	canary, stable := s.analysis.canaryValue, s.analysis.stableValue
	n.Say("Waiting for the AnalysisRun to end %s and the Rollout to be %s ...", want.runPhase, map[bool]string{true: "promoted", false: "aborted"}[want.promoted])
	elapsed, err := s.waitForRollout(ctx, what, func(ctx context.Context, st rolloutState, pods []podInfo, seen string) (bool, string, error) {
		if st.PodHash == "" || st.PodHash == res.stableHash || !st.upToDate() {
			return false, seen, nil
		}
		res.canaryHash = st.PodHash
		for _, p := range pods {
			if p.Hash == res.canaryHash && p.HasRole && p.Role == canary {
				res.sawCanaryLabel = true
			}
		}
		run, err := s.newestRun(ctx, res.canaryHash)
		if err != nil {
			return false, seen, err
		}
		res.run = run
		seen += "; " + run.String()
		if run.Phase != want.runPhase {
			return false, seen, nil
		}
		counts, settled := countPods(pods)
		if want.promoted {
			return st.Phase == "Healthy" && !st.Paused && st.StableRS == res.canaryHash &&
				settled && len(pods) == 5 && counts[[2]string{stable, res.canaryHash}] == 5, seen, nil
		}
		aborted, _, _ := unstructured.NestedBool(st.Obj.Object, "status", "abort")
		if !aborted || st.StableRS != res.stableHash {
			return false, seen, nil
		}
		replicas, err := s.replicaSetReplicas(ctx, res.canaryHash)
		if err != nil {
			return false, seen, err
		}
		seen += fmt.Sprintf("; canary ReplicaSet replicas %d", replicas)
		return replicas == 0 && settled && len(pods) == 5 && counts[[2]string{stable, res.stableHash}] == 5, seen, nil
	})
	if err != nil {
		return res, err
	}
	s.analysis.seenRuns[res.run.UID] = true
	s.showRun(n, res.run)
	if err := want.checkMeasurements(res.run.Measurements); err != nil {
		return res, fmt.Errorf("AnalysisRun %s: %w", res.run.Name, err)
	}
	if want.promoted {
		n.Check("%s after %s: AnalysisRun %s %s with %d measurements; Healthy, 5 pods %s=%s with the new hash %s, none %s=%s",
			what, elapsed, res.run.Name, res.run.Phase, len(res.run.Measurements), LabelKey, stable, res.canaryHash, LabelKey, canary)
	} else {
		n.Check("%s after %s: AnalysisRun %s %s; Rollout aborted, canary ReplicaSet %s scaled to 0, 5 pods %s=%s on %s, none %s=%s",
			what, elapsed, res.run.Name, res.run.Phase, res.canaryHash, LabelKey, stable, res.stableHash, LabelKey, canary)
	}
	if !res.sawCanaryLabel {
		return res, fmt.Errorf("no pod of the canary's hash %s was seen with %s=%s while it was analysed", res.canaryHash, LabelKey, canary)
	}
	res.requests = s.datadog.RequestsSince(from)
	return res, nil
}

// checkQueries checks what Argo asked the stand-in during one AnalysisRun:
// at least one request per measurement, each with the Secret's keys, the
// v2 scalar shape the template asks for, and role filters carrying exactly
// the values canary-tagger injected.
func (s *Scenario) checkQueries(n Narrator, res canaryResult, answered bool) error {
	reqs := res.requests
	if len(reqs) < len(res.run.Measurements) {
		return fmt.Errorf("the stand-in received %d requests for %d measurements", len(reqs), len(res.run.Measurements))
	}
	if len(reqs) == 0 {
		return fmt.Errorf("the stand-in received no request: nothing was measured")
	}
	wantRoles := []string{s.analysis.canaryValue, s.analysis.stableValue}
	sort.Strings(wantRoles)
	for i, r := range reqs {
		switch {
		case r.Path != datadogapi.ScalarPath || r.Method != "POST":
			return fmt.Errorf("request %d: %s %s", i+1, r.Method, r.Path)
		case r.Err != "":
			return fmt.Errorf("request %d refused by the stand-in: %s", i+1, r.Err)
		case r.APIKey != s.analysis.apiKey || r.AppKey != s.analysis.appKey:
			return fmt.Errorf("request %d: keys %q/%q, not the Secret's", i+1, r.APIKey, r.AppKey)
		case !r.Chunked:
			return fmt.Errorf("request %d had a Content-Length: the stand-in is not tested on what the provider sends", i+1)
		case r.Window() != DefaultWindow:
			return fmt.Errorf("request %d: window %s, want the template's %s", i+1, r.Window(), DefaultWindow)
		case len(r.Queries) != 4 || r.Formula == "":
			return fmt.Errorf("request %d: %d queries, formula %q", i+1, len(r.Queries), r.Formula)
		case !reflect.DeepEqual(r.Roles(), wantRoles):
			return fmt.Errorf("request %d asked about %s values %v, canary-tagger injected %v", i+1, LabelKey, r.Roles(), wantRoles)
		case answered && r.Value == nil:
			return fmt.Errorf("request %d was answered with no data", i+1)
		}
		for _, q := range r.Queries {
			if q.Aggregator != "sum" {
				return fmt.Errorf("request %d, query %s: aggregator %q, want sum", i+1, q.Name, q.Aggregator)
			}
			// The template names its queries canary_* and stable_*.
			want := map[bool]string{true: s.analysis.canaryValue, false: s.analysis.stableValue}[strings.HasPrefix(q.Name, "canary_")]
			if q.Role != want {
				return fmt.Errorf("request %d: query %s filters on %s:%s, want %s", i+1, q.Name, datadogapi.DefaultTagName, q.Role, want)
			}
		}
	}
	var b strings.Builder
	for _, q := range sortedQueries(reqs[0]) {
		v := "null"
		if q.Value != nil {
			v = strconv.FormatFloat(*q.Value, 'f', -1, 64)
		}
		fmt.Fprintf(&b, "%-16s %s  → %s\n", q.Name, q.Query, v)
	}
	fmt.Fprintf(&b, "formula          %s", reqs[0].Formula)
	if reqs[0].Value != nil {
		fmt.Fprintf(&b, "  → %s", strconv.FormatFloat(*reqs[0].Value, 'f', -1, 64))
	}
	n.Show("What Argo asked the Datadog stand-in (first of its requests):", b.String())
	n.Check("%d requests to the stand-in, every query filtered by %s:%s or %s:%s, the values on the pods",
		len(reqs), datadogapi.DefaultTagName, s.analysis.canaryValue, datadogapi.DefaultTagName, s.analysis.stableValue)
	return nil
}

func sortedQueries(r datadogapi.Request) []datadogapi.Query {
	qs := append([]datadogapi.Query(nil), r.Queries...)
	sort.Slice(qs, func(i, j int) bool { return qs[i].Name < qs[j].Name })
	return qs
}

func near(want float64) func(float64) bool {
	return func(v float64) bool { return v > want-1e-9 && v < want+1e-9 }
}

func (s *Scenario) stepGoodCanary(ctx context.Context, n Narrator) error {
	canary, stable := s.analysis.canaryValue, s.analysis.stableValue
	s.datadog.SetScenario(goodTable(canary, stable))
	n.Say("Datadog (the stand-in) says: canary 1 error in 100 requests, stable 4 in 400.")
	count, _ := strconv.Atoi(AnalysisCount)
	res, err := s.judgeCanary(ctx, n, "good canary promoted", nil,
		[]string{"argo", "rollouts", "set", "image", RolloutName, "demo=" + ImageGood, "-n", s.env.Namespace},
		outcome{runPhase: "Successful", promoted: true, checkMeasurements: valuesMeasured("Successful", count, near(0))})
	if err != nil {
		return err
	}
	s.oldHash, s.newHash = res.stableHash, res.canaryHash
	return s.checkQueries(n, res, true)
}

func (s *Scenario) stepBadCanary(ctx context.Context, n Narrator) error {
	canary, stable := s.analysis.canaryValue, s.analysis.stableValue
	s.datadog.SetScenario(badTable(canary, stable))
	n.Say("A second image, whose canary fails: the stand-in says canary 20 errors in 100 requests, stable 4 in 400 (tolerance 0.01).")
	res, err := s.judgeCanary(ctx, n, "bad canary stopped", nil,
		[]string{"argo", "rollouts", "set", "image", RolloutName, "demo=" + ImageBad, "-n", s.env.Namespace},
		outcome{runPhase: "Failed", promoted: false, checkMeasurements: valuesMeasured("Failed", 1, near(0.19))})
	if err != nil {
		return err
	}
	if err := s.checkQueries(n, res, true); err != nil {
		return err
	}
	_, _, err = s.show(ctx, n, nil, "argo", "rollouts", "get", "rollout", RolloutName, "-n", s.env.Namespace, "--no-color")
	return err
}

func (s *Scenario) stepUnmeasurable(ctx context.Context, n Narrator) error {
	canary, stable := s.analysis.canaryValue, s.analysis.stableValue
	retry := []string{"argo", "rollouts", "retry", "rollout", RolloutName, "-n", s.env.Namespace}
	// A change of the steps restarts the aborted canary by itself; the retry
	// that follows is then a no-op. The tolerance cases come first, so that
	// the last case leaves the template's defaults and an aborted Rollout
	// that nothing restarts.
	cases := []struct {
		title string
		// prepare sets the stand-in and the Rollout up.
		prepare  func(ctx context.Context) error
		message  string // in every Error measurement
		answered bool   // the stand-in answered with a value (the error is Argo's)
	}{
		{"the tolerance argument is empty", func(ctx context.Context) error {
			s.datadog.SetScenario(goodTable(canary, stable))
			return s.setAnalysisSteps(ctx, n, [2]string{"tolerance", ""})
		}, "could not evaluate", true},
		{"the tolerance argument is not a number", func(ctx context.Context) error {
			s.datadog.SetScenario(goodTable(canary, stable))
			return s.setAnalysisSteps(ctx, n, [2]string{"tolerance", "one-percent"})
		}, "could not evaluate", true},
		{"the Datadog API answers 500", func(ctx context.Context) error {
			s.datadog.SetScenario(datadogapi.Scenario{Status: 500})
			n.Say("Back to the template's default tolerance:")
			return s.setAnalysisSteps(ctx, n)
		}, "received non 2xx response code: 500", false},
		{"the Datadog API answers something that is not JSON", func(context.Context) error {
			s.datadog.SetScenario(datadogapi.Scenario{Body: "<html>upstream timed out</html>"})
			return nil
		}, "Could not parse JSON body", false},
	}
	for _, c := range cases {
		n.Say("Bad input: %s; the aborted canary (%s) is retried.", c.title, ImageBad)
		res, err := s.judgeCanary(ctx, n, "canary not promoted when "+c.title, c.prepare, retry,
			outcome{runPhase: "Error", promoted: false, checkMeasurements: erred(2, c.message)})
		if err != nil {
			return err
		}
		if len(res.requests) < 2 {
			return fmt.Errorf("%s: the stand-in received %d requests, want one per measurement", c.title, len(res.requests))
		}
		if c.answered {
			if err := s.checkQueries(n, res, true); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Scenario) stepOtherValues(ctx context.Context, n Narrator) error {
	if s.env.RestartWebhook == nil {
		return fmt.Errorf("step 11 needs Env.RestartWebhook")
	}
	flags := []string{"--canary-value=" + CustomCanaryValue, "--stable-value=" + CustomStableValue}
	n.Say("canary-tagger restarted with %s:", strings.Join(flags, " "))
	if err := s.env.RestartWebhook(ctx, flags...); err != nil {
		return err
	}
	other := *s
	other.env.Namespace = CustomNamespace
	if err := other.ensureNamespace(ctx, CustomNamespace); err != nil {
		return err
	}
	n.Say("The seed's Rollout again, in namespace %s:", CustomNamespace)
	if _, _, err := other.show(ctx, n, nil, "apply", "-n", CustomNamespace, "-f", s.env.RolloutFile); err != nil {
		return err
	}
	canary, stable, err := other.injectedValues(ctx)
	if err != nil {
		return err
	}
	if canary != CustomCanaryValue || stable != CustomStableValue {
		return fmt.Errorf("canary-tagger injected %s=%s / %s=%s, started with %v", LabelKey, canary, LabelKey, stable, flags)
	}
	other.analysis.canaryValue, other.analysis.stableValue = canary, stable
	n.Check("canary-tagger injected canaryMetadata %s=%s and stableMetadata %s=%s", LabelKey, canary, LabelKey, stable)
	_, err = other.waitForRollout(ctx, "Rollout Healthy with 5 pods role="+stable, func(ctx context.Context, st rolloutState, pods []podInfo, seen string) (bool, string, error) {
		counts, settled := countPods(pods)
		return st.Phase == "Healthy" && st.upToDate() && st.StableRS != "" && settled && len(pods) == 5 &&
			counts[[2]string{stable, st.StableRS}] == 5, seen, nil
	})
	if err != nil {
		return err
	}
	n.Say("The same template, told the values with its canary-value and stable-value arguments:")
	if err := other.setAnalysisSteps(ctx, n, [2]string{"canary-value", canary}, [2]string{"stable-value", stable}); err != nil {
		return err
	}
	s.datadog.SetScenario(goodTable(canary, stable))
	count, _ := strconv.Atoi(AnalysisCount)
	res, err := other.judgeCanary(ctx, n, "good canary promoted with "+LabelKey+"="+canary+"/"+stable, nil,
		[]string{"argo", "rollouts", "set", "image", RolloutName, "demo=" + ImageGood, "-n", CustomNamespace},
		outcome{runPhase: "Successful", promoted: true, checkMeasurements: valuesMeasured("Successful", count, near(0))})
	if err != nil {
		return err
	}
	if err := other.checkQueries(n, res, true); err != nil {
		return err
	}
	n.Say("canary-tagger restarted with its default values:")
	return s.env.RestartWebhook(ctx)
}
