"""Train several recipe files one after another inside one launched world (one launcher start-up
for the whole list): ``accelerate launch --config_file CFG tests/distributed/run_recipes.py A.yaml B.yaml``."""

from __future__ import annotations

import sys

from posttrain.config import load_recipe
from posttrain.trainers import train


def main(paths: list[str]) -> int:
    for path in paths:
        result = train(load_recipe(path, []))
        if result.status != "completed":
            print(f"{path}: {result.status}: {result.reason}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
