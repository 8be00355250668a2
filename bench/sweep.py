"""Issue 6's hot show at several concurrencies, and the plot of throughput and p99 against concurrency.

Usage (make bench-sweep runs it with the defaults):
    python -m bench.sweep [--concurrency 10,25,50,100,200] [--modes workers,balanced] [--out bench/results/sweep]
                          [--plot docs/performance/hot_show.png]

Each point is one run of `python -m bench.hold_path --pairs` (every pair of neighbouring seats of the 2,000-seat hall
asked for by two buyers, 2,000 requests, a fresh server each time) with 2 web processes: `workers` is
`uvicorn --workers 2` sharing one socket, `balanced` is 2 uvicorn processes behind HAProxy (bench/harness/balancer.py).
The runs go one after another, so every point of a plot was measured in the same sitting; a run whose
invariants fail, or that had a failed request, stops the sweep (exit status 1). The JSON of every run is
kept under --out, with summary.json for the whole sweep; the plot (matplotlib) draws granted holds per
second and the p99 of the hold request against the number of concurrent clients, one line per mode.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODES = {"workers": ["--workers", "2"], "balanced": ["--balanced", "2"]}


def run_point(mode, concurrency, out_dir):
    result = out_dir / f"{mode}-{concurrency}.json"
    command = [sys.executable, "-m", "bench.hold_path", "--pairs", "--concurrency", str(concurrency)]
    command += MODES[mode] + ["--json", str(result)]
    print(f"sweep: {mode} at {concurrency} clients", file=sys.stderr, flush=True)
    finished = subprocess.run(command, cwd=ROOT, stdout=subprocess.DEVNULL, check=False)
    if not result.exists():
        sys.exit(f"sweep: {' '.join(command)} wrote no report (exit {finished.returncode})")
    report = json.loads(result.read_text())
    if finished.returncode != 0 or not report["ok"]:
        sys.exit(f"sweep: {mode} at {concurrency} clients failed; see {result}")
    cpu = report["cpu"]["cpu_seconds"]
    requests = sum(report["status_counts"].values())
    return {
        "mode": mode,
        "concurrency": concurrency,
        "requests_per_s": report["throughput_per_s"]["attempts"],
        "holds_per_s": report["throughput_per_s"]["holds"],
        "p50_ms": report["latency_ms"]["hold_all"]["p50"],
        "p95_ms": report["latency_ms"]["hold_all"]["p95"],
        "p99_ms": report["latency_ms"]["hold_all"]["p99"],
        "answers": report["status_counts"],
        "server_cpu_ms_per_request": round(1000 * sum(cpu["server_workers"]) / requests, 2),
        "postgres_cpu_ms_per_request": round(1000 * cpu["postgres_backends_of_this_run"] / requests, 2),
        "load_generator_cpu_ms_per_request": round(1000 * cpu["load_generator"] / requests, 2),
        "machine_busy_percent": report["cpu"]["machine_busy_percent"],
        "code": report["setup"]["code"],
    }


def plot(points, target):
    import matplotlib

    matplotlib.use("Agg")  # no screen here
    import matplotlib.pyplot as plt

    figure, (throughput, latency) = plt.subplots(1, 2, figsize=(11, 4.2))
    for mode in dict.fromkeys(point["mode"] for point in points):
        mine = sorted((point for point in points if point["mode"] == mode), key=lambda point: point["concurrency"])
        clients = [point["concurrency"] for point in mine]
        label = "uvicorn --workers 2" if mode == "workers" else "2 processes behind HAProxy"
        throughput.plot(clients, [point["holds_per_s"] for point in mine], marker="o", label=label)
        latency.plot(clients, [point["p99_ms"] for point in mine], marker="o", label=label)
    throughput.set(title="Granted two-seat holds per second", xlabel="concurrent clients", ylabel="holds/s")
    latency.set(title="Hold request p99", xlabel="concurrent clients", ylabel="ms")
    for axes in (throughput, latency):
        axes.set_xscale("log")
        axes.set_xticks([point["concurrency"] for point in points], labels=None)
        axes.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        axes.set_ylim(bottom=0)
        axes.grid(alpha=0.3)
        axes.legend()
    figure.suptitle("Hot show: 2,000 two-seat holds on one 2,000-seat show, each pair wanted twice (2 cores)")
    figure.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=110)


def main():
    parser = argparse.ArgumentParser(
        prog="python -m bench.sweep", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--concurrency", default="10,25,50,100,200", help="comma-separated client counts")
    parser.add_argument("--modes", default="workers,balanced", help=f"comma-separated, of {', '.join(MODES)}")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "sweep")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "performance" / "hot_show.png")
    parser.add_argument("--replot", action="store_true", help="only redraw the plot from --out/summary.json")
    options = parser.parse_args()

    summary = options.out / "summary.json"
    if options.replot:
        plot(json.loads(summary.read_text()), options.plot)
        return
    modes = options.modes.split(",")
    if unknown := set(modes) - set(MODES):
        parser.error(f"unknown modes: {', '.join(sorted(unknown))}")
    options.out.mkdir(parents=True, exist_ok=True)
    points = [
        run_point(mode, int(concurrency), options.out)
        for concurrency in options.concurrency.split(",")
        for mode in modes  # alternating modes at each level, so a noisy minute hits both alike
    ]
    summary.write_text(json.dumps(points, indent=2))
    print(json.dumps(points, indent=2))
    plot(points, options.plot)
    print(f"sweep: plot written to {options.plot}", file=sys.stderr)


if __name__ == "__main__":
    main()
