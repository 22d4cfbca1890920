{{/*
Shared helpers. Every per-service template iterates `nivesh.serviceNames` and reads the service's
effective settings from `nivesh.svc` (serviceDefaults deep-merged with the service's own entry).
*/}}

{{- define "nivesh.serviceNames" -}}
{{- keys .Values.services | sortAlpha | toJson -}}
{{- end -}}

{{/* Effective settings of one service as JSON: (dict "root" $ "name" "order") */}}
{{- define "nivesh.svc" -}}
{{- $root := .root -}}
{{- $own := index $root.Values.services .name -}}
{{- $merged := mustMergeOverwrite (deepCopy $root.Values.serviceDefaults) (deepCopy $own) -}}
{{- toJson $merged -}}
{{- end -}}

{{- define "nivesh.fullname" -}}
{{- printf "nivesh-%s" . | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "nivesh.commonLabels" -}}
app.kubernetes.io/part-of: nivesh
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
nivesh.example/environment: {{ .Values.global.environment }}
{{- end -}}

{{/* Selector labels of a service (both tracks): (dict "root" $ "name" "order") */}}
{{- define "nivesh.selectorLabels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{/*
Labels policies select on (PDB, NetworkPolicy, topology spread): a label Flagger does not rewrite
when it clones a Deployment into <name>-primary, so the policies keep covering every pod.
*/}}
{{- define "nivesh.policyLabels" -}}
nivesh.example/service: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{/* Is the canary track active for a service? Returns "true" or "". */}}
{{- define "nivesh.canaryActive" -}}
{{- $c := .root.Values.canary -}}
{{- if and $c.enabled (not $c.flagger.enabled) -}}
{{- if or (empty $c.services) (has .name $c.services) -}}true{{- end -}}
{{- end -}}
{{- end -}}

{{/* Image reference: (dict "root" $ "name" "order" "track" "stable") */}}
{{- define "nivesh.image" -}}
{{- $img := .root.Values.image -}}
{{- $tag := $img.tag -}}
{{- $digest := $img.digest -}}
{{- if eq .track "canary" -}}
{{- if and (empty .root.Values.canary.image.tag) (empty .root.Values.canary.image.digest) -}}
{{- fail "canary.enabled needs canary.image.tag or canary.image.digest (the build under test)" -}}
{{- end -}}
{{- $tag = .root.Values.canary.image.tag -}}
{{- $digest = .root.Values.canary.image.digest -}}
{{- end -}}
{{- $repo := printf "%s/%s%s" $img.registry $img.repositoryPrefix .name -}}
{{- if $digest -}}
{{- printf "%s@%s" $repo $digest -}}
{{- else -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end -}}
{{- end -}}

{{/*
Topic settings guard, included by every template that uses topic settings so no render can
bypass it: min.insync.replicas above the replication factor makes every acks=all produce fail
(NOT_ENOUGH_REPLICAS), so it must never reach a cluster.
*/}}
{{- define "nivesh.validateKafka" -}}
{{- $k := .Values.kafka -}}
{{- if gt (int $k.minInsyncReplicas) (int $k.replicationFactor) -}}
{{- fail (printf "kafka.minInsyncReplicas (%d) exceeds kafka.replicationFactor (%d): every acks=all write would fail" (int $k.minInsyncReplicas) (int $k.replicationFactor)) -}}
{{- end -}}
{{- if lt (int $k.minInsyncReplicas) 2 -}}
{{- fail "kafka.minInsyncReplicas must be at least 2: with 1, an acknowledged write can live on a single broker and be lost with it" -}}
{{- end -}}
{{- $names := list -}}
{{- range $k.topics -}}
{{- if has .name $names -}}{{- fail (printf "kafka.topics: %s is listed twice" .name) -}}{{- end -}}
{{- $names = append $names .name -}}
{{- end -}}
{{- range $name, $svc := .Values.services -}}
{{- range (concat $svc.consumes $svc.produces) -}}
{{- if not (has . $names) -}}{{- fail (printf "services.%s uses topic %s which is not in kafka.topics (the catalog)" $name .) -}}{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Largest partition count among the topics a service consumes: more consumers than that idle. */}}
{{- define "nivesh.maxPartitions" -}}
{{- $max := 1 -}}
{{- $consumes := .svc.consumes -}}
{{- range .root.Values.kafka.topics -}}
{{- if and (has .name $consumes) (gt (int .partitions) $max) -}}{{- $max = int .partitions -}}{{- end -}}
{{- end -}}
{{- $max -}}
{{- end -}}

{{/* Istio regex (RE2, full match) for a fleet route pattern: segments, `*` = one segment, prefix match. */}}
{{- define "nivesh.routeRegex" -}}
{{- $parts := list -}}
{{- range (splitList "/" .) -}}
{{- if eq . "*" -}}{{- $parts = append $parts "[^/]+" -}}{{- else if . -}}{{- $parts = append $parts (regexQuoteMeta .) -}}{{- end -}}
{{- end -}}
{{- printf "/%s(/.*)?" (join "/" $parts) -}}
{{- end -}}
