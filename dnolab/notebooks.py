"""Execute the series' notebooks with papermill: ``python -m dnolab.notebooks [--smoke] [--only 01]``.

Behind ``make run`` (full mode: figures into ``figures/``) and ``make smoke`` / the notebook
tests (smoke mode: everything under ``build/smoke/``). Each notebook runs on a fresh kernel
(over IPC, with inline figures) with its own folder as working directory and receives
``SMOKE``, ``FIG_DIR`` and ``METRICS_PATH`` in its ``parameters`` cell. A failing notebook is reported with the failing
cell's error and the exit status is non-zero, but the remaining notebooks still run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

KERNEL = "python3"  # jupyter_client runs it on the interpreter that launches papermill
# The kernel draws figures inline (``plt.show()`` stores a PNG in the executed notebook, which
# the site shows) whatever MPLBACKEND the caller has (make exports Agg for its own processes).
KERNEL_ENV = {"MPLBACKEND": "module://matplotlib_inline.backend_inline"}


def _kernel_manager_class():
    """An AsyncKernelManager whose kernels talk over IPC (Unix sockets), not TCP.

    Over TCP without CurveZMQ keys ipykernel warns "Kernel is running over TCP without
    encryption" on every start; over IPC there is nothing to warn about, and no port is
    opened. nbclient (under papermill) takes the class as ``kernel_manager_class``.
    """
    from jupyter_client import AsyncKernelManager
    from traitlets import CaselessStrEnum

    class IPCKernelManager(AsyncKernelManager):
        transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)

        async def start_kernel(self, **kw):
            # jupyter_client's default socket path is "kernel-ipc-N" in the working directory:
            # two runs in one folder would connect to each other's kernels ("Invalid Signature").
            self._socket_dir = tempfile.mkdtemp(prefix="dnolab-kernel-")
            self.ip = os.path.join(self._socket_dir, "kernel")
            kw["env"] = {**os.environ, **KERNEL_ENV, **(kw.get("env") or {})}
            return await super().start_kernel(**kw)

        async def _async_cleanup_resources(self, restart: bool = False) -> None:
            await super()._async_cleanup_resources(restart=restart)
            if not restart and getattr(self, "_socket_dir", None):
                shutil.rmtree(self._socket_dir, ignore_errors=True)

    return IPCKernelManager


@dataclass
class NotebookResult:
    notebook: str
    status: str  # "ok" or "failed"
    seconds: float
    output: str
    error: str = ""


def find_notebooks(notebook_dir: Path, only: list[str] | None = None) -> list[Path]:
    """Notebooks named ``NN_*.ipynb`` in order; ``only`` keeps those whose name starts with a given prefix."""
    if not notebook_dir.is_dir():
        raise FileNotFoundError(f"notebook folder {notebook_dir} does not exist")
    found = sorted(p for p in notebook_dir.glob("*.ipynb") if p.name[:2].isdigit())
    if only:
        found = [p for p in found if any(p.name.startswith(prefix) for prefix in only)]
        if not found:
            raise FileNotFoundError(
                f"no notebook in {notebook_dir} starts with any of {only}; "
                f"available: {[p.stem for p in sorted(notebook_dir.glob('*.ipynb'))]}"
            )
    return found


def output_paths(notebook: Path, out_dir: Path, figures_dir: Path, smoke: bool) -> dict[str, Path]:
    """Where one notebook's executed copy, figures and metrics go."""
    base = out_dir / "smoke" if smoke else out_dir
    return {
        "executed": base / "notebooks" / notebook.name,
        "figures": (base / "figures" if smoke else figures_dir) / notebook.stem,
        "metrics": base / "metrics" / f"{notebook.stem}.json",
    }


def _describe_failure(err: BaseException) -> str:
    import papermill

    if isinstance(err, papermill.PapermillExecutionError):
        first_line = str(err.evalue).strip().splitlines()[0] if str(err.evalue).strip() else ""
        return f"cell {err.exec_count}: {err.ename}: {first_line}"
    return f"{type(err).__name__}: {err}"


def execute(notebook: Path, out_dir: Path = Path("build"), figures_dir: Path = Path("figures"),
            smoke: bool = False, parameters: dict | None = None, timeout: int | None = None,
            log_output: bool = False) -> NotebookResult:
    """Run one notebook through papermill and return what happened (never raises for cell errors)."""
    import papermill

    notebook = notebook.resolve()
    paths = output_paths(notebook, out_dir.resolve(), figures_dir.resolve(), smoke)
    paths["executed"].parent.mkdir(parents=True, exist_ok=True)
    paths["metrics"].parent.mkdir(parents=True, exist_ok=True)
    params = {
        "SMOKE": smoke,
        "FIG_DIR": str(paths["figures"]),
        "METRICS_PATH": str(paths["metrics"]),
        **(parameters or {}),
    }
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(notebook), str(paths["executed"]), parameters=params, kernel_name=KERNEL,
            cwd=str(notebook.parent), language="python", progress_bar=False, log_output=log_output,
            execution_timeout=timeout, kernel_manager_class=_kernel_manager_class(),
        )
    except Exception as err:  # every failure is reported; the remaining notebooks still run
        return NotebookResult(notebook.name, "failed", time.perf_counter() - start,
                              str(paths["executed"]), _describe_failure(err))
    return NotebookResult(notebook.name, "ok", time.perf_counter() - start, str(paths["executed"]))


def format_table(results: list[NotebookResult]) -> str:
    """A plain-text table: notebook, status, seconds (and the error for failures)."""
    width = max([len("notebook")] + [len(r.notebook) for r in results])
    lines = [f"{'notebook':<{width}}  status  seconds", f"{'-' * width}  ------  -------"]
    for r in results:
        lines.append(f"{r.notebook:<{width}}  {r.status:<6}  {r.seconds:7.1f}")
        if r.error:
            lines.append(f"{'':<{width}}    -> {r.error}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dnolab.notebooks", description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="small sizes; outputs under OUT/smoke/")
    parser.add_argument("--only", nargs="+", metavar="NN", help="run only notebooks whose name starts with these prefixes")
    parser.add_argument("--notebooks", type=Path, default=Path("notebooks"), help="folder of NN_*.ipynb (default: notebooks)")
    parser.add_argument("--out", type=Path, default=Path("build"), help="executed notebooks and metrics (default: build)")
    parser.add_argument("--figures", type=Path, default=Path("figures"), help="full-mode figure folder (default: figures)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="extra parameter, value parsed as JSON when possible (repeatable)")
    parser.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds")
    parser.add_argument("--log-output", action="store_true", help="stream cell output to the terminal")
    args = parser.parse_args(argv)

    extra = {}
    for name, value in args.parameter:
        try:
            extra[name] = json.loads(value)
        except json.JSONDecodeError:
            extra[name] = value
    try:
        notebooks = find_notebooks(args.notebooks, args.only)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")

    mode = "smoke" if args.smoke else "full"
    results = []
    for nb in notebooks:
        print(f"[{mode}] {nb.name} ...", flush=True)
        result = execute(nb, args.out, args.figures, smoke=args.smoke, parameters=extra,
                         timeout=args.timeout, log_output=args.log_output)
        print(f"[{mode}] {nb.name}: {result.status} in {result.seconds:.1f} s"
              + (f" -- {result.error}" if result.error else ""), flush=True)
        results.append(result)

    report = (args.out / "smoke" if args.smoke else args.out) / "notebook_report.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    print()
    print(format_table(results))
    failed = [r.notebook for r in results if r.status != "ok"]
    if failed:
        print(f"\nFAILED: {', '.join(failed)} (executed copies with the traceback are in "
              f"{report.parent / 'notebooks'})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
