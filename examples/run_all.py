"""Run every example on the simulator and print its result and trace.

python -m examples.run_all            # from the repository root
"""

from __future__ import annotations

import importlib
import pprint
from pathlib import Path

from shimeji.config import load_config
from shimeji.sim import SimCluster

EXAMPLES = ("calculator", "user_score", "orders", "order_errors", "audit", "notifications",
            "gateway")
CONFIG = Path(__file__).with_name("config.yaml")


def run(name: str, seed: int = 0) -> tuple[object, SimCluster]:
    module = importlib.import_module(f"examples.{name}")
    with SimCluster(seed=seed, config=load_config(CONFIG)) as cluster:
        result = module.scenario(cluster)
    return result, cluster


def main() -> None:
    for name in EXAMPLES:
        result, cluster = run(name)
        doc = (importlib.import_module(f"examples.{name}").scenario.__doc__ or "").strip()
        print(f"=== {name}: {doc}")
        pprint.pprint(result, sort_dicts=False)
        print()
        print(cluster.trace)
        print()


if __name__ == "__main__":
    main()
