#!/usr/bin/env bash
# Installs every Debian package that building, testing and running engram needs.
# Idempotent: packages already present are skipped, and `apt-get update` runs
# only when something is missing.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libcaf-dev
  libpqxx-dev
  libsimdjson-dev
  libboost1.81-dev libboost-json1.81-dev
  libspdlog-dev
  libhowardhinnant-date-dev tzdata
  libtomlplusplus-dev
  libgtest-dev googletest libbenchmark-dev
  libopenblas-dev
  libssl-dev
  postgresql postgresql-client
  curl procps
  # The reference workflow's steps (conf/workflows/speckit/): jq, and git above.
  jq
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -q
# The postgresql package would create and start a system-wide cluster; engram
# runs its own, so keep the package from starting one.
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  printf '#!/bin/sh\nexit 101\n' | "${sudo_cmd[@]}" tee /usr/sbin/policy-rc.d >/dev/null
  "${sudo_cmd[@]}" chmod +x /usr/sbin/policy-rc.d
  trap '"${sudo_cmd[@]}" rm -f /usr/sbin/policy-rc.d' EXIT
fi
"${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
