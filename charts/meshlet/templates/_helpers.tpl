{{/* Chart name, truncated for label values. */}}
{{- define "meshlet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{/* <release>-<chart>, or the release name when it already contains the chart name. */}}
{{- define "meshlet.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "meshlet.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "meshlet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "meshlet.agentSelector" -}}
app.kubernetes.io/name: {{ include "meshlet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: agent
{{- end -}}

{{- define "meshlet.controllerSelector" -}}
app.kubernetes.io/name: {{ include "meshlet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}

{{- define "meshlet.agentServiceAccount" -}}
{{- default (printf "%s-agent" (include "meshlet.fullname" .)) .Values.agent.serviceAccount.name -}}
{{- end -}}

{{- define "meshlet.controllerServiceAccount" -}}
{{- default (printf "%s-controller" (include "meshlet.fullname" .)) .Values.controller.serviceAccount.name -}}
{{- end -}}

{{- define "meshlet.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The admin endpoint of a config, with the agent's defaults (127.0.0.1:15090). */}}
{{- define "meshlet.adminPort" -}}
{{- $admin := .admin | default dict -}}
{{- $admin.port | default 15090 -}}
{{- end -}}

{{/* The Secret holding the witness key (agents sign reports, the controller verifies them). */}}
{{- define "meshlet.witnessKeySecret" -}}
{{- default (printf "%s-witness-key" (include "meshlet.fullname" .)) .Values.witness.keySecret.name -}}
{{- end -}}
