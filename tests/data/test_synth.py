"""The synthetic AIHub generator: layout, labels, determinism, truth and the pixels behind boxes.

Run: ``PYTHONPATH=python python -m pytest tests/data/test_synth.py -q``
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pillsnap.data.pack import plan_items
from pillsnap.data.scan import scan
from pillsnap.data.synth import SynthSpec, SynthSummary, choose_holdout, generate, load_holdout
from pillsnap.data.synth.catalog import build_catalog
from pillsnap.errors import DataError

TINY = SynthSpec(classes=6, train_per_class=3, val_per_class=2, combo_train=4, combo_val=3,
                 pills_per_combo=(2, 4), width=244, height=320, seed=7)
NAME_RE = re.compile(
    r"^(?P<code>K-\d{6}(?:-\d{6}){0,3})_(?P<bg>[0-2])_(?P<light>[0-2])_(?P<side>[01])_0_"
    r"(?P<elev>60|70|75|90)_(?P<rot>\d{3})_200\.(?:png|json)$"
)
IMAGE_FIELDS = [
    "file_name", "width", "height", "imgfile", "drug_N", "drug_S", "back_color", "drug_dir",
    "light_color", "camera_la", "camera_lo", "size", "dl_idx", "dl_mapping_code", "dl_name",
    "dl_name_en", "img_key", "dl_material", "dl_material_en", "dl_custom_shape", "dl_company",
    "dl_company_en", "di_company_mf", "di_company_mf_en", "item_seq", "di_item_permit_date",
    "di_class_no", "di_etc_otc_code", "di_edi_code", "chart", "drug_shape", "thick", "leng_long",
    "leng_short", "print_front", "print_back", "color_class1", "color_class2", "line_front",
    "line_back", "img_regist_ts", "form_code_name", "mark_code_front_anal",
    "mark_code_back_anal", "mark_code_front_img", "mark_code_back_img", "mark_code_front",
    "mark_code_back", "change_date", "id",
]
ANNOTATION_FIELDS = {"area", "iscrowd", "bbox", "category_id", "ignore", "segmentation", "id",
                     "image_id"}
SPLIT_DIRS = (("1.Training", "TS", "TL"), ("2.Validation", "VS", "VL"))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SynthSummary]:
    out = tmp_path_factory.mktemp("synth") / "out"  # does not exist yet: generate creates it
    return out, generate(out, TINY)


def truth(root: Path) -> list[dict]:
    lines = (root / "synth_truth.jsonl").read_text("utf-8").splitlines()
    return [json.loads(line) for line in lines]


def pngs(root: Path) -> list[Path]:
    return sorted(root.rglob("*.png"))


def labels_for(root: Path, png: Path) -> list[Path]:
    """Where AIHub keeps the labels of one photo (worked out here, not by the generator)."""
    top, source, kind_dir, folder, _ = png.relative_to(root).parts
    assert source == "원천데이터"
    label_dir = kind_dir.replace("TS_", "TL_").replace("VS_", "VL_")
    base = root / top / "라벨링데이터" / label_dir / f"{folder}_json"
    if "조합" in kind_dir:
        return sorted(base.glob(f"K-*/{png.stem}.json"))
    return [base / f"{png.stem}.json"]


def load(path: Path) -> dict:
    return json.loads(path.read_text("utf-8"))


def test_layout_and_file_names(tiny: tuple[Path, SynthSummary]) -> None:
    root, summary = tiny
    for top, source, label in SPLIT_DIRS:
        for kind in ("단일", "조합"):
            assert (root / top / "원천데이터" / f"{source}_1_{kind}").is_dir()
            assert (root / top / "라벨링데이터" / f"{label}_1_{kind}").is_dir()
    images = pngs(root)
    assert len(images) == summary.images == 6 * (3 + 2) + 4 + 3
    n_labels = 0
    per_folder: Counter[tuple[str, str]] = Counter()
    for png in images:
        match = NAME_RE.match(png.name)
        assert match, png.name
        assert match["code"] == png.parent.name  # the photo sits in its K-code folder
        codes = match["code"][2:].split("-")
        labels = labels_for(root, png)
        if "조합" in png.parent.parent.name:
            assert 2 <= len(codes) <= 4 and len(set(codes)) == len(codes)
            assert sorted(p.parent.name for p in labels) == [f"K-{c}" for c in codes]
        else:
            per_folder[(png.parts[-5], match["code"])] += 1
        assert all(p.is_file() for p in labels), labels
        n_labels += len(labels)
    # + the catalogue and the (empty) held-out list
    assert n_labels == summary.pills == len(list(root.rglob("*.json"))) - 2
    assert sorted(Counter(c for (top, _), c in per_folder.items()).items()) == [(2, 6), (3, 6)]


def test_label_json_holds_every_field(tiny: tuple[Path, SynthSummary]) -> None:
    root, _ = tiny
    for png in pngs(root):
        width, height = Image.open(png).size
        match = NAME_RE.match(png.name)
        assert match
        codes = []
        for path in labels_for(root, png):
            label = load(path)
            image = label["images"][0]
            assert list(image) == IMAGE_FIELDS
            assert (image["width"], image["height"]) == (width, height) == (244, 320)
            assert image["file_name"] == image["imgfile"] == png.name
            assert image["drug_N"] == image["dl_mapping_code"]
            assert image["drug_dir"] == ("앞면" if match["side"] == "0" else "뒷면")
            assert image["camera_la"] == int(match["elev"])
            assert label["type"] == "instances"
            assert label["categories"] == [{"supercategory": "pill", "id": 1, "name": "Drug"}]
            (ann,) = label["annotations"]
            assert set(ann) == ANNOTATION_FIELDS
            x, y, w, h = ann["bbox"]
            assert all(isinstance(v, int) for v in ann["bbox"])
            assert x >= 0 and y >= 0 and w > 0 and h > 0 and x + w <= width and y + h <= height
            assert ann["area"] == w * h
            codes.append(image["dl_mapping_code"])
        if len(codes) == 1:
            assert codes == [png.parent.name]
        else:  # every pill of a combination carries its own, different K-code from the folder
            assert len(set(codes)) == len(codes)
            assert sorted(codes) == [f"K-{c}" for c in match["code"][2:].split("-")]


def test_truth_file_agrees_with_labels(tiny: tuple[Path, SynthSummary]) -> None:
    root, summary = tiny
    records = truth(root)
    assert len(records) == summary.images
    assert Counter((r["split"], r["kind"]) for r in records) == {
        ("train", "single"): 18, ("val", "single"): 12, ("train", "combo"): 4, ("val", "combo"): 3}
    for record in records:
        png = root / record["path"]
        assert png.is_file()
        from_labels = sorted(
            (load(p)["images"][0]["dl_mapping_code"], load(p)["annotations"][0]["bbox"])
            for p in labels_for(root, png))
        assert sorted((p["k_code"], p["bbox"]) for p in record["pills"]) == from_labels
        assert (len(record["pills"]) > 1) == (record["kind"] == "combo")


def test_same_seed_same_bytes_any_workers_other_seed_differs(
        tiny: tuple[Path, SynthSummary], tmp_path: Path) -> None:
    root, _ = tiny
    again = tmp_path / "again"
    again.mkdir()  # an existing empty directory is fine too
    generate(again, TINY, workers=2)
    assert (again / "synth_truth.jsonl").read_bytes() == (root / "synth_truth.jsonl").read_bytes()
    assert (again / "synth_catalog.json").read_bytes() == (root / "synth_catalog.json").read_bytes()
    files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for rel in files:
        assert (again / rel).read_bytes() == (root / rel).read_bytes(), rel

    other = tmp_path / "other"
    generate(other, dataclasses.replace(TINY, seed=8))
    assert (other / "synth_truth.jsonl").read_bytes() != (root / "synth_truth.jsonl").read_bytes()
    assert load(other / "synth_catalog.json") != load(root / "synth_catalog.json")
    first = pngs(root)[0].read_bytes()
    assert all(p.read_bytes() != first for p in pngs(other))


def test_lookalike_drugs_differ_only_by_imprint_or_score_line(
        tiny: tuple[Path, SynthSummary]) -> None:
    root, _ = tiny
    drugs = load(root / "synth_catalog.json")
    assert len(drugs) == 6 and len({d["dl_mapping_code"] for d in drugs}) == 6
    looks = defaultdict(list)
    for d in drugs:
        looks[(d["drug_shape"], d["color_class1"], d["color_class2"], d["leng_long"],
               d["leng_short"], d["form_code_name"])].append(d)
    groups = [g for g in looks.values() if len(g) >= 3]
    assert groups, "no look-alike group of 3 or more drugs"
    for group in groups:
        assert len({d["print_front"] for d in group}) == len(group)
    # Every drug can be told apart from every other by either face, so a perfect classifier
    # is possible whichever side a photo shows.
    for face in ("front", "back"):
        seen = {(d["drug_shape"], d["color_class1"], d[f"print_{face}"], d[f"line_{face}"])
                for d in drugs}
        assert len(seen) == len(drugs), face


def test_catalogue_has_real_data_quirks() -> None:
    drugs = build_catalog(60, seed=3)
    codes = [d.k_code for d in drugs]
    assert all(re.fullmatch(r"K-\d{6}", c) for c in codes) and len(set(codes)) == 60
    numbers = sorted(int(c[2:]) for c in codes)
    assert numbers[-1] - numbers[0] > 1000  # spread out, not simply 1..N
    edi = [d.fields["di_edi_code"] for d in drugs]
    assert 6 <= sum("," in e for e in edi) <= 18 and 3 <= edi.count("") <= 9
    for e in filter(None, edi):
        assert all(re.fullmatch(r"\d{9}|A\d{8}", part) for part in e.split(","))
    off = [d for d in drugs if d.fields["dl_idx"] != str(int(d.k_code[2:]) - 1)]
    assert 0 < len(off) <= 15
    for d in drugs:
        assert d.fields["dl_name"] and d.fields["dl_name_en"] and d.fields["dl_company"]
    assert build_catalog(60, seed=3) == drugs  # deterministic by seed


def _background_residual(img: np.ndarray, boxes: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """|image - smooth background model| (max over channels), and the mask it was fitted on.

    The table is a smooth gradient with a vignette, so a quadratic in x and y fitted to the
    pixels well away from every box predicts it; a pill is what the model does not explain.
    """
    h, w, _ = img.shape
    outside = np.ones((h, w), bool)
    for x, y, bw, bh in boxes:
        m = int(0.4 * max(bw, bh)) + 3  # the soft shadow reaches past the box
        outside[max(0, y - m):y + bh + m, max(0, x - m):x + bw + m] = False
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    design = np.stack([np.ones_like(xx), xx, yy, xx * xx, xx * yy, yy * yy], -1)
    coef, *_ = np.linalg.lstsq(design[outside], img[outside].astype(float), rcond=None)
    return np.abs(img - design @ coef).max(-1), outside


def test_boxes_hold_the_pills_and_nothing_else_does(tiny: tuple[Path, SynthSummary]) -> None:
    root, _ = tiny
    for record in truth(root):
        img = np.asarray(Image.open(root / record["path"]).convert("RGB"))
        boxes = [p["bbox"] for p in record["pills"]]
        residual, outside = _background_residual(img, boxes)
        # Away from the boxes the photo is background: almost nothing the model cannot explain.
        assert (residual[outside] > 20).mean() < 0.005, record["path"]
        for x, y, w, h in boxes:
            inside = residual[y:y + h, x:x + w]
            # A pill fills a good part of its box (a rotated capsule about a third of it)...
            assert (inside > 20).mean() > 0.25, (record["path"], [x, y, w, h])
            # ...and reaches each side of it: the box is tight, not a loose guess.
            for edge in (inside[:2], inside[-2:], inside[:, :2], inside[:, -2:]):
                assert edge.max() > 12, (record["path"], [x, y, w, h])


def test_refuses_a_directory_that_holds_files(tmp_path: Path) -> None:
    keep = tmp_path / "mine.txt"
    keep.write_text("user data")
    with pytest.raises(FileExistsError, match="already holds files"):
        generate(tmp_path, TINY)
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]
    assert keep.read_text() == "user data"


@pytest.mark.parametrize(("change", "word"), [
    ({"classes": 3}, "classes"),  # fewer drugs than the biggest combination
    ({"classes": 0}, "classes"),
    ({"pills_per_combo": (2, 5)}, "pills_per_combo"),
    ({"pills_per_combo": (3, 2)}, "pills_per_combo"),
    ({"pills_per_combo": (1, 2)}, "pills_per_combo"),
    ({"width": 0}, "width"),
    ({"height": -320}, "height"),
    ({"train_per_class": -1}, "train_per_class"),
    ({"combo_val": 1.5}, "combo_val"),
    ({"seed": -1}, "seed"),
    ({"holdout_classes": -1}, "holdout_classes"),
    ({"holdout_classes": 1.5}, "holdout_classes"),
    ({"holdout_classes": True}, "holdout_classes"),
    ({"classes": 9_999, "holdout_classes": 2}, "classes \\+ holdout_classes"),
    ({"holdout_classes": 2, "val_per_class": 0}, "val_per_class"),
    ({"train_per_class": 0, "val_per_class": 0, "combo_train": 0, "combo_val": 0}, "nothing"),
])
def test_refuses_invalid_specs(change: dict, word: str) -> None:
    with pytest.raises(ValueError, match=word):
        dataclasses.replace(TINY, **change)


def test_few_classes_are_fine_without_combinations(tmp_path: Path) -> None:
    spec = dataclasses.replace(TINY, classes=2, combo_train=0, combo_val=0, train_per_class=1,
                               val_per_class=1)
    assert generate(tmp_path / "out", spec).images == 4


def test_refuses_bad_worker_count_before_writing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="workers"):
        generate(tmp_path / "out", TINY, workers=0)
    assert not (tmp_path / "out").exists()


def test_summary_reports_what_was_written(tiny: tuple[Path, SynthSummary]) -> None:
    root, summary = tiny
    d = summary.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["root"] == str(root) and d["classes"] == 6 and d["seconds"] >= 0
    assert d["pills"] == sum(len(r["pills"]) for r in truth(root))


def test_lookalike_groups_can_be_turned_off() -> None:
    def looks(drugs: list) -> dict[int, set[tuple[str, str, str]]]:
        groups: dict[int, set[tuple[str, str, str]]] = {}
        for d in drugs:
            f = d.fields
            groups.setdefault(d.group, set()).add(
                (f["drug_shape"], f["color_class1"], str(f["leng_long"])))
        return groups

    real = build_catalog(12, seed=0)
    assert len(looks(real)) <= 6  # 12 drugs in groups of two to four
    assert all(2 <= sum(d.group == g for d in real) <= 4 for g in looks(real))
    assert all(len(v) == 1 for v in looks(real).values())  # a group shares one look
    distinct = build_catalog(12, seed=0, lookalikes=False)
    assert len(looks(distinct)) == 12  # every drug a group (and a look) of its own
    assert build_catalog(12, seed=0, lookalikes=False)[0].fields == distinct[0].fields
    with pytest.raises(ValueError, match="lookalikes"):
        SynthSpec(lookalikes="no")  # type: ignore[arg-type]


# Held-out drugs (open-set evaluation). 5 known + 4 held out = 9 drugs, built in groups of
# 3+3+3 or 4+3+2 whatever the seed: the last four always hold a whole group (distinct unknown
# drugs) and cut the one before it (near twins of known drugs).
HOLDOUT = dataclasses.replace(TINY, classes=5, holdout_classes=4, train_per_class=2,
                              val_per_class=2, combo_train=6, combo_val=6)


@pytest.fixture(scope="module")
def held_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("holdout") / "out"
    generate(out, HOLDOUT)
    return out


def test_held_out_drugs_appear_only_as_validation_singles(held_out: Path) -> None:
    holdout = load_holdout(held_out)
    assert len(holdout) == 4
    catalog = {d["dl_mapping_code"]: d for d in load(held_out / "synth_catalog.json")}
    assert len(catalog) == 9 and set(holdout) <= set(catalog)
    seen: Counter[tuple[str, str, str]] = Counter()
    for record in truth(held_out):
        for pill in record["pills"]:
            held = pill["k_code"] in holdout
            assert pill.get("holdout", False) is held  # the flag marks exactly the held-out
            seen[(pill["k_code"] if held else "known", record["split"], record["kind"])] += 1
    assert {key for key in seen if key[0] != "known"} == {(k, "val", "single") for k in holdout}
    assert all(seen[(k, "val", "single")] == HOLDOUT.val_per_class for k in holdout)
    # Their photos and labels are ordinary AIHub validation files with full metadata...
    for k_code in holdout:
        assert not list(held_out.glob(f"1.Training/*/*/{k_code}*"))
        labels = sorted(held_out.glob(f"2.Validation/라벨링데이터/VL_1_단일/{k_code}_json/*.json"))
        assert len(labels) == HOLDOUT.val_per_class
        for path in labels:
            image = load(path)["images"][0]
            assert list(image) == IMAGE_FIELDS and image["dl_mapping_code"] == k_code
            assert image["dl_name"] == catalog[k_code]["dl_name"]
    # ...and no combination folder names one.
    combos = [p.name for p in held_out.glob("*/*/*_조합/*") if p.is_dir()]
    assert combos and not any(k[2:] in name for name in combos for k in holdout)


def test_holdout_file_names_known_look_alikes(held_out: Path) -> None:
    holdout = load_holdout(held_out)
    raw = load(held_out / "synth_holdout.json")
    assert [e["k_code"] for e in raw["holdout"]] == sorted(holdout)
    catalog = build_catalog(9, HOLDOUT.seed)
    assert holdout == choose_holdout(catalog, 4)
    group = {d.k_code: d.group for d in catalog}
    known = set(group) - set(holdout)
    twins = {k: v for k, v in holdout.items() if v}
    assert twins, "the count cuts a group: some held-out drugs have known look-alikes"
    assert len(twins) < len(holdout), "a whole late group is held out: some look unlike all"
    for k_code, twin_of in holdout.items():
        assert set(twin_of) <= known
        assert set(twin_of) == {c for c in known if group[c] == group[k_code]}


def test_choose_holdout_takes_the_last_built_drugs() -> None:
    # 6 drugs always make two groups of three.
    catalog = build_catalog(6, seed=1)
    first, second = ({d.k_code for d in catalog if d.group == g} for g in (0, 1))
    (one,) = choose_holdout(catalog, 1).items()  # cuts the second group: a near twin
    assert one[0] in second and set(one[1]) == second - {one[0]}
    assert choose_holdout(catalog, 3) == {k: [] for k in sorted(second)}  # a whole group
    last_of_first = max((d for d in catalog if d.group == 0), key=lambda d: d.order).k_code
    four = choose_holdout(catalog, 4)
    assert set(four) == second | {last_of_first}
    assert four[last_of_first] == sorted(first - {last_of_first})
    assert choose_holdout(catalog, 0) == {}
    distinct = build_catalog(9, seed=1, lookalikes=False)
    assert all(v == [] for v in choose_holdout(distinct, 4).values())
    assert len(choose_holdout(distinct, 4)) == 4
    with pytest.raises(ValueError, match="hold out"):
        choose_holdout(catalog, 7)


def test_holdout_output_is_the_same_with_two_workers(held_out: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    summary = generate(again, HOLDOUT, workers=2)
    assert summary.images == HOLDOUT.images == 5 * 4 + 4 * 2 + 12
    assert summary.holdout_classes == 4
    files = sorted(p.relative_to(held_out) for p in held_out.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for rel in files:
        assert (again / rel).read_bytes() == (held_out / rel).read_bytes(), rel


def test_without_holdout_the_file_is_written_empty(tiny: tuple[Path, SynthSummary]) -> None:
    root, summary = tiny
    assert load(root / "synth_holdout.json") == {"holdout": []}
    assert load_holdout(root) == {} and summary.holdout_classes == 0
    assert not any("holdout" in p for r in truth(root) for p in r["pills"])


def test_load_holdout_missing_or_broken(tmp_path: Path) -> None:
    assert load_holdout(tmp_path) == {}  # real AIHub data has no such file
    path = tmp_path / "synth_holdout.json"
    path.write_text('{"holdout": [', encoding="utf-8")
    with pytest.raises(DataError, match="not valid JSON"):
        load_holdout(tmp_path)
    for broken in ('[]', '{"holdout": {}}', '{"holdout": [{"k_code": "K-000001"}]}',
                   '{"holdout": [{"k_code": 1, "twin_of": []}]}'):
        path.write_text(broken, encoding="utf-8")
        with pytest.raises(DataError, match=r"synth_holdout\.json"):
            load_holdout(tmp_path)


def test_scan_and_pack_leave_held_out_drugs_out_of_the_classes(held_out: Path,
                                                              tmp_path: Path) -> None:
    holdout = load_holdout(held_out)
    result = scan(held_out, tmp_path / "m", workers=1)
    known = {d["dl_mapping_code"] for d in load(held_out / "synth_catalog.json")} - set(holdout)
    assert set(result.classes.k_codes) == known  # the class index comes from training K-codes
    assert set(holdout) <= set(result.drugs)  # metadata of the held-out drugs is kept
    assert result.report["val_only_classes"] == sorted(holdout)
    val = [r for r in result.rows if r.split == "val"]
    items, unknown = plan_items(val, held_out, result.classes, region="pill", margin=0.15)
    assert unknown == 4 * HOLDOUT.val_per_class  # counted and left out, not an error
    assert all(0 <= i.label < len(known) for i in items)


def test_cli_holdout_classes_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    from pillsnap.data.__main__ import main

    monkeypatch.chdir(tmp_path)  # no ./config.yaml of the checkout
    out = tmp_path / "out"
    assert main(["synth", "--out", str(out), "--classes", "4", "--holdout-classes", "2",
                 "--size", "244x320", "--train-per-class", "1", "--val-per-class", "1",
                 "--combo-train", "0", "--combo-val", "0"]) == 0
    assert json.loads(capsys.readouterr().out)["holdout_classes"] == 2
    assert len(load_holdout(out)) == 2
    assert main(["synth", "--out", str(tmp_path / "bad"), "--holdout-classes", "-1"]) == 2


def test_held_out_drugs_can_have_training_photos_to_enroll_from(tmp_path: Path) -> None:
    """``holdout_train_per_class``: the held-out drugs are photographed for the training
    split too (the real data holds every drug there), still in no combination; the other
    drugs' photos are the same files as without it."""
    spec = dataclasses.replace(HOLDOUT, holdout_train_per_class=3)
    out = tmp_path / "with"
    generate(out, spec)
    holdout = load_holdout(out)
    seen: Counter[tuple[str, str, str]] = Counter()
    for record in truth(out):
        for pill in record["pills"]:
            if pill["k_code"] in holdout:
                seen[(pill["k_code"], record["split"], record["kind"])] += 1
    assert seen == Counter({**{(k, "train", "single"): 3 for k in holdout},
                            **{(k, "val", "single"): HOLDOUT.val_per_class for k in holdout}})
    assert spec.images == HOLDOUT.images + 3 * 4
    without = tmp_path / "without"
    generate(without, HOLDOUT)
    known = [p.relative_to(without) for p in sorted(without.rglob("*.png"))]
    assert all((out / p).read_bytes() == (without / p).read_bytes() for p in known)


def test_holdout_twins_takes_one_drug_of_each_look_alike_group() -> None:
    """``holdout_twins``: every held-out drug has known look-alikes (the hard case for
    telling unknown drugs apart); without look-alike groups there is nothing to take."""
    from pillsnap.data.synth.catalog import build_catalog

    catalog = build_catalog(40, 3)
    held = choose_holdout(catalog, 8, twins=True)
    assert len(held) == 8 and all(held.values())  # each has known twins
    groups = {d.k_code: d.group for d in catalog}
    assert len({groups[k] for k in held}) == 8  # one per group
    for k_code, twins in held.items():
        assert all(groups[t] == groups[k_code] and t not in held for t in twins)
    with pytest.raises(ValueError, match="look-alike groups"):
        choose_holdout(build_catalog(10, 3, lookalikes=False), 2, twins=True)
