#!/usr/bin/env bash
# A one-node Slurm on this machine, for hetred's integration tests (issue 7).
#
#   scripts/slurm/local-cluster.sh start    install (if missing), configure, start, wait until idle
#   scripts/slurm/local-cluster.sh status   print sinfo; exit 0 only when the node takes jobs
#   scripts/slurm/local-cluster.sh stop     stop slurmd, slurmctld and munged (by their pid files)
#   scripts/slurm/local-cluster.sh restart  stop, then start
#
# Debian 12's packages (munge, slurmctld, slurmd, slurm-client: Slurm 22.05), SlurmUser=root, the
# node's real CPUs and memory (from `slurmd -C`), one default partition. No systemd: the daemons
# are started directly. Needs root for the first start (install, /etc/slurm, /run, /var).
#
# Exit codes: 0 ok; 1 the cluster is not up (status) or did not become ready in time (start);
# 2 usage; 3 Slurm is not installed and could not be installed; 4 a daemon failed to start.
#
# Environment: HETRED_SLURM_PARTITION (default "debug"), HETRED_SLURM_CLUSTER (default "hetred"),
# HETRED_SLURM_WAIT seconds to wait for the node (default 90).
set -uo pipefail

PARTITION=${HETRED_SLURM_PARTITION:-debug}
CLUSTER=${HETRED_SLURM_CLUSTER:-hetred}
WAIT=${HETRED_SLURM_WAIT:-90}
PACKAGES=(munge slurmctld slurmd slurm-client)

CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
MARK="# written by hetred scripts/slurm/local-cluster.sh"
RUN_DIR=/run/slurm
LOG_DIR=/var/log/slurm
STATE_DIR=/var/lib/slurm
MUNGE_KEY=/etc/munge/munge.key
MUNGE_RUN=/run/munge
MUNGE_PID=$MUNGE_RUN/munged.pid
CTLD_PID=$RUN_DIR/slurmctld.pid
SLURMD_PID=$RUN_DIR/slurmd.pid
JOBCOMP=$LOG_DIR/jobcomp.log

say() { echo "local-cluster: $*"; }
die() { local code=$1; shift; echo "local-cluster: $*" >&2; exit "$code"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

installed() {
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
    && command -v munged >/dev/null
}

ensure_installed() {
  installed && return 0
  [ "$(id -u)" -eq 0 ] || die 3 "Slurm is not installed and installing it needs root"
  command -v apt-get >/dev/null || die 3 "Slurm is not installed and there is no apt-get here"
  local t0 log
  t0=$(now)
  log=$(mktemp)
  say "installing ${PACKAGES[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >"$log" 2>&1; then
    say "apt-get install failed; refreshing the package lists (apt-get update) and retrying"
    if ! { apt-get update -q && apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"; } >"$log" 2>&1; then
      tail -n 5 "$log" >&2
      rm -f "$log"
      die 3 "could not install ${PACKAGES[*]} with apt-get"
    fi
  fi
  rm -f "$log"
  installed || die 3 "apt-get ran but slurmctld/slurmd/sbatch/munged are still missing"
  say "installed in $(since "$t0") s"
}

# A pid file whose process is alive and is the named program: print the pid.
alive() {
  local pidfile=$1 name=$2 pid
  [ -r "$pidfile" ] || return 1
  pid=$(tr -dc '0-9' <"$pidfile")
  [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] || return 1
  [ "$(cat "/proc/$pid/comm")" = "$name" ] || return 1
  echo "$pid"
}

munge_up() {
  local t0
  if alive "$MUNGE_PID" munged >/dev/null; then return 0; fi
  t0=$(now)
  local user=root
  id munge >/dev/null 2>&1 && user=munge
  install -d -m 0755 /etc/munge /var/log/munge /var/lib/munge
  install -d -m 0755 "$MUNGE_RUN"
  if [ ! -s "$MUNGE_KEY" ]; then
    if command -v mungekey >/dev/null; then
      mungekey --create --keyfile="$MUNGE_KEY" --force >/dev/null 2>&1
    fi
    [ -s "$MUNGE_KEY" ] || dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none
  fi
  chown "$user:$user" /etc/munge "$MUNGE_KEY" /var/log/munge /var/lib/munge "$MUNGE_RUN"
  chmod 0700 /etc/munge /var/log/munge /var/lib/munge
  chmod 0400 "$MUNGE_KEY"
  rm -f "$MUNGE_RUN"/munge.socket.2* "$MUNGE_PID"
  if [ "$user" = root ]; then
    munged --force || die 4 "munged did not start (see /var/log/munge/munged.log)"
  else
    runuser -u munge -- munged || die 4 "munged did not start (see /var/log/munge/munged.log)"
  fi
  for _ in $(seq 50); do
    munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && { say "munged up ($(since "$t0") s)"; return 0; }
    sleep 0.1
  done
  die 4 "munged started but munge -n | unmunge fails (see /var/log/munge/munged.log)"
}

write_conf() {
  local host node cpus_line mem cpus defmem new ctld
  host=$(hostname -s)
  node=$(slurmd -C 2>/dev/null | head -n 1)
  case $node in NodeName=*) ;; *) die 4 "slurmd -C did not describe this node: $node" ;; esac
  mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node")
  cpus=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$node")
  defmem=$(( mem / cpus ))
  # slurmd -C names the node by its short hostname; keep its CPUs, sockets, cores, threads, memory
  cpus_line=$(sed -e "s/^NodeName=[^ ]*/NodeName=$host/" <<<"$node")
  # a container whose hostname does not resolve: name the loopback address
  ctld=$host
  if ! getent hosts "$host" >/dev/null 2>&1; then
    ctld="$host(127.0.0.1)"
    cpus_line="$cpus_line NodeAddr=127.0.0.1"
  fi
  if [ -e "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    die 4 "$CONF exists and was not written by this script: not touching it"
  fi
  new=$(mktemp)
  cat >"$new" <<EOF
$MARK
# A one-node test cluster: SlurmUser root, no accounting database, no cgroups, no systemd.
ClusterName=$CLUSTER
SlurmctldHost=$ctld
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$defmem
ReturnToService=2
StateSaveLocation=$STATE_DIR/slurmctld
SlurmdSpoolDir=$STATE_DIR/slurmd
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
# no slurmdbd: sacct has no data; job start/end times go to the job completion log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$JOBCOMP
MinJobAge=600
InactiveLimit=0
KillWait=10
SlurmdTimeout=300
SlurmctldTimeout=120
$cpus_line State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  install -d -m 0755 "$CONF_DIR"
  if [ -e "$CONF" ] && cmp -s "$new" "$CONF"; then
    rm -f "$new"
    return 1   # unchanged
  fi
  install -m 0644 "$new" "$CONF"
  rm -f "$new"
  say "wrote $CONF ($(sed 's/ UpTime=.*//' <<<"$cpus_line"))"
  return 0
}

stop_one() {
  local pidfile=$1 name=$2 pid
  pid=$(alive "$pidfile" "$name") || return 0
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 100); do
    [ -d "/proc/$pid" ] || break
    sleep 0.1
  done
  if [ -d "/proc/$pid" ]; then kill -KILL "$pid" 2>/dev/null; sleep 0.2; fi
  rm -f "$pidfile"
  say "stopped $name (pid $pid)"
}

node_state() { sinfo -h -N -p "$PARTITION" -o '%T' 2>/dev/null | head -n 1; }

ready() {
  case "$(node_state)" in
    idle|mixed|allocated|completing) return 0 ;;
    *) return 1 ;;
  esac
}

start() {
  local t0 changed=0 resumed=0 state
  t0=$(now)
  ensure_installed
  [ "$(id -u)" -eq 0 ] || die 4 "starting the daemons needs root"
  munge_up
  write_conf && changed=1
  install -d -m 0755 "$RUN_DIR" "$LOG_DIR" "$STATE_DIR" "$STATE_DIR/slurmctld" "$STATE_DIR/slurmd"
  if [ "$changed" -eq 1 ]; then
    stop_one "$SLURMD_PID" slurmd
    stop_one "$CTLD_PID" slurmctld
  fi
  if ! alive "$CTLD_PID" slurmctld >/dev/null; then
    slurmctld || die 4 "slurmctld did not start (see $LOG_DIR/slurmctld.log)"
  fi
  if ! alive "$SLURMD_PID" slurmd >/dev/null; then
    slurmd || die 4 "slurmd did not start (see $LOG_DIR/slurmd.log)"
  fi
  for _ in $(seq $((WAIT * 2))); do
    ready && break
    state=$(node_state)
    case $state in
      down*|drain*|drained|fail*)
        if [ "$resumed" -eq 0 ]; then
          scontrol update NodeName="$(hostname -s)" State=RESUME >/dev/null 2>&1 && resumed=1
        fi ;;
    esac
    alive "$CTLD_PID" slurmctld >/dev/null || die 4 "slurmctld exited (see $LOG_DIR/slurmctld.log)"
    alive "$SLURMD_PID" slurmd >/dev/null || die 4 "slurmd exited (see $LOG_DIR/slurmd.log)"
    sleep 0.5
  done
  if ! ready; then
    sinfo -N -l 2>&1 | sed 's/^/  /' >&2
    die 1 "the node is not idle after ${WAIT} s (state: $(node_state)); see $LOG_DIR/*.log"
  fi
  say "ready in $(since "$t0") s: partition $PARTITION, node $(hostname -s)"
  sinfo
}

status() {
  installed || die 3 "Slurm is not installed (run: $0 start)"
  local d
  for d in "$MUNGE_PID munged" "$CTLD_PID slurmctld" "$SLURMD_PID slurmd"; do
    set -- $d
    if pid=$(alive "$1" "$2"); then say "$2 running (pid $pid)"; else say "$2 not running"; fi
  done
  if ! sinfo 2>&1; then
    die 1 "sinfo failed: the cluster is not up"
  fi
  ready || die 1 "no node of partition $PARTITION takes jobs (state: $(node_state))"
  return 0
}

stop() {
  stop_one "$SLURMD_PID" slurmd
  stop_one "$CTLD_PID" slurmctld
  stop_one "$MUNGE_PID" munged
  return 0
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) status ;;
  restart) stop; start ;;
  *) echo "usage: $0 start|stop|status|restart" >&2; exit 2 ;;
esac
