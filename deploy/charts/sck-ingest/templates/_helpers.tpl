{{/* Names, labels and shared pod-spec pieces of the services. */}}

{{- define "sck-ingest.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sck-ingest.fullname" -}}
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

{{- define "sck-ingest.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object; pass (dict "ctx" $ "component" "bridge") or just $. */}}
{{- define "sck-ingest.labels" -}}
{{- $ctx := .ctx | default . -}}
helm.sh/chart: {{ include "sck-ingest.chart" $ctx }}
{{ include "sck-ingest.selectorLabels" . }}
app.kubernetes.io/version: {{ $ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $ctx.Release.Service }}
app.kubernetes.io/part-of: sck-ingest
{{- with $ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "sck-ingest.selectorLabels" -}}
{{- $ctx := .ctx | default . -}}
app.kubernetes.io/name: {{ include "sck-ingest.name" $ctx }}
app.kubernetes.io/instance: {{ $ctx.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end }}

{{- define "sck-ingest.componentName" -}}
{{- printf "%s-%s" (include "sck-ingest.fullname" .ctx | trunc 50 | trimSuffix "-") .component }}
{{- end }}

{{- define "sck-ingest.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sck-ingest.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "sck-ingest.secretName" -}}
{{- default (include "sck-ingest.fullname" .) .Values.auth.existingSecret }}
{{- end }}

{{- define "sck-ingest.image" -}}
{{- printf "%s:%s" .image.repository (default .ctx.Chart.AppVersion .image.tag) }}
{{- end }}

{{/* A Secret key as an env var. Optional: an existing Secret may omit it (then it is unset). */}}
{{- define "sck-ingest.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ include "sck-ingest.secretName" .ctx }}
      key: {{ .key }}
      optional: true
{{- end }}

{{/* Decoder replica ceiling: autoscaling.maxReplicas capped at the partition count. */}}
{{- define "sck-ingest.decoderMaxReplicas" -}}
{{- $max := int .Values.decoder.autoscaling.maxReplicas }}
{{- $parts := int .Values.kafka.partitions }}
{{- if or (eq $max 0) (gt $max $parts) }}{{ $parts }}{{ else }}{{ $max }}{{ end }}
{{- end }}

{{/* Soft spread over zones and nodes unless the user set topologySpreadConstraints. */}}
{{- define "sck-ingest.topologySpread" -}}
{{- $svc := index .ctx.Values .component -}}
{{- if kindIs "slice" $svc.topologySpreadConstraints }}
{{- with $svc.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- else }}
topologySpreadConstraints:
  {{- range list "topology.kubernetes.io/zone" "kubernetes.io/hostname" }}
  - maxSkew: 1
    topologyKey: {{ . }}
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "sck-ingest.selectorLabels" $ | nindent 8 }}
  {{- end }}
{{- end }}
{{- end }}

{{/* Scheduling, security and identity shared by the pod specs. */}}
{{- define "sck-ingest.podCommon" -}}
{{- $svc := index .ctx.Values .component -}}
serviceAccountName: {{ include "sck-ingest.serviceAccountName" .ctx }}
automountServiceAccountToken: false
terminationGracePeriodSeconds: {{ $svc.terminationGracePeriodSeconds }}
securityContext:
  {{- toYaml .ctx.Values.podSecurityContext | nindent 2 }}
{{- with .ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $svc.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with $svc.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $svc.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $svc.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{ include "sck-ingest.topologySpread" . }}
{{- end }}

{{/* Pod annotations: checksums (roll pods on config change) and scrape annotations. */}}
{{- define "sck-ingest.podAnnotations" -}}
{{- $svc := index .ctx.Values .component -}}
checksum/config: {{ include (print .ctx.Template.BasePath "/configmap.yaml") .ctx | sha256sum }}
{{- if not .ctx.Values.auth.existingSecret }}
checksum/secret: {{ include (print .ctx.Template.BasePath "/secret.yaml") .ctx | sha256sum }}
{{- end }}
{{- if and .ctx.Values.monitoring.scrapeAnnotations (not .ctx.Values.monitoring.serviceMonitor.enabled) }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .ctx.Values.metricsPort | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- with $svc.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Container pieces shared by the services: port, probes, security, resources. */}}
{{- define "sck-ingest.containerCommon" -}}
{{- $svc := index .ctx.Values .component -}}
image: {{ include "sck-ingest.image" (dict "ctx" .ctx "image" $svc.image) }}
imagePullPolicy: {{ $svc.image.pullPolicy }}
ports:
  - name: http-metrics
    containerPort: {{ .ctx.Values.metricsPort }}
    protocol: TCP
startupProbe:
  httpGet: { path: /healthz, port: http-metrics }
  periodSeconds: 2
  failureThreshold: 30
livenessProbe:
  httpGet: { path: /healthz, port: http-metrics }
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet: { path: /readyz, port: http-metrics }
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 2
securityContext:
  {{- toYaml .ctx.Values.securityContext | nindent 2 }}
resources:
  {{- toYaml $svc.resources | nindent 2 }}
{{- end }}

{{/* Fails rendering when a grace period would cut a drain short. */}}
{{- define "sck-ingest.checkGrace" -}}
{{- $svc := index .ctx.Values .component -}}
{{- if le (int $svc.terminationGracePeriodSeconds) (int $svc.drainTimeoutSecs) }}
{{- fail (printf "%s.terminationGracePeriodSeconds (%v) must exceed %s.drainTimeoutSecs (%v)" .component $svc.terminationGracePeriodSeconds .component $svc.drainTimeoutSecs) }}
{{- end }}
{{- end }}

{{/* Kafka settings the services share (ConfigMap data lines). */}}
{{- define "sck-ingest.kafkaSettings" -}}
{{- $k := .Values.kafka -}}
KAFKA_BROKERS: {{ $k.brokers | quote }}
KAFKA_READINGS_TOPIC: {{ $k.topics.readings | quote }}
KAFKA_EVENTS_TOPIC: {{ $k.topics.events | quote }}
KAFKA_DLQ_TOPIC: {{ $k.topics.deadLetter | quote }}
KAFKA_SECURITY_PROTOCOL: {{ $k.security.protocol | quote }}
{{- if hasPrefix "sasl_" $k.security.protocol }}
KAFKA_SASL_MECHANISM: {{ required "kafka.security.saslMechanism is required with a sasl_* protocol" $k.security.saslMechanism | quote }}
{{- end }}
{{- if and (hasSuffix "ssl" $k.security.protocol) $k.security.caSecret }}
KAFKA_SSL_CA_FILE: /etc/sck/kafka-ca/{{ $k.security.caKey }}
{{- end }}
{{- end }}

{{/* The MQTT broker of the bridges (subscribing) and the forwarders (publishing): ConfigMap
data lines. */}}
{{- define "sck-ingest.mqttSettings" -}}
{{- $m := .Values.mqtt -}}
MQTT_HOST: {{ required "mqtt.host is required (the EMQX service the bridges subscribe to)" $m.host | quote }}
MQTT_PORT: {{ $m.port | quote }}
MQTT_TLS: {{ $m.tls.enabled | quote }}
{{- if and $m.tls.enabled $m.tls.caSecret }}
MQTT_CA_FILE: /etc/sck/mqtt-ca/{{ $m.tls.caKey }}
{{- end }}
{{- end }}

{{/* Decoder replica ceiling's sibling for the forwarders: autoscaling.maxReplicas capped at the
partition count. */}}
{{- define "sck-ingest.forwarderMaxReplicas" -}}
{{- $max := int .Values.forwarder.autoscaling.maxReplicas }}
{{- $parts := int .Values.kafka.partitions }}
{{- if gt $max $parts }}{{ $parts }}{{ else }}{{ $max }}{{ end }}
{{- end }}

{{/* CA bundles a component mounts, as JSON {volume name: Secret name}: Kafka's for all (with
ssl / sasl_ssl), MQTT's for the bridge and the forwarder, ClickHouse's for the decoder. Each is
mounted at /etc/sck/<volume name>, where the ConfigMaps' *_CA_FILE settings point. */}}
{{- define "sck-ingest.caBundles" -}}
{{- $v := .ctx.Values }}
{{- $out := dict }}
{{- if and (hasSuffix "ssl" $v.kafka.security.protocol) $v.kafka.security.caSecret }}
{{- $_ := set $out "kafka-ca" $v.kafka.security.caSecret }}
{{- end }}
{{- if and (has .component (list "bridge" "forwarder")) $v.mqtt.tls.enabled $v.mqtt.tls.caSecret }}
{{- $_ := set $out "mqtt-ca" $v.mqtt.tls.caSecret }}
{{- end }}
{{- if and (eq .component "decoder") $v.clickhouse.caSecret }}
{{- $_ := set $out "clickhouse-ca" $v.clickhouse.caSecret }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{- define "sck-ingest.caVolumes" -}}
{{- range $name, $secret := include "sck-ingest.caBundles" . | fromJson }}
- name: {{ $name }}
  secret: { secretName: {{ $secret }} }
{{- end }}
{{- end }}

{{- define "sck-ingest.caMounts" -}}
{{- range $name, $_ := include "sck-ingest.caBundles" . | fromJson }}
- name: {{ $name }}
  mountPath: /etc/sck/{{ $name }}
  readOnly: true
{{- end }}
{{- end }}
