import pytest

from vidbench.data import AnnotationError, DataSpec, LabelMap, read_annotations


@pytest.fixture
def tree(tmp_path):
    """Files only need to exist for annotation parsing."""
    for rel in ("videos/a/1.mp4", "videos/a/2.mp4", "videos/b/3.mp4", "other/4.avi"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    return tmp_path


def test_label_map_from_file_names_and_ids(tmp_path):
    (tmp_path / "classes.txt").write_text("# comment\nwalk\nrun\n\njump\n")
    labels = LabelMap.from_file(tmp_path / "classes.txt")
    assert labels.names == ["walk", "run", "jump"]
    assert labels.lookup("run") == 1 and labels.lookup("2") == 2
    with pytest.raises(KeyError, match="outside the label map"):
        labels.lookup("3")
    with pytest.raises(KeyError, match="'swim' is not in the label map"):
        labels.lookup("swim")
    with pytest.raises(ValueError, match="duplicate"):
        LabelMap(["a", "a"])


def test_csv_with_segments_and_relative_paths(tree):
    (tree / "ann.csv").write_text("path,label,start,end\nvideos/a/1.mp4,a,0,10\nvideos/b/3.mp4,1,,\n"
                                  f"{tree}/other/4.avi,b,5,9\n")
    records, issues, _ = read_annotations(tree / "ann.csv", LabelMap(["a", "b"]))
    assert issues == []
    assert [(r.path, r.label, r.start, r.end) for r in records] == [
        (str(tree / "videos/a/1.mp4"), 0, 0, 10), (str(tree / "videos/b/3.mp4"), 1, None, None),
        (str(tree / "other/4.avi"), 1, 5, 9)]


def test_csv_root_override_and_missing_columns(tree):
    (tree / "sub").mkdir()
    (tree / "sub" / "ann.csv").write_text("path,label\na/1.mp4,a\n")
    records, _, _ = read_annotations(tree / "sub" / "ann.csv", LabelMap(["a"]), root=tree / "videos")
    assert records[0].path == str(tree / "videos/a/1.mp4")
    (tree / "bad.csv").write_text("file,class\nx,y\n")
    with pytest.raises(AnnotationError, match=r"bad.csv:1: CSV header lacks column\(s\) \['label', 'path'\]"):
        read_annotations(tree / "bad.csv", LabelMap(["a"]))


def test_mmaction_list(tree):
    (tree / "list.txt").write_text("videos/a/1.mp4 0\n# skipped\n\nvideos/b/3.mp4 b\n")
    records, issues, _ = read_annotations(tree / "list.txt", LabelMap(["a", "b"]))
    assert [(r.path, r.label) for r in records] == [(str(tree / "videos/a/1.mp4"), 0), (str(tree / "videos/b/3.mp4"), 1)]
    assert issues == []


def test_folder_tree(tree):
    records, issues, labels = read_annotations(tree / "videos")
    assert labels.names == ["a", "b"] and issues == []
    assert [(r.path.split("videos/")[1], r.label) for r in records] == [("a/1.mp4", 0), ("a/2.mp4", 0), ("b/3.mp4", 1)]
    records, issues, _ = read_annotations(tree / "videos", LabelMap(["b"]), on_error="skip")
    assert [r.label for r in records] == [0] and "class folder 'a' is not in the label map" in str(issues[0])


def test_problems_name_file_and_line(tree):
    (tree / "list.txt").write_text("videos/a/1.mp4 a\nvideos/a/9.mp4 a\nvideos/b/3.mp4 zebra\nonlyonefield\n")
    with pytest.raises(AnnotationError) as err:
        read_annotations(tree / "list.txt", LabelMap(["a", "b"]))
    text = str(err.value)
    assert "3 annotation problem(s)" in text
    assert "list.txt:2: video file not found" in text and "9.mp4" in text
    assert "list.txt:3: label 'zebra' is not in the label map" in text
    assert "list.txt:4: expected 'path label'" in text
    records, issues, _ = read_annotations(tree / "list.txt", LabelMap(["a", "b"]), on_error="skip")
    assert len(records) == 1 and [i.line for i in issues] == [2, 3, 4]
    (tree / "seg.csv").write_text("path,label,start,end\nvideos/a/1.mp4,a,8,4\nvideos/a/2.mp4,a,x,3\n")
    _, issues, _ = read_annotations(tree / "seg.csv", LabelMap(["a"]), on_error="skip")
    assert [(i.line, "segment" in i.message or "frame indices" in i.message) for i in issues] == [(2, True), (3, True)]


def test_data_spec_by_convention(tree):
    (tree / "classes.txt").write_text("a\nb\n")
    (tree / "train.csv").write_text("path,label\nvideos/a/1.mp4,a\n")
    (tree / "val.txt").write_text("videos/b/3.mp4 1\n")
    spec = DataSpec.load(tree)
    assert spec.classes == ["a", "b"] and sorted(spec.splits) == ["train", "val"]
    assert [r.label for r in spec.records("val")[0]] == [1]
    assert spec.label_groups() == [None, None] and spec.clip["num_frames"] == 8
    with pytest.raises(KeyError, match="no split 'test'"):
        spec.records("test")
    with pytest.raises(FileNotFoundError, match="make-dataset"):
        DataSpec.load(tree / "nowhere")
