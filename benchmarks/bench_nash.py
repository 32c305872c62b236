"""Speed of ``dnolab.games.nash`` against nashpy's LP, and of the tabular dynamics.

Part 1 solves the same games with ``nash`` (default ``auto`` and the plain HiGHS LP) and
with nashpy 0.0.43: ``Game(A).linear_program()`` (what nashpy offers: it solves the LP of
both players) and ``nashpy.linalg.minimax.linear_program(A)`` (one player's LP, the fair
comparison for a symmetric game), at n = 100, 500, 1000, on two families:

* uniform: P(i ≻ j) ~ U(0, 1) independently; the equilibrium mixes about n/2 responses
  (the hard case for an LP);
* annotators: three Bradley–Terry annotators (weights .4/.35/.25, scale 10) as in the
  notebooks; the equilibrium mixes a handful of responses.

Part 2 runs 10⁴ iterations of every dynamic of ``dnolab.dynamics`` on the annotator game
at n = 100, plus nashpy's fictitious play for reference.

Timings are medians over repeats in one process (the build machine's 2 cores are shared;
nashpy at n = 1000 runs once, it takes tens of seconds). The script runs itself with
OPENBLAS_NUM_THREADS=1 unless the variable is set: with another job on the second core,
OpenBLAS's two threads made the interior-point LUs 1.5–10× slower. Part 3 measures ``nash``
at n = 500 and 1000 with one BLAS thread and with OpenBLAS's default, each in a fresh
process. Writes benchmarks/results/nash.md.

    python benchmarks/bench_nash.py            # everything (about 4 minutes)
    python benchmarks/bench_nash.py --quick    # no nashpy at n = 1000, 10³ iterations
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import nashpy
import numpy as np
import scipy
from nashpy.linalg.minimax import linear_program as nashpy_single_lp

from dnolab.dynamics import METHODS, run_dynamics
from dnolab.games import exploitability, nash
from dnolab.preferences import bt_mixture_matrix

RESULTS = Path(__file__).resolve().parent / "results" / "nash.md"

DYNAMICS = [  # (label, method, params): the settings notebook 03 compares
    ("DNO soft policy iteration, η = 1", "dno_spi", {"eta": 1.0}),
    ("DNO Algorithm 1 from samples (64 pairs, 16 opponents)", "dno_sampled",
     {"eta": 1.0, "n_pairs": 64, "opponents": 16, "rng": 0}),
    ("SPPO, η = 1/√(10⁴) = 0.01", "sppo", {"eta": 0.01}),
    ("Nash-MD, η = 1, τ = 0.1", "nash_md", {"eta": 1.0, "tau": 0.1}),
    ("Hedge, anytime η_t", "hedge", {"eta": "anytime"}),
    ("optimistic Hedge, η = 2", "optimistic_hedge", {"eta": 2.0}),
    ("extragradient, η = 2", "extragradient", {"eta": 2.0}),
    ("MMD, η = 1, α = 0.1", "mmd", {"eta": 1.0, "alpha": 0.1}),
    ("MMD with magnet reset every 20", "mmd", {"eta": 1.0, "alpha": 0.1, "reset_every": 20}),
    ("fictitious play", "fictitious_play", {}),
    ("replicator, Euler step 1", "replicator", {"step": 1.0}),
]


def uniform_game(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    upper = np.triu(rng.uniform(size=(n, n)), 1)
    P = upper + np.tril(1.0 - upper.T, -1)
    np.fill_diagonal(P, 0.5)
    return P


def timed(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), out


def as_policy(x) -> np.ndarray:
    x = np.clip(np.asarray(x, dtype=float), 0.0, None)
    return x / x.sum()


def bench_nash(sizes, quick: bool) -> list[dict]:
    rows = []
    for family in ("uniform", "annotators"):
        for n in sizes:
            P = uniform_game(n, n) if family == "uniform" else bt_mixture_matrix(n, scale=10.0, rng=n)[0]
            A = P - 0.5
            big = n >= 1000
            reps = 3 if big else 7
            t_auto, (pi_auto, _) = timed(lambda P=P: nash(P), reps)
            t_highs, (pi_highs, _) = timed(lambda P=P: nash(P, method="highs"), 1 if big else reps)
            row = {"family": family, "n": n, "support": int((pi_auto > 1e-9).sum()),
                   "auto": t_auto, "highs": t_highs,
                   "expl_auto": exploitability(P, pi_auto), "expl_highs": exploitability(P, pi_highs)}
            if big and quick:
                row.update(single=float("nan"), game=float("nan"), expl_nashpy=float("nan"))
            else:
                nreps = 1 if big else reps
                t_single, x_single = timed(lambda A=A: nashpy_single_lp(A), nreps)
                t_game, (x_row, _) = timed(lambda A=A: nashpy.Game(A).linear_program(), nreps)
                row.update(single=t_single, game=t_game,
                           expl_nashpy=max(exploitability(P, as_policy(x_single)),
                                           exploitability(P, as_policy(x_row))))
            rows.append(row)
            print(f"{family:<10} n={n:<5} support {row['support']:<4} nash {t_auto:7.3f}s  "
                  f"HiGHS LP {t_highs:7.3f}s  nashpy 1 LP {row['single']:7.3f}s  "
                  f"nashpy Game.linear_program {row['game']:7.3f}s", flush=True)
    return rows


def bench_dynamics(T: int) -> list[dict]:
    P, _ = bt_mixture_matrix(100, scale=10.0, rng=0)
    pi_star, _ = nash(P)
    rows = []
    for label, method, params in DYNAMICS:
        start = time.perf_counter()
        h = run_dynamics(P, method, T, equilibrium=pi_star, **params)
        total = time.perf_counter() - start
        rows.append({"label": label, "method": method, "updates": h.seconds, "total": total,
                     "last": h.last_exploitability[-1], "average": h.average_exploitability[-1]})
        print(f"{label:<58} {h.seconds:6.2f}s updates, {total:6.2f}s with recording", flush=True)
    assert {r["method"] for r in rows} == set(METHODS), "every dynamic is benchmarked"
    game = nashpy.Game(P - 0.5)
    start = time.perf_counter()
    for _ in game.fictitious_play(iterations=T):
        pass
    rows.append({"label": "nashpy Game.fictitious_play (both players)", "method": "nashpy",
                 "updates": time.perf_counter() - start, "total": float("nan"),
                 "last": float("nan"), "average": float("nan")})
    print(f"{rows[-1]['label']:<58} {rows[-1]['updates']:6.2f}s", flush=True)
    return rows


PROBE = r"""
import json, sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
from bench_nash import uniform_game
from dnolab.games import nash
out = {}
for n in (500, 1000):
    P = uniform_game(n, n)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        nash(P)
        times.append(time.perf_counter() - start)
    out[n] = [float(np.median(times)), float(max(times))]
print(json.dumps(out))
"""


def bench_blas_threads() -> dict[str, dict]:
    """nash on the uniform games at n = 500, 1000 in fresh processes: 1 BLAS thread vs default."""
    results = {}
    for label, threads in (("OPENBLAS_NUM_THREADS=1", "1"), ("OpenBLAS default", None)):
        env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
        if threads:
            env["OPENBLAS_NUM_THREADS"] = threads
        run = subprocess.run([sys.executable, "-c", PROBE, str(Path(__file__).resolve().parent)],
                             env=env, capture_output=True, text=True, check=True, timeout=900)
        results[label] = {int(k): v for k, v in json.loads(run.stdout.strip().splitlines()[-1]).items()}
        print(f"{label:<24} " + "  ".join(f"n={n}: median {m:.3f}s, max {x:.3f}s"
                                          for n, (m, x) in results[label].items()), flush=True)
    return results


def fmt(x: float, digits: int = 3) -> str:
    return "not run" if np.isnan(x) else f"{x:.{digits}f}"


def write(nash_rows, dyn_rows, blas, T: int, quick: bool) -> None:
    lines = [
        "# `nash` against nashpy's LP, and 10⁴ iterations of each dynamic",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} logical CPUs, "
        f"Python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"nashpy {nashpy.__version__}, OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}. "
        "Median wall time in seconds over 7 repeats "
        "(3 for dnolab at n = 1000; nashpy and the plain HiGHS LP once at n = 1000).",
        "",
        "* **nash**: `dnolab.games.nash(P)`, default `method=\"auto\"`: for n > 150 support "
        "generation (double oracle, restricted LPs by HiGHS) while the restricted game stays "
        "small, otherwise a dense interior-point method for the game's self-dual LP with an exact "
        "solve on the identified support; the answer is checked by the best-response test "
        "(exploitability ≤ 1e-9) and HiGHS finishes the job when the check fails.",
        "* **HiGHS LP**: `nash(P, method=\"highs\")`, the whole LP in normalised form "
        "(max Σw s.t. Pw ≤ 1, w ≥ 0).",
        "* **nashpy 1 LP**: `nashpy.linalg.minimax.linear_program(A)`, the textbook LP "
        "(variables (π, v), an equality row, a free variable) for one player, scipy HiGHS.",
        "* **nashpy Game**: `nashpy.Game(A).linear_program()`, the same LP for both players.",
        "* ratio = time of nash / time of nashpy; below 1 means nash is faster.",
        "",
        "| game | n | NE support | nash (s) | HiGHS LP (s) | nashpy 1 LP (s) | nashpy Game (s) "
        "| ratio vs 1 LP | ratio vs Game | max expl: nash / nashpy |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in nash_rows:
        lines.append(
            f"| {r['family']} | {r['n']} | {r['support']} | {fmt(r['auto'])} | {fmt(r['highs'])} "
            f"| {fmt(r['single'])} | {fmt(r['game'])} | {fmt(r['auto'] / r['single'], 2)} "
            f"| {fmt(r['auto'] / r['game'], 2)} | {r['expl_auto']:.1e} / "
            f"{'—' if np.isnan(r['expl_nashpy']) else format(r['expl_nashpy'], '.1e')} |")
    lines += [
        "",
        f"## {T:,} iterations of each dynamic, n = 100 (three-annotator game, uniform start)",
        "",
        "Updates = time inside `Dynamics.step`; with recording = `run_dynamics` including the "
        "exploitability and KL of both iterates at every iteration.",
        "",
        "| dynamic | updates (s) | µs / iteration | with recording (s) | expl last / average at T |",
        "|---|---|---|---|---|",
    ]
    for r in dyn_rows:
        lines.append(
            f"| {r['label']} | {r['updates']:.2f} | {1e6 * r['updates'] / T:.0f} | {fmt(r['total'], 2)} "
            f"| {fmt(r['last'], 4)} / {fmt(r['average'], 4)} |")
    lines += [
        "",
        "## BLAS threads: `nash` on the uniform games, fresh process each",
        "",
        "The interior-point path is one dense LU per iteration. On this 2-core machine, with other "
        "jobs running, OpenBLAS's default of two threads spin-waits for a busy core; one thread is "
        "faster and steadier. Median / max of 5 calls.",
        "",
        "| BLAS threads | n = 500 (s) | n = 1000 (s) |",
        "|---|---|---|",
    ]
    for label, r in blas.items():
        lines.append(f"| {label} | {r[500][0]:.3f} / {r[500][1]:.3f} | {r[1000][0]:.3f} / {r[1000][1]:.3f} |")
    lines += ["", "Regenerate: `python benchmarks/bench_nash.py`"
              + (" (this file: `--quick`)." if quick else "."), ""]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines))
    print(f"wrote {RESULTS}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="skip nashpy at n = 1000; 10³ iterations")
    args = parser.parse_args()
    T = 1_000 if args.quick else 10_000
    nash_rows = bench_nash((100, 500, 1000), args.quick)
    dyn_rows = bench_dynamics(T)
    blas = bench_blas_threads()
    write(nash_rows, dyn_rows, blas, T, args.quick)


if __name__ == "__main__":
    if "OPENBLAS_NUM_THREADS" not in os.environ:  # must be set before numpy loads OpenBLAS
        os.execve(sys.executable, [sys.executable, *sys.argv],
                  {**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    main()
