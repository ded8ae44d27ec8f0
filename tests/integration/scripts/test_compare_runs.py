"""Per-image test predictions (written by train's test and by eval) and scripts/compare_runs.py."""

import csv
import importlib.util
import json

import pytest

from tests.helpers import ROOT, run_in_process


def _script():
    spec = importlib.util.spec_from_file_location("compare_runs", ROOT / "scripts" / "compare_runs.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def _write(path, rows):
    path.write_text("index,label,predicted\n" + "".join(f"{i},{y},{p}\n" for i, (y, p) in enumerate(rows)))
    return path


@pytest.mark.parametrize(
    ("only_a", "only_b", "p_value"),
    [(0, 0, 1.0), (0, 6, 2 / 64), (1, 9, 2 * 11 / 1024), (5, 5, 1.0), (3, 4, 1.0)],
)
def test_mcnemar_exact_two_sided(only_a, only_b, p_value):
    assert _script().mcnemar_exact(only_a, only_b) == pytest.approx(p_value)


def test_compare_pairs_the_images_and_refuses_other_test_sets(tmp_path, capsys):
    script = _script()
    labels = [k % 10 for k in range(100)]
    a = [(y, y) for y in labels]
    b = [(y, y) for y in labels]
    for k in range(7):  # B gets 7 images wrong that A gets right; both get image 50 wrong
        b[k] = (labels[k], (labels[k] + 1) % 10)
    a[50] = b[50] = (labels[50], (labels[50] + 3) % 10)
    assert (
        script.main([str(_write(tmp_path / "a.csv", a)), str(_write(tmp_path / "b.csv", b)), "--list"]) == 0
    )
    printed = capsys.readouterr().out
    assert "1.00% error (1 of 100" in printed and "8.00% error (8 of 100" in printed
    assert "wrong in A only: 0, in B only: 7, in both: 1" in printed
    assert "p = 0.0156 (a difference beyond noise at the 5% level)" in printed
    assert "wrong in B only: 0 1 2 3 4 5 6" in printed and "wrong in both: 50" in printed

    other = [(y, y) for y in labels[:99]]
    with pytest.raises(SystemExit, match="not tested on the same images"):
        script.main([str(tmp_path / "a.csv"), str(_write(tmp_path / "other.csv", other))])
    with pytest.raises(SystemExit, match=r"no test_predictions\.csv"):
        script.main([str(tmp_path), str(tmp_path / "a.csv")])


@pytest.mark.parametrize(
    ("t", "degrees", "p_value"),  # Student's t table: two-sided 5% and 1% critical values
    [
        *[(12.706, 1, 0.05), (4.303, 2, 0.05), (3.182, 3, 0.05), (2.776, 4, 0.05), (2.571, 5, 0.05)],
        *[(2.447, 6, 0.05), (2.228, 10, 0.05), (63.657, 1, 0.01), (9.925, 2, 0.01), (5.841, 3, 0.01)],
        *[(-4.604, 4, 0.01), (0.0, 3, 1.0)],
    ],
)
def test_student_t_two_sided_matches_the_table(t, degrees, p_value):
    assert _script().student_t_two_sided(t, degrees) == pytest.approx(p_value, abs=2e-4)


def test_recipes_over_seeds_are_compared_by_the_paired_differences(tmp_path, capsys):
    """Three pairs of runs: A wrong on 1, 2, 3 of 100 images, B on 3, 5, 4; the differences 2, 3, 1
    points have mean 2 and standard error 1/sqrt(3): t = 2 sqrt(3) with 2 degrees of freedom, whose
    two-sided p is 1 - t / sqrt(t^2 + 2) in closed form."""
    script = _script()
    labels = [k % 10 for k in range(100)]
    runs = {}
    for side, wrong_counts in (("a", (1, 2, 3)), ("b", (3, 5, 4))):
        for seed, wrong in enumerate(wrong_counts, start=1):
            rows = [(y, (y + 1) % 10 if k < wrong else y) for k, y in enumerate(labels)]
            runs[side, seed] = str(_write(tmp_path / f"{side}{seed}.csv", rows))
    a = ",".join(runs["a", seed] for seed in (1, 2, 3))
    b = ",".join(runs["b", seed] for seed in (1, 2, 3))
    assert script.main([a, b]) == 0
    printed = capsys.readouterr().out
    assert printed.count("McNemar's exact test") == 3  # one for each pair of runs
    assert "A: 2.000% error, standard deviation 1.000 (1.00%, 2.00%, 3.00%)" in printed
    assert "B: 4.000% error, standard deviation 1.000 (3.00%, 5.00%, 4.00%)" in printed
    t = 2 * 3**0.5
    p_value = 1 - t / (t**2 + 2) ** 0.5
    assert (
        f"B - A: +2.000 points (standard error 0.577); paired t-test over the seeds: p = {p_value:.3g}"
        in printed
    )
    assert "(not distinguishable from noise)" in printed.splitlines()[-1]

    with pytest.raises(SystemExit, match="A names 3 runs and B 2"):
        script.main([a, ",".join(runs["b", seed] for seed in (1, 2))])


def test_train_and_eval_write_each_test_images_prediction(trained_capsnet, data_overrides, tmp_path, capsys):
    metrics = json.loads((trained_capsnet.out / "metrics.json").read_text())
    with open(trained_capsnet.out / "test_predictions.csv") as rows:
        predictions = list(csv.DictReader(rows))
    assert [int(row["index"]) for row in predictions] == list(range(37))  # the synthetic test set, in order
    wrong = sum(row["label"] != row["predicted"] for row in predictions)
    assert wrong == round(metrics["test/error"] * 37)

    result = run_in_process("eval", [f"ckpt_path={trained_capsnet.best}", *data_overrides], tmp_path)
    assert result.code == 0, result.output[-3000:]
    assert _script().main([str(trained_capsnet.out), str(tmp_path)]) == 0  # the same weights, tested again
    assert "wrong in A only: 0, in B only: 0" in capsys.readouterr().out
