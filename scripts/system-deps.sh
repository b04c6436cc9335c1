#!/usr/bin/env bash
# Debian packages the tests need: OpenSSH server (real sshd) and client (hosts push snapshot
# chunks to each other with ssh), iproute2 (network namespaces), zstd and the system python3
# (the namespace hosts' interpreter, without the zstandard module: chunks go through the zstd
# command), useradd (their non-root logins), Chromium (UI checks), the PostgreSQL server (the
# storage tests start a throwaway one as the unprivileged `postgres` user), redis-server (the
# Celery broker of the scale-out tests), the GNU OpenMP runtime (LightGBM's wheel links
# libgomp.so.1: the global forecasting model). Installs only what is missing; needs root (CI
# runs as root).
set -euo pipefail

missing=()
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v scp >/dev/null || missing+=(openssh-client)
command -v ip >/dev/null || missing+=(iproute2)
[ -x /usr/bin/python3 ] || missing+=(python3)
command -v zstd >/dev/null || missing+=(zstd)
command -v useradd >/dev/null || missing+=(passwd)
command -v chromium >/dev/null || missing+=(chromium)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
command -v redis-server >/dev/null || missing+=(redis-server)
compgen -G '/usr/lib/*/libgomp.so.1' >/dev/null || missing+=(libgomp1)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "system-deps: missing ${missing[*]}; run as root to install (tests needing them will skip)" >&2
  exit 0
fi
echo "system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
