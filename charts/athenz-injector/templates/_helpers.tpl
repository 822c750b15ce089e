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

{{/*
The spec of the ValidatingAdmissionPolicy (also in
config/policy/validating_admission_policy.yaml). Two rules:
  - athenz.io/domain and athenz.io/service, on Pods and Pod templates, only
    in namespaces labelled athenz.io/identity-overrides=allowed (a label
    tenants cannot set: namespaces are cluster-scoped);
  - a Pod's athenz.io/domain, service, profile and status never change
    after it is created (its identity was checked then).
*/}}
{{- define "athenz-injector.admissionPolicySpec" -}}
failurePolicy: Fail
matchConstraints:
  resourceRules:
    - apiGroups: [""]
      apiVersions: ["v1"]
      operations: ["CREATE", "UPDATE"]
      resources: ["pods"]
    - apiGroups: ["apps"]
      apiVersions: ["v1"]
      operations: ["CREATE", "UPDATE"]
      resources: ["deployments", "statefulsets", "daemonsets", "replicasets"]
    - apiGroups: ["batch"]
      apiVersions: ["v1"]
      operations: ["CREATE", "UPDATE"]
      resources: ["jobs", "cronjobs"]
variables:
  # The annotations of the Pod, or of the workload's Pod template.
  - name: annotations
    expression: >-
      object.kind == 'Pod' ?
        (has(object.metadata.annotations) ? object.metadata.annotations : {}) :
      object.kind == 'CronJob' ?
        (has(object.spec.jobTemplate.spec.template.metadata) && has(object.spec.jobTemplate.spec.template.metadata.annotations) ?
          object.spec.jobTemplate.spec.template.metadata.annotations : {}) :
      (has(object.spec.template.metadata) && has(object.spec.template.metadata.annotations) ?
        object.spec.template.metadata.annotations : {})
  - name: oldAnnotations
    expression: >-
      request.operation == 'UPDATE' && object.kind == 'Pod' && has(oldObject.metadata.annotations) ?
        oldObject.metadata.annotations : {}
  - name: overridesAllowed
    expression: >-
      has(namespaceObject.metadata.labels) &&
      'athenz.io/identity-overrides' in namespaceObject.metadata.labels &&
      namespaceObject.metadata.labels['athenz.io/identity-overrides'] == 'allowed'
validations:
  - expression: >-
      variables.overridesAllowed ||
      !('athenz.io/domain' in variables.annotations || 'athenz.io/service' in variables.annotations)
    reason: Forbidden
    messageExpression: >-
      'athenz.io/domain and athenz.io/service are reserved in namespace ' + namespaceObject.metadata.name +
      ': the Pod gets the identity its SidecarProfile gives the namespace and service account. ' +
      'Where the platform team allows another, it labels the namespace athenz.io/identity-overrides=allowed ' +
      'and lists the identity in the SidecarProfile spec.identityPolicy.allowedIdentities (docs/security.md)'
  - expression: >-
      request.operation != 'UPDATE' || object.kind != 'Pod' ||
      ['athenz.io/domain', 'athenz.io/service', 'athenz.io/profile', 'athenz.io/status'].all(k,
        (k in variables.annotations) == (k in variables.oldAnnotations) &&
        (!(k in variables.annotations) || variables.annotations[k] == variables.oldAnnotations[k]))
    reason: Forbidden
    message: >-
      athenz.io/domain, athenz.io/service, athenz.io/profile and athenz.io/status cannot change on a Pod
      that exists: its Athenz identity was checked when it was created; create a new Pod instead
{{- end }}
