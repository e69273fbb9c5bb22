{{/* Chart name, overridable. */}}
{{- define "tooljet-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name, with the chart name appended unless the release name has it. */}}
{{- define "tooljet-operator.fullname" -}}
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

{{- define "tooljet-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tooljet-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tooljet-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "tooljet-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tooljet-operator
{{- end }}

{{- define "tooljet-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tooljet-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* "true" when leader election is on: explicitly, or by default with more than one replica. */}}
{{- define "tooljet-operator.leaderElect" -}}
{{- $enabled := .Values.leaderElection.enabled }}
{{- if kindIs "invalid" $enabled }}
{{- $enabled = gt (int .Values.replicas) 1 }}
{{- end }}
{{- if and (not $enabled) (gt (int .Values.replicas) 1) }}
{{- fail "replicas > 1 needs leaderElection.enabled (two operators without a leader would fight over every object)" }}
{{- end }}
{{- ternary "true" "" $enabled }}
{{- end }}

{{- define "tooljet-operator.leaseNamespace" -}}
{{- default .Release.Namespace .Values.leaderElection.namespace }}
{{- end }}

{{/* Namespace of the environment's objects: the watched namespace, else the release's. */}}
{{- define "tooljet-operator.envNamespace" -}}
{{- default .Release.Namespace .Values.watchNamespace }}
{{- end }}

{{- define "tooljet-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Annotations of the environment's objects. */}}
{{- define "tooljet-operator.envAnnotations" -}}
{{- $ann := dict }}
{{- if .root.Values.keepOnUninstall }}
{{- $_ := set $ann "helm.sh/resource-policy" "keep" }}
{{- end }}
{{- with .obj.annotations }}
{{- $ann = merge $ann . }}
{{- end }}
{{- with $ann }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
