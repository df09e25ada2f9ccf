#!/usr/bin/env bash
# Fresh machine → a tiny model that learned arithmetic beyond its flawed demonstrations.
# Extra arguments go to `posttrain quickstart` (e.g. --seed 1).
source "$(dirname "$0")/env.sh"
posttrain quickstart "$@"
