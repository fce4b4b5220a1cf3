{{- define "previews.name" -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{- define "previews.labels" -}}
app.kubernetes.io/name: gitea-previews
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "previews.env" -}}
{{- $name := include "previews.name" . -}}
{{- range $key, $value := .Values.env }}
- name: {{ $key }}
  value: {{ $value | quote }}
{{- end }}
- name: BUILD_NAMESPACE
  value: {{ .Values.buildNamespace | quote }}
- name: PREVIEW_POD_SECURITY
  value: {{ .Values.podSecurityLevel | quote }}
- name: CONTROLLER_SERVICE_ACCOUNT
  value: {{ printf "%s/%s" .Release.Namespace $name | quote }}
- name: PREVIEW_CLUSTER_ROLE
  value: {{ printf "%s-preview" $name | quote }}
- name: WEB_SERVICE_ACCOUNT
  value: {{ printf "%s/%s-web" .Release.Namespace $name | quote }}
- name: PREVIEW_READER_CLUSTER_ROLE
  value: {{ printf "%s-preview-reader" $name | quote }}
{{- end -}}

{{- define "previews.container" -}}
image: "{{ .root.Values.image.repository }}:{{ .root.Values.image.tag }}"
imagePullPolicy: {{ .root.Values.image.pullPolicy }}
envFrom:
  - secretRef:
      name: {{ required "existingSecret is required" .root.Values.existingSecret }}
  {{- if and .databaseAdmin .root.Values.databaseAdminSecret }}
  - secretRef:
      name: {{ .root.Values.databaseAdminSecret }}
  {{- end }}
env:
{{- include "previews.env" .root | nindent 2 }}
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  allowPrivilegeEscalation: false
  capabilities: {drop: ["ALL"]}
  seccompProfile: {type: RuntimeDefault}
resources:
{{- toYaml .resources | nindent 2 }}
{{- end -}}
