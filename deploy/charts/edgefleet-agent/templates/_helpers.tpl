{{/*
The agent's namespace is fixed, not the release's: the apply policy protects it by name
(protocol/src/policy.rs, AGENT_NAMESPACE) and the admission policy names the service account in it.
*/}}
{{- define "edgefleet-agent.namespace" -}}
edgefleet-system
{{- end }}

{{/*
The install manifest's labels, and no others: the chart renders the same objects as the API's manifest.
*/}}
{{- define "edgefleet-agent.labels" -}}
app.kubernetes.io/name: edgefleet-agent
app.kubernetes.io/part-of: edgefleet
{{- end }}

{{- define "edgefleet-agent.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "edgefleet-agent.endpoint" -}}
{{ required "controlPlane.endpoint is required: the agent endpoint, https://host:port" .Values.controlPlane.endpoint }}
{{- end }}

{{/*
The kinds the apply policy lets tasks apply (protocol/src/policy.rs: OPERATOR_KINDS, then ADMIN_KINDS), as RBAC
resources by API group, in the order install.rs lists them (groups sorted, kinds in the policy's order). The
ClusterRole grants exactly these, and the admission policy watches exactly these.
*/}}
{{- define "edgefleet-agent.managedKinds" -}}
"": [namespaces, configmaps, services, serviceaccounts, persistentvolumeclaims, resourcequotas, limitranges]
apps: [deployments, statefulsets, daemonsets]
autoscaling: [horizontalpodautoscalers]
batch: [jobs, cronjobs]
networking.k8s.io: [ingresses, networkpolicies]
policy: [poddisruptionbudgets]
{{- end }}
