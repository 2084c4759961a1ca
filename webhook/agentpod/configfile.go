package agentpod

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/canary-tagger/canary-tagger/webhook/internal/obj"
)

// configFiles are the files the Agent (datadog.yaml) and the Cluster Agent
// (datadog-cluster.yaml) read their settings from.
var configFiles = []string{"/etc/datadog-agent/datadog.yaml", "/etc/datadog-agent/datadog-cluster.yaml"}

// configMount names a volume mount of the container that may put a config
// file in place (the file itself, or a directory above it), from a volume
// other than an emptyDir (the charts' own config directory is one); "" if
// there is none.
func configMount(c map[string]any, volumes map[string]string) string {
	mounts, _, _, _ := obj.List(c, "volumeMounts")
	for _, m := range mounts {
		mm, _ := m.(map[string]any)
		name, _ := mm["name"].(string)
		at, _ := mm["mountPath"].(string)
		kind, known := volumes[name]
		if !known || kind == "emptyDir" || at == "" {
			continue
		}
		at = path.Clean(at)
		for _, f := range configFiles {
			if f == at || strings.HasPrefix(f, strings.TrimSuffix(at, "/")+"/") {
				return fmt.Sprintf("%s volume %q at %s", kind, name, at)
			}
		}
	}
	return ""
}

// volumeKinds maps each named volume of a pod spec to its source
// ("configMap", "secret", "emptyDir", ...). A volume of several sources is
// not valid; it counts as an emptyDir only if it has nothing else, so the
// answer never depends on map order.
func volumeKinds(spec map[string]any) map[string]string {
	kinds := map[string]string{}
	list, _, _, _ := obj.List(spec, "volumes")
	for _, v := range list {
		vm, _ := v.(map[string]any)
		name, _ := vm["name"].(string)
		if name == "" {
			continue
		}
		var sources []string
		for k := range vm {
			if k != "name" && k != "emptyDir" {
				sources = append(sources, k)
			}
		}
		switch {
		case len(sources) > 0:
			slices.Sort(sources)
			kinds[name] = sources[0]
		case hasKey(vm, "emptyDir"):
			kinds[name] = "emptyDir"
		}
	}
	return kinds
}

func hasKey(m map[string]any, k string) bool { _, ok := m[k]; return ok }
