{{/*
Names. With the release name canary-tagger (how manifests/ is rendered) every
object is called as in the kustomize entry points: canary-tagger,
canary-tagger-webhook, ...
*/}}
{{- define "canary-tagger.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 40 | trimSuffix "-" }}
{{- end }}

{{- define "canary-tagger.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The Service the apiserver calls. */}}
{{- define "canary-tagger.webhookService" -}}
{{- include "canary-tagger.fullname" . }}-webhook
{{- end }}

{{/* Labels on every object. */}}
{{- define "canary-tagger.labels" -}}
app.kubernetes.io/name: {{ include "canary-tagger.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: canary-tagger
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{/* The webhook pods. */}}
{{- define "canary-tagger.selectorLabels" -}}
app.kubernetes.io/name: {{ include "canary-tagger.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: webhook
{{- end }}

{{/*
The agent selector, one LabelSelector: settings.agentSelector when it is not
empty, else agent.datadoghq.com/component in (settings.agentComponents). Both
the objectSelector and --agent-selector are rendered from it.
*/}}
{{- define "canary-tagger.agentSelector" -}}
{{- $s := .Values.settings }}
{{- $sel := dict }}
{{- if or $s.agentSelector.matchLabels $s.agentSelector.matchExpressions }}
{{- with $s.agentSelector.matchLabels }}{{ $_ := set $sel "matchLabels" . }}{{ end }}
{{- with $s.agentSelector.matchExpressions }}{{ $_ := set $sel "matchExpressions" . }}{{ end }}
{{- else if $s.agentComponents }}
{{- $_ := set $sel "matchExpressions" (list (dict "key" "agent.datadoghq.com/component" "operator" "In" "values" $s.agentComponents)) }}
{{- end }}
{{- toYaml $sel }}
{{- end }}

{{/*
The agent selector as the server's --agent-selector string: k=v for
matchLabels, "k in (a,b)", "k notin (a,b)", "k", "!k" for matchExpressions
(the syntax of k8s.io/apimachinery/pkg/labels.Parse).
*/}}
{{- define "canary-tagger.agentSelectorFlag" -}}
{{- $sel := include "canary-tagger.agentSelector" . | fromYaml }}
{{- $parts := list }}
{{- range $k, $v := $sel.matchLabels }}
{{- $parts = append $parts (printf "%s=%s" $k $v) }}
{{- end }}
{{- range $sel.matchExpressions }}
{{- if eq .operator "In" }}
{{- $parts = append $parts (printf "%s in (%s)" .key (join "," .values)) }}
{{- else if eq .operator "NotIn" }}
{{- $parts = append $parts (printf "%s notin (%s)" .key (join "," .values)) }}
{{- else if eq .operator "Exists" }}
{{- $parts = append $parts .key }}
{{- else }}
{{- $parts = append $parts (printf "!%s" .key) }}
{{- end }}
{{- end }}
{{- join "," $parts }}
{{- end }}

{{/*
Checks JSON schema cannot express, with a message saying what to change.
*/}}
{{- define "canary-tagger.validate" -}}
{{- $s := .Values.settings }}
{{- if eq $s.stableValue $s.canaryValue }}
{{- fail (printf "settings.stableValue and settings.canaryValue are both %q: stable and canary pods would look the same" $s.stableValue) }}
{{- end }}
{{- if and .Values.agentPods.enabled (eq (include "canary-tagger.agentSelector" .) "{}") }}
{{- fail "settings.agentComponents and settings.agentSelector are both empty: the agent selector would select every pod; list the Datadog components or give a selector of the Datadog Agent pods" }}
{{- end }}
{{- end }}
