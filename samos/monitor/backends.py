"""Where the monitor's windows are scored: in this process, on a Ray Serve deployment, or on Triton.

``--backend`` / the config key ``backend``:

- ``inprocess`` (default): an onnxruntime :class:`~samos.runtime.Scorer` in this process.
- ``ray://HOST:PORT``: the Ray Serve HTTP proxy of ``samos serve`` (many gateways share its replicas).
- ``triton://HOST:PORT``: a Triton Inference Server gRPC endpoint serving the repository written by
  ``samos export --triton`` (model name from ``?model=NAME``, default ``samos``).

Every backend offers what the inference worker and ``describe`` use: ``score(wave16 [B, T],
wave48 [B, 3T]) -> ScoreBatch(mos [B], std [B])``, ``info`` (ModelInfo), ``provider`` and ``path``.
Torch-free; Ray is never imported here (gateways speak HTTP), tritonclient only for ``triton://``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from samos.monitor.config import (  # noqa: F401 - re-exported: parsing lives with the config
    DEFAULT_TRITON_MODEL,
    KINDS,
    BackendSpec,
    MonitorConfig,
    parse_backend,
)
from samos.runtime.modelinfo import (
    INPUT_WAVE16,
    INPUT_WAVE48,
    OUTPUT_MOS,
    OUTPUT_STD,
    ModelInfo,
    parse_metadata,
)
from samos.runtime.scorer import ScoreBatch

DEFAULT_TIMEOUT_S = 30.0


class BackendError(ValueError):
    """The scoring backend cannot be reached or does not serve a samos model."""


def open_backend(cfg: MonitorConfig, timeout: float = DEFAULT_TIMEOUT_S) -> Any:
    """The scorer ``cfg.backend`` names, connected and checked (BackendError / ModelFileError otherwise)."""
    spec = parse_backend(cfg.backend)
    if spec.kind == "inprocess":
        from samos.runtime.scorer import Scorer

        return Scorer(
            cfg.model,
            providers=cfg.worker.providers,
            fallback=cfg.worker.fallback,
            threads=cfg.worker.threads,
            max_batch=cfg.worker.max_batch,
            max_seconds=cfg.window.window_seconds,  # the TensorRT profile must admit our windows
            int8=cfg.worker.int8,
        )
    if spec.kind == "ray":
        from samos.serve.client import ServeClient, ServeError

        try:
            return ServeClient(spec.host, spec.port, route=spec.model, timeout=timeout)
        except ServeError as e:
            raise BackendError(f"backend {cfg.backend}: {e} (is `samos serve` running there?)") from None
    return TritonScorer(spec.host, spec.port, spec.model, timeout=timeout)


class TritonScorer:
    """Scores on a Triton Inference Server over gRPC (``tritonclient[grpc]``), like ``Scorer.score``.

    The model's samos metadata travels in its config.pbtxt ``parameters`` (written by ``samos export
    --triton``); calibration is applied here, exactly as the in-process Scorer applies it.
    Untested against a live server (none runs in this project's CI); request building is tested.
    """

    def __init__(
        self, host: str, port: int, model: str = DEFAULT_TRITON_MODEL, timeout: float = DEFAULT_TIMEOUT_S
    ) -> None:
        try:
            import tritonclient.grpc as grpcclient
            from tritonclient.utils import InferenceServerException
        except ImportError:
            raise BackendError(
                "the triton:// backend needs tritonclient: pip install 'samos[serve]'"
            ) from None
        self._grpc = grpcclient
        self._error = InferenceServerException
        self.model = model
        self.timeout = timeout
        shown = f"[{host}]" if ":" in host else host
        self.path = f"triton://{shown}:{port}/{model}"
        self.provider = "triton"
        self.client = grpcclient.InferenceServerClient(url=f"{shown}:{port}")
        try:
            reply = self.client.get_model_config(model, as_json=True, client_timeout=timeout)
        except InferenceServerException as e:
            self.client.close()
            raise BackendError(f"{self.path}: {e.message()} (is Triton serving {model!r} there?)") from None
        self.info = info_from_triton_config(reply.get("config", reply), source=self.path)

    @property
    def needs(self) -> tuple[str, ...]:
        return self.info.inputs

    def build_request(
        self, wave16: np.ndarray | None, wave48: np.ndarray | None
    ) -> tuple[list[Any], list[Any]]:
        """(inputs, outputs) tritonclient objects for one batch, only the inputs the model takes."""
        feeds = {INPUT_WAVE16: wave16, INPUT_WAVE48: wave48}
        inputs = []
        for name in self.needs:
            x = feeds[name]
            if x is None:
                raise ValueError(f"this model needs {name} (it takes {', '.join(self.needs)})")
            a = np.ascontiguousarray(x, dtype=np.float32)
            if a.ndim != 2:
                raise ValueError(f"{name} must have shape [batch, samples], got {a.shape}")
            if not np.isfinite(a).all():
                raise ValueError(f"{name} holds NaN/Inf samples")
            inp = self._grpc.InferInput(name, list(a.shape), "FP32")
            inp.set_data_from_numpy(a)
            inputs.append(inp)
        outputs = [self._grpc.InferRequestedOutput(n) for n in (OUTPUT_MOS, OUTPUT_STD)]
        return inputs, outputs

    def score(self, wave16: np.ndarray | None, wave48: np.ndarray | None = None) -> ScoreBatch:
        """Calibrated MOS and std for a batch (``wave16`` ``[B, T]`` at 16 kHz, ``wave48`` ``[B, 3T]``)."""
        inputs, outputs = self.build_request(wave16, wave48)
        try:
            res = self.client.infer(self.model, inputs, outputs=outputs, client_timeout=self.timeout)
        except self._error as e:
            raise BackendError(f"{self.path}: {e.message()}") from None
        return self.calibrate(res.as_numpy(OUTPUT_MOS), res.as_numpy(OUTPUT_STD))

    def calibrate(self, mos: np.ndarray, std: np.ndarray) -> ScoreBatch:
        """Raw graph outputs (``[B]`` or ``[B, 1]``) -> calibrated ScoreBatch, as ``Scorer`` does."""
        raw_m = np.asarray(mos, np.float32).reshape(-1)
        raw_s = np.asarray(std, np.float32).reshape(-1)
        m, s = self.info.calibration.apply(raw_m, raw_s)
        return ScoreBatch(m, s, raw_m, raw_s)

    def close(self) -> None:
        self.client.close()


def info_from_triton_config(config: dict[str, Any], source: str) -> ModelInfo:
    """ModelInfo from a Triton model config (JSON form): samos.* ``parameters`` and the input names."""
    params = config.get("parameters") or {}
    meta = {k: str(v.get("string_value", "")) for k, v in params.items() if k.startswith("samos.")}
    names = {i.get("name") for i in config.get("input") or []}
    inputs = tuple(n for n in (INPUT_WAVE16, INPUT_WAVE48) if n in names)
    if not inputs:
        raise BackendError(
            f"{source}: the model takes none of {INPUT_WAVE16}, {INPUT_WAVE48}; not a samos model"
        )
    try:
        return parse_metadata(meta, inputs=inputs, source=source)
    except ValueError as e:
        raise BackendError(f"{e} (write the repository with `samos export --triton`)") from None
