"""How much the mlp rule's step cap costs on each held-out task, from the stored baseline tuning.

The mlp rule's step is Adam's direction times a learned factor in [e^-x, e^x] around
``base_step`` (``--mlp_max_log_scale=x``), so on a task it can at best match Adam at a learning
rate up to ``base_step * e^x`` (before any gain from scheduling or per-coordinate scaling). For
each cap this prints, per task, the best tuning score of Adam at learning rates up to the cap
over the best tuning score of any baseline (1.00: the cap costs nothing there).

    PYTHONPATH=. python experiments/general/step_cap.py experiments/general/heldout_baselines/results.json
"""

import json
import sys


def cap_ratios(results: dict, cap: float) -> dict[str, float]:
    """Per task: best Adam tuning score at learning rates <= cap, over the best baseline's."""
    ratios = {}
    for task, entry in results["tasks"].items():
        best = min(min(tuning["scores"].values()) for tuning in entry["tuning"].values())
        adam = entry["tuning"]["adam"]["scores"]
        capped = [score for rate, score in adam.items() if float(rate) <= cap * (1 + 1e-9)]
        ratios[task] = min(capped) / best if capped else float("inf")
    return ratios


def main(path: str) -> None:
    with open(path, encoding="utf-8") as f:
        results = json.load(f)
    caps = (0.01, 0.02, 0.05, 0.1, 0.2)
    table = {cap: cap_ratios(results, cap) for cap in caps}
    print(f"{'task':36s}" + "".join(f"  cap {cap:<5g}" for cap in caps))
    for task in results["tasks"]:
        print(f"{task:36s}" + "".join(f"  {table[cap][task]:9.2f}" for cap in caps))
    print(f"{'tasks at 1.00 (within 1%)':36s}" + "".join(
        f"  {sum(r <= 1.01 for r in table[cap].values()):9d}" for cap in caps))


if __name__ == "__main__":
    main(sys.argv[1])
