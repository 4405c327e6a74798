#!/usr/bin/env bash
# bench --run K, --emit-slurm, --emit-k8s without a cluster: the emitted
# script and manifest name every task once with the right commands, the
# script's tasks run at once (as a job array would run them) give results
# and a report equal to a serial benchmark's, and misuse gets one line.
set -u
. "$(dirname "$0")/lib.sh"

# 2 seeds x 3 entries = 6 runs; "dice+ce +TTA" shares dice+ce's training,
# so 4 tasks (trainings)
cat >"$tmp/p.json" <<'JSON'
{"name": "tasks test", "seeds": [1, 2],
 "train": {"data_opts": {"height": 32, "width": 32, "n_train": 4, "n_val": 2, "n_test": 2},
           "network": {"depth": 2, "base_width": 4},
           "training": {"epochs": 1, "steps_per_epoch": 2, "batch_size": 2}},
 "datasets": [{"name": "ph", "data": "phantom"}],
 "losses": ["dice+ce", "ce", {"name": "dice+ce +TTA", "loss": "dice+ce", "tta": true}],
 "evaluation": {"bootstrap": 50, "overlay_cases": 1}}
JSON
cd "$tmp" || exit 1
S=$(cd "$ROOT" && realpath "$S")

run "emit both" "$S" bench --preset p.json --out bo --emit-slurm job.sbatch --emit-k8s job.yaml
check '[ ! -e bo ]' "emitting created the output folder"
check 'grep -q "^4 tasks written to job.sbatch and job.yaml" "$tmp/out"' "emit summary line: $(cat "$tmp/out")"
check 'bash -n job.sbatch' "job.sbatch is not valid bash"
check '[ "$(grep -c "^#SBATCH --array=0-3$" job.sbatch)" = 1 ]' "array range is not 0-3: $(grep array job.sbatch)"
want="exec '$S' bench --preset '$tmp/p.json' --out '$tmp/bo' --run \"\$SLURM_ARRAY_TASK_ID\" --quiet"
check '[ "$(grep "^exec " job.sbatch)" = "$want" ]' "exec line: $(grep '^exec ' job.sbatch) (want $want)"
check 'grep -q "bench --preset .$tmp/p.json. --out .$tmp/bo. --report-only" job.sbatch' "the report command is not in the script"
check 'grep -q "^#SBATCH --job-name=segloss-tasks-test$" job.sbatch' "job name: $(grep job-name job.sbatch)"

# the manifest: a ConfigMap with the preset, an indexed Job of 4 completions
checks=$((checks + 1))
$PY - "$tmp" "$S" <<'PY' || fail "the Kubernetes manifest"
import json, subprocess, sys, yaml
tmp, S = sys.argv[1], sys.argv[2]
docs = list(yaml.safe_load_all(open(tmp + "/job.yaml")))
cm, job = docs
assert cm["kind"] == "ConfigMap" and job["kind"] == "Job" and job["apiVersion"] == "batch/v1", docs
preset = json.loads(cm["data"]["preset.json"])
assert preset["name"] == "tasks test" and preset["seeds"] == [1, 2], preset
spec = job["spec"]
assert spec["completionMode"] == "Indexed" and spec["completions"] == 4 and spec["parallelism"] == 4, spec
c = spec["template"]["spec"]["containers"][0]
assert c["command"] == ["segloss", "bench", "--preset", "/etc/segloss/preset.json", "--out", tmp + "/bo",
                        "--run", "$(JOB_COMPLETION_INDEX)", "--quiet"], c["command"]
env = {e["name"]: e for e in c["env"]}
assert env["JOB_COMPLETION_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == \
    "metadata.annotations['batch.kubernetes.io/job-completion-index']", env
mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
vols = {v["name"]: v for v in spec["template"]["spec"]["volumes"]}
assert mounts == {"preset": "/etc/segloss", "out": tmp + "/bo"}, mounts
assert vols["preset"]["configMap"]["name"] == cm["metadata"]["name"], vols
assert vols["out"]["persistentVolumeClaim"]["claimName"] == "segloss-bench", vols
assert c["image"] == "segloss", c["image"]
# the ConfigMap's preset is the same benchmark: a task run from it is accepted in a folder started from p.json
open(tmp + "/cm.json", "w").write(cm["data"]["preset.json"])
print("manifest ok: %d completions, command %s" % (spec["completions"], " ".join(c["command"])))
PY
run "emit k8s with image and claim" "$S" bench --preset p.json --out bo --emit-k8s k.yaml --k8s-image reg/seg:1 --k8s-claim my-claim
check 'grep -q "image: \"reg/seg:1\"" k.yaml && grep -q "claimName: \"my-claim\"" k.yaml' "--k8s-image/--k8s-claim not in the manifest"

# the job array without Slurm: every task of the script at once
for k in 0 1 2 3; do SLURM_ARRAY_TASK_ID=$k bash job.sbatch >"task$k.out" 2>"task$k.err" & done
wait
for k in 0 1 2 3; do
  check "grep -q '^task $k: ' task$k.out && [ ! -s task$k.err ]" "task $k: $(cat task$k.out task$k.err | head -3)"
done
check '[ "$(ls bo/results | wc -l)" = 6 ]' "6 result files after the 4 tasks: $(ls bo/results)"
check '[ ! -e bo/report.md ]' "a task wrote a report"
# a task run again finds its results and does nothing
run "task again" "$S" bench --preset p.json --out bo --run 2
check 'grep -q "from earlier calls" "$tmp/out" && grep -q "^task 2: 2 runs done (2 from earlier calls" "$tmp/out"' "task 2 again: $(cat "$tmp/out")"
# a task from the ConfigMap's copy of the preset is accepted in the same folder
run "task from the manifest's preset" "$S" bench --preset cm.json --out bo --run 0
run "report" "$S" bench --preset p.json --out bo --report-only --quiet

# the same benchmark serially, its report made the same way
run "serial" "$S" bench --preset p.json --out ser --threads 1 --quiet
run "serial report" "$S" bench --preset p.json --out ser --report-only --quiet
for f in results.csv summary.csv; do
  check "cmp -s ser/$f bo/$f" "$f of the tasks differs from the serial run's"
done
# report.md: equal but for its one line of timings (seconds summed over the runs)
check 'diff <(grep -v "summed over the runs" ser/report.md) <(grep -v "summed over the runs" bo/report.md) >/dev/null' \
  "report.md of the tasks differs from the serial run's beyond the timings line"
check 'diff <(grep -v "\"seconds" ser/results.json) <(grep -v "\"seconds" bo/results.json) >/dev/null' \
  "results.json differs from the serial run's beyond the timings"

# misuse: one line each
expect 2 "preset 'tasks test' has 4 tasks (0 to 3)" -- "$S" bench --preset p.json --out out2 --run 4
expect 2 "--run expects a task number" -- "$S" bench --preset p.json --out out2 --run -1
expect 2 "--run excludes --resume" -- "$S" bench --preset p.json --out out2 --run 0 --resume
expect 2 "need --preset" -- "$S" bench --out out2 --emit-slurm x.sbatch
expect 2 "exclude --run" -- "$S" bench --preset p.json --out out2 --emit-slurm x.sbatch --run 1
expect 1 "cannot write" -- "$S" bench --preset p.json --out out2 --emit-slurm nodir/x.sbatch
check '[ ! -e out2 ] && [ ! -e x.sbatch ]' "a refused call left files behind"
# a task in a folder started with another preset
sed 's/"seeds": \[1, 2\]/"seeds": [1, 3]/' p.json >q.json
expect 1 "was started with another preset" -- "$S" bench --preset q.json --out bo --run 0
# the report before every task has ended
run "one task" "$S" bench --preset p.json --out part --run 1 --quiet
expect 1 "have no result" -- "$S" bench --preset p.json --out part --report-only

# the scheduler's SIGTERM (time limit, scancel, preemption): the task stops
# at the next step with one line and exit 1, keeping its checkpoint; run
# again, it resumes and finishes
sed 's/"epochs": 1, "steps_per_epoch": 2/"epochs": 3, "steps_per_epoch": 40/; s/"seeds": \[1, 2\]/"seeds": [1]/' p.json >long.json
"$S" bench --preset long.json --out term --run 0 --quiet >term.out 2>term.err &
tpid=$!
for _ in $(seq 300); do [ -e "term/runs/ph/seed1/dice+ce/checkpoint.bin" ] && break; sleep 0.05; done
kill -TERM "$tpid"
wait "$tpid"
rc=$?
check '[ "$rc" = 1 ] && [ "$(wc -l <term.err)" = 1 ] && grep -q "task 0 interrupted; run it again" term.err' \
  "SIGTERM: exit $rc, stderr: $(head -3 term.err)"
check '[ -e term/runs/ph/seed1/dice+ce/checkpoint.bin ] && [ ! -e term/results/ph__seed1__dice+ce.json ]' "SIGTERM: checkpoint kept, no result"
run "task after SIGTERM" "$S" bench --preset long.json --out term --run 0 --quiet
check 'grep -q "^task 0: 2 runs done (0 from earlier calls" "$tmp/out"' "resumed task: $(cat "$tmp/out")"

echo "bench tasks: $checks checks, $fails failed"
[ "$fails" -eq 0 ]
