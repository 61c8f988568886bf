{{/* The student stages' values: `tune` and `distill`, with the deprecated `distill.stage` form mapped. */}}
{{- define "raykd.tuneValues" -}}
{{- if eq (.Values.distill.stage | default "") "tune" -}}
{{- toYaml (merge (dict "enabled" true) (omit .Values.distill "stage") .Values.tune) -}}
{{- else -}}
{{- toYaml .Values.tune -}}
{{- end -}}
{{- end -}}

{{- define "raykd.distillValues" -}}
{{- if .Values.distill.stage -}}
{{- if not (has .Values.distill.stage (list "tune" "distill")) -}}
{{- fail "distill.stage (deprecated) must be tune or distill; use tune.enabled / distill.enabled" -}}
{{- end -}}
{{- toYaml (merge (dict "enabled" (eq .Values.distill.stage "distill")) (omit .Values.distill "stage")) -}}
{{- else -}}
{{- toYaml .Values.distill -}}
{{- end -}}
{{- end -}}

{{/* A student stage's RayJob. Args: dict root=. stage=tune|distill values=MAP */}}
{{- define "raykd.studentJob" -}}
{{- $root := .root -}}
{{- $v := .values -}}
apiVersion: ray.io/v1
kind: RayJob
metadata:
  name: {{ include "raykd.fullname" $root }}-{{ .stage }}
  labels:
    {{- include "raykd.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .stage }}
spec:
  entrypoint: python jobs/{{ .stage }}.py --config /etc/raykd/{{ .stage }}.yaml
  shutdownAfterJobFinishes: {{ $v.shutdownAfterJobFinishes }}
  ttlSecondsAfterFinished: {{ $v.ttlSecondsAfterFinished }}
  activeDeadlineSeconds: {{ $v.activeDeadlineSeconds }}
  backoffLimit: {{ $v.backoffLimit }}
  submitterPodTemplate:
    {{- include "raykd.submitterPodTemplate" (dict "root" $root "component" .stage) | nindent 4 }}
  rayClusterSpec:
    {{- include "raykd.rayClusterSpec" (dict "root" $root "component" .stage "workers" (list (dict "groupName" "cpu" "replicas" $v.workers.replicas "minReplicas" $v.workers.minReplicas "maxReplicas" $v.workers.maxReplicas "gpus" 0 "resources" $v.workers.resources))) | nindent 4 }}
{{- end -}}
