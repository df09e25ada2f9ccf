"""Generation through separate vLLM servers (``rollout.engine: vllm-server``).

The servers are plain ``vllm serve`` processes (``posttrain rollout-server`` starts them with the
options this engine relies on). The trainer talks to them over HTTP:

- **Generation**: one ``/v1/completions`` request per prompt (token ids in, token ids and sampled
  log-probs out, seeded per prompt exactly like the colocated engine), spread round-robin over the
  servers that are alive, many in flight at once. A request that fails on a server (connection
  lost, timeout, server error) marks that server lost and is retried on another one; with none
  left the run stops with :class:`RolloutServerError` naming each server and why it was dropped.
  Every call has a timeout, so the trainer never waits forever.
- **Weights**: after each update the main process broadcasts the new weights to every live server
  over a process group (:mod:`posttrain.rollout.weight_transfer`), then drops their prefix caches.
  Before each push the servers are health-checked; if the set that answers changed (a server was
  lost, or came back), the group is rebuilt with the servers that answer.
- **Check**: with ``check_weights`` each push is followed by a fingerprint (float64 sum and sum of
  squares) of a few parameters read back from every server and compared with the trainer's.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from posttrain.batch import RolloutBatch
from posttrain.config.schema import VLLMServerConfig
from posttrain.rollout.base import SamplingParams
from posttrain.rollout.hf import eos_token_ids
from posttrain.rollout.vllm_engine import WeightSyncError, plain_state_dict, sampled_batch
from posttrain.rollout.weight_transfer import GLOO, WeightBroadcaster, reachable_address

logger = logging.getLogger(__name__)


class RolloutServerError(RuntimeError):
    """No vLLM server can serve the request (unreachable, lost, or refusing it)."""


@dataclass
class _Server:
    url: str
    model: str = ""
    world_size: int = 1
    alive: bool = True
    lost_because: str = ""
    session: requests.Session = field(default_factory=requests.Session)


class VLLMServerEngine:
    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, options: VLLMServerConfig,
                 parallel: Any) -> None:
        self.options = options
        self.parallel = parallel
        self.tokenizer = tokenizer
        self.eos_ids = eos_token_ids(model, tokenizer)
        self.pad_id = tokenizer.pad_token_id
        self.servers = [_Server(url.rstrip("/")) for url in options.urls]
        for server in self.servers:  # one kept-alive connection per request in flight
            adapter = requests.adapters.HTTPAdapter(pool_maxsize=options.max_concurrency)
            server.session.mount("http://", adapter)
            server.session.mount("https://", adapter)
        self.pool = ThreadPoolExecutor(max_workers=options.max_concurrency, thread_name_prefix="vllm-client")
        self.broadcaster: WeightBroadcaster | None = None
        self.trainer_print: dict[str, list[float]] = {}  # fingerprint of the last push, trainer side
        #: pushes so far; the servers report the last one as their weight version
        self.version = 0
        self._wait_until_up()
        for server in self.servers:
            server.model = self._get(server, "v1/models")["data"][0]["id"]
            server.world_size = int(self._get(server, "get_world_size")["world_size"])
        #: what the main process fingerprints after each push, and the servers' dtype of each of those
        #: parameters (the trainer casts to it before summing)
        self.plan: dict[str, list[str]] = {}
        self.engine_dtypes: dict[str, torch.dtype] = {}
        if options.check_weights and getattr(parallel, "is_main", True):
            self.plan = fingerprint_plan([name for name, _, _ in _weight_source(model, None)[0]])
            for shards in self._fingerprints(self.servers[0], self.plan):
                self.engine_dtypes.update({name: getattr(torch, v[3]) for name, v in shards.items()})
        self.sync_weights(model)

    # ------------------------------------------------------------------ HTTP
    def _get(self, server: _Server, route: str, timeout: float | None = None) -> Any:
        response = server.session.get(f"{server.url}/{route}", timeout=timeout or self.options.request_timeout_s)
        _raise_for_status(server, route, response)
        return response.json() if response.content else None

    def _post(self, server: _Server, route: str, body: dict | None, timeout: float | None = None) -> Any:
        response = server.session.post(f"{server.url}/{route}", json=body,
                                       timeout=timeout or self.options.request_timeout_s)
        _raise_for_status(server, route, response)
        return response.json() if response.content else None

    def _post_url(self, url: str, route: str, body: dict | None, timeout: float | None = None) -> Any:
        return self._post(next(s for s in self.servers if s.url == url), route, body,
                          timeout or self.options.sync_timeout_s)

    def _healthy(self, server: _Server) -> bool:
        try:
            return server.session.get(f"{server.url}/health", timeout=self.options.health_timeout_s).ok
        except requests.RequestException:
            return False

    def _wait_until_up(self) -> None:
        deadline = time.monotonic() + self.options.connect_timeout_s
        waiting = list(self.servers)
        next_note = time.monotonic() + 10
        while waiting:
            waiting = [s for s in waiting if not self._healthy(s)]
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise RolloutServerError(
                    f"vLLM server(s) unreachable after {self.options.connect_timeout_s:g} s "
                    f"(rollout.vllm_server.connect_timeout_s): {', '.join(s.url for s in waiting)}; start them "
                    "with `posttrain rollout-server MODEL` and check rollout.vllm_server.urls")
            if time.monotonic() > next_note:
                logger.info("waiting for vLLM server(s) %s", ", ".join(s.url for s in waiting))
                next_note += 10
            time.sleep(0.5)

    def _lose(self, server: _Server, reason: str) -> None:
        if server.alive:
            server.alive, server.lost_because = False, reason
            left = sum(s.alive for s in self.servers)
            logger.warning("vLLM server %s lost (%s); %d left", server.url, reason, left)

    def live_servers(self) -> list[_Server]:
        return [s for s in self.servers if s.alive]

    def metrics(self) -> dict[str, float]:
        return {"rollout/servers_alive": float(len(self.live_servers()))}

    # ------------------------------------------------------------- generation
    def generate(self, prompts: Sequence[Sequence[int]], num_samples: int, sampling: SamplingParams) -> RolloutBatch:
        futures = [self.pool.submit(self._complete, i, list(prompt), num_samples, sampling)
                   for i, prompt in enumerate(prompts)]
        samples = [sample for future in futures for sample in future.result()]
        return sampled_batch(prompts, num_samples, samples, self.eos_ids, self.pad_id, self.tokenizer)

    def _request(self, prompt: list[int], n: int, sampling: SamplingParams, seed: int | None) -> dict[str, Any]:
        body: dict[str, Any] = {"prompt": prompt, "n": n, "max_tokens": sampling.max_new_tokens, "logprobs": 0,
                                "return_token_ids": True, "stop_token_ids": self.eos_ids,
                                "skip_special_tokens": False}
        if sampling.greedy:
            body["temperature"] = 0.0
        else:
            body.update(temperature=sampling.temperature, top_p=sampling.top_p, top_k=sampling.top_k or -1)
            if seed is not None:
                body["seed"] = seed
        return body

    def _complete(self, index: int, prompt: list[int], n: int,
                  sampling: SamplingParams) -> list[tuple[list[int], list[float]]]:
        """The ``n`` samples of one prompt, from the first server that answers."""
        seed = None if sampling.seed is None else sampling.seed + index * n
        body = self._request(prompt, n, sampling, seed)
        rank = getattr(self.parallel, "rank", 0)
        for attempt in range(self.options.retries + 1):
            live = self.live_servers()
            if not live:
                break
            server = live[(index + rank + attempt) % len(live)]
            try:
                response = server.session.post(f"{server.url}/v1/completions", json={**body, "model": server.model},
                                               timeout=self.options.request_timeout_s)
            except requests.RequestException as err:
                # a server that still answers its health check keeps its place (a slow or dropped
                # request is retried); one that does not is lost
                if not self._healthy(server):
                    self._lose(server, f"{type(err).__name__}: {err}")
                continue
            if response.status_code >= 500:
                self._lose(server, f"HTTP {response.status_code}: {response.text[:200]}")
                continue
            _raise_for_status(server, "v1/completions", response)
            choices = sorted(response.json()["choices"], key=lambda c: c["index"])
            return [(list(c["token_ids"]), [v if v is not None else 0.0 for v in c["logprobs"]["token_logprobs"]])
                    for c in choices]
        raise RolloutServerError(self._no_server_message())

    def _no_server_message(self) -> str:
        lost = "; ".join(f"{s.url}: {s.lost_because or 'unreachable'}" for s in self.servers)
        return (f"no vLLM server left to generate ({lost}); rollout.vllm_server.retries="
                f"{self.options.retries}")

    # ---------------------------------------------------------------- weights
    def sync_weights(self, model: PreTrainedModel) -> None:
        """Every process joins (ZeRO-3 gathers are collective); the main one pushes and checks. A
        gloo push that breaks off (a server lost in the middle of it) is redone once, on the
        servers that still answer. An error on the main process reaches every process."""
        main = getattr(self.parallel, "is_main", True)
        for attempt in range(2):
            members = self._on_main(self._refresh_group) if main else []
            members = self._shared(members)
            for server in self.servers:
                server.alive = server.url in members
            failure = self._push(model, str(self.version + 1)) if main else self._join_push(model)
            failure = self._shared(failure)
            if failure is None:
                break
            if attempt or self._backend() != GLOO:  # an NCCL group is not retried (untested)
                self._shared(RolloutServerError(f"the weight push failed: {failure}"))
            logger.warning("weight push to %s broke off (%s); pushing again to the servers that answer",
                           ", ".join(members), failure)
            if main:
                self._drop_group()
        self.version += 1
        self._shared(self._on_main(self._after_push) if main else None)
        barrier = getattr(self.parallel, "barrier", None)
        if barrier is not None:
            barrier()

    def _on_main(self, step: Callable[[], Any]) -> Any:
        """``step()``, or the error it raised (handed to :meth:`_shared`, which raises it everywhere)."""
        try:
            return step()
        except Exception as err:
            return err

    def _shared(self, value: Any) -> Any:
        """The main process's ``value`` on every process; an error is raised on every process."""
        if self.parallel is not None:
            value = self.parallel.broadcast_object(value)
        if isinstance(value, Exception):
            raise value
        return value

    def _after_push(self) -> None:
        for server in self.live_servers():
            self._reset_prefix_cache(server)
        if self.options.check_weights:
            self._compare(self.trainer_print, self.plan)

    def _backend(self) -> str:
        backend = self.options.weight_backend
        if backend == "auto":
            backend = "nccl" if torch.cuda.is_available() else GLOO
        return backend

    def _push(self, model: PreTrainedModel, version: str) -> str | Exception | None:
        """Broadcast ``model``'s weights to the group: None, the transport error that broke the push
        off (to retry), or any other error (raised on every process)."""
        assert self.broadcaster is not None
        names, source = _weight_source(model, self.parallel)
        self.trainer_print = {}
        stream = _SourceGuard(_fingerprinting(source, self.plan, self.trainer_print, self.engine_dtypes))
        try:
            self.broadcaster.push(stream, names, version)
            broken = self._incomplete_receivers()
        except (RuntimeError, OSError, requests.RequestException) as err:
            if stream.error is not None:  # gathering or fingerprinting failed, not the transport
                return stream.error
            for _ in stream:  # the other processes are still in the ZeRO-3 gathers: finish them
                pass
            return f"{type(err).__name__}: {err}"
        except Exception as err:
            return err
        return f"{', '.join(broken)} did not receive every tensor" if broken else None

    def _incomplete_receivers(self) -> list[str]:
        """The servers whose gloo receiver stopped early in the last push (it ends a broken-off
        update quietly rather than failing, which would stop the server)."""
        if self.broadcaster is None or self.broadcaster.backend != GLOO:
            return []
        return [url for url in self.broadcaster.urls
                if any(self._post_url(url, "collective_rpc", {"method": "posttrain_receive_state"})["results"])]

    def _join_push(self, model: PreTrainedModel) -> None:
        if not hasattr(model, "peft_config"):  # a LoRA policy is merged on the main process alone
            for _ in self.parallel.stream_parameters(model):  # the others only join each ZeRO-3 gather
                pass
        return None

    def _drop_group(self) -> None:
        """Leave a weight group whose push broke off; the next refresh builds a new one. Leaving it
        first frees servers still waiting to receive; then they end their update (vLLM refuses a new
        one otherwise; the next push overwrites whatever part of the weights they loaded)."""
        if self.broadcaster is None:
            return
        self.broadcaster.leave()
        for url in self.broadcaster.urls:
            try:
                self._post_url(url, "finish_weight_update", {"weight_version": str(self.version)},
                               self.options.health_timeout_s)
            except (requests.RequestException, RolloutServerError) as err:
                logger.debug("could not end the broken update on %s: %s", url, err)
        self.broadcaster.close(self.options.health_timeout_s)
        self.broadcaster = None

    def _refresh_group(self) -> list[str]:
        """(Re)build the weight group when the servers that answer differ from its members or one of
        them came back (a restarted server is not in the old group); returns the members."""
        rejoined = False
        for server in self.servers:
            healthy = self._healthy(server)
            if server.alive and not healthy:
                self._lose(server, "health check failed")
            elif not server.alive and healthy:
                logger.info("vLLM server %s is back; it rejoins the weight group", server.url)
                server.alive, server.lost_because, rejoined = True, "", True
        live = self.live_servers()
        if not live:
            raise RolloutServerError(self._no_server_message())
        if self.broadcaster is not None:  # restarted between two checks: alive, but without the last push
            rejoined = rejoined or any(self._weight_version(s) not in (None, str(self.version)) for s in live)
        members = [s.url for s in live]
        if self.broadcaster is not None and self.broadcaster.urls == members and not rejoined:
            return members
        if self.broadcaster is not None:
            self.broadcaster.close(self.options.health_timeout_s)
        backend = self._backend()
        address = self.options.sync_address or reachable_address(members)
        self.broadcaster = WeightBroadcaster(members, [s.world_size for s in live], self._post_url, backend,
                                             address, self.options.sync_port, self.options.sync_timeout_s)
        return members

    def _weight_version(self, server: _Server) -> str | None:
        """The version of the server's last push; None from vLLM releases without ``/weight_info``
        (there a restart is noticed only when a health check fails in between)."""
        response = server.session.get(f"{server.url}/weight_info", timeout=self.options.health_timeout_s)
        if response.status_code == 404:
            return None
        _raise_for_status(server, "weight_info", response)
        return response.json()["weight_version"]

    def _reset_prefix_cache(self, server: _Server, attempts: int = 5) -> None:
        """Drop the cache computed with the old weights; vLLM refuses while blocks are still held."""
        for attempt in range(attempts):
            if (self._post(server, "reset_prefix_cache", None) or {}).get("success", True):
                return
            time.sleep(0.2 * (attempt + 1))
        raise RolloutServerError(f"{server.url} would not reset its prefix cache after the weight push "
                                 f"({attempts} tries): its cached prompts would keep the old weights")

    def check_weights(self, model: PreTrainedModel) -> int:
        """Compare every live server's fingerprint with ``model``'s (one process; the pushes check
        themselves on the fly). Returns how many parameters were compared per server."""
        names, source = _weight_source(model, None)
        plan = fingerprint_plan([name for name, _, _ in names])
        trainer_print: dict[str, list[float]] = {}
        for _ in _fingerprinting(source, plan, trainer_print, self.engine_dtypes):
            pass
        return self._compare(trainer_print, plan)

    def _compare(self, trainer_print: dict[str, list[float]], plan: dict[str, list[str]]) -> int:
        """Raise :class:`WeightSyncError` unless each live server's fingerprint of the planned
        parameters equals the trainer's; returns how many parameters were compared per server."""
        compared = 0
        for server in self.live_servers():
            engine = combine_shards(self._fingerprints(server, plan), trainer_print)
            for name, (total, squares) in engine.items():
                want_total, want_squares = trainer_print[name][:2]
                if not (_close(total, want_total) and _close(squares, want_squares)):
                    raise WeightSyncError(
                        f"after weight push {self.version}, {server.url} holds {name} with sum {total:.9g} and "
                        f"sum of squares {squares:.9g}; the trainer's are {want_total:.9g} and "
                        f"{want_squares:.9g}: the server is not sampling from the current policy")
            if not engine:
                raise WeightSyncError(f"{server.url} reports none of the fingerprint parameters "
                                      f"{list(plan)}; turn rollout.vllm_server.check_weights off for this model")
            compared = len(engine)
        return compared

    def _fingerprints(self, server: _Server, plan: dict[str, list[str]]) -> list[dict[str, list[Any]]]:
        """Each worker's fingerprint of its shard of the planned parameters."""
        reply = self._post(server, "collective_rpc", {"method": "posttrain_fingerprint",
                                                      "args": [json.dumps(list(plan))]})
        return reply["results"]

    def close(self) -> None:
        if self.broadcaster is not None:
            self.broadcaster.close(self.options.health_timeout_s)
            self.broadcaster = None
        self.pool.shutdown(wait=False, cancel_futures=True)


class _SourceGuard:
    """Iterates the weights being pushed, keeping the error they raised (a failed ZeRO-3 gather, say)
    apart from the transport's."""

    def __init__(self, source: Iterator[tuple[str, torch.Tensor]]) -> None:
        self.source = source
        self.error: Exception | None = None

    def __iter__(self) -> _SourceGuard:
        return self

    def __next__(self) -> tuple[str, torch.Tensor]:
        try:
            return next(self.source)
        except StopIteration:
            raise
        except Exception as err:
            self.error = err
            raise


def _raise_for_status(server: _Server, route: str, response: requests.Response) -> None:
    if response.status_code == 404:
        raise RolloutServerError(f"{server.url} has no /{route} route: start the servers with `posttrain "
                                 "rollout-server`, which enables vLLM's weight-update routes (VLLM_SERVER_DEV_MODE=1) "
                                 "and the weight transfer")
    if response.status_code >= 400:
        raise RolloutServerError(f"{server.url}/{route} answered HTTP {response.status_code}: {response.text[:500]}")


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)


def _weight_source(model: PreTrainedModel, parallel: Any) -> tuple[list[tuple[str, torch.dtype, list[int]]],
                                                                   Iterator[tuple[str, torch.Tensor]]]:
    """What is pushed: (name, dtype, shape) of each tensor, then the tensors in that order. A LoRA
    model is pushed merged, a ZeRO-3 one gathered one parameter at a time, and a tied weight under
    each of its names (vLLM reloads its output layer only from ``lm_head.weight``)."""
    if hasattr(model, "peft_config"):
        state = plain_state_dict(model)
        return [(n, t.dtype, list(t.shape)) for n, t in state.items()], iter(state.items())
    aliases: dict[str, list[str]] = {}
    owner: dict[int, str] = {}
    for name, param in model.named_parameters():
        owner[id(param)] = name
    for name, value in model.state_dict(keep_vars=True).items():
        if id(value) in owner and owner[id(value)] != name:
            aliases.setdefault(owner[id(value)], []).append(name)
    meta = []
    for name, param in model.named_parameters():
        shape = list(getattr(param, "ds_shape", param.shape))
        meta += [(n, param.dtype, shape) for n in [name, *aliases.get(name, [])]]
    stream = parallel.stream_parameters(model) if parallel is not None else iter(model.named_parameters())
    return meta, ((n, tensor) for name, tensor in stream for n in [name, *aliases.get(name, [])])


#: vLLM fuses these projections; its fused parameter holds the listed checkpoint ones end to end
_FUSED = {"qkv_proj": ("q_proj", "k_proj", "v_proj"), "gate_up_proj": ("gate_proj", "up_proj")}


def fingerprint_plan(names: Sequence[str]) -> dict[str, list[str]]:
    """The parameters to fingerprint, as ``{vLLM name: [checkpoint names it is made of]}``: the last
    decoder layer's projections (fused as vLLM fuses them) and norms, the final norm, the input
    embedding and the output layer. (vLLM's CPU backend repacks linear layers out of their
    parameters, so there the projections drop out and the rest is compared.)"""
    layers = [int(m.group(1)) for n in names if (m := re.search(r"\.layers\.(\d+)\.", n))]
    if not layers:
        return {}
    last = max(layers)
    present = set(names)
    plan: dict[str, list[str]] = {}
    for name in names:
        if f".layers.{last}." not in name and not re.fullmatch(r"(model\.)?(norm|embed_tokens)\.weight|lm_head\.weight",
                                                              name):
            continue
        fused = next((f for f, parts in _FUSED.items() if any(f".{p}." in name for p in parts)), None)
        if fused is None:
            plan[name] = [name]
            continue
        part = next(p for p in _FUSED[fused] if f".{p}." in name)
        target = name.replace(f".{part}.", f".{fused}.")
        members = [target.replace(f".{fused}.", f".{p}.") for p in _FUSED[fused]]
        if all(m in present for m in members):
            plan[target] = members
    return plan


def _fingerprinting(source: Iterator[tuple[str, torch.Tensor]], plan: dict[str, list[str]],
                    into: dict[str, list[float]], dtypes: dict[str, torch.dtype]) -> Iterator[tuple[str, torch.Tensor]]:
    """Pass ``source`` through, adding each planned tensor's float64 sum, sum of squares and size
    (after casting it to the server's dtype) to the entry of the vLLM parameter it is part of."""
    part_of = {member: target for target, members in plan.items() for member in members}
    for name, tensor in source:
        if name in part_of:
            values = tensor.detach().to(dtypes.get(part_of[name], tensor.dtype))
            entry = into.setdefault(part_of[name], [0.0, 0.0, 0.0])
            entry[0] += float(values.sum(dtype=torch.float64))
            entry[1] += float(torch.linalg.vector_norm(values, dtype=torch.float64) ** 2)
            entry[2] += float(values.numel())
        yield name, tensor


def combine_shards(results: list[dict[str, list[Any]]], trainer_print: dict[str, list[float]]) -> dict[str, tuple[float, float]]:
    """One (sum, sum of squares) per parameter from the per-worker shards: added when the shards
    split the parameter, taken once when every worker holds all of it; parameters whose layout is
    neither (padded or partly replicated shards) are left out."""
    combined: dict[str, tuple[float, float]] = {}
    for name, (_, _, numel) in trainer_print.items():
        shards = [r[name] for r in results if name in r]
        if not shards:
            continue
        if sum(s[2] for s in shards) == numel:
            combined[name] = (sum(s[0] for s in shards), sum(s[1] for s in shards))
        elif all(s[2] == numel for s in shards):
            combined[name] = (shards[0][0], shards[0][1])
    return combined
