#!/usr/bin/env bash
# Installs the Debian 12 packages Distillery builds and tests with, when any
# is missing. Idempotent: a machine that has them all makes no apt call.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config ccache
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler grpc-proto
  libabsl-dev librocksdb-dev libboost-dev libcurl4-openssl-dev prometheus-cpp-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev libxxhash-dev libcli11-dev libspdlog-dev libyaml-cpp-dev
  libre2-dev libvalijson-dev libjemalloc-dev
)
# Extra packages for a given purpose: `install-deps.sh test` adds the tools the
# tests drive (a real Prometheus server, for the metrics test; openssl for the
# security test's certificates; Debian's python3 with gRPC, protobuf, Jinja2,
# YAML, pip and wheel for the Python client's tests); `fuzz` adds clang and its runtime libraries
# (libFuzzer, sanitizers); `check` adds clang for `make check-thread-safety`.
case "${1:-}" in
  test) PACKAGES+=(prometheus curl openssl python3-grpcio python3-protobuf
                   python3-jinja2 python3-yaml python3-pip python3-wheel) ;;
  bench) PACKAGES+=(wrk python3 nginx-light) ;;
  fuzz) PACKAGES+=(clang libclang-rt-14-dev) ;;
  check) PACKAGES+=(clang-14 python3) ;;
esac

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
echo "install-deps: installing ${missing[*]}" >&2
# Debian's prometheus package starts a system service on install; the tests
# start their own on loopback, so block service starts for this install.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod +x "$policy"
  created_policy=1
fi
trap '[ $created_policy -eq 1 ] && $SUDO rm -f "$policy"' EXIT
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
