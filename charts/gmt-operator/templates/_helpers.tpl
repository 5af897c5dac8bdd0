{{- define "gmt-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "gmt-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "gmt-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gmt-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "gmt-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "gmt-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: gmt-operator
{{- end }}

{{- define "gmt-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "gmt-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The NATS URL the operator and (by default) the workers use. */}}
{{- define "gmt-operator.natsUrl" -}}
{{- if .Values.nats.inCluster.enabled }}
{{- printf "nats://%s-nats.%s.svc:%d" (include "gmt-operator.fullname" .) .Release.Namespace (int .Values.nats.inCluster.port) }}
{{- else if .Values.nats.external.url }}
{{- .Values.nats.external.url }}
{{- else }}
{{- fail "nats: set nats.inCluster.enabled=true or nats.external.url" }}
{{- end }}
{{- end }}

{{- define "gmt-operator.natsSecretName" -}}
{{- if .Values.nats.external.existingSecret }}
{{- .Values.nats.external.existingSecret }}
{{- else if .Values.nats.external.credentials }}
{{- printf "%s-nats-creds" (include "gmt-operator.fullname" .) }}
{{- end }}
{{- end }}

{{- define "gmt-operator.monitoring" -}}
{{- if .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" }}true{{ end }}
{{- end }}

{{/* Whether the in-cluster NATS runs in operator mode with per-job identities. */}}
{{- define "gmt-operator.natsAuth" -}}
{{- if and .Values.nats.inCluster.enabled (not .Values.nats.insecureNoAuth) }}true{{ end }}
{{- end }}

{{/* Whether clients talk TLS to the in-cluster NATS. */}}
{{- define "gmt-operator.natsTls" -}}
{{- if and .Values.nats.inCluster.enabled .Values.nats.inCluster.tls.enabled }}
{{- if not .Values.nats.inCluster.tls.secretName }}{{ fail "nats.inCluster.tls.secretName: required when nats.inCluster.tls.enabled" }}{{ end }}true
{{- end }}
{{- end }}
