{{- define "raykd.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "raykd.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "raykd.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}

{{- define "raykd.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}{{ default (include "raykd.fullname" .) .Values.serviceAccount.name }}
{{- else -}}{{ default "default" .Values.serviceAccount.name }}{{- end -}}
{{- end -}}

{{- define "raykd.mlflowUri" -}}
http://{{ include "raykd.fullname" . }}-mlflow:{{ .Values.mlflow.port }}
{{- end -}}

{{/* Environment of every Ray container: MLflow, storage, offline model loading, and the serve token. */}}
{{- define "raykd.rayEnv" -}}
- name: MLFLOW_TRACKING_URI
  value: {{ include "raykd.mlflowUri" . | quote }}
- name: RAYKD_HOME
  value: /runs
- name: RAYKD_DATA_DIR
  value: /data
- name: HOME
  value: /home/ray
{{- if .Values.storage.modelCache.existingClaim }}
- name: HF_HOME
  value: /models
{{- end }}
{{- range $k, $v := .Values.env }}
- name: {{ $k }}
  value: {{ $v | quote }}
{{- end }}
{{- if and .Values.serve.enabled .Values.serve.auth.existingSecret }}
- name: RAYKD_SERVE_TOKEN
  valueFrom:
    secretKeyRef: {name: {{ .Values.serve.auth.existingSecret }}, key: {{ .Values.serve.auth.key }}}
{{- end }}
{{- end -}}

{{- define "raykd.rayVolumeMounts" -}}
- {name: data, mountPath: /data, readOnly: true}
- {name: runs, mountPath: /runs}
- {name: tmp, mountPath: /tmp}
- {name: home, mountPath: /home/ray}
- {name: shm, mountPath: /dev/shm}
- {name: configs, mountPath: /etc/raykd, readOnly: true}
{{- if .Values.storage.modelCache.existingClaim }}
- {name: models, mountPath: /models, readOnly: true}
{{- end }}
{{- end -}}

{{- define "raykd.rayVolumes" -}}
- name: data
  persistentVolumeClaim: {claimName: {{ .Values.storage.data.existingClaim }}, readOnly: true}
- name: runs
  persistentVolumeClaim: {claimName: {{ .Values.storage.runs.existingClaim }}}
- name: tmp
  emptyDir: {}
- name: home
  emptyDir: {}
- name: shm
  emptyDir: {medium: Memory}
- name: configs
  configMap: {name: {{ include "raykd.fullname" . }}-configs}
{{- if .Values.storage.modelCache.existingClaim }}
- name: models
  persistentVolumeClaim: {claimName: {{ .Values.storage.modelCache.existingClaim }}, readOnly: true}
{{- end }}
{{- end -}}

{{/* A Ray pod template. Args: dict root=. component=NAME resources=... gpus=N nodeSelector tolerations env=MAP */}}
{{- define "raykd.rayPodTemplate" -}}
{{- $root := .root -}}
metadata:
  labels:
    {{- include "raykd.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
    raykd.io/mlflow-client: "true"
spec:
  serviceAccountName: {{ include "raykd.serviceAccountName" $root }}
  securityContext:
    {{- toYaml $root.Values.podSecurityContext | nindent 4 }}
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: ray
      image: {{ include "raykd.image" $root }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      securityContext:
        {{- toYaml $root.Values.containerSecurityContext | nindent 8 }}
      env:
        {{- include "raykd.rayEnv" $root | nindent 8 }}
        {{- range $k, $v := .env }}
        - name: {{ $k }}
          value: {{ $v | quote }}
        {{- end }}
      resources:
        requests:
          {{- toYaml .resources.requests | nindent 10 }}
          {{- if .gpus }}
          nvidia.com/gpu: {{ .gpus }}
          {{- end }}
        limits:
          {{- toYaml .resources.limits | nindent 10 }}
          {{- if .gpus }}
          nvidia.com/gpu: {{ .gpus }}
          {{- end }}
      volumeMounts:
        {{- include "raykd.rayVolumeMounts" $root | nindent 8 }}
  volumes:
    {{- include "raykd.rayVolumes" $root | nindent 4 }}
{{- end -}}

{{/* A RayCluster spec (head + GPU worker groups); used by RayJob, RayCluster and RayService. Args: dict root=.
component=NAME workers=LIST env=MAP (extra environment for every pod of this cluster) */}}
{{- define "raykd.rayClusterSpec" -}}
{{- $root := .root -}}
rayVersion: {{ $root.Values.rayVersion | quote }}
enableInTreeAutoscaling: true
headGroupSpec:
  rayStartParams:
    {{- toYaml $root.Values.head.rayStartParams | nindent 4 }}
  template:
    {{- include "raykd.rayPodTemplate" (dict "root" $root "component" (printf "%s-head" .component) "resources" $root.Values.head.resources "nodeSelector" $root.Values.head.nodeSelector "tolerations" $root.Values.head.tolerations "env" .env) | nindent 4 }}
workerGroupSpecs:
{{- if .workers }}
  {{- range .workers }}
  - groupName: {{ .groupName }}
    replicas: {{ .replicas }}
    minReplicas: {{ .minReplicas }}
    maxReplicas: {{ .maxReplicas }}
    rayStartParams:
      {{- $params := deepCopy (default dict .rayStartParams) }}
      {{- if .gpus }}{{- $_ := set $params "num-gpus" (toString .gpus) }}{{- end }}
      {{- toYaml $params | nindent 6 }}
    template:
      {{- $nodeSelector := deepCopy (default dict .nodeSelector) }}
      {{- if .gpuProduct }}{{- $_ := set $nodeSelector "nvidia.com/gpu.product" .gpuProduct }}{{- end }}
      {{- include "raykd.rayPodTemplate" (dict "root" $root "component" (printf "%s-worker" $.component) "resources" .resources "gpus" .gpus "nodeSelector" $nodeSelector "tolerations" .tolerations "env" $.env) | nindent 6 }}
  {{- end }}
{{- end }}
{{- end -}}
