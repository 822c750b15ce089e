{{/* Chart name, at most 63 characters. */}}
{{- define "athenz-injector.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: the prefix of every object's name. The release name alone when it
contains the chart name (so release "athenz-injector" gives the names of
config/), else "<release>-athenz-injector". At most 55 characters, so that
suffixes such as "-webhook" keep names within 63.
*/}}
{{- define "athenz-injector.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 55 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 55 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 55 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "athenz-injector.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "athenz-injector.labels" -}}
helm.sh/chart: {{ include "athenz-injector.chart" . }}
{{ include "athenz-injector.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "athenz-injector.selectorLabels" -}}
app.kubernetes.io/name: {{ include "athenz-injector.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: injector
{{- end }}

{{- define "athenz-injector.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "athenz-injector.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The webhook Service (also the provider callback's). */}}
{{- define "athenz-injector.serviceName" -}}
{{- printf "%s-webhook" (include "athenz-injector.fullname" .) }}
{{- end }}

{{/* The MutatingWebhookConfiguration (cluster-scoped). */}}
{{- define "athenz-injector.webhookConfigName" -}}
{{- include "athenz-injector.fullname" . }}
{{- end }}

{{/* The Secret with the webhook's serving certificate. */}}
{{- define "athenz-injector.certSecretName" -}}
{{- if eq .Values.certs.mode "manual" }}
{{- .Values.certs.manual.secretName }}
{{- else }}
{{- printf "%s-webhook-tls" (include "athenz-injector.fullname" .) }}
{{- end }}
{{- end }}

{{/* cert-manager: the serving Certificate. */}}
{{- define "athenz-injector.certificateName" -}}
{{- printf "%s-webhook" (include "athenz-injector.fullname" .) }}
{{- end }}

{{/* repository:tag or repository@digest; tag defaults to appVersion. */}}
{{- define "athenz-injector.image" -}}
{{- $img := index . 0 }}{{- $root := index . 1 }}
{{- if $img.digest }}
{{- printf "%s@%s" $img.repository $img.digest }}
{{- else }}
{{- printf "%s:%s" $img.repository (default $root.Chart.AppVersion $img.tag) }}
{{- end }}
{{- end }}

{{/* Namespaces whose Pods never reach the injector. */}}
{{- define "athenz-injector.excludedNamespaces" -}}
{{- concat (list "kube-system" .Release.Namespace) .Values.webhook.excludeNamespaces | uniq | toJson }}
{{- end }}

{{/*
clientConfig of one webhook: the Service, or webhook.url when set; the
caBundle in manual mode (auto: the injector patches it; cert-manager:
cainjector does). Argument: dict "root" $ "path" "/mutate-pods".
*/}}
{{- define "athenz-injector.clientConfig" -}}
{{- $root := .root }}
{{- if $root.Values.webhook.url }}
url: {{ printf "%s%s" (trimSuffix "/" $root.Values.webhook.url) .path | quote }}
{{- else }}
service:
  name: {{ include "athenz-injector.serviceName" $root }}
  namespace: {{ $root.Release.Namespace }}
  path: {{ .path }}
  port: 443
{{- end }}
{{- if eq $root.Values.certs.mode "manual" }}
caBundle: {{ $root.Values.certs.manual.caBundle | b64enc }}
{{- end }}
{{- end }}

{{/* A map without its empty values (one level), as YAML. */}}
{{- define "athenz-injector.compact" -}}
{{- $out := dict }}
{{- range $k, $v := . }}
{{- if not (empty $v) }}
{{- $_ := set $out $k $v }}
{{- end }}
{{- end }}
{{- toYaml $out }}
{{- end }}
