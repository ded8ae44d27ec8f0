"""Is run B better than run A, or is the difference noise? Paired on the same test images.

    python scripts/compare_runs.py A B [--list]

A and B are run folders (of ``src/train.py`` or ``src/eval.py``) or their ``test_predictions.csv``.
Prints both error rates, how many images only A gets wrong and how many only B gets wrong, and
McNemar's exact test on those two counts: the two-sided probability of a split at least this uneven
if A and B were equally good (the images both get right or both get wrong say nothing about which is
better). ``--list`` also prints the indices of the images each gets wrong.

At 0.5% error on MNIST's 10,000 test images one standard error is 0.07 points: many a CapsNet
"improvement" is smaller than that.
"""

import argparse
import csv
import math
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("a", type=Path, help="run folder or test_predictions.csv of A")
    parser.add_argument("b", type=Path, help="run folder or test_predictions.csv of B")
    parser.add_argument("--list", action="store_true", help="print the indices of the images each gets wrong")
    args = parser.parse_args(argv)
    result = compare(read_predictions(args.a), read_predictions(args.b))
    print(report(result, f"A ({args.a})", f"B ({args.b})", args.list))
    return 0


if __name__ == "__main__":
    sys.exit(main())
