import json

import numpy as np
import pytest
import torch

from dnolab.utils import get_device, in_colab, save_metrics, seed_everything, set_cpu_threads


def test_seed_everything_makes_numpy_and_torch_repeatable():
    a = seed_everything(7).random(3), torch.rand(3)
    b = seed_everything(7).random(3), torch.rand(3)
    np.testing.assert_array_equal(a[0], b[0])
    assert torch.equal(a[1], b[1])
    with pytest.raises(ValueError, match="non-negative int"):
        seed_everything(-1)


def test_cpu_threads_from_argument_and_environment(monkeypatch):
    before = torch.get_num_threads()
    try:
        assert set_cpu_threads(1) == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv("DNOLAB_NUM_THREADS", "2")
        assert set_cpu_threads() == 2
        monkeypatch.setenv("DNOLAB_NUM_THREADS", "many")
        with pytest.raises(ValueError, match="DNOLAB_NUM_THREADS"):
            set_cpu_threads()
        with pytest.raises(ValueError, match=">= 1"):
            set_cpu_threads(0)
    finally:
        torch.set_num_threads(before)


def test_get_device_on_this_machine(capsys):
    device = get_device()
    assert device.type in {"cpu", "cuda", "mps"}
    assert "device:" in capsys.readouterr().out
    assert in_colab() is False


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
def test_requesting_missing_cuda_is_a_clear_error():
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        get_device("cuda")


def test_save_metrics_converts_numpy_and_is_atomic(tmp_path):
    path = save_metrics({"a": np.float64(0.5), "b": np.arange(3), "c": float("nan")},
                        tmp_path / "m" / "x.json")
    assert json.loads(path.read_text()) == {"a": 0.5, "b": [0, 1, 2], "c": None}
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]


def test_the_json_writer_writes_nan_as_null_and_numpy_as_numbers(tmp_path):
    import json

    from dnolab.utils import write_json

    path = write_json(tmp_path / "m.json", {"nan": float("nan"), "np": np.float32("nan"), "inf": np.inf,
                                            "x": np.int64(3), "v": np.array([0.5, np.nan])})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"inf": None, "nan": None, "np": None, "v": [0.5, None], "x": 3}
    assert not list(tmp_path.glob(".*.tmp"))
