#!/usr/bin/env bash
# The GPU check for minigan's CUDA path. Run from the repository root on a machine with a GPU:
#
#   bash benchmarks/gpu_verify.sh doctor tests   # ~5 min: environment + checks, then every gpu test
#   bash benchmarks/gpu_verify.sh bench          # ~5 min: bench_step at B = 64 128 1024 8192
#   bash benchmarks/gpu_verify.sh mnist          # ~5 min: examples/mnist.py, 300 steps on each engine
#
# With no stage named it runs all four (about 15 min; each stage alone stays under 10 min, so
# that a machine lent for 10-minute commands can run them one call each). Logs and the bench
# JSON go to $OUT (default ./gpu-verify). It ends with PASS or FAIL and exits non-zero on FAIL.
# FAIL, loudly, also when the run tested nothing: a gpu test skipped, a fused row or run that
# fell back to eager or to autograd.
#
# Install: this machine already has CuPy for its CUDA and, for the benchmark, a CUDA build of
# torch. So minigan goes in with neither its dependencies nor build isolation (offline), and
# never as .[cuda12] or .[bench], which would pull cupy-cuda12x or the CPU torch pin over them.
set -uo pipefail

out="${OUT:-$PWD/gpu-verify}"
mkdir -p "$out"
py="${PYTHON:-python3}"
fail=0
stages="${*:-doctor tests bench mnist}"
# The code under test is this checkout's, whatever else is installed.
export PYTHONUNBUFFERED=1 CI=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

has() { [[ " $stages " == *" $1 "* ]]; }
problem() { echo "FAIL: $*" | tee -a "$out/failures.log"; fail=1; }

for stage in $stages; do
  case "$stage" in doctor|tests|bench|mnist) ;; *) echo "unknown stage '$stage': use doctor, tests, bench, mnist"; exit 2;; esac
done

if ! "$py" -c "import cupy" 2>/dev/null; then
  problem "CuPy does not import here; install the wheel for this CUDA (cupy-cuda12x or cupy-cuda13x) first"
  "$py" -c "import cupy" 2>&1 | tail -1
  exit 1
fi
"$py" -m pip install -q --no-index --no-deps --no-build-isolation -e . >"$out/install.log" 2>&1 \
  || echo "pip install -e . failed (see $out/install.log); using PYTHONPATH"

if has doctor; then
  echo "== doctor"
  timeout 120 "$py" -m minigan.doctor --device cuda 2>&1 | tee "$out/doctor.log"
  [ "${PIPESTATUS[0]}" = 0 ] || problem "minigan.doctor --device cuda: $(tail -1 "$out/doctor.log")"
fi

if has tests; then
  echo "== gpu tests"
  for part in fast_cuda rest; do
    if [ $part = fast_cuda ]; then select=(tests/test_fast_cuda.py); else select=(tests --ignore=tests/test_fast_cuda.py); fi
    timeout 280 "$py" -m pytest -m gpu -rs -q -p no:cacheprovider "${select[@]}" 2>&1 | tee "$out/pytest_$part.log"
    status="${PIPESTATUS[0]}"
    [ "$status" = 0 ] || problem "pytest -m gpu ($part) exited with $status"
    # A skipped gpu test means the GPU path went untested: that is a failure here, not a pass.
    summary="$(tail -1 "$out/pytest_$part.log")"
    [[ "$summary" == *skipped* ]] && problem "gpu tests were skipped ($part): $summary"
    [[ "$summary" == *passed* ]] || problem "no gpu test passed ($part): $summary"
  done
fi

if has bench; then
  echo "== bench_step"
  bench_dir="$out/bench"
  mkdir -p "$bench_dir"
  timeout 540 "$py" benchmarks/bench_step.py --device cuda --batch-sizes 64 128 1024 8192 --iters 200 \
      --time-budget 4 --out-dir "$bench_dir" 2>&1 | tee "$out/bench.log"
  [ "${PIPESTATUS[0]}" = 0 ] || problem "bench_step exited with an error"
  # Each row says whether it ran as a captured CUDA graph; a fused row must have.
  "$py" - "$bench_dir" <<'EOF' 2>&1 | tee -a "$out/bench.log"
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
fast = [r for r in report["results"] if r["implementation"].startswith("minigan fast")]
if not fast:
    bad.append("no minigan fast row")
bad += [f"{name} skipped: {why}" for name, why in report["skipped"].items()]
for line in bad:
    print("FAIL:", line)
sys.exit(1 if bad else 0)
EOF
  [ "${PIPESTATUS[0]}" = 0 ] || problem "bench_step: a row is missing, skipped or ran eagerly (see $out/bench.log)"
fi

if has mnist; then
  runs="$(mktemp -d)"
  for engine in fused autograd; do
    echo "== examples/mnist.py --engine $engine"
    timeout 240 "$py" examples/mnist.py --device cuda --max-steps 300 --engine $engine \
        --out "$runs/mnist-$engine" --overwrite 2>&1 | tee "$out/mnist_$engine.log"
    [ "${PIPESTATUS[0]}" = 0 ] || problem "mnist.py --engine $engine exited with an error"
  done
  # The fused run must have run fused, as a CUDA graph, to the end: no fallback to autograd or eager.
  grep -q "ran on: fused, CUDA graph" "$out/mnist_fused.log" || problem "mnist.py --engine fused did not end with 'ran on: fused, CUDA graph'"
  grep -Eqi "fused step failed|capture of the training step failed" "$out/mnist_fused.log" \
    && problem "mnist.py --engine fused fell back (see $out/mnist_fused.log)"
  rm -rf "$runs"
fi

echo "gpu_verify ($stages): $([ $fail = 0 ] && echo PASS || echo FAIL); logs and bench JSON in $out"
exit $fail
