#!/usr/bin/env bash
# Installs everything etcdsnap needs on Debian 12 with Node 20, then builds it.
#   scripts/install.sh          Debian's etcd-server/etcd-client (when etcd/etcdctl are not on PATH), zstd, npm deps, build
#   scripts/install.sh --test   the same plus what the tests need (unzip, zip, age, python3, a loopback OpenStack
#                               Swift with the s3api middleware for the S3 tests, s3cmd for the S3 benchmarks,
#                               promtool, chromium for the dashboard's browser test, systemd for
#                               systemd-analyze and systemd-notify)
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Another apt-get or dpkg (unattended-upgrades, cloud-init, a second terminal) may hold apt's
# locks: wait for them, at most this long, instead of failing at once.
APT_LOCK_WAIT=300

# `apt-get update`, retried while another process holds the package lists lock (apt's
# DPkg::Lock::Timeout covers the dpkg lock, not that one), for at most APT_LOCK_WAIT s.
apt_update() {
  local deadline=$((SECONDS + APT_LOCK_WAIT)) out said=0
  until out=$(apt-get -o DPkg::Lock::Timeout="$APT_LOCK_WAIT" update -qq 2>&1); do
    if ! grep -qiE 'could not get lock|unable to lock' <<<"$out" || ((SECONDS >= deadline)); then
      printf '%s\n' "$out" >&2
      return 1
    fi
    if ((said == 0)); then
      echo "another apt-get or dpkg holds apt's package lists lock; waiting for it" >&2
      said=1
    fi
    sleep 5
  done
  [ -z "$out" ] || printf '%s\n' "$out" >&2
}

need=()
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || need+=(etcd-client)
[ -x /usr/bin/setpriv ] || need+=(util-linux)
# --etcd-snapshot-compression=zstd pipes through Debian's zstd (docs/compression.md)
command -v zstd >/dev/null 2>&1 || need+=(zstd)
if [ "${1:-}" = "--test" ]; then
  command -v unzip >/dev/null 2>&1 || need+=(unzip)
  command -v zip >/dev/null 2>&1 || need+=(zip)
  # age files are proven with the age tool itself (test/age*.test.ts)
  command -v age >/dev/null 2>&1 || need+=(age)
  # our zips are also proven with Python's zipfile (test/codec-compress.test.ts)
  command -v python3 >/dev/null 2>&1 || need+=(python3)
  # S3 tests run against Swift + s3api (test/helpers/swift.ts); the packages start no service.
  command -v swift-proxy-server >/dev/null 2>&1 || need+=(swift-proxy)
  command -v swift-account-server >/dev/null 2>&1 || need+=(swift-account)
  command -v swift-container-server >/dev/null 2>&1 || need+=(swift-container)
  command -v swift-object-server >/dev/null 2>&1 || need+=(swift-object)
  command -v s3cmd >/dev/null 2>&1 || need+=(s3cmd)
  # the metrics test checks the exposition and docs/alerts with promtool (test/metrics.test.ts)
  command -v promtool >/dev/null 2>&1 || need+=(prometheus)
  # the dashboard test drives Debian's chromium headless through playwright-core (test/dashboard.test.ts)
  [ -x /usr/bin/chromium ] || need+=(chromium)
  # the systemd tests run systemd-analyze verify on the generated units and send readiness with
  # systemd-notify (test/systemd-*.test.ts); the package starts nothing in a container
  { command -v systemd-analyze >/dev/null 2>&1 && command -v systemd-notify >/dev/null 2>&1; } || need+=(systemd)
fi

if ((${#need[@]})); then
  if [ "$(id -u)" != 0 ]; then
    echo "error: missing Debian packages: ${need[*]}; run: sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
  echo "installing Debian packages: ${need[*]} (waiting at most ${APT_LOCK_WAIT}s for apt's lock if another apt-get or dpkg holds it)" >&2
  apt_update
  # apt-get waits for the dpkg lock itself (DPkg::Lock::Timeout, apt >= 1.9.11)
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout="$APT_LOCK_WAIT" install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # Debian's etcd-server enables a system etcd on 2379/2380, which would hold etcdsnap's ports.
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now etcd >/dev/null 2>&1 || true
    # the same for the Swift services the test packages enable (tests start their own)
    for u in swift-proxy swift-account swift-container swift-object; do systemctl disable --now "$u" >/dev/null 2>&1 || true; done
    # and Prometheus (installed for promtool only), which would listen on 9090
    systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
fi

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run -s build
