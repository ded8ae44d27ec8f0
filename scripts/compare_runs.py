"""Is run B better than run A, or is the difference noise? Paired on the same test images.

    python scripts/compare_runs.py A B [--list]

A and B are run folders (of ``src/train.py`` or ``src/eval.py``) or their ``test_predictions.csv``.
Prints both error rates, how many images only A gets wrong and how many only B gets wrong, and
McNemar's exact test on those two counts: the two-sided probability of a split at least this uneven
if A and B were equally good (the images both get right or both get wrong say nothing about which is
better). ``--list`` also prints the indices of the images each gets wrong.

At 0.5% error on MNIST's 10,000 test images one standard error is 0.07 points: many a CapsNet
"improvement" is smaller than that.

McNemar's test compares two trained networks, not two recipes: one recipe's runs differ from seed to
seed, often by more than its standard error (docs/paper.md's ladder). For recipes, give each side's
runs separated by commas, paired in order (the same seeds):

    python scripts/compare_runs.py A_seed1,A_seed2,A_seed3 B_seed1,B_seed2,B_seed3

Each pair is compared as above; then each side's mean and standard deviation over its seeds, and the
paired differences (B - A): their mean, its standard error, and the paired t-test on them (n - 1
degrees of freedom: with 3 seeds a mean difference needs 4.3 standard errors for p < 0.05).
"""

import argparse
import csv
import math
import statistics
import sys
from pathlib import Path

PREDICTIONS = "test_predictions.csv"


def read_predictions(path: Path) -> dict[int, tuple[int, int]]:
    """{index: (label, predicted)} from a run folder or its test_predictions.csv."""
    file = path / PREDICTIONS if path.is_dir() else path
    if not file.is_file():
        raise SystemExit(f"{path}: no {PREDICTIONS} (written by src/train.py's test and by src/eval.py)")
    try:
        with open(file, newline="") as rows:
            return {int(r["index"]): (int(r["label"]), int(r["predicted"])) for r in csv.DictReader(rows)}
    except (KeyError, ValueError, TypeError) as error:
        raise SystemExit(f"{file}: not a {PREDICTIONS} (index,label,predicted): {error}") from None


def mcnemar_exact(only_a_wrong: int, only_b_wrong: int) -> float:
    """Two-sided exact McNemar p-value: 2 P(X <= min) for X ~ Binomial(n = the discordant pairs, 1/2)."""
    n = only_a_wrong + only_b_wrong
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(only_a_wrong, only_b_wrong) + 1)) / 2**n
    return min(1.0, 2 * tail)


def compare(a: dict[int, tuple[int, int]], b: dict[int, tuple[int, int]]) -> dict:
    if a.keys() != b.keys() or any(a[i][0] != b[i][0] for i in a):
        raise SystemExit("A and B were not tested on the same images (their indices or labels differ)")
    wrong_a = {i for i, (label, predicted) in a.items() if label != predicted}
    wrong_b = {i for i, (label, predicted) in b.items() if label != predicted}
    return {
        "images": len(a),
        "wrong_a": sorted(wrong_a),
        "wrong_b": sorted(wrong_b),
        "only_a": sorted(wrong_a - wrong_b),
        "only_b": sorted(wrong_b - wrong_a),
        "both": sorted(wrong_a & wrong_b),
        "p_value": mcnemar_exact(len(wrong_a - wrong_b), len(wrong_b - wrong_a)),
    }


def report(result: dict, name_a: str, name_b: str, list_images: bool) -> str:
    n = result["images"]
    lines = []
    for name, key in ((name_a, "wrong_a"), (name_b, "wrong_b")):
        wrong = len(result[key])
        error = wrong / n
        standard_error = 100 * math.sqrt(error * (1 - error) / n)
        lines.append(
            f"{name}: {100 * error:.2f}% error ({wrong} of {n}; one standard error {standard_error:.2f})"
        )
    only_a, only_b, both = (len(result[key]) for key in ("only_a", "only_b", "both"))
    lines.append(f"wrong in A only: {only_a}, in B only: {only_b}, in both: {both}")
    p = result["p_value"]
    verdict = "a difference beyond noise at the 5% level" if p < 0.05 else "not distinguishable from noise"
    lines.append(f"McNemar's exact test: p = {p:.3g} ({verdict})")
    if list_images:
        for label, key in (
            ("wrong in A only", "only_a"),
            ("wrong in B only", "only_b"),
            ("wrong in both", "both"),
        ):
            lines.append(f"{label}: {' '.join(map(str, result[key])) or '-'}")
    return "\n".join(lines)


def student_t_two_sided(t: float, degrees: int) -> float:
    """P(|T| >= |t|) for Student's t with a whole number of degrees of freedom, in closed form
    (Abramowitz & Stegun 26.7.3-4): with theta = atan(|t| / sqrt(degrees)), the probability inside is
    (2/pi)(theta + sin cos (1 + 2/3 cos^2 + 2*4/(3*5) cos^4 + ...)) for odd degrees and
    sin (1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ...) for even, the series ending at cos^(degrees - 2)."""
    theta = math.atan(abs(t) / math.sqrt(degrees))
    cos2 = math.cos(theta) ** 2
    odd = degrees % 2
    term, series = 1.0, 1.0
    for k in range(1 + odd, degrees - 1, 2):  # odd: the factors 2/3, 4/5, ...; even: 1/2, 3/4, ...
        term *= k / (k + 1) * cos2
        series += term
    if odd:
        inside = 2 / math.pi * (theta + (math.sin(theta) * math.cos(theta) * series if degrees > 1 else 0))
    else:
        inside = math.sin(theta) * series
    return min(1.0, max(0.0, 1 - inside))


def over_seeds(results: list[dict]) -> str:
    """Each side's test error over its seeds (mean and standard deviation, n - 1) and the paired
    differences B - A: their mean, its standard error and the paired t-test's two-sided p."""
    errors = {key: [100 * len(r[key]) / r["images"] for r in results] for key in ("wrong_a", "wrong_b")}
    lines = [f"over {len(results)} pairs of seeds:"]
    for side, key in (("A", "wrong_a"), ("B", "wrong_b")):
        values = errors[key]
        each = ", ".join(f"{v:.2f}%" for v in values)
        lines.append(
            f"{side}: {statistics.fmean(values):.3f}% error, standard deviation "
            f"{statistics.stdev(values):.3f} ({each})"
        )
    differences = [b - a for a, b in zip(errors["wrong_a"], errors["wrong_b"], strict=True)]
    mean = statistics.fmean(differences)
    standard_error = statistics.stdev(differences) / math.sqrt(len(differences))
    if standard_error > 0:
        p = student_t_two_sided(mean / standard_error, len(differences) - 1)
    else:  # every pair differs by the same amount
        p = 1.0 if mean == 0 else 0.0
    verdict = "a difference beyond noise at the 5% level" if p < 0.05 else "not distinguishable from noise"
    lines.append(
        f"B - A: {mean:+.3f} points (standard error {standard_error:.3f}); "
        f"paired t-test over the seeds: p = {p:.3g} ({verdict})"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("a", help="run folder or test_predictions.csv of A; several: comma-separated")
    parser.add_argument("b", help="the same of B, as many as A, paired in order (the same seeds)")
    parser.add_argument("--list", action="store_true", help="print the indices of the images each gets wrong")
    args = parser.parse_args(argv)
    runs_a, runs_b = ([Path(run) for run in runs.split(",")] for runs in (args.a, args.b))
    if len(runs_a) != len(runs_b):
        raise SystemExit(
            f"A names {len(runs_a)} runs and B {len(runs_b)}: give them in pairs (the same seeds)"
        )
    pairs = list(zip(runs_a, runs_b, strict=True))
    results = [compare(read_predictions(run_a), read_predictions(run_b)) for run_a, run_b in pairs]
    reports = [report(r, f"A ({a})", f"B ({b})", args.list) for r, (a, b) in zip(results, pairs, strict=True)]
    print("\n\n".join(reports + ([over_seeds(results)] if len(results) > 1 else [])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
