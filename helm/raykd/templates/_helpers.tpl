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

{{/* The image by digest when one is given (immutable), else by tag. */}}
{{- define "raykd.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}
{{- end -}}

{{/* Labels selecting this release's pods of one kind (ray, mlflow, postgresql) in NetworkPolicies. */}}
{{- define "raykd.podKind" -}}
app.kubernetes.io/instance: {{ .root.Release.Name }}
raykd.io/pod-kind: {{ .kind }}
{{- end -}}

{{- define "raykd.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}{{ default (include "raykd.fullname" .) .Values.serviceAccount.name }}
{{- else -}}{{ default "default" .Values.serviceAccount.name }}{{- end -}}
{{- end -}}

{{- define "raykd.mlflowUri" -}}
http://{{ include "raykd.fullname" . }}-mlflow:{{ .Values.mlflow.port }}
{{- end -}}

{{/* Environment of every Ray container: MLflow (and its credentials), storage, offline model loading. The serve
token is not here: only the RayService's pods get it (raykd.serveTokenEnv). */}}
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
{{- include "raykd.objectStoreEnv" . }}
{{- if .Values.mlflow.auth.enabled }}
- name: MLFLOW_TRACKING_USERNAME
  valueFrom:
    secretKeyRef: {name: {{ .Values.mlflow.auth.existingSecret }}, key: username}
- name: MLFLOW_TRACKING_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ .Values.mlflow.auth.existingSecret }}, key: password}
{{- end }}
{{- end -}}

{{/* Run storage on an object store (storage.runs.objectStore): what raykd.storage reads, as the AWS SDKs do. */}}
{{- define "raykd.objectStoreEnv" -}}
{{- $store := .Values.storage.runs.objectStore }}
{{- if $store.uri }}
- name: AWS_DEFAULT_REGION
  value: {{ $store.region | quote }}
{{- if $store.endpoint }}
- name: AWS_ENDPOINT_URL_S3
  value: {{ $store.endpoint | quote }}
{{- end }}
{{- if $store.existingSecret }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef: {name: {{ $store.existingSecret }}, key: AWS_ACCESS_KEY_ID}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef: {name: {{ $store.existingSecret }}, key: AWS_SECRET_ACCESS_KEY}
{{- end }}
{{- end }}
{{- end -}}

{{/* A stage's config with its run storage: on the object store when storage.runs.objectStore.uri is set
(output_dir <uri>/<stage>, teacher <uri>/teacher), as written otherwise. Args: dict root=. stage=NAME config=MAP */}}
{{- define "raykd.stageConfig" -}}
{{- $cfg := deepCopy .config }}
{{- $uri := trimSuffix "/" .root.Values.storage.runs.objectStore.uri }}
{{- if $uri }}
{{- $_ := set $cfg "output_dir" (printf "%s/%s" $uri .stage) }}
{{- if hasKey $cfg "teacher" }}
{{- if kindIs "string" (get $cfg "teacher") }}
{{- $_ := set $cfg "teacher" (printf "%s/teacher" $uri) }}
{{- end }}
{{- end }}
{{- end }}
{{- toYaml $cfg }}
{{- end -}}

{{/* The serve token, for the RayService's pods only; none when anonymous access is allowed explicitly. */}}
{{- define "raykd.serveTokenEnv" -}}
{{- if .Values.serve.auth.existingSecret }}
- name: RAYKD_SERVE_TOKEN
  valueFrom:
    secretKeyRef: {name: {{ .Values.serve.auth.existingSecret }}, key: {{ .Values.serve.auth.key }}}
{{- end }}
{{- end -}}

{{/* The serve token rule, as `raykd serve` applies it: no Secret, no endpoint, unless anonymous access is
explicitly allowed. */}}
{{- define "raykd.checkServeAuth" -}}
{{- if and .Values.serve.enabled (not .Values.serve.auth.existingSecret) (not .Values.serve.auth.allowAnonymous) -}}
{{- fail "serve.auth.existingSecret is empty: create a Secret with the endpoint's bearer token (kubectl create secret generic raykd-serve-token --from-literal=token=$(python -c 'import secrets; print(secrets.token_urlsafe(32))')) and name it here, or set serve.auth.allowAnonymous: true to serve anyone who can reach the endpoint" -}}
{{- end -}}
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
{{- if .Values.storage.runs.existingClaim }}
- name: runs
  persistentVolumeClaim: {claimName: {{ .Values.storage.runs.existingClaim }}}
{{- else if .Values.storage.runs.objectStore.uri }}
- name: runs
  emptyDir: {}
{{- else }}
{{- fail "storage.runs: name a ReadWriteMany claim (existingClaim) or an object store (objectStore.uri)" }}
{{- end }}
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

{{/* A Ray pod template. Args: dict root=. component=NAME resources=... gpus=N nodeSelector tolerations env=MAP
secretEnv=YAML (env entries read from Secrets) */}}
{{- define "raykd.rayPodTemplate" -}}
{{- $root := .root -}}
metadata:
  labels:
    {{- include "raykd.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
    raykd.io/pod-kind: ray
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
        {{- with .secretEnv }}
        {{- . | nindent 8 }}
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
component=NAME workers=LIST env=MAP (extra environment for every pod of this cluster) secretEnv=YAML.
Ray's token authentication is always on (KubeRay `authOptions`): the dashboard and the Jobs API, which runs any
code it is sent, answer only requests carrying the cluster's token. */}}
{{- define "raykd.rayClusterSpec" -}}
{{- $root := .root -}}
rayVersion: {{ $root.Values.rayVersion | quote }}
enableInTreeAutoscaling: true
authOptions:
  mode: token
  {{- with $root.Values.ray.auth.existingSecret }}
  secretName: {{ . }}
  {{- end }}
headGroupSpec:
  rayStartParams:
    {{- toYaml $root.Values.head.rayStartParams | nindent 4 }}
  template:
    {{- include "raykd.rayPodTemplate" (dict "root" $root "component" (printf "%s-head" .component) "resources" $root.Values.head.resources "nodeSelector" $root.Values.head.nodeSelector "tolerations" $root.Values.head.tolerations "env" .env "secretEnv" .secretEnv) | nindent 4 }}
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
      {{- include "raykd.rayPodTemplate" (dict "root" $root "component" (printf "%s-worker" $.component) "resources" .resources "gpus" .gpus "nodeSelector" $nodeSelector "tolerations" .tolerations "env" $.env "secretEnv" $.secretEnv) | nindent 6 }}
  {{- end }}
{{- end }}
{{- end -}}


{{/* The pod that submits a RayJob's entrypoint (KubeRay's K8sJobMode): labelled as a Ray pod of this release, so
the NetworkPolicies let it reach its cluster's head, and as locked down as every other pod. */}}
{{- define "raykd.submitterPodTemplate" -}}
{{- $root := .root -}}
metadata:
  labels:
    {{- include "raykd.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}-submitter
    raykd.io/pod-kind: ray
spec:
  restartPolicy: Never
  serviceAccountName: {{ include "raykd.serviceAccountName" $root }}
  securityContext:
    {{- toYaml $root.Values.podSecurityContext | nindent 4 }}
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: ray-job-submitter
      image: {{ include "raykd.image" $root }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      securityContext:
        {{- toYaml $root.Values.containerSecurityContext | nindent 8 }}
      env:
        - {name: HOME, value: /tmp}
      resources:
        {{- toYaml $root.Values.submitter.resources | nindent 8 }}
      volumeMounts:
        - {name: tmp, mountPath: /tmp}
  volumes:
    - name: tmp
      emptyDir: {}
{{- end -}}
