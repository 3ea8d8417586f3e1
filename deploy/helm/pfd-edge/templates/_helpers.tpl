{{/* Chart name. */}}
{{- define "pfd-edge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart, unless the release name already contains the chart name. */}}
{{- define "pfd-edge.fullname" -}}
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

{{- define "pfd-edge.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select this release's pods (Service, PDB, NetworkPolicy, ServiceMonitor). */}}
{{- define "pfd-edge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pfd-edge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "pfd-edge.labels" -}}
helm.sh/chart: {{ include "pfd-edge.chart" . }}
{{ include "pfd-edge.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: {{ include "pfd-edge.runtime" . }}
{{- end }}

{{/* What runs: pfd-host, pfd-host-cuda, spinapp or runtimeclass. */}}
{{- define "pfd-edge.runtime" -}}
{{- if eq .Values.mode "wasm" }}
{{- printf "wasm-%s" .Values.wasm.via }}
{{- else if .Values.gpu.enabled }}
{{- "pfd-host-cuda" }}
{{- else }}
{{- "pfd-host" }}
{{- end }}
{{- end }}

{{- define "pfd-edge.isSpinApp" -}}
{{- if and (eq .Values.mode "wasm") (eq .Values.wasm.via "spinapp") }}true{{ end }}
{{- end }}

{{- define "pfd-edge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "pfd-edge.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository:tag or repository@digest. Call with (dict "image" .Values.x.image "root" .). */}}
{{- define "pfd-edge.imageRef" -}}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) }}
{{- end }}
{{- end }}

{{/* The image the main container runs. */}}
{{- define "pfd-edge.image" -}}
{{- if eq .Values.mode "wasm" }}
{{- include "pfd-edge.imageRef" (dict "image" .Values.wasm.image "root" .) }}
{{- else if .Values.gpu.enabled }}
{{- include "pfd-edge.imageRef" (dict "image" .Values.gpu.image "root" .) }}
{{- else }}
{{- include "pfd-edge.imageRef" (dict "image" .Values.image "root" .) }}
{{- end }}
{{- end }}

{{/* Port the pods listen on: pfd-host 3000; Spin under the shim wherever SPIN_HTTP_LISTEN_ADDR
says (the spin-operator sets 0.0.0.0:80 for SpinApps). */}}
{{- define "pfd-edge.containerPort" -}}
{{- if include "pfd-edge.isSpinApp" . }}80{{ else if eq .Values.mode "wasm" }}{{ .Values.wasm.containerPort }}{{ else }}3000{{ end }}
{{- end }}

{{/* Port of the Service in front of the pods (the spin-operator's Service listens on 80). */}}
{{- define "pfd-edge.servicePort" -}}
{{- if include "pfd-edge.isSpinApp" . }}80{{ else }}{{ .Values.service.port }}{{ end }}
{{- end }}

{{- define "pfd-edge.apiKeySecretName" -}}
{{- if .Values.apiKey.existingSecret }}
{{- .Values.apiKey.existingSecret }}
{{- else if .Values.apiKey.value }}
{{- printf "%s-api-key" (include "pfd-edge.fullname" .) }}
{{- end }}
{{- end }}

{{/* Resources, with the GPU limit added in GPU mode. */}}
{{- define "pfd-edge.resources" -}}
{{- $res := deepCopy .Values.resources }}
{{- if and (eq .Values.mode "native") .Values.gpu.enabled }}
{{- $limits := default (dict) $res.limits }}
{{- $_ := set $limits .Values.gpu.resourceName (.Values.gpu.count | int) }}
{{- $_ := set $res "limits" $limits }}
{{- end }}
{{- toYaml $res }}
{{- end }}
