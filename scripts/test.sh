#!/usr/bin/env bash
# Fresh machine → lint and the whole test suite. Extra arguments go to pytest
# (e.g. -m unit for the fast tests only).
source "$(dirname "$0")/env.sh"
ruff check .
python -m pytest "$@"
