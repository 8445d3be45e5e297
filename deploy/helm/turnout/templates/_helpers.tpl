{{/* Names and labels shared by every object of the chart. */}}

{{- define "turnout.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "turnout.fullname" -}}
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

{{- define "turnout.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "turnout.selectorLabels" -}}
app.kubernetes.io/name: {{ include "turnout.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "turnout.labels" -}}
helm.sh/chart: {{ include "turnout.chart" . }}
{{ include "turnout.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "turnout.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "turnout.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "turnout.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The environment of the gateway and of the migration Job: the config file's path, the
secrets (every key of each), then the plain variables. */}}
{{- define "turnout.envFrom" -}}
{{- if .Values.secretEnv }}
- secretRef:
    name: {{ include "turnout.fullname" . }}-env
{{- end }}
{{- range .Values.envFromSecrets }}
- secretRef:
    name: {{ . }}
{{- end }}
{{- end }}

{{- define "turnout.env" -}}
- name: TURNOUT_CONFIG
  value: /etc/turnout/turnout.yaml
- name: TURNOUT_PORT
  value: {{ .Values.containerPort | quote }}
- name: TURNOUT_SHUTDOWN_GRACE_PERIOD
  value: {{ .Values.shutdown.gracePeriodSeconds | quote }}
- name: TURNOUT_SHUTDOWN_TIMEOUT
  value: {{ .Values.shutdown.timeoutSeconds | quote }}
{{- with .Values.env }}
{{ toYaml . }}
{{- end }}
{{- end }}
