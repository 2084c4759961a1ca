module github.com/canary-tagger/canary-tagger/test/agentconfig

go 1.26.0

replace github.com/canary-tagger/canary-tagger => ../..

require (
	github.com/DataDog/datadog-agent/comp/core/secrets/noop-impl v0.77.0
	github.com/DataDog/datadog-agent/pkg/config/create v0.77.0
	github.com/DataDog/datadog-agent/pkg/config/model v0.77.0
	github.com/DataDog/datadog-agent/pkg/config/setup v0.77.0
	github.com/DataDog/datadog-agent/pkg/config/utils v0.77.0
	github.com/canary-tagger/canary-tagger v0.0.0-00010101000000-000000000000
	github.com/evanphx/json-patch/v5 v5.9.11
	k8s.io/apimachinery v0.37.2
	sigs.k8s.io/yaml v1.6.0
)

require (
	github.com/DataDog/datadog-agent/comp/core/secrets/def v0.77.0 // indirect
	github.com/DataDog/datadog-agent/pkg/collector/check/defaults v0.77.0 // indirect
	github.com/DataDog/datadog-agent/pkg/config/basic v0.77.0 // indirect
	github.com/DataDog/datadog-agent/pkg/config/env v0.77.0 // indirect
	github.com/DataDog/datadog-agent/pkg/config/helper v0.77.0 // indirect
	github.com/DataDog/datadog-agent/pkg/config/nodetreemodel v0.77.0 // indirect
	github.com/DataDog/datadog-agent/pkg/config/structure v0.77.0 // indirect
	github.com/DataDog/datadog-agent/pkg/config/teeconfig v0.77.0 // indirect
	github.com/DataDog/datadog-agent/pkg/config/viperconfig v0.77.0 // indirect
	github.com/DataDog/datadog-agent/pkg/fips v0.77.0 // indirect
	github.com/DataDog/datadog-agent/pkg/template v0.77.0 // indirect
	github.com/DataDog/datadog-agent/pkg/util/executable v0.77.0 // indirect
	github.com/DataDog/datadog-agent/pkg/util/filesystem v0.77.0 // indirect
	github.com/DataDog/datadog-agent/pkg/util/log v0.77.0 // indirect
	github.com/DataDog/datadog-agent/pkg/util/pointer v0.77.0 // indirect
	github.com/DataDog/datadog-agent/pkg/util/scrubber v0.77.0 // indirect
	github.com/DataDog/datadog-agent/pkg/util/system v0.77.0 // indirect
	github.com/DataDog/datadog-agent/pkg/util/winutil v0.77.0 // indirect
	github.com/DataDog/datadog-agent/pkg/version v0.77.0 // indirect
	github.com/DataDog/viper v1.15.0 // indirect
	github.com/Microsoft/go-winio v0.6.2 // indirect
	github.com/ebitengine/purego v0.9.1 // indirect
	github.com/fsnotify/fsnotify v1.9.0 // indirect
	github.com/go-logr/logr v1.4.3 // indirect
	github.com/go-ole/go-ole v1.3.0 // indirect
	github.com/go-openapi/jsonpointer v1.0.0 // indirect
	github.com/go-viper/mapstructure/v2 v2.5.0 // indirect
	github.com/gofrs/flock v0.13.0 // indirect
	github.com/hectane/go-acl v0.0.0-20230122075934-ca0b05cb1adb // indirect
	github.com/lufia/plan9stats v0.0.0-20251013123823-9fd1530e3ec3 // indirect
	github.com/magiconair/properties v1.8.10 // indirect
	github.com/mdlayher/socket v0.5.1 // indirect
	github.com/mdlayher/vsock v1.2.1 // indirect
	github.com/mohae/deepcopy v0.0.0-20170929034955-c48cc78d4826 // indirect
	github.com/pelletier/go-toml v1.9.5 // indirect
	github.com/power-devops/perfstat v0.0.0-20240221224432-82ca36839d55 // indirect
	github.com/shirou/gopsutil/v4 v4.26.1 // indirect
	github.com/spf13/cast v1.10.0 // indirect
	github.com/spf13/jwalterweatherman v1.1.0 // indirect
	github.com/spf13/pflag v1.0.10 // indirect
	github.com/tklauser/go-sysconf v0.3.16 // indirect
	github.com/tklauser/numcpus v0.11.0 // indirect
	github.com/yusufpapurcu/wmi v1.2.4 // indirect
	go.uber.org/atomic v1.11.0 // indirect
	go.yaml.in/yaml/v2 v2.4.4 // indirect
	go.yaml.in/yaml/v3 v3.0.6 // indirect
	golang.org/x/net v0.59.0 // indirect
	golang.org/x/sync v0.23.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
	golang.org/x/text v0.42.0 // indirect
	golang.org/x/time v0.15.0 // indirect
	gomodules.xyz/jsonpatch/v2 v2.5.0 // indirect
	gopkg.in/yaml.v2 v2.4.0 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
	k8s.io/klog/v2 v2.140.0 // indirect
	k8s.io/utils v0.0.0-20260626114624-be93311217bd // indirect
	sigs.k8s.io/json v0.0.0-20250730193827-2d320260d730 // indirect
)
