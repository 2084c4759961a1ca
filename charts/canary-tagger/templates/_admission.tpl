{{/*
Which parts of canary-tagger are installed (rollouts.admission, agentPods.enabled).
Each helper renders "true" or nothing, for `if include ...`.
*/}}

{{/* The Rollout webhook (rollouts.canary-tagger.io): rollouts.admission=webhook. */}}
{{- define "canary-tagger.rolloutWebhook" -}}
{{- if eq .Values.rollouts.admission "webhook" }}true{{ end }}
{{- end }}

{{/* The Rollout policies (Mutating- and ValidatingAdmissionPolicy): rollouts.admission=policy. */}}
{{- define "canary-tagger.rolloutPolicy" -}}
{{- if eq .Values.rollouts.admission "policy" }}true{{ end }}
{{- end }}

{{/*
The server (Deployment, Services, ServiceAccount, TLS, PDB, NetworkPolicy,
webhook configuration): needed while it has a webhook to serve.
*/}}
{{- define "canary-tagger.server" -}}
{{- if or (include "canary-tagger.rolloutWebhook" .) .Values.agentPods.enabled }}true{{ end }}
{{- end }}

{{/*
The namespaces whose Rollouts are labelled (contract 4), one LabelSelector for
the Rollout webhook's namespaceSelector and the policy bindings'.
*/}}
{{- define "canary-tagger.rolloutNamespaceSelector" -}}
{{- if eq .Values.mode "opt-in" -}}
# Namespace opt-in: only namespaces labelled canary-tagger.io/inject=enabled.
matchLabels:
  canary-tagger.io/inject: enabled
{{- else -}}
# Cluster-wide: all but the system namespaces, our own and opted-out ones.
matchExpressions:
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values: [kube-system, kube-public, kube-node-lease, {{ .Release.Namespace }}]
  - key: canary-tagger.io/inject
    operator: NotIn
    values: [disabled]
{{- end }}
{{- end }}

{{/*
The label key as a CEL string literal (a JSON string is one; label keys hold
no character that needs escaping in either).
*/}}
{{- define "canary-tagger.celKey" -}}
{{- .Values.settings.labelKey | toJson }}
{{- end }}

{{/*
The Rollouts both policies look at (contract 2.1), as matchConditions: not
being deleted, not opted out, a canary with steps (or, with
settings.blueGreen, a blue-green Rollout). `object.spec.?a.?b` reads a field
that may be absent without an error.
*/}}
{{- define "canary-tagger.rolloutScope" -}}
- name: not-being-deleted
  expression: '!has(object.metadata.deletionTimestamp)'
- name: not-opted-out
  expression: 'object.metadata.?annotations[?"canary-tagger.io/inject"].orValue("") != "false"'
{{- if .Values.settings.blueGreen }}
- name: canary-with-steps-or-blue-green
  expression: >-
    object.spec.?strategy.?canary.hasValue()
    ? size(object.spec.strategy.canary.?steps.orValue([])) > 0
    : object.spec.?strategy.?blueGreen.hasValue()
{{- else }}
- name: canary-with-steps
  expression: 'size(object.spec.?strategy.?canary.?steps.orValue([])) > 0'
{{- end }}
{{- end }}

{{/* The CREATE and UPDATE of Rollouts (never rollouts/status), as matchConstraints. */}}
{{- define "canary-tagger.rolloutRequests" -}}
matchPolicy: Equivalent
resourceRules:
  - apiGroups: [argoproj.io]
    apiVersions: ["*"]
    operations: [CREATE, UPDATE]
    resources: [rollouts]
    scope: Namespaced
{{- end }}
