"""Exported networks (TorchScript, ONNX Runtime) as ``torch.nn.Module``s, so MONAI's inferers and evaluators run
them as they run the bundle's own network."""

from __future__ import annotations

import json
import os
from typing import Any

import torch

from medkit.errors import MedkitError

__all__ = ["TorchScriptNetwork", "OnnxNetwork"]


class _ExportedNetwork(torch.nn.Module):
    """An exported network: ``forward`` takes and returns tensors like the bundle's network; MONAI ``MetaTensor``
    inputs give ``MetaTensor`` outputs carrying the input's metadata, as the PyTorch network's do.

    Attributes:
        path: the exported file.
        metadata: the metadata stored in it (the bundle's ``metadata.json`` keys and ``medkit_source_sha256``).
    """

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = os.fspath(path)
        self.metadata: dict[str, Any] = {}

    def run(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from monai.data import MetaTensor
        from monai.utils import convert_to_dst_type

        plain = x.as_tensor() if isinstance(x, MetaTensor) else x
        out = self.run(plain.float())
        return convert_to_dst_type(out, x, dtype=out.dtype)[0] if isinstance(x, MetaTensor) else out


class TorchScriptNetwork(_ExportedNetwork):
    """A ``models/model.ts`` written by MONAI's ``ckpt_export`` (metadata and configs stored inside).

    Raises:
        MedkitError: not a TorchScript file.
    """

    def __init__(self, path: str, device: torch.device | str = "cpu") -> None:
        super().__init__(path)
        extra = {"metadata.json": ""}
        try:
            self.module = torch.jit.load(self.path, map_location=device, _extra_files=extra)
        except (RuntimeError, ValueError) as e:
            raise MedkitError(f"{self.path}: not a TorchScript file ({str(e).splitlines()[0]})") from None
        self.metadata = json.loads(extra["metadata.json"] or "{}")
        self.module.eval()

    def run(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)


class OnnxNetwork(_ExportedNetwork):
    """A ``models/model.onnx`` run by ONNX Runtime (CUDA provider when ``device`` is a GPU and the installed
    onnxruntime has it, else the CPU provider). Inputs go to the CPU and outputs come back to the input's device.

    Raises:
        MedkitError: onnxruntime missing, or the file is not an ONNX model it can load.
    """

    def __init__(self, path: str, device: torch.device | str = "cpu", threads: int | None = None) -> None:
        from medkit.engines import require

        super().__init__(path)
        ort = require("onnxruntime")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        providers = ["CPUExecutionProvider"]
        if torch.device(device).type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(self.path, options, providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types (InvalidProtobuf, Fail...)
            raise MedkitError(f"{self.path}: not an ONNX model ({str(e).splitlines()[0]})") from None
        self.input_name = self.session.get_inputs()[0].name
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)

    def run(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {self.input_name: x.detach().cpu().numpy()})[0]
        return torch.from_numpy(out).to(x.device)
