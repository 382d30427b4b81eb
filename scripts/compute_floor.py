#!/usr/bin/env python
"""How close a model's incremental graphs run to what this CPU can do (issue 15's default goal).

For the pair next to ``samos/models/M.onnx`` (the int8 graphs where they ship, as the runtime picks):

1. **Work.** Multiply-accumulates of every Conv, MatMul and Gemm node of the graphs the runtime
   loads, int8 ones (an operand from a DequantizeLinear) and float32 ones apart, counted with each
   such node's output exposed, so the shapes come from a real run, not from assumptions.
2. **Time.** CPU time per call (one thread, the runtime's session options), on the bundled demo
   call: the frames graph on a batch of 4 x the audio the incremental engine runs per hop (the hop
   plus the edges its metadata names), the head on 4 windows.
3. **This CPU's best.** The same session options on one large matrix product (float32, and int8 in
   onnxruntime's QDQ form, as the shipped int8 graphs are written): the rate onnxruntime reaches
   here when nothing but arithmetic is left.

Prints each graph's rate in GMAC/s, its share of the best rate of its precision, and the model's own
CPU-s per stream-second at ``--window`` / ``--hop`` (frames for the audio of one hop, plus one head
call per window): what the monitor cannot go below on this CPU without less arithmetic.

    .venv/bin/python scripts/compute_floor.py [--model default] [--json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from samos.audio import resample
from samos.export.verify import speech_pool
from samos.runtime.incremental import FrameGeometry
from samos.runtime.modelinfo import KEY_INCREMENTAL
from samos.runtime.providers import session_kwargs, session_options

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "samos" / "models"
BATCH = 4
BEST_SHAPE = (512, 1024, 1024)  # the matrix product that measures this CPU's best rates
COUNTED = ("Conv", "MatMul", "Gemm")


def session(model: str | bytes) -> ort.InferenceSession:
    """One CPU thread, the runtime's options and left-out optimisers."""
    return ort.InferenceSession(
        model,
        session_options(threads=1),
        providers=["CPUExecutionProvider"],
        **session_kwargs(["CPUExecutionProvider"]),
    )


def cpu_per_call(sess: ort.InferenceSession, feeds: dict, seconds: float = 3.0) -> tuple[float, float]:
    """``(median, fastest)`` CPU seconds per call over about ``seconds`` of calls (after two warm-up
    calls). On a shared machine other work only adds time: the fastest call is the one to compare
    with the best rate, the median the one a stream pays."""
    for _ in range(2):
        sess.run(None, feeds)
    times: list[float] = []
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end or len(times) < 5:
        t = time.process_time()
        sess.run(None, feeds)
        times.append(time.process_time() - t)
    return float(np.median(times)), float(np.min(times))


def macs(path: Path, feeds: dict[str, np.ndarray]) -> tuple[float, float, dict[str, np.ndarray]]:
    """MACs of one call of the graph on ``feeds`` (every Conv/MatMul/Gemm), split into int8 ones (the
    node's second operand comes out of a DequantizeLinear) and float32 ones, and the graph's outputs."""
    m = onnx.load(str(path))
    inits = {i.name: i for i in m.graph.initializer}
    producer = {o: n for n in m.graph.node for o in n.output}
    counted = [n for n in m.graph.node if n.op_type in COUNTED]
    graph_outputs = [o.name for o in m.graph.output]
    # expose each counted node's output and its first operand (their shapes give the work)
    extra = {n.output[0] for n in counted} | {n.input[0] for n in counted if n.input[0] not in inits}
    for name in sorted(extra - set(graph_outputs) - {i.name for i in m.graph.input}):
        m.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    sess = session(m.SerializeToString())
    feeds = {i.name: feeds[i.name] for i in sess.get_inputs()}
    values = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds), strict=True)) | feeds
    int8 = flt = 0.0
    for n in counted:
        out = values[n.output[0]]
        if n.op_type == "Conv":  # weight [out, in / group, *kernel]: MACs per output value
            w = inits[n.input[1]].dims if n.input[1] in inits else inits[producer[n.input[1]].input[0]].dims
            work = out.size * w[1] * int(np.prod(w[2:]))
        else:  # MatMul / Gemm: output values x the contracted length
            a = values[n.input[0]]
            trans_a = next((x.i for x in n.attribute if x.name == "transA"), 0)
            work = out.size * (a.shape[-2] if trans_a else a.shape[-1])
        src = producer.get(n.input[1])
        if src is not None and src.op_type == "DequantizeLinear":
            int8 += work
        else:
            flt += work
    return int8, flt, {name: values[name] for name in graph_outputs}


def best_rate(int8: bool) -> float:
    """GMAC/s of one ``[m, k] x [k, n]`` product (:data:`BEST_SHAPE`) on one thread (int8: QDQ on both
    operands)."""
    m, k, n = BEST_SHAPE
    rng = np.random.default_rng(0)
    w = rng.standard_normal((k, n)).astype(np.float32) * 0.05
    nodes, inits = [], []
    if int8:
        scale = float(np.abs(w).max() / 127)
        inits += [
            helper.make_tensor(
                "w_q", TensorProto.INT8, [k, n], np.round(w / scale).astype(np.int8).tobytes(), raw=True
            ),
            helper.make_tensor("w_s", TensorProto.FLOAT, [], [scale]),
            helper.make_tensor("w_z", TensorProto.INT8, [], [0]),
            helper.make_tensor("a_s", TensorProto.FLOAT, [], [4.0 / 255]),
            helper.make_tensor("a_z", TensorProto.UINT8, [], [128]),
        ]
        nodes += [
            helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_z"], ["w"]),
            helper.make_node("QuantizeLinear", ["a", "a_s", "a_z"], ["a_q"]),
            helper.make_node("DequantizeLinear", ["a_q", "a_s", "a_z"], ["a_dq"]),
            helper.make_node("MatMul", ["a_dq", "w"], ["y"]),
        ]
    else:
        inits.append(helper.make_tensor("w", TensorProto.FLOAT, [k, n], w.tobytes(), raw=True))
        nodes.append(helper.make_node("MatMul", ["a", "w"], ["y"]))
    graph = helper.make_graph(
        nodes,
        "best",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [m, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    sess = session(model.SerializeToString())
    a = rng.standard_normal((m, k)).astype(np.float32)
    return m * k * n / cpu_per_call(sess, {"a": a})[1] / 1e9


def demo_audio(seconds: float, starts: list[float]) -> dict[str, np.ndarray]:
    """``wave16 [B, n]`` and ``wave48 [B, 3n]``: spans of the bundled demo call at the stream gain."""
    x48 = speech_pool()
    x48 = x48 / (np.abs(x48).max() + 1e-8)
    n48 = int(round(seconds * 48_000))
    w48 = np.stack([x48[int(s * 48_000) : int(s * 48_000) + n48] for s in starts])
    w16 = np.stack([resample(w, 48_000, 16_000) for w in w48]).astype(np.float32)
    return {"wave16": w16, "wave48": w48}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default", help="a model name in samos/models (default: default)")
    ap.add_argument("--window", type=float, default=4.0, help="window seconds (default 4)")
    ap.add_argument("--hop", type=float, default=1.0, help="hop seconds (default 1)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    base = MODELS / args.model
    frames32, head32 = Path(f"{base}.frames.onnx"), Path(f"{base}.head.onnx")
    if not frames32.is_file() or not head32.is_file():
        ap.error(f"{base}.onnx has no incremental pair (samos export --incremental)")
    meta = ort.InferenceSession(str(frames32)).get_modelmeta().custom_metadata_map[KEY_INCREMENTAL]
    geo = FrameGeometry.from_json(meta, str(frames32))
    # per hop the engine runs the hop and the overlap at the ring's end (edge_frames), and the
    # window's first frames again (edge_frames of audio): samos.runtime.incremental
    per_hop_s = args.hop + 2 * geo.edge_frames * geo.frame_samples / 16_000
    starts = [2.0 + i * args.hop for i in range(BATCH)]
    hop_audio = demo_audio(per_hop_s, starts)
    window_audio = demo_audio(args.window, starts)

    rows = []
    best = {"float32": best_rate(False), "int8": best_rate(True)}
    floor = 0.0
    for part in ("frames", "head"):
        int8 = Path(f"{base}.{part}.int8.onnx")
        path = int8 if int8.is_file() else Path(f"{base}.{part}.onnx")
        if part == "frames":
            feeds = hop_audio
        else:  # the head's inputs: the frames of 4 windows, from the frames graph the runtime loads
            fpath = Path(f"{base}.frames.int8.onnx")
            feeds = macs(fpath if fpath.is_file() else frames32, window_audio)[2]
        n_int8, n_flt, _ = macs(path, feeds)
        sess = session(str(path))
        cpu, fastest = cpu_per_call(sess, {i.name: feeds[i.name] for i in sess.get_inputs()})
        at_best = n_int8 / (best["int8"] * 1e9) + n_flt / (best["float32"] * 1e9)
        cost = cpu / BATCH / args.hop  # CPU-s per stream-second: one call's share per hop
        floor += cost
        rows.append(
            {
                "graph": path.name,
                "gmac_per_call_int8": round(n_int8 / 1e9, 3),
                "gmac_per_call_float32": round(n_flt / 1e9, 3),
                "cpu_ms_per_call": round(cpu * 1e3, 2),
                "cpu_ms_fastest_call": round(fastest * 1e3, 2),
                "cpu_ms_at_best_rates": round(at_best * 1e3, 2),
                "share_of_best": round(at_best / fastest, 2),
                "cpu_s_per_stream_s": round(cost, 4),
            }
        )
    out = {
        "model": args.model,
        "window_s": args.window,
        "hop_s": args.hop,
        "audio_per_hop_s": round(per_hop_s, 3),
        "best_gmac_per_s": {k: round(v, 1) for k, v in best.items()},
        "graphs": rows,
        "model_cpu_s_per_stream_s": round(floor, 4),
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(
        f"{args.model}: {args.window:g} s windows every {args.hop:g} s, {per_hop_s:.2f} s of audio per hop "
        f"through the frames graph; batch {BATCH}, one thread"
    )
    print(
        f"this CPU's best (one {'x'.join(map(str, BEST_SHAPE))} product): float32 {best['float32']:.1f}, "
        f"int8 {best['int8']:.1f} GMAC/s"
    )
    print(
        f"{'graph':26} {'GMAC int8':>9} {'float32':>8} {'ms/call':>8} {'fastest':>8} {'at best':>8} "
        f"{'share':>6} {'CPU-s/stream-s':>15}"
    )
    for r in rows:
        print(
            f"{r['graph']:26} {r['gmac_per_call_int8']:9.3f} {r['gmac_per_call_float32']:8.3f} "
            f"{r['cpu_ms_per_call']:8.2f} {r['cpu_ms_fastest_call']:8.2f} {r['cpu_ms_at_best_rates']:8.2f} "
            f"{r['share_of_best']:6.2f} {r['cpu_s_per_stream_s']:15.4f}"
        )
    print(f"the model's own cost: {floor:.4f} CPU-s per stream-second (the pipeline comes on top)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
