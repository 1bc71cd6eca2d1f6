"""The four targets on hand-made records: met, not met, not evaluated; the report shows them."""

from __future__ import annotations

from fastdrive_ros.eval.records import EvalRecord, EvalResults
from fastdrive_ros.eval.report_md import render_markdown
from fastdrive_ros.eval.targets import check_targets


def row(pruner: str, ratio: float, l2: float, coll: float, prefill: float, stage="encoder"):
    r = EvalRecord(pruner, stage, ratio, kept_tokens=100, total_tokens=100, samples=10)
    r.metrics = {
        "l2": {"1s": l2, "2s": l2, "3s": l2, "avg": l2},
        "collision": {"1s": coll, "2s": coll, "3s": coll, "avg": coll},
        "intersection": {"1s": 1.0, "2s": 1.0, "3s": 1.0, "avg": 1.0},
        "offroad": {h: None for h in ("1s", "2s", "3s", "avg")},
    }
    r.prefill_ms = prefill
    return r


def results(recon50: float, recon75: float, fastv75_coll: float, prefill75: float, cv: float):
    unpruned = row("none", 0.0, 0.50, 0.2, 100.0, stage="none")
    records = [
        unpruned,
        row("reconpruner", 0.5, recon50, 0.2, 60.0),
        row("reconpruner", 0.75, recon75, 0.3, prefill75),
        row("fastv", 0.75, 0.60, fastv75_coll, 40.0, stage="llm"),
        row("random", 0.75, 0.70, 0.5, prefill75),
    ]
    for r in records:
        r.rel_l2 = 100 * r.metric("l2") / unpruned.metric("l2")
    out = EvalResults(
        records=records, references=[row("constant_velocity", 0, cv, 1, 0)], metadata={}
    )
    out.targets = check_targets(out)
    return out


def statuses(res: EvalResults) -> list[str]:
    return [t["status"] for t in res.targets]


def test_all_targets_met() -> None:
    res = results(recon50=0.51, recon75=0.55, fastv75_coll=0.4, prefill75=25.0, cv=1.0)
    assert statuses(res) == ["met"] * 4
    md = render_markdown(res)
    assert md.count("✅ met") == 4 and "4.00x" in md


def test_each_target_can_fail() -> None:
    res = results(recon50=0.52, recon75=0.65, fastv75_coll=0.25, prefill75=40.0, cv=0.52)
    assert statuses(res) == ["not met"] * 4
    details = [t["detail"] for t in res.targets]
    assert "104.0 %" in details[1]
    assert "random" not in details[2].split("beaten by:")[1]  # random is worse on both
    assert "fastv l2" in details[2] and "fastv collision" in details[2]
    assert "2.50x" in details[3]


def test_missing_rows_are_not_evaluated() -> None:
    res = EvalResults(
        records=[row("none", 0.0, 0.5, 0.2, 100.0, stage="none")], references=[], metadata={}
    )
    assert statuses(EvalResults(res.records, [], {}, check_targets(res))) == ["not evaluated"] * 4


def test_results_name_the_sparsevlm_deviations() -> None:
    from fastdrive_ros.nn.baselines.sparsevlm import DEVIATIONS

    res = results(recon50=0.51, recon75=0.55, fastv75_coll=0.4, prefill75=25.0, cv=1.0)
    assert "SparseVLM follows" not in render_markdown(res)
    res.records.append(row("sparsevlm", 0.75, 0.6, 0.3, 40.0, stage="llm"))
    md = render_markdown(res)
    assert "SparseVLM follows its reference code" in md
    for item in DEVIATIONS:
        assert item in md


def test_results_name_the_reference_point() -> None:
    res = results(recon50=0.51, recon75=0.55, fastv75_coll=0.4, prefill75=25.0, cv=1.0)
    assert "Reference point of trajectories, boxes and map: not recorded" in render_markdown(res)
    res.metadata["reference"] = "lidar"
    assert "the LiDAR sensor in the current LiDAR frame" in render_markdown(res)
    res.metadata["reference"] = "rear_axle"
    assert "0.94 m further back than upstream" in render_markdown(res)


def test_probes_are_not_rivals_of_reconpruner() -> None:
    res = results(recon50=0.51, recon75=0.55, fastv75_coll=0.4, prefill75=25.0, cv=1.0)
    # an oracle that keeps the true foreground is a yardstick: better than ReconPruner is expected
    res.records.append(row("oracle_fg", 0.75, 0.40, 0.1, 1.0))
    res.records.append(row("anti_oracle", 0.75, 0.90, 0.9, 1.0))
    res.targets = check_targets(res)
    assert statuses(res) == ["met"] * 4
    assert "oracle" not in res.targets[2]["detail"] and "1.0 ms" not in res.targets[3]["detail"]
