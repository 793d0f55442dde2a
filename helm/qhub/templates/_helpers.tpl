{{- /*
Names, labels and derived settings shared by the qhub templates.

Object names carry no release name (one release per namespace, as zero-to-jupyterhub's defaults):
the sub-chart values in values.yaml refer to them by these fixed names.
*/ -}}

{{- define "qhub.chart" -}}
{{ .Chart.Name }}-{{ .Chart.Version | replace "+" "_" }}
{{- end }}

{{- /* Labels of every object; pass (dict "root" $ "component" "conda-store") */ -}}
{{- define "qhub.labels" -}}
{{ include "qhub.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ include "qhub.chart" .root }}
{{- end }}

{{- define "qhub.selectorLabels" -}}
app.kubernetes.io/name: qhub
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- /* "name:tag" of an image value {name, tag} */ -}}
{{- define "qhub.image" -}}
{{ .name }}:{{ .tag }}
{{- end }}

{{- define "qhub.pullPolicy" -}}
{{- with .pullPolicy }}
imagePullPolicy: {{ . }}
{{- end }}
{{- end }}

{{- /* The lab image: user servers, Dask schedulers and workers, init containers */ -}}
{{- define "qhub.labImage" -}}
{{ include "qhub.image" .Values.jupyterhub.singleuser.image }}
{{- end }}

{{- /* The hub image (has the qhub_hub package): runs our small helper scripts */ -}}
{{- define "qhub.hubImage" -}}
{{ include "qhub.image" .Values.jupyterhub.hub.image }}
{{- end }}

{{- /* ---- what the qhub config asks for (defaults as in qhub_hub.config) ---- */ -}}

{{- define "qhub.environmentsRoot" -}}
{{ dig "conda_store" "environments_root" "/home/conda" .Values.qhub | trimSuffix "/" | default "/" }}
{{- end }}

{{- /* "true" when this chart runs conda-store */ -}}
{{- define "qhub.condaStoreDeployed" -}}
{{- if and (dig "conda_store" "enabled" true .Values.qhub) (not (dig "conda_store" "url" "" .Values.qhub)) -}}
true
{{- end }}
{{- end }}

{{- define "qhub.sshEnabled" -}}
{{- if dig "ssh" "enabled" true .Values.qhub -}}
true
{{- end }}
{{- end }}

{{- define "qhub.sshPort" -}}
{{ dig "ssh" "port" 8022 .Values.qhub }}
{{- end }}

{{- define "qhub.gatewayEnabled" -}}
{{- if (index .Values "dask-gateway").enabled -}}
true
{{- end }}
{{- end }}

{{- /* ---- storage ---- */ -}}

{{- /* Claim holding home/<user>, shared and shared/<group> */ -}}
{{- /* The dask-gateway sub-chart's "fullname" (its objects are traefik-<it>, api-<it>,
controller-<it>, cluster-wide roles included), by the sub-chart's own rule: <release>-dask-gateway,
so that two releases (with different names) never share a ClusterRole. */ -}}
{{- define "qhub.daskGatewayFullname" -}}
{{- $dg := index .Values "dask-gateway" -}}
{{- if $dg.fullnameOverride -}}
{{- $dg.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains "dask-gateway" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-dask-gateway" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "qhub.storageClaim" -}}
{{- if eq .Values.storage.type "existing-claim" -}}
{{ required "storage.existingClaim: name your ReadWriteMany claim for homes and shared folders (storage.type is existing-claim)" .Values.storage.existingClaim }}
{{- else -}}
qhub-storage
{{- end }}
{{- end }}

{{- /* Claim holding conda-store's environments; empty when conda-store is not ours */ -}}
{{- define "qhub.condaStoreClaim" -}}
{{- if include "qhub.condaStoreDeployed" . -}}
{{- if eq .Values.storage.type "existing-claim" -}}
{{ required "storage.condaStoreExistingClaim: name your ReadWriteMany claim for conda-store's environments (storage.type is existing-claim)" .Values.storage.condaStoreExistingClaim }}
{{- else -}}
conda-store-environments
{{- end }}
{{- end }}
{{- end }}

{{- /* PersistentVolumes are cluster-wide: their names carry the namespace */ -}}
{{- define "qhub.pvName" -}}
{{ .root.Release.Namespace }}-{{ .claim }}
{{- end }}

{{- /* ---- generated secrets: pinned value, else the one already in the cluster, else "" ---- */ -}}
{{- /* (list $ secretName key pinnedValue) */ -}}
{{- define "qhub.existingSecretValue" -}}
{{- $root := index . 0 -}}
{{- $pinned := index . 3 -}}
{{- if $pinned -}}
{{ $pinned }}
{{- else -}}
{{- $existing := lookup "v1" "Secret" $root.Release.Namespace (index . 1) | default dict -}}
{{- $data := get $existing "data" | default dict -}}
{{- with get $data (index . 2) -}}
{{ . | b64dec }}
{{- end }}
{{- end }}
{{- end }}

{{- /* ---- addresses ---- */ -}}

{{- define "qhub.condaStoreServiceUrl" -}}
http://conda-store:8080
{{- end }}

{{- define "qhub.condaStorePrefix" -}}
/services/conda-store
{{- end }}
