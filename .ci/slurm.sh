#!/usr/bin/env bash
# A real single-node Slurm (slurmctld, slurmd, slurmdbd + MariaDB for sacct, munge) for the
# Slurm executor's tests, started without systemd.
#
#   . .ci/slurm.sh          from .ci/run: start it, and tear it down when .ci/run exits
#   bash .ci/slurm.sh start|stop|status
#
# What makes it run on these machines: munged's socket directory is 0755 (else nothing but
# munge may talk to it), slurmdbd is told the munge socket (AuthInfo, and slurmctld's
# AccountingStoragePass), DefMemPerCPU is set (else a job takes the whole node), and memory
# is enforced by jobacct_gather/linux + OverMemoryKill with proctrack/linuxproc and
# task/none: the cgroup plugins would create cgroups beside the host's own.
# Every daemon is stopped by the pid it wrote, never by name.

RG_SLURM_STATE=${RG_SLURM_STATE:-/tmp/ramguard-slurm}
RG_SLURM_TEMPLATES="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/slurm"

rg_slurm_log() { echo "slurm: $*" >&2; }

rg_slurm_install() {
  local need=()
  command -v slurmctld >/dev/null 2>&1 || need+=(slurm-wlm)
  command -v slurmdbd >/dev/null 2>&1 || need+=(slurmdbd)
  command -v munged >/dev/null 2>&1 || need+=(munge)
  command -v mariadbd >/dev/null 2>&1 || need+=(mariadb-server)
  [ ${#need[@]} -eq 0 ] && return 0
  rg_slurm_log "installing ${need[*]}"
  # No service may start from a package's postinst: there is no init system to own it.
  [ -e /usr/sbin/policy-rc.d ] || { printf "#!/bin/sh\nexit 101\n" >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d; }
  apt-get update -qq >/dev/null &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
}

rg_slurm_wait() { # DESCRIPTION SECONDS COMMAND...
  local what=$1 secs=$2
  shift 2
  local i
  for ((i = 0; i < secs * 4; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.25
  done
  rg_slurm_log "$what did not come up within ${secs}s"
  return 1
}

rg_slurm_start() {
  if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
    rg_slurm_log "already running"
    return 0
  fi
  rg_slurm_install || return 1
  local host cpus st=$RG_SLURM_STATE
  host=$(hostname -s)
  # Room for the tests' small jobs side by side (they run in parallel), whatever the
  # machine has: Slurm only books these; the jobs themselves use a few hundred MiB each.
  cpus=$(nproc)
  [ "$cpus" -lt 8 ] && cpus=8
  mkdir -p "$st/ctld" "$st/d" /etc/slurm /run/mysqld
  chmod 700 "$st"

  # munge: key, and a socket directory others may enter.
  [ -s /etc/munge/munge.key ] || mungekey --create --keyfile /etc/munge/munge.key 2>/dev/null ||
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  chmod 755 /run/munge
  if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged || return 1
  fi
  rg_slurm_wait munged 10 sh -c 'munge -n | unmunge' || return 1

  # MariaDB for slurmdbd.
  chown mysql:mysql /run/mysqld
  if ! mariadb-admin ping >/dev/null 2>&1; then
    [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql >/dev/null 2>&1
    (mariadbd --user=mysql --pid-file=/run/mysqld/mysqld.pid \
      --socket=/run/mysqld/mysqld.sock >"$st/mariadb.log" 2>&1 &)
  fi
  rg_slurm_wait mariadb 60 mariadb-admin ping || return 1
  mariadb -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'ramguard-ci';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;" || return 1

  local f
  for f in slurm.conf slurmdbd.conf; do
    sed -e "s|@HOST@|$host|g" -e "s|@CPUS@|$cpus|g" -e "s|@MEM@|6144|g" -e "s|@STATE@|$st|g" \
      "$RG_SLURM_TEMPLATES/$f.in" >/etc/slurm/$f
  done
  chmod 600 /etc/slurm/slurmdbd.conf
  chmod 644 /etc/slurm/slurm.conf

  /usr/sbin/slurmdbd || return 1
  rg_slurm_wait slurmdbd 60 sacctmgr -n list cluster || return 1
  sacctmgr -i add cluster ramguard >/dev/null 2>&1 || true
  /usr/sbin/slurmctld || return 1
  rg_slurm_wait slurmctld 60 scontrol ping || return 1
  /usr/sbin/slurmd || return 1
  if ! rg_slurm_wait "node $host" 60 sh -c "sinfo -h -o %T | grep -qE '^(idle|mixed|allocated)'"; then
    scontrol update nodename="$host" state=resume >/dev/null 2>&1
    rg_slurm_wait "node $host" 30 sh -c "sinfo -h -o %T | grep -qE '^(idle|mixed|allocated)'" || {
      sinfo -N -l >&2
      tail -n 20 "$st/slurmd.log" "$st/slurmctld.log" >&2
      return 1
    }
  fi
  rg_slurm_log "up: $(sinfo -h -o '%P %D node(s) %c cpus %m MB %T')"
}

rg_slurm_kill_pidfile() { # FILE
  local pid
  [ -s "$1" ] || return 0
  pid=$(cat "$1")
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  local i
  for ((i = 0; i < 40; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.25
  done
  kill -9 "$pid" 2>/dev/null
  return 0
}

rg_slurm_stop() {
  local st=$RG_SLURM_STATE
  # No job outlives the cluster.
  scancel --user=root >/dev/null 2>&1 || true
  rg_slurm_kill_pidfile "$st/slurmd.pid"
  rg_slurm_kill_pidfile "$st/slurmctld.pid"
  rg_slurm_kill_pidfile "$st/slurmdbd.pid"
  rg_slurm_kill_pidfile /run/mysqld/mysqld.pid
  rg_slurm_kill_pidfile /run/munge/munged.pid
  rg_slurm_log "stopped"
}

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
  # Sourced by .ci/run: start, and stop when it exits, whatever happens.
  if rg_slurm_start; then
    trap rg_slurm_stop EXIT
  else
    rg_slurm_log "could not start; the Slurm tests will fail under CI=true"
  fi
else
  case "${1:-}" in
    start) rg_slurm_start ;;
    stop) rg_slurm_stop ;;
    status) sinfo && squeue ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
  esac
fi
