#!/usr/bin/env bash
# The whole GPU check of minigan's CUDA path, in one command of at most 8 minutes on an H100/H200.
# Run from the repository root on a machine with a GPU:
#
#   bash benchmarks/gpu_verify.sh             # every stage, in the order below
#   bash benchmarks/gpu_verify.sh --dry-run   # list the stages and their time budgets; runs nothing
#   bash benchmarks/gpu_verify.sh bench mnist_fused   # only the stages named
#
# Stages, the most informative first; each runs under its own time budget (timeout), and the
# budgets add up to 7 minutes, leaving one for start-up checks and test collection:
#   doctor          python -m minigan.doctor --device cuda: setup, kernels, a captured step, autograd
#   tests_fast      pytest -m gpu tests/test_fast_cuda.py: the fused step, cuBLAS, CUDA graph replay
#   bench           benchmarks/bench_step.py --device cuda at B = 128 and 8192 (every row, with torch)
#   mnist_fused     examples/mnist.py --device cuda --engine fused, 300 steps: must end captured
#   mnist_autograd  the same with --engine autograd, the readable path on CuPy
#   mnist_paper     examples/mnist.py --config paper --device cuda, 300 steps: maxout and dropout on CuPy
#   tests_rest      pytest -m gpu on every other test module (the autograd ops on CuPy)
#
# Everything goes to $OUT (default ./gpu-verify-out) as it happens, so that a run cut short still
# leaves its results: one log per stage, the bench JSON under bench/, and gpu_verify.json, which
# names the GPU, driver, CUDA, CuPy, torch and date, each stage's outcome and time, and whether each
# fast bench row ran captured. It ends with PASS or FAIL and exits non-zero on FAIL, also when a run
# tested nothing: a gpu test skipped, a fused row or run that fell back to eager or to autograd.
#
# Installs nothing (the GPU machine may be offline): the checkout is used through PYTHONPATH, and
# CuPy (with its CUDA libraries), torch (a CUDA build, for bench and the parity tests), pytest and
# hypothesis must be there already. What is missing is said in one line, with the install step.
set -uo pipefail

ORDER=(doctor tests_fast bench mnist_fused mnist_autograd mnist_paper tests_rest)
declare -A BUDGET=([doctor]=45 [tests_fast]=100 [bench]=110 [mnist_fused]=35 [mnist_autograd]=35 [mnist_paper]=30
                   [tests_rest]=65)
# Seconds: the budgets leave 60 of one device command's 8 minutes for the checks of what is installed,
# the test collection before each pytest stage, and the 5 s each timed-out stage gets to exit.
TOTAL_LIMIT=420

declare -A WHAT=(
  [doctor]="python -m minigan.doctor --device cuda"
  [tests_fast]="pytest -m gpu tests/test_fast_cuda.py"
  [bench]="benchmarks/bench_step.py --device cuda --batch-sizes 128 8192"
  [mnist_fused]="examples/mnist.py --device cuda --engine fused --max-steps 300"
  [mnist_autograd]="examples/mnist.py --device cuda --engine autograd --max-steps 300"
  [mnist_paper]="examples/mnist.py --config paper --device cuda --max-steps 300"
  [tests_rest]="pytest -m gpu tests (all but test_fast_cuda.py)"
)

dry_run=0
stages=()
for arg in "$@"; do
  case "$arg" in
    --dry-run) dry_run=1 ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) if [[ -n "${BUDGET[$arg]+set}" ]]; then stages+=("$arg")
       else echo "gpu_verify: unknown stage '$arg'; the stages are: ${ORDER[*]} (or --dry-run)"; exit 2; fi ;;
  esac
done
[ ${#stages[@]} -eq 0 ] && stages=("${ORDER[@]}")

total=0
for stage in "${stages[@]}"; do total=$((total + BUDGET[$stage])); done
if [ $total -gt $TOTAL_LIMIT ]; then
  echo "gpu_verify: the stages' budgets add up to ${total}s, over the ${TOTAL_LIMIT}s limit"; exit 2
fi
if [ $dry_run = 1 ]; then
  echo "gpu_verify stages (dry run: nothing is run), in order, each with its time budget:"
  for stage in "${stages[@]}"; do printf '  %-15s %4ss  %s\n' "$stage" "${BUDGET[$stage]}" "${WHAT[$stage]}"; done
  echo "total budget: ${total}s (limit ${TOTAL_LIMIT}s); results in ${OUT:-./gpu-verify-out}"
  exit 0
fi

out="${OUT:-$PWD/gpu-verify-out}"
mkdir -p "$out" || { echo "gpu_verify: cannot write to $out"; exit 2; }
py="${PYTHON:-python3}"
fail=0
# The code under test is this checkout's, whatever else is installed; hypothesis runs its CI profile.
export PYTHONUNBUFFERED=1 CI=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
: >"$out/failures.log"
: >"$out/stages.tsv"

problem() { echo "FAIL: $*" | tee -a "$out/failures.log"; fail=1; }

# gpu_verify.json: the environment, every stage so far and the bench rows; rewritten after each stage.
write_json() {
  "$py" - "$out" <<'EOF'
import glob, json, os, sys
out = sys.argv[1]
report = {"script": "benchmarks/gpu_verify.sh"}
try:
    report["environment"] = json.load(open(os.path.join(out, "environment.json")))
except (OSError, ValueError):
    report["environment"] = None
stages = []
for line in open(os.path.join(out, "stages.tsv")):
    name, status, seconds, budget, log = line.rstrip("\n").split("\t")
    stages.append({"stage": name, "status": status, "seconds": int(seconds), "budget_s": int(budget), "log": log})
report["stages"] = stages
files = sorted(glob.glob(os.path.join(out, "bench", "bench_step-cuda*.json")))
if files:
    bench = json.load(open(files[-1]))
    report["bench"] = {"json": os.path.relpath(files[-1], out), "skipped": bench.get("skipped", {}), "rows": [
        {key: row.get(key) for key in ("implementation", "batch_size", "median_ms", "ratio_to_peer", "peer",
                                       "captured", "graph_expected", "mode", "peak_bytes")}
        for row in bench["results"]]}
report["failures"] = [line.strip() for line in open(os.path.join(out, "failures.log")) if line.strip()]
report["result"] = "FAIL" if report["failures"] else "PASS so far"
temporary = os.path.join(out, "gpu_verify.json.tmp")
with open(temporary, "w") as f:
    json.dump(report, f, indent=1)
os.replace(temporary, os.path.join(out, "gpu_verify.json"))
EOF
}

# run_stage NAME LOG COMMAND...: the command under the stage's budget, its output to the screen and LOG.
# Sets $status (124 when the budget ran out).
run_stage() {
  local name=$1 log=$2; shift 2
  echo "== $name (budget ${BUDGET[$name]}s): $*"
  local start=$SECONDS
  timeout -k 5 "${BUDGET[$name]}" "$@" 2>&1 | tee "$out/$log"
  status=${PIPESTATUS[0]}
  [ "$status" = 124 ] && problem "$name ran out of its ${BUDGET[$name]}s budget (see $log)"
  stage_seconds=$((SECONDS - start))
}

record() {  # record NAME FAILURES_BEFORE LOG
  local outcome=ok
  [ "$(wc -l <"$out/failures.log")" -gt "$2" ] && outcome=FAIL
  printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$outcome" "$stage_seconds" "${BUDGET[$1]}" "$3" >>"$out/stages.tsv"
  write_json
}

# --- what must be installed already ---------------------------------------------------------------
missing=""
"$py" -c "import numpy, matplotlib, tqdm" 2>/dev/null \
  || missing="minigan's dependencies: pip install --no-deps -e . && pip install numpy matplotlib tqdm"
"$py" -c "import cupy" 2>/dev/null \
  || missing="CuPy: pip install -e '.[cuda13]' (or '.[cuda12]', as nvidia-smi's CUDA Version says)"
if [ -n "$missing" ]; then
  echo "gpu_verify: missing $missing"; exit 1
fi
"$py" - >"$out/environment.json" 2>"$out/environment.log" <<'EOF'
import datetime, json, platform, subprocess
env = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "python": platform.python_version()}
try:
    query = "name,driver_version,memory.total"
    line = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"], capture_output=True,
                          text=True, timeout=30).stdout.strip().splitlines()[0]
    env["gpu"], env["driver"], env["gpu_memory"] = (part.strip() for part in line.split(","))
except Exception as error:
    env["nvidia_smi"] = f"{type(error).__name__}: {error}"
try:
    import cupy
    version = lambda v: f"{v // 1000}.{v % 1000 // 10}"
    env["cupy"] = cupy.__version__
    env["cuda_runtime"] = version(cupy.cuda.runtime.runtimeGetVersion())
    env["cuda_driver"] = version(cupy.cuda.runtime.driverGetVersion())
    env.setdefault("gpu", cupy.cuda.runtime.getDeviceProperties(0)["name"].decode())
except Exception as error:
    env["cupy_error"] = f"{type(error).__name__}: {error}"
try:
    import torch
    env["torch"], env["torch_cuda"] = torch.__version__, torch.version.cuda
except Exception as error:
    env["torch"] = f"not importable ({type(error).__name__})"
print(json.dumps(env, indent=1))
EOF
write_json
has_torch=1
"$py" -c "import torch; assert torch.cuda.is_available()" 2>/dev/null || has_torch=0
has_pytest=1
"$py" -c "import pytest, hypothesis" 2>/dev/null || has_pytest=0
echo "gpu_verify: stages ${stages[*]}; total budget ${total}s; results in $out"

# --- the stages -------------------------------------------------------------------------------------

# pytest, gpu tests only; every gpu test collected must pass, none skipped. A module that cannot be
# imported here (torch missing: skipped or an error at collection, before -m gpu deselects its
# tests) is left out with a note when it holds no gpu test, and is a failure when it does.
gpu_pytest() {  # gpu_pytest NAME LOG ARGS...
  local name=$1 log=$2; shift 2
  if [ $has_pytest = 0 ]; then
    problem "$name: pytest and hypothesis are not installed: pip install pytest hypothesis"; stage_seconds=0; return
  fi
  local ignore=() path
  while read -r path; do
    local why
    why="$(grep -m1 "^SKIPPED .*${path}" "$out/collect_$log" | sed 's/^[^:]*:[0-9]*: //')"
    [ -n "$why" ] || why="$(grep -E -m1 "^E +(ModuleNotFoundError|ImportError)" "$out/collect_$log" | sed 's/^E *//')"
    if grep -qE 'mark\.gpu|def test_[A-Za-z0-9_]*\([^)]*\bdevice\b' "$path"; then
      problem "$name: $path holds gpu tests but cannot be imported here (${why:-see collect_$log})"
    else
      echo "note: $path left out: it holds no gpu test and cannot be imported here (${why:-see collect_$log})"
    fi
    ignore+=("--ignore=$path")
  done < <("$py" -m pytest --collect-only -q -m gpu -rsE -p no:cacheprovider "$@" 2>&1 | tee "$out/collect_$log" \
           | sed -n 's/^SKIPPED \[[0-9]*\] \(tests\/[^:]*\.py\):.*/\1/p; s/^ERROR \(tests\/[^ ]*\.py\).*/\1/p' \
           | sort -u)
  local parallel=()
  [ "$name" = tests_rest ] && "$py" -c "import xdist" 2>/dev/null && parallel=(-n 4)
  run_stage "$name" "$log" "$py" -m pytest -m gpu -rs -q -p no:cacheprovider "${parallel[@]}" "${ignore[@]}" "$@"
  [ "$status" = 0 ] || [ "$status" = 124 ] || problem "$name: pytest exited with $status"
  local summary
  summary="$(grep -E '^(=+ )?[0-9]+ (passed|failed|skipped|error)' "$out/$log" | tail -1)"
  [[ "$summary" == *skipped* ]] && problem "$name: gpu tests were skipped: $summary"
  [[ "$summary" == *passed* ]] || problem "$name: no gpu test passed: ${summary:-no summary line}"
}

for stage in "${stages[@]}"; do
  before=$(wc -l <"$out/failures.log")
  case "$stage" in
    doctor)
      run_stage doctor doctor.log "$py" -m minigan.doctor --device cuda
      last="$(tail -1 "$out/doctor.log")"
      [ "$status" = 0 ] && [ "$last" = ok ] || problem "doctor: ${last:-no output}"
      record doctor "$before" doctor.log ;;
    tests_fast)
      gpu_pytest tests_fast pytest_fast.log tests/test_fast_cuda.py
      record tests_fast "$before" pytest_fast.log ;;
    tests_rest)
      gpu_pytest tests_rest pytest_rest.log tests --ignore=tests/test_fast_cuda.py
      record tests_rest "$before" pytest_rest.log ;;
    bench)
      if [ $has_torch = 0 ]; then
        problem "bench: needs a CUDA build of torch (the peer it is timed against), which is not installed here"
        stage_seconds=0
      else
        mkdir -p "$out/bench"
        run_stage bench bench.log "$py" benchmarks/bench_step.py --device cuda --batch-sizes 128 8192 --iters 100 \
          --min-iters 20 --time-budget 3 --out-dir "$out/bench"
        [ "$status" = 0 ] || [ "$status" = 124 ] || problem "bench: bench_step exited with $status"
        # Each row says whether it ran as a captured CUDA graph; a fused row must have, and no row may be missing.
        "$py" - "$out/bench" <<'EOF' 2>&1 | tee -a "$out/bench.log"
import glob, json, sys
files = sorted(glob.glob(sys.argv[1] + "/bench_step-cuda*.json"))
if not files:
    sys.exit("FAIL: bench_step wrote no JSON")
report = json.load(open(files[-1]))
bad = []
for row in report["results"]:
    eager = row.get("graph_expected") and not row.get("captured")
    print(f'{row["implementation"]:18} B={row["batch_size"]:<5} {row["median_ms"]:8.3f} ms  '
          f'captured={row.get("captured")}  /peer {row["ratio_to_peer"]}' + ("  EAGER" if eager else ""))
    if "captured" not in row:
        bad.append(f'{row["implementation"]} B={row["batch_size"]} has no captured field')
    elif eager:
        bad.append(f'{row["implementation"]} B={row["batch_size"]} ran eager: {row.get("mode")}')
if not [r for r in report["results"] if r["implementation"].startswith("minigan fast")]:
    bad.append("no minigan fast row")
bad += [f"{name} skipped: {why}" for name, why in report["skipped"].items()]
for line in bad:
    print("FAIL:", line)
sys.exit(1 if bad else 0)
EOF
        [ "${PIPESTATUS[0]}" = 0 ] || problem "bench: a row is missing, skipped or ran eagerly (see bench.log)"
      fi
      record bench "$before" bench.log ;;
    mnist_fused|mnist_autograd|mnist_paper)
      engine="${stage#mnist_}"
      runs="$(mktemp -d)"
      if [ "$engine" = paper ]; then flags=(--config paper); else flags=(--engine "$engine"); fi
      run_stage "$stage" "$stage.log" "$py" examples/mnist.py --device cuda --max-steps 300 "${flags[@]}" \
        --out "$runs/mnist-$engine" --overwrite
      [ "$status" = 0 ] || [ "$status" = 124 ] || problem "$stage: mnist.py exited with $status"
      grep -q "^done: 300 iterations" "$out/$stage.log" || problem "$stage: mnist.py did not finish its 300 steps"
      if [ "$engine" = fused ]; then
        # It must have run fused, as a CUDA graph, to the end: no fallback to autograd or to eager.
        grep -q "ran on: fused, CUDA graph" "$out/$stage.log" \
          || problem "$stage: mnist.py did not end with 'ran on: fused, CUDA graph'"
        grep -Eqi "fused step failed|of the training step failed" "$out/$stage.log" \
          && problem "$stage: the fused step fell back (see $stage.log)"
      fi
      rm -rf "$runs"
      record "$stage" "$before" "$stage.log" ;;
  esac
done

write_json
result=$([ $fail = 0 ] && echo PASS || echo FAIL)
sed -i "s/\"result\": \"PASS so far\"/\"result\": \"$result\"/" "$out/gpu_verify.json"
echo "gpu_verify (${stages[*]}): $result in ${SECONDS}s; logs and JSON in $out"
exit $fail
