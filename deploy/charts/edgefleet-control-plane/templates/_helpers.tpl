{{- define "edgefleet-control-plane.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "edgefleet-control-plane.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "edgefleet-control-plane.labels" -}}
{{ include "edgefleet-control-plane.selectorLabels" . }}
app.kubernetes.io/part-of: edgefleet
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{- define "edgefleet-control-plane.secretName" -}}
{{- .Values.existingSecret | default (include "edgefleet-control-plane.fullname" .) }}
{{- end }}

{{/*
control-plane.yaml: `config` with what the chart decides itself. Keys that hold secrets are refused here, so
they cannot end up in a ConfigMap by mistake.
*/}}
{{- define "edgefleet-control-plane.config" -}}
{{- $config := deepCopy .Values.config }}
{{- $secretKeys := dict
  "database_url" "secrets.databaseUrl"
  "encryption_key" "secrets.encryptionKey"
  "encryption_key_file" "secrets.encryptionKey"
  "admin_token" "secrets.adminToken" }}
{{- range $key, $instead := $secretKeys }}
{{- if hasKey $config $key }}
{{- fail (printf "config.%s holds a secret: set %s (or existingSecret) instead" $key $instead) }}
{{- end }}
{{- end }}
{{- range $key := list "url" "password" }}
{{- if hasKey ($config.clickhouse | default dict) $key }}
{{- fail (printf "config.clickhouse.%s holds a secret: set secrets.clickhouse%s (or existingSecret) instead" $key (title $key)) }}
{{- end }}
{{- end }}
{{- range $key := list "api_listen" "agent_listen" "task_signing" }}
{{- if hasKey $config $key }}
{{- fail (printf "config.%s is set by the chart (ports: service.*; the key: secrets.taskSigningKey)" $key) }}
{{- end }}
{{- end }}
{{- $endpoint := required "config.agent_endpoint is required: the https://host:port agents dial" $config.agent_endpoint }}
{{- if not $config.agent_tls_names }}
{{- $_ := set $config "agent_tls_names" (list (urlParse $endpoint).hostname) }}
{{- end }}
{{- $_ := set $config "api_listen" "0.0.0.0:8080" }}
{{- $_ := set $config "agent_listen" "0.0.0.0:8443" }}
{{- with $config.provisioning }}
{{- $defaults := dict "source_dir" "/opt/edgefleet" "work_dir" "/var/lib/edgefleet/terraform" }}
{{- $state := .state | default dict }}
{{- if or (hasKey $state "access_key_id") (hasKey $state "secret_access_key") }}
{{- fail "config.provisioning.state's keys are secrets: set secrets.s3AccessKeyId and secrets.s3SecretAccessKey (or existingSecret) instead" }}
{{- end }}
{{- $_ := set $config "provisioning" (merge . $defaults) }}
{{- end }}
{{- toYaml $config }}
{{- end }}
