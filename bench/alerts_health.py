"""How the alert sensors and the health audit scale with run history, and that posts keep to 1 per second.

Sets up a throwaway instance with N finished runs (half with a failing non-blocking check), then times:
- one `asset_check_alert_sensor` tick over the whole 24 h backlog (25 runs per status per tick);
- one `jada health` audit (`build_audit`) over the same instance;
- 5 posts through the real resource to the local webhook emulator (paced: should take ≥ 4 s);
- `jada health --alert` as the watchdog timer runs it (a fresh process: imports, audit, posts), twice: the
  first run posts the problems (no daemon runs here), the second posts nothing; wall time and peak memory.

Run: `.venv/bin/python bench/alerts_health.py [--runs N]`. Needs no network: the webhook is a local emulator.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg


@dg.asset
def bench_rows():
    return 1


@dg.asset_check(asset=bench_rows)
def bench_rows_ok(context):
    return dg.AssetCheckResult(passed=context.run.run_id[0] < "8", severity=dg.AssetCheckSeverity.WARN)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["DAGSTER_HOME"] = tmp
        os.environ["JADA_DATA_DIR"] = os.path.join(tmp, "jada")
        from jada_pipelines.alerts.messages import FailedCheck, check_failed
        from jada_pipelines.alerts.resources import SlackWebhookResource
        from jada_pipelines.alerts.sensors import asset_check_alert_sensor
        from jada_pipelines.emulators.slack import SlackWebhookEmulator
        from jada_pipelines.health.audit import build_audit

        webhook = SlackWebhookEmulator()
        webhook.start()
        os.environ["SLACK_WEBHOOK_URL"] = webhook.webhook_url
        try:
            with dg.instance_for_test(temp_dir=tmp) as instance:
                # The runs only set the scene: keep their console logs out of the figures.
                quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
                for _ in range(args.runs):
                    dg.materialize([bench_rows, bench_rows_ok], instance=instance, run_config=quiet)
                fast = {"slack": SlackWebhookResource(min_interval_seconds=0)}
                start = time.perf_counter()
                asset_check_alert_sensor(dg.build_sensor_context(instance=instance, resources=fast))
                tick = time.perf_counter() - start
                start = time.perf_counter()
                build_audit(instance, now=time.time())
                audit = time.perf_counter() - start
            print(
                f"alert sensor tick over {min(args.runs, 25)} runs ({len(webhook.payloads)} posts): {tick:.2f} s"
            )
            print(f"health audit over {args.runs} runs: {audit:.2f} s")
            paced = SlackWebhookResource()
            message = check_failed(
                FailedCheck("a", "c", "WARN", "bench", False), job="j", run_id="r", webserver_url="http://x"
            )
            start = time.perf_counter()
            for _ in range(5):
                paced.post(message)
            posts = time.perf_counter() - start
            print(f"5 paced posts: {posts:.2f} s (Slack's limit: 1 per second, so at least 4 s)")
            jada = str(Path(sys.executable).parent / "jada")
            for run in ("first (posts)", "second (nothing new)"):
                before = len(webhook.payloads)
                start = time.perf_counter()
                subprocess.run([jada, "health", "--alert"], capture_output=True, check=False)
                wall = time.perf_counter() - start
                peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
                print(
                    f"jada health --alert, {run}: {wall:.2f} s wall, {len(webhook.payloads) - before} post(s), "
                    f"peak RSS so far {peak_mb:.0f} MB"
                )
            return 0 if posts >= 4.0 else 1
        finally:
            webhook.stop()


if __name__ == "__main__":
    raise SystemExit(main())
