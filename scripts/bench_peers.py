#!/usr/bin/env python
"""Side-by-side benchmark of pyasync-snn against snnTorch: same network, weights and inputs, CPU.

Usage (this script installs nothing; run it with an interpreter that has pyasync-snn's
requirements plus snntorch and torch, or without the latter two to get pyasync-snn's own numbers
only; ``pyasync_snn`` is imported from this checkout)::

    python scripts/bench_peers.py                               # 2312-256-256-10, 32 samples
    python scripts/bench_peers.py --layers 700,256,256,20 --out peers.md
    python scripts/bench_peers.py --threads 2 --samples 64 --repeats 5 --dtype float64

Workload: ``Network.xavier(layers, seed=0)`` (theta 0.3, beta 0.9, no bias); ``--samples`` samples
of ``--timesteps`` timesteps in which every (timestep, input channel) spikes independently with
probability ``--density`` (Bernoulli, seed 1234), with uniformly random labels. pyasync-snn gets
the input as an ``EventBatch`` (``EventBatch.from_dense``), snnTorch as the dense 0/1 tensor
``x[t, b, c]``. Default dtype float32.

The peers:

- pyasync-snn: forward = ``simulate(network, batch, schedule="layered", threads=N)``; training
  step = that ``simulate`` + ``loss_and_grad(network, batch, trace=trace, loss="rate")`` (atan
  surrogate, exact gradient) + ``Adam.step`` (``pyasync_snn.optim``, lr 1e-3).
- snnTorch: per layer a bias-free ``nn.Linear`` (weight = ``W_l``: pyasync stores ``W_l`` as
  ``(n_out, n_in)``, the orientation of ``nn.Linear.weight``) followed by ``snn.Leaky(beta,
  threshold, reset_mechanism="zero", reset_delay=False, spike_grad=snn.surrogate.atan())``, run
  time-stepped and layer-synchronized: for t in T, for each layer, ``spk, mem = lif(fc(spk), mem)``.
  Forward under ``torch.no_grad()``; training step = forward + ``F.cross_entropy`` of the output
  spikes of every timestep, averaged over timesteps and samples (pyasync's ``rate`` loss,
  ``mean_t CE(softmax(c_t), y)``; snntorch.functional.ce_rate_loss computes the same) +
  ``loss.backward()`` + ``torch.optim.Adam.step`` (lr 1e-3, the same defaults). Threads:
  ``torch.set_num_threads(N)``.

Why the two compute the same thing: pyasync's ``layered`` schedule is the layer-synchronized
network (docs/semantics.md, docs/algorithm.md): each timestep ``v <- beta v``, ``v <- v + W s``,
fire if ``v > theta`` (strictly), ``v <- 0``. snnTorch's Leaky does ``mem = beta mem + input``,
``spk = (mem - threshold > 0)`` (also strict; the docstring's ">=" is not what the code does).
With ``reset_mechanism="zero"`` the *default* ``reset_delay=True`` zeroes ``mem`` at the start of
the next step, before the decay and the input, which fires exactly the same spikes (only the
returned membrane differs) but detaches the reset from the graph (= pyasync's
``detach_reset=True``). ``reset_delay=False`` resets within the step through ``spk``, whose
surrogate gradient then flows through the reset, as in pyasync's default ``exact`` gradient; so
that is used. Float rounding: both compute ``beta*v`` then ``+ input`` in the run dtype; only the
input sum differs (pyasync adds weight rows in ascending presynaptic order, torch uses a blocked
GEMM), so a membrane within an ulp of theta could fire in one and not the other. The script
checks that the output spike counts per sample agree exactly in the run dtype; should they not
in float32, it reruns both forwards in float64 for the check (timings stay float32), and exits
non-zero only if they still disagree. (For 2312-256-256-10 and 700-256-256-20 with the defaults
they agree exactly in float32.) The table also shows the first training step's loss and
the largest gradient difference (relative to the largest gradient entry) between the peers.
snnTorch's atan forward returns float32 spikes whatever the input dtype; they are cast to the run
dtype before the next layer.

Methodology: each peer runs in its own child process (this script re-invoked with ``--child``),
on a workload the parent wrote to a temporary .npz, so that its peak memory is its own. In the
child: "first forward" / "first train step" are the first calls (they include Numba compilation
or loading of its on-disk cache, and torch's lazy initialisation); then forward and training step
are each timed with ``time.perf_counter``, best of ``--repeats``. Peak memory = the child's peak
RSS after the forward runs and after the training steps (whole process: interpreter,
numpy/numba or torch, data, model); "+x" is the increase over the peak after imports and setup
(data and model built, nothing run). It is read from ``VmHWM`` in ``/proc/self/status``, not
``resource.getrusage(RUSAGE_SELF).ru_maxrss``: Linux carries ``ru_maxrss`` over ``exec``, so a
child would report at least the parent's peak (the parent holds torch and the workload);
``ru_maxrss`` is only the fallback where ``/proc`` is missing. The helpers of
``bench_simulate.py`` are not imported: that would load Numba into the snnTorch child. Numbers are
indicative: other processes may share the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

DATA_SEED = 1234
LR = 1e-3


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def best_time(fn, repeats):
    return min(timed(fn)[0] for _ in range(repeats))


def max_rss_mb() -> float:
    """Peak RSS of this process: ``VmHWM`` (``ru_maxrss`` survives ``exec``: a child would report
    at least the parent's peak; ``VmHWM`` belongs to the new address space)."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024  # kB
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def workload(sizes, samples, timesteps, density):
    """Weights (float64, ``W_l`` shaped ``(n_out, n_in)``), dense input ``x[b, t, c]`` (0/1), labels."""
    from pyasync_snn import Network
    network = Network.xavier(sizes, seed=0)
    rng = np.random.default_rng(DATA_SEED)
    x = (rng.random((samples, timesteps, sizes[0])) < density).astype(np.uint8)
    labels = rng.integers(0, sizes[-1], samples)
    return network, x, labels


# ---------------------------------------------------------------- the peers (run in a child)
def run_pyasync(data, cfg):
    from pyasync_snn import EventBatch, Network, __version__, simulate
    from pyasync_snn.gradients import loss_and_grad
    from pyasync_snn.optim import Adam

    weights = [data[f"w{l}"] for l in range(int(data["n_layers"]))]
    network = Network(tuple(weights), float(data["theta"]), float(data["beta"]))
    batch = EventBatch.from_dense(data["x"], labels=data["labels"])
    threads, dtype = cfg["threads"], cfg["dtype"]
    forward = lambda: simulate(network, batch, schedule="layered", dtype=dtype, threads=threads)  # noqa: E731
    if cfg.get("counts_only"):
        return dict(counts=forward().output_counts.tolist())
    rss_setup = max_rss_mb()
    first_forward, trace = timed(forward)
    result = dict(version=__version__, counts=trace.output_counts.tolist(), first_forward=first_forward,
                  events_per_sample=trace.n_events / len(batch))
    result["forward"] = best_time(forward, cfg["repeats"])
    rss_forward = max_rss_mb()

    optimizer = Adam.for_weights(network.weights, lr=LR)

    def train_step():
        nonlocal network
        trace = simulate(network, batch, schedule="layered", dtype=dtype, threads=threads)
        loss, grads = loss_and_grad(network, batch, trace=trace, loss="rate", threads=threads)
        network = Network(tuple(optimizer.step(network.weights, grads)), network.threshold, network.beta)
        return loss, grads

    result["first_train"], (loss, grads) = timed(train_step)
    result["train"] = best_time(train_step, cfg["repeats"])
    np.savez(cfg["grad_file"], *grads)
    return dict(result, loss=loss, rss_setup=rss_setup, rss_forward=rss_forward, rss_train=max_rss_mb())


def run_snntorch(data, cfg):
    import snntorch as snn
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(cfg["threads"])
    dtype = getattr(torch, cfg["dtype"])
    fcs, lifs = torch.nn.ModuleList(), []
    for l in range(int(data["n_layers"])):
        w = torch.from_numpy(data[f"w{l}"]).to(dtype)  # (n_out, n_in), like nn.Linear.weight
        fc = torch.nn.Linear(w.shape[1], w.shape[0], bias=False).to(dtype)
        with torch.no_grad():
            fc.weight.copy_(w)
        fcs.append(fc)
        # beta and threshold as tensors of the run dtype (a float would become a float32 buffer)
        lifs.append(snn.Leaky(beta=torch.tensor(float(data["beta"]), dtype=dtype),
                              threshold=torch.tensor(float(data["theta"]), dtype=dtype),
                              reset_mechanism="zero", reset_delay=False, spike_grad=snn.surrogate.atan()))
    x = torch.from_numpy(data["x"]).to(dtype).transpose(0, 1).contiguous()  # (T, B, C)
    labels = torch.from_numpy(data["labels"])
    n_steps, n_samples = x.shape[:2]

    def forward():
        """Output spikes of every timestep, ``(T, B, n_out)``: time-stepped, layer by layer."""
        mems = [torch.zeros(n_samples, fc.out_features, dtype=dtype) for fc in fcs]
        out = []
        for t in range(n_steps):
            spk = x[t]
            for l, (fc, lif) in enumerate(zip(fcs, lifs)):
                spk, mems[l] = lif(fc(spk.to(dtype)), mems[l])  # atan's forward returns float32
            out.append(spk)
        return torch.stack(out).to(dtype)

    def inference():
        with torch.no_grad():
            return forward().sum(0)

    if cfg.get("counts_only"):
        return dict(counts=inference().tolist())
    rss_setup = max_rss_mb()
    first_forward, counts = timed(inference)
    result = dict(version=f"{snn.__version__} (torch {torch.__version__})", counts=counts.tolist(),
                  first_forward=first_forward, forward=best_time(inference, cfg["repeats"]))
    rss_forward = max_rss_mb()

    optimizer = torch.optim.Adam(fcs.parameters(), lr=LR)
    targets = labels.repeat(n_steps)  # row t * B + b of the flattened output is (t, b)

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        out = forward()
        loss = F.cross_entropy(out.reshape(n_steps * n_samples, -1), targets)  # mean over t and b
        loss.backward()
        grads = [fc.weight.grad.double().numpy().copy() for fc in fcs]
        optimizer.step()
        return loss.item(), grads

    result["first_train"], (loss, grads) = timed(train_step)
    result["train"] = best_time(train_step, cfg["repeats"])
    np.savez(cfg["grad_file"], *grads)
    return dict(result, loss=loss, rss_setup=rss_setup, rss_forward=rss_forward, rss_train=max_rss_mb())


PEERS = {"pyasync-snn": run_pyasync, "snnTorch": run_snntorch}


def in_child(cfg: dict) -> dict:
    """Run one peer in a fresh interpreter; return its result (the last stdout line, JSON)."""
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", json.dumps(cfg)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"{cfg['peer']} child failed")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def compare_counts(a, b):
    diff = np.abs(np.asarray(a) - np.asarray(b))
    return int(diff.max(initial=0)), int(np.count_nonzero(diff.sum(axis=1)))


# ---------------------------------------------------------------- report
def report(results, agreement, opts) -> str:
    n_in = opts.samples * opts.timesteps * opts.layers[0] * opts.density
    lines = [
        f"# pyasync-snn vs snnTorch: {'-'.join(map(str, opts.layers))}",
        "",
        f"- {opts.samples} samples x {opts.timesteps} timesteps, Bernoulli input density {opts.density} "
        f"(~{n_in / opts.samples:.0f} input spikes/sample), {opts.dtype}, {opts.threads} thread(s), "
        f"best of {opts.repeats}; CPU {platform.machine()}, {os.cpu_count()} cores, python "
        f"{platform.python_version()}",
        f"- load average (1 min) before / after: {opts.load_before:.2f} / {os.getloadavg()[0]:.2f}",
        "",
        "| peer | version | first forward s | forward s | first train step s | train step s "
        "| peak RSS forward MB | peak RSS train MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['version']} | {r['first_forward']:.3f} | {r['forward']:.3f} | {r['first_train']:.3f} "
            f"| {r['train']:.3f} | {r['rss_forward']:.0f} (+{r['rss_forward'] - r['rss_setup']:.0f}) "
            f"| {r['rss_train']:.0f} (+{r['rss_train'] - r['rss_setup']:.0f}) |")
    if len(results) == 2:
        theirs, ours = results["snnTorch"], results["pyasync-snn"]
        cells = [f"{theirs[key] / ours[key]:.2f}x"
                 for key in ("first_forward", "forward", "first_train", "train", "rss_forward", "rss_train")]
        lines.append(f"| snnTorch / pyasync-snn | | {' | '.join(cells)} |")
    lines.append("")
    r = results["pyasync-snn"]
    lines.append(f"- network spikes per sample (pyasync-snn trace): {r['events_per_sample']:.0f}; "
                 f"output spikes per sample: {np.sum(r['counts']) / opts.samples:.1f}")
    if agreement:
        lines.append(f"- spike counts agree: {agreement}")
    if opts.skipped:
        lines.append(f"- {opts.skipped}")
    if len(results) == 2:
        lines.append(f"- first training step: loss {ours['loss']:.6f} (pyasync-snn) vs {theirs['loss']:.6f} "
                     f"(snnTorch); gradient max |difference| / max |gradient| = {opts.grad_diff:.1e}")
    lines += ["", "Times in seconds (whole calls). Peak RSS: whole child process (`VmHWM`); in "
              "parentheses, the increase over the peak after imports and setup. Ratio > 1: snnTorch "
              "takes more."]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", default="2312,256,256,10", help="layer sizes, input first")
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--timesteps", type=int, default=100)
    parser.add_argument("--density", type=float, default=0.05, help="input spike probability per (t, channel)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats, best kept")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--out", help="also write the Markdown report to this file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    opts = parser.parse_args()

    if opts.child:
        cfg = json.loads(opts.child)
        with np.load(cfg["workload"]) as data:
            print(json.dumps(PEERS[cfg["peer"]](dict(data), cfg)))
        return

    opts.layers = [int(n) for n in opts.layers.split(",")]
    opts.load_before = os.getloadavg()[0]
    peers, opts.skipped = ["pyasync-snn"], ""
    try:
        import snntorch  # noqa: F401
        import torch  # noqa: F401
        peers.append("snnTorch")
    except ImportError as err:
        opts.skipped = f"snntorch not importable: skipped ({err})"
        print(opts.skipped, file=sys.stderr)

    network, x, labels = workload(opts.layers, opts.samples, opts.timesteps, opts.density)
    with tempfile.TemporaryDirectory(prefix="bench_peers-") as tmp:
        path = os.path.join(tmp, "workload.npz")
        np.savez(path, x=x, labels=labels, theta=network.threshold, beta=network.beta,
                 n_layers=network.n_layers, **{f"w{l}": w for l, w in enumerate(network.weights)})
        base = dict(workload=path, threads=opts.threads, repeats=opts.repeats, dtype=opts.dtype)
        results = {}
        for peer in peers:
            results[peer] = in_child(dict(base, peer=peer, grad_file=os.path.join(tmp, f"{peer}.npz")))
            print(f"  {peer}: forward {results[peer]['forward']:.3f} s, train step {results[peer]['train']:.3f} s",
                  file=sys.stderr, flush=True)
        agreement, ok = "", True
        if len(peers) == 2:
            diff, n_bad = compare_counts(results["pyasync-snn"]["counts"], results["snnTorch"]["counts"])
            ok = diff == 0
            agreement = f"{'yes' if ok else 'no'} ({opts.dtype}; max abs diff {diff}, {n_bad} samples differ)"
            if not ok and opts.dtype == "float32":  # rounding of the input sums? check in float64
                counts = [in_child(dict(base, peer=p, dtype="float64", counts_only=True))["counts"] for p in peers]
                diff64, n_bad64 = compare_counts(*counts)
                ok = diff64 == 0
                agreement += (f"; float64: {'yes' if ok else 'no'} (max abs diff {diff64}, {n_bad64} samples "
                              f"differ)")
            with np.load(os.path.join(tmp, "pyasync-snn.npz")) as ours, \
                    np.load(os.path.join(tmp, "snnTorch.npz")) as theirs:
                opts.grad_diff = max(float(np.abs(ours[k] - theirs[k]).max() / np.abs(ours[k]).max())
                                     for k in ours.files)
    text = report(results, agreement, opts)
    print(text)
    if opts.out:
        with open(opts.out, "w") as f:
            f.write(text)
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
