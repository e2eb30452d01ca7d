"""The report includes the numbers it is given and marks failing verdicts as failing."""

from __future__ import annotations

import tomllib

from stingy.figures.paper_numbers import PAPER_NUMBERS_FILE, load_paper_numbers
from stingy.figures.report import render_report, verdict_text, write_report
from stingy.formatting import fmt

MACHINE = {"cpu": "Test CPU 9000", "cores": 3, "torch": "9.9.9", "python": "3.11",
           "platform": "testOS", "gpu": None, "torch_threads": 3, "date": "2031-02-03T04:05:06"}


def _report(drawn_results):
    results, drawn, skipped = drawn_results
    stages = [{"stage": "simulations", "status": "reused", "seconds": 12.5, "summary": {}}]
    return render_report(results, "quick", stages, drawn, skipped, MACHINE)


def test_report_contains_the_verdict_numbers_and_marks_the_failing_one(drawn_results):
    text = _report(drawn_results)
    assert "12.345" in text and "[11.9, 12.8]" in text
    table = text.split("## Simulation verdicts (symmetric noise)", 1)[1].split("\n## ", 1)[0]
    failing_line = next(line for line in table.splitlines() if line.startswith("| gap_matches"))
    assert "**FAIL**" in failing_line
    passing_line = next(line for line in table.splitlines() if line.startswith("| u_shape"))
    assert "noise 0.2 symmetric" in passing_line
    assert "FAIL" not in passing_line and "| pass |" in passing_line


def test_report_contains_measured_accuracies_beside_the_paper_numbers(drawn_results):
    text = _report(drawn_results)
    assert "64.11" in text  # quick stingy student, 0.6411
    assert "86.64" in text  # the paper's CIFAR-10 CNN scratch accuracy
    assert "64.6" in text and "50.2" in text  # paper's sparse-ratio ablation
    # GPU check: teacher time to 93%, TFLOP/s, images/s
    assert "201.25" in text and "123.4" in text and "| 25000 |" in text
    assert "77.12" in text and "92.28" in text  # GPU stingy student beside paper's scratch


def test_report_lists_derivation_statuses_machine_date_and_figures(drawn_results):
    text = _report(drawn_results)
    assert "**FAILED**" in text and "proved symbolically" in text
    assert "Test CPU 9000" in text and "3 cores" in text and "9.9.9" in text
    assert "2031-02-03" in text
    assert "![Kept mass against temperature](figures/F1_kept_mass.png)" in text


def test_write_report_writes_report_md_in_the_results_folder(results):
    path = write_report(results, "quick", [], [], [], MACHINE)
    assert path == results / "REPORT.md" and "Test CPU 9000" in path.read_text()


def test_verdict_text_marks_failures_and_keeps_passes_plain():
    assert verdict_text("pass") == "pass"
    assert verdict_text("fail") == "**FAIL**"
    assert verdict_text("inconclusive") == "**inconclusive**"


def test_fmt_keeps_four_decimals_and_trims_zeros():
    assert fmt(12.345) == "12.345" and fmt(0.5) == "0.5" and fmt(3) == "3"
    assert fmt(25000.0, 0) == "25000" and fmt(100) == "100"
    assert fmt(float("nan")) == "-" and fmt([0.05, 0.2]) == "[0.05, 0.2]"
    assert fmt("KL(p||q)") == "KL(p\\|\\|q)"  # pipes escaped inside Markdown tables


def test_paper_numbers_file_has_a_source_and_the_sparse_ratio_ablation():
    with open(PAPER_NUMBERS_FILE, "rb") as f:
        paper = tomllib.load(f)
    ablation = paper["sparse_ratio_ablation"]
    assert paper["source"]["paper"]
    for name in ("resnet18_to_shufflenetv2", "resnet18_to_resnet18", "resnet50_to_resnet18"):
        assert len(ablation[name]["stingy"]) == len(ablation["ratios"])


def test_report_opens_with_an_abstract_then_the_paper_claims_then_our_hypotheses(drawn_results):
    text = _report(drawn_results)
    order = [text.index(head) for head in ("## Abstract", "## The paper's claims",
                                           "## Our own hypotheses", "Written by")]
    assert order == sorted(order)
    abstract = text.split("## Abstract", 1)[1].split("\n## ", 1)[0].strip()
    assert abstract.count(". ") + 1 == 5 and "not tested on real images" in abstract
    claims = text.split("## The paper's claims", 1)[1].split("\n## ", 1)[0]
    assert "| the paper's claim | our measurement [95% interval] | status | scope |" in claims
    assert "not testable here" in claims and "reproduced |" not in claims.replace("not ", "")
    hypotheses = text.split("## Our own hypotheses", 1)[1].split("\n## ", 1)[0]
    assert "Derivations that failed: T5" in hypotheses
    assert hypotheses.index("| gap_matches") < hypotheses.index("| u_shape")
    assert "did not hold" in hypotheses.split("| u_shape")[0]


def _claim_rows(tmp_path, verdicts):
    from stingy.io import write_json

    write_json(tmp_path / "simulations" / "verdicts.json", verdicts)
    text = render_report(tmp_path, "quick", [], [], [], MACHINE)
    claims = text.split("## The paper's claims", 1)[1].split("\n## ", 1)[0]
    return [line for line in claims.splitlines() if line.startswith("| a student distilled")]


def test_reproduced_only_where_the_interval_clears_zero_after_holm(tmp_path):
    base = {"check": "a", "statement": "stingy below both", "noise_kind": "symmetric"}
    rows = _claim_rows(tmp_path, [
        {**base, "noise": 0.0, "measured": -0.04, "ci95": [-0.05, -0.03], "verdict": "pass",
         "verdict_holm": "pass"},
        {**base, "noise": 0.3, "measured": -0.02, "ci95": [-0.03, -0.01], "verdict": "pass",
         "verdict_holm": "fail"},
        {**base, "noise": 0.15, "measured": -0.01, "ci95": [-0.03, 0.01], "verdict": "fail"}])
    simulated = [row for row in rows if "simulations" in row]
    statuses = {row.split("noise ")[1].split(" ")[0]: row.split(" | ")[2] for row in simulated}
    assert statuses == {"0": "reproduced", "0.3": "not reproduced", "0.15": "not reproduced"}
    assert any("GPU: no GPU run recorded" in row for row in rows)


def test_the_pipeline_check_profile_prints_no_verdicts_or_claims(drawn_results):
    results, drawn, skipped = drawn_results
    text = render_report(results, "smoke", [], drawn, skipped, MACHINE)
    assert "pipeline check" in text
    for absent in ("## Abstract", "the paper's claim |", "| verdict", "FAIL", "DIFFERS",
                   "12.345", "Did not hold"):
        assert absent not in text


def test_verdict_table_lists_failing_verdicts_first(drawn_results):
    text = _report(drawn_results).split("## Simulation verdicts (symmetric noise)", 1)[1]
    assert text.index("| gap_matches") < text.index("| u_shape")


def test_html_report_embeds_every_drawn_figure(drawn_results, tmp_path):
    import shutil

    results, drawn, skipped = drawn_results
    copy = shutil.copytree(results, tmp_path / "results")
    write_report(copy, "quick", [], drawn, skipped, MACHINE)
    page = (copy / "REPORT.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("data:image/png;base64,") == len(drawn)
    assert 'src="figures/' not in page and "<table>" in page and "Test CPU 9000" in page


def test_rewrite_report_redraws_from_the_files_and_lists_finished_stages(tmp_path):
    from figures_synthetic import write_results

    from stingy.figures.report import rewrite_report
    from stingy.io import write_json

    results = write_results(tmp_path / "results", quick=False, mechanism=False)
    write_json(results / "stages/simulations.json",
               {"stage": "simulations", "finished": "2031-01-01", "seconds": 3.5})
    path = rewrite_report(results, log=lambda *_: None)
    text = path.read_text()
    assert "| simulations | reused | 3.5 |" in text
    assert (results / "figures/F4_simulation_accuracy.png").is_file()
    assert (results / "REPORT.html").is_file()


def test_the_paper_column_takes_the_same_students_number_and_kd_from_a_nasty_teacher():
    from stingy.figures.report import paper_student_number

    table = load_paper_numbers()["cifar10_nasty_teacher"]
    assert paper_student_number(table, {"method": "normal_kd", "student": "preresnet20",
                                        "teacher": "teacher"}) == 92.49
    assert paper_student_number(table, {"method": "normal_kd", "student": "preresnet20",
                                        "teacher": "nasty-teacher"}) == 88.01
    assert paper_student_number(table, {"method": "stingy_kd", "student": "cnn"}) is None


def _write_lm(results, ks=(8, 64), excess=(0.30, 0.10)):
    from stingy.io import write_csv, write_json

    metrics = ("cross_entropy", "kl_to_teacher", "top1_agreement", "ece")

    def row(student, method, k, ce):
        out = {"student": student, "method": method, "k": k, "seeds": 3}
        for metric in metrics:
            value = ce if metric == "cross_entropy" else 0.1
            out.update({metric: value, f"{metric}_low": value - 0.01,
                        f"{metric}_high": value + 0.01})
        return out

    rows = [row("normal_kd", "normal_kd", 0, 3.0)]
    rows += [row(f"stingy_kd-k{k}", "stingy_kd", k, 3.0 + e) for k, e in zip(ks, excess)]
    write_csv(results / "lm" / "summary.csv", rows)
    write_json(results / "lm" / "provenance.json", {"profile": "default", "wall_s": 700.0,
                                                    "train_tokens": 790000,
                                                    "corpus": {"corpus_sha256": "ab" * 32}})
    write_json(results / "lm" / "rows.json", {"temperature": 1.0, "bytes_per_token": [
        {"rows": "top-8", "k": 8, "bytes_per_token": 97.0}], "statistics": [
        {"k": k, "kept_mass_mean": 0.5 + 0.1 * i, "signal_to_drive_mean": 0.2 * (i + 1)}
        for i, k in enumerate(ks)]})
    write_json(results / "lm" / "verdicts.json", [
        {"check": "topk_worse", "student": "stingy_kd-k8", "predicted": "pass",
         "outcome": "fail", "cross_entropy_numbers": {"mean": 0.3, "low": -0.1, "high": 0.7}}])
    write_json(results / "mechanism" / "harm_model" / "model.json", {"ratio_model": {
        "names": ["intercept", "log_ratio", "kept_mass", "log10_steps", "noise"],
        "coefficients": [0.0, -10.0, 0.0, 0.0, 0.0]}})


def test_the_language_model_section_gives_intervals_verdicts_and_the_harm_models_order(
        tmp_path):
    from stingy.figures.report import lm_section

    _write_lm(tmp_path)
    text = lm_section(tmp_path)
    assert "| stingy_kd-k8 | 3.3 [3.29, 3.31] |" in text
    assert "top-8 97 bytes/token" in text and "corpus sha256 abababababababab" in text
    assert "(topk_worse, stingy_kd-k8) **does not hold** (predicted pass)" in text
    # smaller ratio at k = 8 -> more predicted harm; measured excess 0.30 > 0.10: same order
    assert "orders the top-k students by harm as k = 8, 64" in text and "the same order" in text
    _write_lm(tmp_path, excess=(0.10, 0.30))
    assert "a different order" in lm_section(tmp_path)
    assert lm_section(tmp_path / "none").startswith("Not run")


def test_the_abstract_says_how_many_settings_an_intervention_held_in(tmp_path):
    from stingy.figures.report import abstract_section
    from stingy.io import write_json

    base = {"check": "I-ratio", "statement": "ratio", "noise_kind": "symmetric",
            "ci95": [0.1, 0.2]}
    write_json(tmp_path / "mechanism" / "interventions" / "verdicts.json", [
        {**base, "noise": 0.0, "measured": 0.6, "verdict": "pass", "verdict_holm": "pass"},
        {**base, "noise": 0.3, "measured": 0.5, "verdict": "pass", "verdict_holm": "pass"}])
    assert "(held in all 2 settings; measured 0.6, 0.5)" in abstract_section(tmp_path)
    write_json(tmp_path / "mechanism" / "interventions" / "verdicts.json", [
        {**base, "noise": 0.0, "measured": 0.6, "verdict": "pass", "verdict_holm": "pass"},
        {**base, "noise": 0.3, "measured": -0.1, "verdict": "fail", "verdict_holm": "fail"}])
    assert "(did not hold in 1 of 2 settings; measured 0.6, -0.1)" in abstract_section(tmp_path)
