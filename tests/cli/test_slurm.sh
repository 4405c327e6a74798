#!/usr/bin/env bash
# bench --emit-slurm on a real Slurm: munged, slurmctld and slurmd started on
# localhost with a throw-away configuration in a temporary folder, the job
# array of a tiny preset submitted and waited for, the report made with
# --report-only and compared with a serial run's. Needs root (the daemons
# run as root here) and Debian's slurm-wlm and munge, installed with
# apt-get when missing; without either it prints SKIP and the reason.
# Everything it starts is stopped and its folder removed on every exit path.
set -u
if [ "$(id -u)" != 0 ]; then echo "SKIP: test_slurm.sh needs root to run the Slurm daemons"; exit 0; fi
if [ "${SL_SANITIZED:-0}" = 1 ]; then echo "SKIP: the job array runs the release binary's path; the sanitized pass has its own tests"; exit 0; fi
. "$(dirname "$0")/lib.sh"
S=$(cd "$ROOT" && realpath "$S")

if ! command -v sbatch >/dev/null || ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  if ! DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y --no-install-recommends slurm-wlm munge >"$tmp/apt.log" 2>&1; then
    echo "SKIP: apt-get could not install slurm-wlm and munge: $(tail -1 "$tmp/apt.log")"; exit 0
  fi
fi

d=$tmp/slurm
mkdir -p "$d/state" "$d/spool" "$d/munge" && chmod 700 "$d/munge"
pids=()
stop_all() {  # the daemons this script started, by pid; then the folder
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$p" 2>/dev/null
  done
  rm -rf "$tmp"
}
trap stop_all EXIT
trap 'exit 1' INT TERM

# munge: a fresh key and a private socket
dd if=/dev/urandom of="$d/munge/munge.key" bs=1024 count=1 2>/dev/null && chmod 400 "$d/munge/munge.key"
munged --foreground --force --key-file="$d/munge/munge.key" --socket="$d/munge/sock" --pid-file="$d/munge/pid" \
  --log-file="$d/munge/log" --seed-file="$d/munge/seed" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 50); do [ -S "$d/munge/sock" ] && break; sleep 0.1; done
[ -S "$d/munge/sock" ] || { echo "SKIP: munged did not start: $(tail -2 "$d/munge/log" 2>/dev/null)"; exit 0; }

port=$((20000 + RANDOM % 20000))
cpus=$(nproc)
cat >"$d/slurm.conf" <<CONF
ClusterName=segloss-test
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$port
SlurmdPort=$((port + 1))
AuthType=auth/munge
AuthInfo=socket=$d/munge/sock
CredType=cred/munge
StateSaveLocation=$d/state
SlurmdSpoolDir=$d/spool
SlurmctldPidFile=$d/slurmctld.pid
SlurmdPidFile=$d/slurmd.pid
SlurmctldLogFile=$d/slurmctld.log
SlurmdLogFile=$d/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
MpiDefault=none
ReturnToService=2
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
SwitchType=switch/none
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=test Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$d/slurm.conf
slurmctld -D -i >"$d/slurmctld.out" 2>&1 &
pids+=($!)
slurmd -D -N localhost >"$d/slurmd.out" 2>&1 &
pids+=($!)
up=0
for _ in $(seq 100); do
  [ "$(sinfo -h -o %T 2>/dev/null)" = idle ] && { up=1; break; }
  sleep 0.2
done
if [ "$up" != 1 ]; then
  echo "SKIP: the local Slurm did not come up: $(sinfo -h -o %T 2>&1 | head -1); $(tail -2 "$d/slurmd.log" 2>/dev/null | tr '\n' ' ')"
  exit 0
fi

cat >"$tmp/p.json" <<'JSON'
{"name": "slurm test", "seeds": [1, 2],
 "train": {"data_opts": {"height": 32, "width": 32, "n_train": 4, "n_val": 2, "n_test": 2},
           "network": {"depth": 2, "base_width": 4},
           "training": {"epochs": 1, "steps_per_epoch": 2, "batch_size": 2}},
 "datasets": [{"name": "ph", "data": "phantom"}],
 "losses": ["dice+ce", "ce", {"name": "dice+ce +TTA", "loss": "dice+ce", "tta": true}],
 "evaluation": {"bootstrap": 50, "overlay_cases": 1}}
JSON
cd "$tmp" || exit 1
run "emit" "$S" bench --preset p.json --out array --emit-slurm job.sbatch
check 'grep -q "^#SBATCH --array=0-3$" job.sbatch' "array range: $(grep array job.sbatch)"
checks=$((checks + 1))
t0=$(date +%s)
if ! timeout 90 sbatch --wait --quiet job.sbatch >"$tmp/sb.out" 2>"$tmp/sb.err"; then
  fail "the job array did not succeed: $(head -2 "$tmp/sb.err") $(cat segloss-slurm-test-*.out 2>/dev/null | head -4)"
fi
echo "job array: 4 tasks in $(( $(date +%s) - t0 )) s"
check '[ "$(ls segloss-slurm-test-*_*.out 2>/dev/null | wc -l)" = 4 ]' "4 task logs: $(ls)"
check '[ "$(grep -l "^task [0-3]: " segloss-slurm-test-*_*.out | wc -l)" = 4 ]' "every task reports its runs: $(cat segloss-slurm-test-*.out | head -8)"
run "report" "$S" bench --preset p.json --out array --report-only --quiet
run "serial" "$S" bench --preset p.json --out serial --threads 1 --quiet
run "serial report" "$S" bench --preset p.json --out serial --report-only --quiet
for f in results.csv summary.csv; do
  check "cmp -s serial/$f array/$f" "$f of the Slurm array differs from the serial run's"
done
# report.md: equal but for its one line of timings (seconds summed over the runs)
check 'diff <(grep -v "summed over the runs" serial/report.md) <(grep -v "summed over the runs" array/report.md) >/dev/null' \
  "report.md of the Slurm array differs from the serial run's beyond the timings line"
check 'diff <(grep -v "\"seconds" serial/results.json) <(grep -v "\"seconds" array/results.json) >/dev/null' \
  "results.json of the Slurm array differs from the serial run's beyond the timings"

echo "slurm: $checks checks, $fails failed"
[ "$fails" -eq 0 ]
