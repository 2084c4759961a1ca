package agentpod

import (
	"encoding/json"
	"strings"
)

// resourcesMapping returns the key and tag of the resources variable's pod
// mapping of key, if the env list sets that variable and it has one.
func resourcesMapping(env []any, key string) (string, string) {
	var value string
	for _, e := range env {
		if em, _ := e.(map[string]any); em["name"] == ResourcesEnvName {
			value, _ = em["value"].(string)
		}
	}
	return ResourcesMapping(value, key)
}

// ResourcesMapping returns the key and tag of the pod mapping of key in a
// DD_KUBERNETES_RESOURCES_LABELS_AS_TAGS value, if it has one (compared
// without case, and "pods." as "pods", as the Agent does).
// A value the Agent cannot parse maps nothing.
func ResourcesMapping(value, key string) (string, string) {
	var resources map[string]map[string]string
	if value == "" || json.Unmarshal([]byte(value), &resources) != nil {
		return "", ""
	}
	for kind, labels := range resources {
		if !strings.EqualFold(strings.TrimSuffix(kind, "."), "pods") {
			continue
		}
		for k, tag := range labels {
			if strings.EqualFold(k, key) {
				return k, tag
			}
		}
	}
	return "", ""
}
