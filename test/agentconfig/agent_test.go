package agentconfig_test

// The Datadog Agent's side: load one container's environment and the files
// mounted under /etc/datadog-agent with the Agent's own config packages, and
// read the pod labels-as-tags mapping the way the Agent's tagger and the
// kubernetes_state_core check do. See docs/agent-config.md for the source
// references (datadog-agent v0.77.0, Agent 7.77).

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	secretnoop "github.com/DataDog/datadog-agent/comp/core/secrets/noop-impl/types"
	"github.com/DataDog/datadog-agent/pkg/config/create"
	"github.com/DataDog/datadog-agent/pkg/config/model"
	"github.com/DataDog/datadog-agent/pkg/config/setup"
	"github.com/DataDog/datadog-agent/pkg/config/utils"
)

// agentConfDir is where the Agent looks for its config file (comp/core/config
// DefaultConfPath on Linux).
const agentConfDir = "/etc/datadog-agent"

// configLibs are the two config implementations Agent 7.77 can run with:
// viper (the default) and nodetreemodel (DD_CONF_NODETREEMODEL=enable, or
// conf_nodetreemodel in datadog.yaml). Each container is checked with both.
var configLibs = []struct{ name, param string }{
	{"viper", ""},
	{"nodetreemodel", "enable"},
}

// envVar is one variable of a container's process environment.
type envVar struct{ Name, Value string }

// configName is the name of the config file the container's process reads:
// the Cluster Agent reads datadog-cluster.yaml (comp/core/config
// NewClusterAgentParams), every other Agent process datadog.yaml.
func configName(container string) string {
	if container == "cluster-agent" {
		return "datadog-cluster"
	}
	return "datadog"
}

// agentPodLabelsAsTags returns the pod label → tag mapping an Agent process
// ends up with when it starts with exactly env as its DD_ environment and
// files (relative to /etc/datadog-agent) as its config directory.
//
// It does what the Agent does at start-up (comp/core/config setupConfig):
// a new config object (create.NewConfig), the defaults and env bindings
// (setup.InitConfig), the config file by name in the config directory, then
// setup.LoadDatadog; and then what the tagger's workloadmeta collector and
// the kubernetes_state_core check do with it: utils.GetMetadataAsTags, whose
// pods entry merges kubernetes_pod_labels_as_tags with the "pods" entry of
// kubernetes_resources_labels_as_tags.
//
// The environment is set with t.Setenv, so callers must not run in parallel;
// every other DD_ variable of the test process is removed for the call.
func agentPodLabelsAsTags(t *testing.T, lib, libParam, name string, env []envVar, files map[string]string) map[string]string {
	t.Helper()
	// The same inputs give the same mapping: each distinct one is loaded once.
	key, err := json.Marshal([]any{lib, name, env, files})
	if err != nil {
		t.Fatal(err)
	}
	if m, ok := loaded[string(key)]; ok {
		return m
	}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "DD_") {
			t.Setenv(k, "") // registers the restore of the original value
			if err := os.Unsetenv(k); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, e := range env {
		t.Setenv(e.Name, e.Value)
	}
	dir := t.TempDir()
	for rel, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	cfg := create.NewConfig("datadog", libParam)
	if got := cfg.GetLibType(); got != lib {
		t.Fatalf("config implementation is %q, want %q (does the container set DD_CONF_NODETREEMODEL?)", got, lib)
	}
	setup.InitConfig(cfg)
	cfg.BuildSchema()
	cfg.SetConfigName(name)
	cfg.AddConfigPath(dir)
	// The Agent tolerates a missing config file when none was given on the
	// command line (setupConfig), so does this.
	if err := setup.LoadDatadog(cfg, &secretnoop.SecretNoop{}, setup.SystemProbe().GetEnvVars()); err != nil && !errors.Is(err, model.ErrConfigFileNotFound) {
		t.Fatalf("the Agent's config loading failed: %v", err)
	}
	m := utils.GetMetadataAsTags(cfg).GetPodLabelsAsTags()
	if m == nil {
		m = map[string]string{}
	}
	loaded[string(key)] = m
	return m
}

// loaded caches agentPodLabelsAsTags by its inputs.
var loaded = map[string]map[string]string{}
