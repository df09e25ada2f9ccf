"""``posttrain`` command line: train | eval | decode | config | algos | pairs | qrpo-prep | merge | from-gguf |
plot | rollout-server | quickstart."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import get_args

from posttrain.config.loading import ConfigError, load_recipe, recipe_to_yaml
from posttrain.config.schema import RolloutConfig
from posttrain.decoding.methods import add_decoding_arguments, decode_spec_from_args


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="posttrain", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="run a recipe")
    train.add_argument("recipe", help="YAML recipe file")
    train.add_argument("overrides", nargs="*", help="key.path=value overrides")

    evaluate = commands.add_parser("eval", help="evaluate models on suites under eval/: a table, JSON and samples")
    evaluate.add_argument("suites", nargs="+", help="suite YAML files (see eval/)")
    evaluate.add_argument("--models", nargs="+", required=True,
                          help="model folders, run folders (newest complete checkpoint) or hub ids")
    evaluate.add_argument("--out", default="runs/eval", help="folder for results.json, results.md and samples")
    evaluate.add_argument("--set", nargs="*", default=[], dest="overrides",
                          help="key.path=value applied to every suite (e.g. limit=50)")
    evaluate.add_argument("--engine", default="hf", choices=get_args(RolloutConfig.model_fields["engine"].annotation),
                          help="rollout engine that generates (as rollout.engine in a recipe)")

    add_decoding_arguments(evaluate)

    decode = commands.add_parser("decode", help="generate from a base model with a decoding method "
                                                "(base, vas, best-of-n)")
    decode.add_argument("--model", required=True, help="base model folder, run folder or hub id")
    source = decode.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompt", help="one prompt")
    source.add_argument("--prompts", help="a jsonl/json/parquet/csv file of prompts")
    decode.add_argument("--prompt-field", default="prompt")
    decode.add_argument("--answer-field", default="answer", help="reference answers (best-of-n with a rule reward)")
    decode.add_argument("--chat-template", action="store_true", help="wrap prompts in the tokenizer's chat template")
    decode.add_argument("--num-samples", type=int, default=1, help="samples per prompt")
    decode.add_argument("--max-new-tokens", type=int, default=64)
    decode.add_argument("--temperature", type=float, default=1.0, help="0 = greedy")
    decode.add_argument("--batch-size", type=int, default=32, help="prompts decoded together")
    decode.add_argument("--seed", type=int, default=0)
    decode.add_argument("--out", help="jsonl file, one line per sample (default: print the completions)")
    add_decoding_arguments(decode)

    config = commands.add_parser("config", help="print the resolved recipe")
    config.add_argument("recipe")
    config.add_argument("overrides", nargs="*")

    commands.add_parser("algos", help="list algorithm presets and their switches")

    pairs = commands.add_parser("pairs", help="preference pairs from a policy's own samples, labelled by the recipe's rewards")
    pairs.add_argument("recipe", help="recipe naming the policy (model), prompts (data), sampling (rollout) and rewards")
    pairs.add_argument("overrides", nargs="*", help="key.path=value overrides")
    pairs.add_argument("--out", required=True, help="folder for <split>.jsonl (usable as data.path)")
    pairs.add_argument("--samples", type=int, default=8, help="completions sampled per prompt")
    pairs.add_argument("--splits", nargs="+", default=["train", "test"])
    pairs.add_argument("--no-gold", action="store_true",
                       help="never use the reference answer as 'chosen' when no sample beats the others")

    qrpo = commands.add_parser("qrpo-prep", help="QRPO data: score reference-policy samples per prompt beside the "
                                                "dataset's completions")
    qrpo.add_argument("recipe", help="recipe naming the reference policy (model or reference.path), data, sampling "
                                     "(rollout) and rewards")
    qrpo.add_argument("overrides", nargs="*", help="key.path=value overrides")
    qrpo.add_argument("--out", required=True, help="folder for <split>.jsonl (usable as data.path)")
    qrpo.add_argument("--samples", type=int, default=6, help="reference completions sampled and scored per prompt")
    qrpo.add_argument("--splits", nargs="+", default=["train", "test"])

    merge = commands.add_parser("merge", help="fold a LoRA checkpoint into a full transformers model")
    merge.add_argument("checkpoint", help="checkpoint folder, or a run folder (its newest complete checkpoint)")
    merge.add_argument("--out", required=True, help="folder to write the merged model to")

    plot = commands.add_parser("plot", help="draw training curves from run folders")
    plot.add_argument("runs", nargs="+", help="run folders (or metrics.jsonl files)")
    plot.add_argument("--out", default="curves.png", help="PNG file to write")
    plot.add_argument("--metrics", nargs="*", help="metric names to draw")

    gguf = commands.add_parser("from-gguf", help="a GGUF checkpoint → a full-precision transformers folder")
    gguf.add_argument("folder", help="folder holding the .gguf file")
    gguf.add_argument("file", help="the .gguf file name inside it")
    gguf.add_argument("--out", required=True, help="new model folder (weights, config, tokenizer)")

    server = commands.add_parser("rollout-server", help="start vLLM servers for rollout.engine: vllm-server")
    server.add_argument("model", help="model folder or hub id the servers start from (the trainer pushes its "
                        "own weights on connect)")
    server.add_argument("--workers", type=int, default=1, help="vLLM servers on this machine")
    server.add_argument("--host", default="127.0.0.1", help="interface to listen on (0.0.0.0 for other nodes)")
    server.add_argument("--port", type=int, default=8000, help="port of worker 0; worker i listens on port + i")
    server.add_argument("--tensor-parallel-size", type=int, default=1, help="GPUs per worker")
    server.add_argument("--devices", help="GPU ids to split over the workers (default: all visible; \"\" for none)")
    server.add_argument("--dtype", default="auto")
    server.add_argument("--seed", type=int, default=0)
    server.add_argument("--max-model-len", type=int)
    server.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    server.add_argument("--cpu-kv-cache-gib", type=int, default=1, help="KV cache per worker without a GPU")
    server.add_argument("--compile", action="store_true", help="let vLLM compile / capture CUDA graphs")
    server.add_argument("--weight-backend", choices=["auto", "nccl", "gloo"], default="auto")
    server.add_argument("--log-dir", help="write each worker's log to LOG_DIR/worker-<i>.log")
    server.add_argument("extra", nargs="*", help="further `vllm serve` arguments (after --)")

    quick = commands.add_parser("quickstart", help="tiny model: SFT on flawed demonstrations, then GRPO")
    quick.add_argument("--recipes", default="recipes/quickstart", help="folder with sft.yaml and grpo.yaml")
    quick.add_argument("--output-dir", default="runs/quickstart")
    quick.add_argument("--seed", type=int, default=0)
    quick.add_argument("--compare", action=argparse.BooleanOptionalAction, default=True,
                       help="also continue SFT for the same wall time as RL and report it side by side")

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return _dispatch(args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (ValueError, RuntimeError, OSError) as err:
        if not isinstance(err, _user_errors()):
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2


def _user_errors() -> tuple[type[Exception], ...]:
    """Errors that describe bad input (a file, a field, a model): printed, not a traceback."""
    from posttrain.data.loading import DataError
    from posttrain.models.loading import ModelLoadError
    from posttrain.rewards.base import RewardError

    return DataError, ModelLoadError, RewardError, FileNotFoundError, FileExistsError


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "config":
        print(recipe_to_yaml(load_recipe(args.recipe, args.overrides)), end="")
        return 0
    if args.command == "eval":
        from posttrain.evaluation.harness import format_table, run_eval
        from posttrain.evaluation.suite import load_suite

        suites = [load_suite(path, args.overrides) for path in args.suites]
        results = run_eval(suites, args.models, args.out, engine=args.engine, decode=decode_spec_from_args(args))
        print(format_table(results))
        print(f"\nresults: {args.out}/results.json; samples: {args.out}/<model>/<suite>.samples.jsonl")
        return 0
    if args.command == "decode":
        return _decode(args)
    if args.command == "rollout-server":
        from posttrain.rollout.server_launcher import ServerOptions, serve

        return serve(ServerOptions(
            model=args.model, workers=args.workers, host=args.host, port=args.port,
            tensor_parallel_size=args.tensor_parallel_size, devices=args.devices, dtype=args.dtype, seed=args.seed,
            max_model_len=args.max_model_len, gpu_memory_utilization=args.gpu_memory_utilization,
            cpu_kv_cache_gib=args.cpu_kv_cache_gib, enforce_eager=not args.compile,
            weight_backend=args.weight_backend, log_dir=args.log_dir, extra=tuple(args.extra)))
    if args.command == "from-gguf":
        from posttrain.models.gguf import gguf_to_hf

        print(f"wrote {gguf_to_hf(args.folder, args.file, args.out)}")
        return 0
    if args.command == "algos":
        from posttrain.algos.registry import format_presets

        print(format_presets())
        return 0
    if args.command == "pairs":
        from posttrain.data.sampled_pairs import write_sampled_pairs

        counts = write_sampled_pairs(load_recipe(args.recipe, args.overrides), args.out, args.samples,
                                     tuple(args.splits), gold_chosen=not args.no_gold)
        print(", ".join(f"{split}: {n} pairs" for split, n in counts.items()) + f" in {args.out}")
        return 0
    if args.command == "qrpo-prep":
        from posttrain.data.qrpo_prep import write_qrpo_data

        counts = write_qrpo_data(load_recipe(args.recipe, args.overrides), args.out, args.samples, tuple(args.splits))
        print(", ".join(f"{split}: {n} rows" for split, n in counts.items()) + f" in {args.out}")
        return 0
    if args.command == "merge":
        from posttrain.models.lora import merge_lora_checkpoint

        print(f"merged model written to {merge_lora_checkpoint(args.checkpoint, args.out)}")
        return 0
    if args.command == "plot":
        from posttrain.plotting import plot_runs

        print(plot_runs(args.runs, args.out, args.metrics))
        return 0
    if args.command == "train":
        recipe = load_recipe(args.recipe, args.overrides)
        from posttrain.trainers import train

        result = train(recipe)
        if result.is_main:
            print(f"{result.status} at step {result.step}; metrics in {result.output_dir}; "
                  f"checkpoint {result.checkpoint}" + (f"\nreason: {result.reason}" if result.reason else ""))
        return 0 if result.status == "completed" else 1
    if args.command == "quickstart":
        from posttrain.quickstart import run_quickstart

        run_quickstart(args.recipes, args.output_dir, args.seed, compare=args.compare)
        return 0
    raise AssertionError(args.command)


def _decode(args: argparse.Namespace) -> int:
    from posttrain.config.schema import DataConfig
    from posttrain.decoding.run import run_decode
    from posttrain.rollout.base import SamplingParams

    spec = decode_spec_from_args(args)
    fields = {"prompt_field": args.prompt_field, "answer_field": args.answer_field,
              "chat_template": args.chat_template}
    # one --prompt needs no data source: only the prompt formatting of the data section is used
    data = DataConfig(path=args.prompts, **fields) if args.prompts else DataConfig.model_construct(**fields)
    sampling = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature or 1.0,
                              greedy=args.temperature == 0)
    report = run_decode(args.model, spec, data, args.prompt, sampling, args.num_samples, args.seed, args.out,
                        args.batch_size)
    if args.out is None:
        for sample in report.samples:
            print(sample["completion"])
    cost = f"; {report.evals_per_token:.1f} model token evaluations per returned token" \
        if report.evals_per_token is not None else ""
    bound = f"; KL(best-of-{spec.n} ‖ base) ≤ {report.kl_bound:.4f}" if report.kl_bound is not None else ""
    print(f"{spec.label}: {len(report.samples)} samples in {report.seconds:.1f}s{cost}{bound}"
          + (f"; written to {args.out}" if args.out else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
