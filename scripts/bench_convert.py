"""Throughput and memory of the N-MNIST converter on real files.

    python scripts/bench_convert.py [--root ../shared/data/nmnist-1k] [--repeats 5]
    python scripts/bench_convert.py --replicate 60   # 60 x 1000 files (symlinks): the full
                                                     # training-set size, to check bounded memory

Reports files/s and events/s (decoded events per second of wall time, best of the repeats) for
the default conversion (10 ms windows), with --keep-time and with --first-saccade, the output
size, and the peak resident memory of this process (ru_maxrss).
"""
import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from pyasync_snn.datasets.convert import convert_nmnist

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "nmnist-1k"


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def replicate(root, copies, workdir):
    """A Train/<digit>/ tree with every file of ``root`` linked ``copies`` times."""
    out = Path(workdir) / "replicated"
    for digit_dir in sorted((Path(root) / "Train").iterdir()):
        target = out / "Train" / digit_dir.name
        target.mkdir(parents=True)
        for f in sorted(digit_dir.glob("*.bin")):
            for c in range(copies):
                os.symlink(f.resolve(), target / f"{c:03d}_{f.name}")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=str(DEFAULT_ROOT))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--replicate", type=int, default=0, help="link every file this many times")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = replicate(args.root, args.replicate, tmp) if args.replicate else Path(args.root)
        configs = [("10 ms windows", {}), ("keep_time", {"keep_time": True}),
                   ("first_saccade", {"first_saccade": True})]
        if args.replicate:
            configs = configs[:1]
        for label, kwargs in configs:
            best = None
            for _ in range(1 if args.replicate else args.repeats):
                out = Path(tmp) / "out.h5"
                t0 = time.perf_counter()
                report = convert_nmnist(root, out, **kwargs)
                seconds = time.perf_counter() - t0
                if best is None or seconds < best[0]:
                    best = (seconds, report, out.stat().st_size)
            seconds, report, size = best
            print(f"{label:14s} {report.n_files} files, {report.n_events_read} events in "
                  f"{seconds:.2f} s: {report.n_files / seconds:7.0f} files/s, "
                  f"{report.n_events_read / seconds / 1e6:5.2f} M events/s; output "
                  f"{size / 1e6:.1f} MB ({size / report.n_events_read:.2f} bytes/event); "
                  f"peak RSS so far {peak_rss_mb():.0f} MB")
        if args.replicate:
            shutil.rmtree(root)


if __name__ == "__main__":
    main()
