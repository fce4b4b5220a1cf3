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

{{- define "previews.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{- define "previews.podSecurity" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  fsGroup: 10001
  seccompProfile: {type: RuntimeDefault}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- /* The one writable place: gunicorn's worker heartbeats, the probes' file, temporary files. */ -}}
{{- define "previews.volumes" -}}
volumes:
  - name: tmp
    emptyDir: {medium: Memory, sizeLimit: 64Mi}
{{- end -}}

{{- define "previews.container" -}}
image: {{ include "previews.image" .root | quote }}
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
{{- if .heartbeat }}
  - name: HEALTH_FILE
    value: /tmp/alive
{{- end }}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities: {drop: ["ALL"]}
volumeMounts:
  - {name: tmp, mountPath: /tmp}
resources:
{{- toYaml .resources | nindent 2 }}
{{- end -}}
