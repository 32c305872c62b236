"""Run notebooks top to bottom through a real JupyterLab server, the way a user does.

``python scripts/lab_check.py [--smoke] [--timeout 900] [NN_name.ipynb ...]``

papermill (``make run``, the notebook tests) injects parameters and talks to the kernel
directly; it is not what a reader gets from "open the notebook in JupyterLab, Run All".
This script starts ``jupyter lab`` headless on ``notebooks/``, reads each notebook through
the Contents API, opens a session for it (so the kernel starts in the notebook's folder,
as in JupyterLab), and sends every code cell over the kernel's websocket with the default
parameters. ``--smoke`` instead sends one extra cell after the ``parameters`` cell, as a
user editing it would: ``SMOKE = True`` and figure/metrics paths under ``build/lab_smoke/``
(so tracked ``figures/`` are never overwritten with smoke-size plots). The first failing
cell stops the run (exit 1; "cell N" counts all cells from 0, markdown included); the
server and kernels are shut down in every case, Ctrl-C and ``kill`` included.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.request import Request, urlopen

import websocket

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
VENV_PY = ROOT / ".venv" / "bin" / "python"


class CellError(Exception):
    pass


class Lab:
    """A headless JupyterLab server on a free port, with a random token."""

    def __init__(self, log: Path):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.token, self.url = secrets.token_hex(24), f"http://127.0.0.1:{self.port}"
        # No MPLBACKEND from the caller (make and the tests export Agg): the kernel picks its
        # inline backend itself, as in a user's `jupyter lab`, so figures are really displayed.
        env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
        python = str(VENV_PY if VENV_PY.exists() else sys.executable)
        log.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [python, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
             f"--ServerApp.token={self.token}", f"--ServerApp.root_dir={NOTEBOOKS}",
             *(["--allow-root"] if os.geteuid() == 0 else [])],  # containers, CI runners
            stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            for _ in range(120):
                try:
                    self.api("GET", "/api/status")
                    return
                except OSError:
                    if self.proc.poll() is not None:
                        break
                    time.sleep(0.5)
            tail = "".join(log.read_text().splitlines(keepends=True)[-5:])
            raise RuntimeError(f"JupyterLab did not answer; end of {log}:\n{tail}")
        except BaseException:  # Ctrl-C while waiting too: never leave a server behind
            self.close()
            raise

    def api(self, method: str, path: str, body: dict | None = None) -> dict:
        req = Request(self.url + path, method=method, headers={
            "Authorization": f"token {self.token}", "Content-Type": "application/json"},
            data=None if body is None else json.dumps(body).encode())
        with urlopen(req, timeout=30) as resp:
            text = resp.read()
        return json.loads(text) if text else {}

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.api("POST", "/api/shutdown")  # also shuts every kernel down
                self.proc.wait(timeout=20)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.terminate()
                self.proc.wait(timeout=10)


def run_notebook(lab: Lab, name: str, smoke: bool, timeout: float) -> dict:
    """Execute every code cell of ``name`` in order; raise CellError on the first failure."""
    cells = lab.api("GET", f"/api/contents/{name}?content=1")["content"]["cells"]
    session = lab.api("POST", "/api/sessions", {
        "path": name, "name": name, "type": "notebook", "kernel": {"name": "python3"}})
    deadline, ident = time.monotonic() + timeout, uuid.uuid4().hex
    ws = websocket.create_connection(
        f"ws://127.0.0.1:{lab.port}/api/kernels/{session['kernel']['id']}/channels"
        f"?session_id={ident}", header=[f"Authorization: token {lab.token}"])
    seen, current = {"figures": 0, "stderr": []}, "before the first cell"

    def request(msg_type: str, content: dict, wait: float | None = None) -> dict:
        msg_id = uuid.uuid4().hex
        ws.send(json.dumps({"channel": "shell", "header": {
            "msg_id": msg_id, "msg_type": msg_type, "session": ident, "username": "lab_check",
            "version": "5.3"}, "parent_header": {}, "metadata": {}, "content": content}))
        reply, idle, end = None, False, min(deadline, time.monotonic() + (wait or timeout))
        while reply is None or not idle:
            ws.settimeout(max(0.1, end - time.monotonic()))
            try:
                msg = json.loads(ws.recv())
            except websocket.WebSocketTimeoutException:
                raise TimeoutError(msg_type) from None
            kind, body = msg["header"]["msg_type"], msg["content"]
            if kind == "status" and body["execution_state"] in ("restarting", "dead"):
                raise CellError(f"the kernel died {current}")  # JupyterLab: "Kernel Restarting"
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if kind.endswith("_reply"):
                reply = body
            elif kind == "status" and body["execution_state"] == "idle":
                idle = True
            elif kind in ("display_data", "execute_result") and "image/png" in body["data"]:
                seen["figures"] += 1
            elif kind == "stream" and body["name"] == "stderr":
                seen["stderr"].append(body["text"])
        return reply

    def execute(index: int | str, code: str) -> None:
        reply = request("execute_request", {"code": code, "silent": False, "store_history": True,
                                            "user_expressions": {}, "allow_stdin": False,
                                            "stop_on_error": True})
        if reply["status"] != "ok":
            raise CellError(f"cell {index}: {reply.get('ename', reply['status'])}: "
                            f"{reply.get('evalue', '')}")

    try:
        while True:  # the kernel answers once it is up; ask again until then
            try:
                request("kernel_info_request", {}, wait=2)
                break
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise
        cwd = request("execute_request", {"code": "", "silent": True, "store_history": False,
                      "user_expressions": {"cwd": "__import__('os').getcwd()"}})
        seen["cwd"] = cwd["user_expressions"]["cwd"]["data"]["text/plain"].strip("'")
        if Path(seen["cwd"]).resolve() != NOTEBOOKS.resolve():
            raise CellError(f"the kernel runs in {seen['cwd']}, not in {NOTEBOOKS}")
        for index, cell in enumerate(cells):
            if cell["cell_type"] != "code":
                continue
            current = f"in cell {index}"
            source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
            execute(index, source)
            if smoke and "parameters" in cell["metadata"].get("tags", []):
                stem, out = Path(name).stem, "../build/lab_smoke"
                execute(f"{index} (smoke edit)", f"SMOKE = True\nFIG_DIR = '{out}/figures/{stem}'"
                        f"\nMETRICS_PATH = '{out}/metrics/{stem}.json'")
    except TimeoutError:
        raise CellError(f"timed out after {timeout:.0f} s {current}") from None
    except websocket.WebSocketException as err:  # e.g. the kernel died
        raise CellError(f"lost the kernel {current}: {err!r}") from None
    finally:
        ws.close()
        with contextlib.suppress(OSError):  # a dead server has no kernel left either
            lab.api("DELETE", f"/api/sessions/{session['id']}")  # shuts the kernel down
    return seen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", help="names in notebooks/ (default: all NN_*)")
    parser.add_argument("--smoke", action="store_true", help="set SMOKE = True after parameters")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per notebook")
    args = parser.parse_args(argv)
    names = args.notebooks or sorted(p.name for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    names = [Path(n).name for n in names]
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill` cleans up like Ctrl-C

    rows, failure = [], None
    lab = Lab(ROOT / "build" / "lab_check" / "server.log")
    try:
        for name in names:
            print(f"[lab{' smoke' if args.smoke else ''}] {name} ...", flush=True)
            start = time.perf_counter()
            try:
                seen = run_notebook(lab, name, args.smoke, args.timeout)
            except (CellError, OSError, KeyboardInterrupt) as err:  # OSError: e.g. HTTP 404
                rows.append((name, "failed", time.perf_counter() - start, "-"))
                failure = f"{name}: {str(err) or 'interrupted'}"
                break
            rows.append((name, "ok", time.perf_counter() - start, str(seen["figures"])))
            warnings = sorted({line.strip() for text in seen["stderr"]
                               for line in text.splitlines() if "Warning" in line})
            print(f"  kernel cwd {seen['cwd']}" + "".join(f"\n  stderr: {w}" for w in warnings))
    finally:
        lab.close()

    width = max(len("notebook"), *(len(n) for n in names))
    print(f"\n{'notebook':<{width}}  status  seconds  figures shown")
    for name, status, seconds, figures in rows:
        print(f"{name:<{width}}  {status:<6}  {seconds:7.1f}  {figures}")
    if failure:
        print(f"\nFAILED: {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
