{{/* The chart's name, truncated to the 63 characters of a DNS label. */}}
{{- define "vigil.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: <release>-<chart> unless the release already says it. */}}
{{- define "vigil.fullname" -}}
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

{{- define "vigil.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The standard app.kubernetes.io labels. */}}
{{- define "vigil.labels" -}}
helm.sh/chart: {{ include "vigil.chart" . }}
{{ include "vigil.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: vigil
{{- end }}

{{- define "vigil.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vigil.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "vigil.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "vigil.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "vigil.headlessName" -}}
{{- printf "%s-headless" (include "vigil.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "vigil.secretName" -}}
{{- default (include "vigil.fullname" .) .Values.existingSecret }}
{{- end }}

{{- define "vigil.rulesConfigMap" -}}
{{- if .Values.rules.existingConfigMap }}
{{- .Values.rules.existingConfigMap }}
{{- else if .Values.rules.files }}
{{- printf "%s-rules" (include "vigil.fullname" .) }}
{{- end }}
{{- end }}

{{- define "vigil.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{- define "vigil.scheme" -}}
{{- if .Values.api.tls.enabled }}HTTPS{{ else }}HTTP{{ end }}
{{- end }}

{{/* vigild's configuration file (/etc/vigil/config/vigild.yml): what the values say, then
     .Values.config merged over it. */}}
{{- define "vigil.config" -}}
{{- $kafkaProps := dict }}
{{- range $k, $v := .Values.kafka.properties }}
{{- $_ := set $kafkaProps $k (toString $v) }}
{{- end }}
{{- $tls := .Values.kafka.tls }}
{{- $sasl := .Values.kafka.sasl }}
{{- if and $tls.enabled $sasl.enabled }}
{{- $_ := set $kafkaProps "security.protocol" "SASL_SSL" }}
{{- else if $sasl.enabled }}
{{- $_ := set $kafkaProps "security.protocol" "SASL_PLAINTEXT" }}
{{- else if $tls.enabled }}
{{- $_ := set $kafkaProps "security.protocol" "SSL" }}
{{- end }}
{{- if $sasl.enabled }}
{{- $_ := set $kafkaProps "sasl.mechanism" $sasl.mechanism }}
{{- end }}
{{- if $tls.enabled }}
{{- if $tls.caFile }}
{{- $_ := set $kafkaProps "ssl.ca.location" $tls.caFile }}
{{- else if $tls.ca }}
{{- $_ := set $kafkaProps "ssl.ca.location" "/etc/vigil/secret/kafka-ca.pem" }}
{{- end }}
{{- if $tls.clientCert }}
{{- $_ := set $kafkaProps "ssl.certificate.location" "/etc/vigil/secret/kafka-client.pem" }}
{{- $_ := set $kafkaProps "ssl.key.location" "/etc/vigil/secret/kafka-client-key.pem" }}
{{- end }}
{{- end }}
{{- $kafka := dict "brokers" .Values.kafka.brokers "topic" .Values.kafka.topic "group" .Values.kafka.group "alerts_topic" .Values.kafka.alertsTopic "alerts_format" .Values.kafka.alertsFormat "dead_letter_topic" .Values.kafka.deadLetterTopic }}
{{- if $kafkaProps }}
{{- $_ := set $kafka "properties" $kafkaProps }}
{{- end }}
{{- if $sasl.enabled }}
{{- $_ := set $kafka "properties_file" "/etc/vigil/secret/kafka.properties" }}
{{- end }}
{{- $rules := .Values.rules.builtin }}
{{- if include "vigil.rulesConfigMap" . }}
{{- $rules = list "/etc/vigil/rules" }}
{{- end }}
{{- $mapping := .Values.rules.mapping }}
{{- if not (hasPrefix "/" $mapping) }}
{{- $mapping = printf "/usr/share/vigil/rules/mappings/%s.yml" $mapping }}
{{- end }}
{{- $api := dict "tokens_file" "/etc/vigil/secret/api-tokens" "open" .Values.api.open }}
{{- if .Values.api.tls.enabled }}
{{- $_ := set $api "tls" (dict "cert_file" "/etc/vigil/tls/tls.crt" "key_file" "/etc/vigil/tls/tls.key") }}
{{- end }}
{{- $rollout := dict "policy" .Values.rollout.policy "stages" .Values.rollout.stages "stage_duration" .Values.rollout.stageDuration }}
{{- $config := dict "kafka" $kafka "listen" (printf "0.0.0.0:%d" (int .Values.api.port)) "data_dir" "/var/lib/vigil/data" "rules" $rules "rules_watch" .Values.rules.watchInterval "mapping" $mapping "log_level" .Values.logLevel "api" $api "rollout" $rollout "store" (dict "checkpoint_dir" "/var/lib/vigil/checkpoints") }}
{{- if .Values.rules.select }}
{{- $_ := set $config "select" .Values.rules.select }}
{{- end }}
{{- if .Values.outputs }}
{{- $_ := set $config "outputs" .Values.outputs }}
{{- end }}
{{- if include "vigil.clustered" . }}
{{- $peers := list }}
{{- $scheme := ternary "https" "http" .Values.api.tls.enabled }}
{{- range $i := until (int .Values.replicaCount) }}
{{- $pod := printf "%s-%d" (include "vigil.fullname" $) $i }}
{{- $peers = append $peers (printf "%s=%s://%s.%s.%s.svc:%d" $pod $scheme $pod (include "vigil.headlessName" $) $.Release.Namespace (int $.Values.api.port)) }}
{{- end }}
{{- $cluster := dict "peers" $peers "peer_timeout" .Values.cluster.peerTimeout "mirror_alerts" .Values.cluster.mirrorAlerts "cursor_key_file" "/etc/vigil/secret/cursor-key" }}
{{- if .Values.api.tls.enabled }}
{{- $_ := set $cluster "peer_ca_file" "/etc/vigil/tls/ca.crt" }}
{{- end }}
{{- $_ := set $config "cluster" $cluster }}
{{- end }}
{{- $config = mergeOverwrite $config (deepCopy .Values.config) }}
{{- toYaml $config }}
{{- end }}

{{/* Cluster mode: on with more than one replica unless turned off. */}}
{{- define "vigil.clustered" -}}
{{- if and .Values.cluster.enabled (gt (int .Values.replicaCount) 1) }}true{{- end }}
{{- end }}
