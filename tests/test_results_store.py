import json

from vidbench.results import ResultsStore


def test_rows_are_written_as_they_come_and_widen(tmp_path):
    store = ResultsStore(tmp_path / "run")
    store.append("bench", {"model": "a", "frames": 8, "clips_per_s": 1.5})
    assert store.read("bench").shape == (1, 3)
    store.append("bench", {"model": "b", "frames": 8, "clips_per_s": 2.5})
    store.append("bench", {"model": "c", "frames": 16, "status": "error"})
    df = store.read("bench")
    assert list(df["model"]) == ["a", "b", "c"] and "status" in df.columns
    assert store.done("bench", ["model", "frames"]) == {("a", "8"), ("b", "8"), ("c", "16")}
    assert store.done("missing", ["model"]) == set()


def test_environment_file(tmp_path):
    path = ResultsStore(tmp_path).write_environment("cpu", {"suite": "quick"})
    env = json.loads(path.read_text())
    for key in ("vidbench_version", "git_commit", "torch_version", "cuda_version", "device", "device_name",
                "cpu", "torch_threads", "date", "suite"):
        assert key in env
