#!/usr/bin/env bash
# Installs etcdsnap from its package and runs it as a systemd service (docs/install.md,
# "Install from the package"). As root, on Debian 12 with Node.js 20:
#
#   bash install-etcdsnap.sh [./etcdsnap-<version>.tgz] [--agent]
#
# 1. Debian's etcd-server, etcd-client, zstd and util-linux when missing (Debian's own etcd
#    service, which would hold ports 2379/2380, is disabled).
# 2. npm install -g <tarball> --offline --ignore-scripts: the tarball bundles every npm dependency.
# 3. etcdsnap install-service: the unit, /etc/etcdsnap/etcdsnap.env (secrets, 0600) and
#    /etc/etcdsnap/config.yaml (settings, 0600) when missing; existing ones are kept.
# 4. systemctl enable etcdsnap and (re)start it, when systemd runs; else it says so.
# The tarball defaults to the one etcdsnap-*.tgz next to this script. Run again with a newer
# tarball to upgrade (docs/upgrades.md). ETCDSNAP_ROOT=<dir> puts /etc under <dir> and skips
# apt-get and systemctl (images, tests); npm's own npm_config_prefix picks where npm installs.
set -euo pipefail

# Another apt-get or dpkg (unattended-upgrades, cloud-init) may hold apt's locks: wait for
# them, at most this long (as scripts/install.sh does).
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
}
root="${ETCDSNAP_ROOT:-}"
tgz=""
kind=server
for a in "$@"; do
  case "$a" in
    --agent) kind=agent ;;
    -h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "error: unknown option $a (only --agent)" >&2; exit 2 ;;
    *) tgz="$a" ;;
  esac
done
if [ -z "$tgz" ]; then
  shopt -s nullglob
  found=("$(dirname "$0")"/etcdsnap-*.tgz)
  if ((${#found[@]} != 1)); then
    echo "error: name the package: bash $0 ./etcdsnap-<version>.tgz (found ${#found[@]} next to this script)" >&2
    exit 2
  fi
  tgz="${found[0]}"
fi
[ -f "$tgz" ] || { echo "error: $tgz is not a file" >&2; exit 2; }
if [ -z "$root" ] && [ "$(id -u)" != 0 ]; then
  echo "error: run as root (sudo bash $0 $tgz): it installs Debian packages, the program and a systemd unit" >&2
  exit 1
fi
if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' 2>/dev/null; then
  echo "error: etcdsnap needs Node.js 20 or later (found: $(node --version 2>/dev/null || echo none)); Debian 12's nodejs is 18: install Node 20 first (docs/install.md)" >&2
  exit 1
fi

need=()
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || need+=(etcd-client)
command -v zstd >/dev/null 2>&1 || need+=(zstd)
[ -x /usr/bin/setpriv ] || need+=(util-linux)
systemd_runs=0
[ -z "$root" ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ] && systemd_runs=1
if ((${#need[@]})); then
  if [ -n "$root" ]; then
    echo "ETCDSNAP_ROOT is set: not installing the missing Debian packages ${need[*]}"
  else
    echo "installing Debian packages: ${need[*]}"
    apt_update
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout="$APT_LOCK_WAIT" install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    # Debian's etcd-server enables a system etcd on 2379/2380, which would hold etcdsnap's ports.
    ((systemd_runs)) && { systemctl disable --now etcd >/dev/null 2>&1 || true; }
  fi
else
  echo "Debian packages: etcd, etcdctl, zstd and setpriv are installed"
fi

echo "installing $tgz (npm install -g --offline)"
# --ignore-scripts: no bundled dependency needs an install script (protobufjs's postinstall only
# checks its dependents' version ranges), so none runs as root.
npm install --global --offline --ignore-scripts --no-audit --no-fund --loglevel=error "$tgz"
bin="$(npm prefix --global)/bin/etcdsnap"
[ -x "$bin" ] || { echo "error: npm did not install $bin" >&2; exit 1; }
"$bin" --version

unit=etcdsnap config=/etc/etcdsnap/config.yaml env=/etc/etcdsnap/etcdsnap.env
[ "$kind" = agent ] && unit=etcdsnap-agent config=/etc/etcdsnap/agent.yaml env=/etc/etcdsnap/agent.env
unit_dir="$root/etc/systemd/system"
mkdir -p "$unit_dir"
args=(install-service --config "$root$config" --environment-file "$root$env" --unit-dir "$unit_dir")
[ "$kind" = agent ] && args+=(--agent)
"$bin" "${args[@]}" | sed -n '/^\(created\|kept\|wrote\|writable\)/p'

if ((systemd_runs)); then
  systemctl daemon-reload
  systemctl enable "$unit" >/dev/null 2>&1
  # restart, not start: after an upgrade the running service must load the new program.
  # --no-block: a server joining a cluster is not ready until its peers answer.
  systemctl restart --no-block "$unit"
  echo "$unit enabled and (re)started: systemctl status $unit (its Status: line says what it is doing); journalctl -u $unit -f"
else
  echo "systemd is not running here: $unit is installed but not started; start it with systemctl enable --now $unit where systemd runs, or by hand: $bin ${kind} --config $root$config"
fi
echo "settings: $root$config; secrets: $root$env; remove with: etcdsnap uninstall [--purge]"
