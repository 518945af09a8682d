import json

from vidbench.results import ResultsStore, key_str


def test_rows_are_written_as_they_come_and_widen(tmp_path):
    store = ResultsStore(tmp_path / "run")
    store.append("bench", {"model": "a", "frames": 8, "clips_per_s": 1.5})
    assert store.read("bench").shape == (1, 3)
    store.append("bench", {"model": "b", "frames": 8, "clips_per_s": 2.5})
    store.append("bench", {"model": "c", "frames": 16, "status": "error"})
    df = store.read("bench")
    assert list(df["model"]) == ["a", "b", "c"] and "status" in df.columns
    assert store.read("missing").empty


def test_environment_file(tmp_path):
    path = ResultsStore(tmp_path).write_environment("cpu", {"suite": "quick"})
    env = json.loads(path.read_text())
    for key in ("vidbench_version", "git_commit", "torch_version", "cuda_version", "device", "device_name",
                "cpu", "torch_threads", "date", "suite"):
        assert key in env


def test_resume_keys_are_normalised(tmp_path):
    store = ResultsStore(tmp_path)
    store.append("t", {"model": "a", "frames": 8})
    store.append("t", {"model": "b", "frames": None})  # a blank makes pandas read the column as float
    read = store.read("t")
    assert read["frames"].dtype == float  # so the written 8 reads back as 8.0
    keys = {tuple(key_str(v) for v in rec) for rec in read[["model", "frames"]].itertuples(index=False, name=None)}
    assert keys == {("a", "8"), ("b", "")}
    assert [key_str(v) for v in (8, 8.0, "8", None, float("nan"), 2.5)] == ["8", "8", "8", "", "", "2.5"]


def test_partial_last_line_from_a_kill_is_ignored(tmp_path):
    store = ResultsStore(tmp_path)
    store.append("t", {"model": "a", "clips_per_s": 1.0})
    with open(store.path("t"), "a") as f:
        f.write("b,2.")  # a row cut short mid-write
    df = store.read("t")
    assert list(df["model"]) == ["a"]
    store.append("t", {"model": "c", "clips_per_s": 3.0})  # the resumed run's next row
    assert list(store.read("t")["model"]) == ["a", "c"]


def test_widening_rewrite_leaves_no_temp_file(tmp_path):
    store = ResultsStore(tmp_path)
    store.append("t", {"a": 1})
    store.append("t", {"a": 2, "b": 3})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]
    assert store.read("t")["b"].isna().tolist() == [True, False]
