"""How long loading the code location takes, against a bare `import dagster`.

Every run worker and every `dagster`/`jada` command loads the definitions again, so heavy clients
(anthropic, pandas, gspread, google-auth, boto3, slack_sdk) must be imported inside the functions
that use them. Target (DESIGN.md): within 1.3x a bare `import dagster`.

Each measurement is a fresh interpreter; the two commands alternate so that background load on the
machine hits both alike. Run: `.venv/bin/python bench/definitions_load.py [--runs N]`.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

BASELINE = "import dagster"
CANDIDATE = "import jada_pipelines.definitions as d; d.defs.get_repository_def()"
TARGET_RATIO = 1.3


def _time_once(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    _time_once(CANDIDATE)  # warm the bytecode cache so neither side pays for compilation
    baseline, candidate = [], []
    for _ in range(args.runs):
        baseline.append(_time_once(BASELINE))
        candidate.append(_time_once(CANDIDATE))
    base, cand = statistics.median(baseline), statistics.median(candidate)
    ratio = cand / base
    print(f"{'what':<40} {'median s':>9} {'min s':>7}")
    print(f"{'import dagster (baseline)':<40} {base:>9.3f} {min(baseline):>7.3f}")
    print(f"{'load jada_pipelines.definitions':<40} {cand:>9.3f} {min(candidate):>7.3f}")
    verdict = "within" if ratio <= TARGET_RATIO else "OVER"
    print(f"ratio {ratio:.2f}x ({verdict} the {TARGET_RATIO}x target), {args.runs} runs each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
