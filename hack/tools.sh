#!/usr/bin/env bash
# Builds the pinned test tools from source (Go module proxy only, no prebuilt
# binaries) and caches them under bin/, keyed by version.
#
#   hack/tools.sh k8s       bin/k8s/{kube-apiserver,etcd,kubectl}  (integration tests;
#                           a KUBEBUILDER_ASSETS folder) + bin/k8s/kustomize (the standalone
#                           one: kubectl kustomize cannot run exec KRM functions)
#   hack/tools.sh e2e       everything: the above + bin/k8s/{kube-controller-manager,
#                           kube-scheduler} + bin/e2e/{kwok,rollouts-controller,
#                           kubectl-argo-rollouts,datadog-operator,kwok-stages.yaml}
#   hack/tools.sh operator-render
#                           bin/e2e/operator-render (make operator-renders)
#   hack/tools.sh crd-dirs  prints NAME=DIR lines (module-cache dirs of argo-rollouts,
#                           cert-manager and datadog-operator) on stdout; CRDs are under
#                           $ARGO_ROLLOUTS_DIR/manifests/crds, $CERT_MANAGER_DIR/deploy/crds
#                           and $DATADOG_OPERATOR_DIR/config/crd/bases/v1. The lookup is
#                           the tests' own (test/internal/pinned); a NAME set in the
#                           environment is printed as it is, as the tests would use it.
#
# Versions live only in the tools modules: test/tools/{k8s,etcd,argo,datadog-operator,kustomize}/go.mod.
# Each binary has a stamp file bin/<dir>/.<name>.version holding the module
# version, a hash of the tools module's go.mod+go.sum, the Go version and the
# ldflags; the binary is rebuilt only when the stamp differs.
# Builds run one at a time (the machines have 2 cores).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${ROOT}/test/tools"
BIN_K8S="${ROOT}/bin/k8s"
BIN_E2E="${ROOT}/bin/e2e"

export CGO_ENABLED=0

log() { printf '%s\n' "$*" >&2; }
die() { log "tools.sh: $*"; exit 1; }

fmt_dur() {
  local s=$1
  if ((s >= 60)); then printf '%dm%02ds' $((s / 60)) $((s % 60)); else printf '%ds' "$s"; fi
}

# The Go toolchain a tools module needs: its `toolchain` line if it has one
# (argo-rollouts v1.10.x declares go 1.26.10), else whatever GOTOOLCHAIN says.
toolchain_for() {
  local tc
  tc="$(awk '$1 == "toolchain" { print $2 }' "${TOOLS}/$1/go.mod")"
  printf '%s' "${tc:-${GOTOOLCHAIN:-}}"
}

# gomod DIR ARGS...: run `go ARGS...` inside the tools module test/tools/DIR.
gomod() {
  local dir=$1
  shift
  local tc
  tc="$(toolchain_for "${dir}")"
  if [[ -n "${tc}" ]]; then
    (cd "${TOOLS}/${dir}" && GOTOOLCHAIN="${tc}" go "$@")
  else
    (cd "${TOOLS}/${dir}" && go "$@")
  fi
}

declare -A _VERSION_CACHE=() _GOVERSION_CACHE=() _HASH_CACHE=()

# mod_version DIR MODULE: the version of MODULE selected by tools module DIR.
mod_version() {
  local key="$1 $2"
  if [[ -z "${_VERSION_CACHE[${key}]:-}" ]]; then
    _VERSION_CACHE[${key}]="$(gomod "$1" list -m -f '{{.Version}}' "$2")"
    [[ -n "${_VERSION_CACHE[${key}]}" ]] || die "no version for $2 in test/tools/$1"
  fi
  printf '%s' "${_VERSION_CACHE[${key}]}"
}

# mod_time DIR MODULE: the release time of that version (reproducible buildDate).
mod_time() {
  gomod "$1" list -m -f '{{if .Time}}{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}{{end}}' "$2"
}

go_version() {
  if [[ -z "${_GOVERSION_CACHE[$1]:-}" ]]; then
    _GOVERSION_CACHE[$1]="$(gomod "$1" env GOVERSION)"
  fi
  printf '%s' "${_GOVERSION_CACHE[$1]}"
}

mod_hash() {
  if [[ -z "${_HASH_CACHE[$1]:-}" ]]; then
    _HASH_CACHE[$1]="$(cat "${TOOLS}/$1/go.mod" "${TOOLS}/$1/go.sum" | sha256sum | cut -c1-16)"
  fi
  printf '%s' "${_HASH_CACHE[$1]}"
}

# mod_dir DIR MODULE: module-cache directory of MODULE at the version DIR pins
# (a build input: kwok's stage files; the CRD lookup is test/internal/pinned).
mod_dir() {
  local version json dir
  version="$(mod_version "$1" "$2")"
  json="$(gomod "$1" mod download -json "$2@${version}")"
  dir="$(printf '%s\n' "${json}" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
  [[ -n "${dir}" && -d "${dir}" ]] || die "go mod download $2@${version} gave no Dir: ${json}"
  printf '%s' "${dir}"
}

STEP=0
STEPS=0
TOTAL_START=${SECONDS}

# build NAME OUTDIR TOOLSDIR MODULE PACKAGE COLD_ESTIMATE LDFLAGS [TRIM]
# TRIM is -trimpath unless given (operator-render finds its CRDs through the
# source path compiled into it).
build() {
  local name=$1 outdir=$2 dir=$3 module=$4 pkg=$5 cold=$6 ldflags=$7 trim=${8--trimpath}
  local out="${outdir}/${name}" stampf="${outdir}/.${name}.version"
  local version stamp start
  STEP=$((STEP + 1))
  version="$(mod_version "${dir}" "${module}")"
  stamp="$(printf '%s\n' \
    "name=${name}" "package=${pkg}" "version=${version}" \
    "gomod=test/tools/${dir} $(mod_hash "${dir}")" \
    "go=$(go_version "${dir}") CGO_ENABLED=${CGO_ENABLED} ${trim}" \
    "ldflags=${ldflags}")"
  if [[ -x "${out}" && -f "${stampf}" && "$(cat "${stampf}")" == "${stamp}" ]]; then
    log "[${STEP}/${STEPS}] ${name} ${version}: up to date (${out#"${ROOT}"/})"
    return
  fi
  log "[${STEP}/${STEPS}] ${name} ${version}: building ${pkg} (cold build ≈ ${cold} on 2 cores) ..."
  mkdir -p "${outdir}"
  rm -f "${stampf}"
  start=${SECONDS}
  gomod "${dir}" build ${trim} -buildvcs=false -ldflags "${ldflags}" -o "${out}.tmp" "${pkg}"
  mv -f "${out}.tmp" "${out}"
  printf '%s\n' "${stamp}" >"${stampf}"
  log "[${STEP}/${STEPS}] ${name} ${version}: built in $(fmt_dur $((SECONDS - start)))"
}

k8s_ldflags() {
  local v t major minor
  v="$(mod_version k8s k8s.io/kubernetes)"
  t="$(mod_time k8s k8s.io/kubernetes)"
  major="${v#v}"
  major="${major%%.*}"
  minor="${v#v*.}"
  minor="${minor%%.*}"
  local p=k8s.io/component-base/version
  # Without gitVersion clients see v0.0.0-master and kubectl fails to parse it.
  printf '%s' "-s -w -X ${p}.gitVersion=${v} -X ${p}.gitMajor=${major} -X ${p}.gitMinor=${minor}"
  printf '%s' " -X ${p}.gitTreeState=clean${t:+ -X ${p}.buildDate=${t}}"
}

build_k8s() { # NAME COLD
  build "$1" "${BIN_K8S}" k8s k8s.io/kubernetes "k8s.io/kubernetes/cmd/$1" "$2" "$(k8s_ldflags)"
}

build_etcd() {
  build etcd "${BIN_K8S}" etcd go.etcd.io/etcd/server/v3 go.etcd.io/etcd/server/v3 "50s" "-s -w"
}

build_kwok() {
  local v
  v="$(mod_version k8s sigs.k8s.io/kwok)"
  build kwok "${BIN_E2E}" k8s sigs.k8s.io/kwok sigs.k8s.io/kwok/cmd/kwok "1m" \
    "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${v}"
}

argo_ldflags() {
  local v t p=github.com/argoproj/argo-rollouts/utils/version
  v="$(mod_version argo github.com/argoproj/argo-rollouts)"
  t="$(mod_time argo github.com/argoproj/argo-rollouts)"
  printf '%s' "-s -w -X ${p}.version=${v#v} -X ${p}.gitTreeState=clean${t:+ -X ${p}.buildDate=${t}}"
}

build_argo() { # NAME COLD
  build "$1" "${BIN_E2E}" argo github.com/argoproj/argo-rollouts \
    "github.com/argoproj/argo-rollouts/cmd/$1" "$2" "$(argo_ldflags)"
}

build_datadog_operator() {
  local v p=github.com/DataDog/datadog-operator/pkg/version
  v="$(mod_version datadog-operator github.com/DataDog/datadog-operator)"
  build datadog-operator "${BIN_E2E}" datadog-operator github.com/DataDog/datadog-operator \
    github.com/DataDog/datadog-operator/cmd "5m" "-s -w -X ${p}.Version=${v#v}"
}

# kustomize: the standalone binary (test/install runs `mutate` as its exec
# KRM function; kubectl's embedded kustomize skips exec functions).
build_kustomize() {
  local v t p=sigs.k8s.io/kustomize/api/provenance
  v="$(mod_version kustomize sigs.k8s.io/kustomize/kustomize/v5)"
  t="$(mod_time kustomize sigs.k8s.io/kustomize/kustomize/v5)"
  build kustomize "${BIN_K8S}" kustomize sigs.k8s.io/kustomize/kustomize/v5 sigs.k8s.io/kustomize/kustomize/v5 "1m" \
    "-s -w -X ${p}.version=kustomize/${v}${t:+ -X ${p}.buildDate=${t}}"
}

# operator-render: the Operator's own reconcilers run against a fake client,
# writing what it would create for a DatadogAgent (make operator-renders).
build_operator_render() {
  build operator-render "${BIN_E2E}" datadog-operator github.com/DataDog/datadog-operator \
    github.com/DataDog/datadog-operator/cmd/operator-render "3m" "-s -w" ""
}

# bin/e2e/kwok-stages.yaml: the Stage documents of kwok's kustomize/stage/
# node/fast, node/heartbeat and pod/fast, read from the module cache.
write_kwok_stages() {
  local dir version out="${BIN_E2E}/kwok-stages.yaml" tmp sub f
  STEP=$((STEP + 1))
  version="$(mod_version k8s sigs.k8s.io/kwok)"
  dir="$(mod_dir k8s sigs.k8s.io/kwok)"
  mkdir -p "${BIN_E2E}"
  tmp="${out}.tmp"
  {
    printf '# Generated by hack/tools.sh from sigs.k8s.io/kwok@%s kustomize/stage/{node/fast,node/heartbeat,pod/fast}\n' "${version}"
    for sub in node/fast node/heartbeat pod/fast; do
      local kust="${dir}/kustomize/stage/${sub}/kustomization.yaml"
      [[ -f "${kust}" ]] || die "missing ${kust}"
      # The resources: list of the kustomization, in order.
      for f in $(sed -n '/^resources:/,/^[^[:space:]-]/ s/^[[:space:]]*-[[:space:]]*//p' "${kust}"); do
        printf -- '---\n# %s/%s\n' "${sub}" "${f}"
        cat "${dir}/kustomize/stage/${sub}/${f}"
      done
    done
  } >"${tmp}"
  grep -q '^kind: Stage' "${tmp}" || die "no Stage documents found under ${dir}/kustomize/stage"
  if [[ -f "${out}" ]] && cmp -s "${tmp}" "${out}"; then
    rm -f "${tmp}"
    log "[${STEP}/${STEPS}] kwok-stages.yaml ${version}: up to date (${out#"${ROOT}"/})"
  else
    mv -f "${tmp}" "${out}"
    log "[${STEP}/${STEPS}] kwok-stages.yaml ${version}: written $(grep -c '^kind: Stage' "${out}") stages (${out#"${ROOT}"/})"
  fi
}

lock() {
  mkdir -p "${ROOT}/bin"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"${ROOT}/bin/.tools.lock"
    flock 9
  fi
}

usage() {
  sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

main() {
  [[ $# -eq 1 ]] || usage
  case "$1" in
    k8s)
      lock
      STEPS=4
      build_k8s kube-apiserver "4m"
      build_etcd
      build_k8s kubectl "45s"
      build_kustomize
      ;;
    e2e)
      lock
      STEPS=11
      build_k8s kube-apiserver "4m"
      build_etcd
      build_k8s kubectl "45s"
      build_kustomize
      build_k8s kube-controller-manager "2m"
      build_k8s kube-scheduler "40s"
      build_kwok
      build_argo rollouts-controller "5m"
      build_argo kubectl-argo-rollouts "30s"
      build_datadog_operator
      write_kwok_stages
      ;;
    operator-render)
      lock
      STEPS=1
      build_operator_render
      ;;
    crd-dirs)
      # The tests' own lookup (test/internal/pinned), so this prints the
      # directories they read: one table of modules, pins and CRD globs.
      (cd "${ROOT}/test" && go run ./internal/pinned/cmd/crd-dirs "${ROOT}")
      return
      ;;
    -h | --help | help) usage ;;
    *) usage ;;
  esac
  log "tools.sh $1: done in $(fmt_dur $((SECONDS - TOTAL_START))); KUBEBUILDER_ASSETS=${BIN_K8S}"
  if [[ "$1" == e2e ]]; then log "e2e tools: ${BIN_E2E}"; fi
}

main "$@"
