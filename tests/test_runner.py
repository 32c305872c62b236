"""The papermill runner behind `make run`: parameters, working folder, failures reported."""

import json
import os
import subprocess
import sys

import nbformat

from dnolab.notebooks import execute, find_notebooks, format_table

PARAMS = ("SMOKE = False\nFIG_DIR = 'unset'\nMETRICS_PATH = 'unset'\nANSWER = 1", ["parameters"])


def test_passing_notebook_gets_parameters_and_its_own_folder_as_cwd(make_notebook, tmp_path):
    nb = make_notebook("01_pass.ipynb", [
        PARAMS,
        ("import json, os, pathlib\n"
         "pathlib.Path(METRICS_PATH).parent.mkdir(parents=True, exist_ok=True)\n"
         "json.dump({'smoke': SMOKE, 'cwd': os.getcwd(), 'answer': ANSWER, 'fig': FIG_DIR},"
         " open(METRICS_PATH, 'w'))", []),
    ])
    result = execute(nb, out_dir=tmp_path / "build", figures_dir=tmp_path / "figs", smoke=True,
                     parameters={"ANSWER": 42})
    assert result.status == "ok", result.error
    metrics = json.loads((tmp_path / "build/smoke/metrics/01_pass.json").read_text())
    assert metrics == {"smoke": True, "cwd": str(nb.parent), "answer": 42,
                       "fig": str(tmp_path / "build/smoke/figures/01_pass")}
    assert (tmp_path / "build/smoke/notebooks/01_pass.ipynb").exists()


def test_failing_notebook_is_named_with_its_error_and_others_still_run(make_notebook, tmp_path):
    make_notebook("01_fails.ipynb", [PARAMS, ("x = 1", []), ("raise ValueError('claim broken')", [])])
    make_notebook("02_passes.ipynb", [PARAMS, ("y = 2", [])])
    proc = subprocess.run(
        [sys.executable, "-m", "dnolab.notebooks", "--notebooks", str(tmp_path / "notebooks"),
         "--out", str(tmp_path / "build"), "--figures", str(tmp_path / "figs")],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 1
    assert "FAILED: 01_fails.ipynb" in proc.stderr
    assert "ValueError: claim broken" in proc.stdout
    report = json.loads((tmp_path / "build/notebook_report.json").read_text())
    assert [(r["notebook"], r["status"]) for r in report] == [
        ("01_fails.ipynb", "failed"), ("02_passes.ipynb", "ok")]


def test_only_selects_by_prefix_and_unknown_prefix_is_an_error(make_notebook, tmp_path):
    make_notebook("01_a.ipynb", [PARAMS])
    make_notebook("02_b.ipynb", [PARAMS])
    folder = tmp_path / "notebooks"
    assert [p.name for p in find_notebooks(folder, ["02"])] == ["02_b.ipynb"]
    proc = subprocess.run([sys.executable, "-m", "dnolab.notebooks", "--notebooks", str(folder),
                           "--only", "09"], capture_output=True, text=True)
    assert proc.returncode == 2 and "no notebook" in proc.stderr


def test_table_lists_status_and_seconds():
    from dnolab.notebooks import NotebookResult

    table = format_table([NotebookResult("01_x.ipynb", "ok", 1.25, "o"),
                          NotebookResult("02_y.ipynb", "failed", 3.0, "o", "cell 3: KeyError: 'a'")])
    assert "01_x.ipynb" in table and "1.2" in table and "cell 3: KeyError" in table


def test_kernels_run_quietly_over_ipc_and_draw_inline_figures(make_notebook, tmp_path):
    """No "Kernel is running over TCP without encryption" on stderr; plt.show() keeps a PNG."""
    make_notebook("01_quiet.ipynb", [
        PARAMS,
        ("import matplotlib.pyplot as plt\n"
         "from ipykernel.kernelapp import IPKernelApp\n"
         "print('transport', IPKernelApp.instance().transport)\n"
         "plt.plot([0, 1]); plt.show()", []),
    ])
    proc = subprocess.run(
        [sys.executable, "-m", "dnolab.notebooks", "--notebooks", str(tmp_path / "notebooks"),
         "--out", str(tmp_path / "build"), "--figures", str(tmp_path / "figs")],
        capture_output=True, text=True, timeout=300, env={**os.environ, "MPLBACKEND": "Agg"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "without encryption" not in proc.stderr + proc.stdout
    executed = nbformat.read(tmp_path / "build/notebooks/01_quiet.ipynb", as_version=4)
    outputs = executed.cells[-1].outputs
    assert outputs[0]["text"] == "transport ipc\n"
    assert any("image/png" in o.get("data", {}) for o in outputs), "no inline figure was kept"


def test_two_runs_in_one_folder_at_once_keep_their_own_kernels(make_notebook, tmp_path):
    """Kernel sockets live in a private temporary folder, not as kernel-ipc-N in the working
    directory, where two runs at once would connect to each other's kernels."""
    make_notebook("01_a.ipynb", [PARAMS, ("import os, time\ntime.sleep(3)\nprint(os.getpid())", [])])
    folder = tmp_path / "notebooks"
    procs = [subprocess.Popen([sys.executable, "-m", "dnolab.notebooks", "--notebooks", str(folder),
                               "--out", str(tmp_path / f"build{i}"), "--figures", str(tmp_path / "figs")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    pids = [nbformat.read(tmp_path / f"build{i}/notebooks/01_a.ipynb", as_version=4).cells[-1].outputs[0]["text"]
            for i in range(2)]
    assert pids[0] != pids[1]
    assert not [p.name for p in folder.iterdir() if p.name.startswith("kernel")], "sockets left behind"
