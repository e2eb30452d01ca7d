"""The top-k loss benchmark runs at a small size and checks the dense and top-k losses agree."""

from stingy.benchmarks.bench_kd_loss_topk import bench_kd_loss_topk, markdown


def test_small_benchmark_reports_every_path():
    result = bench_kd_loss_topk(batch=4, num_classes=256, k=8, repeats=1)
    paths = {row["path"]: row for row in result["paths"]}
    assert set(paths) == {"topk_drop", "topk_bucket", "dense_kd_loss"}
    assert abs(paths["topk_drop"]["loss"] - paths["dense_kd_loss"]["loss"]) < 1e-4
    assert paths["topk_bucket"]["loss"] < paths["topk_drop"]["loss"]  # no T^2 log(K/k) term
    assert all(row["seconds"] > 0 for row in paths.values())
    assert "| topk_bucket |" in markdown(result)
