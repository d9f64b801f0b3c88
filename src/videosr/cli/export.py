"""`videosr export --model NAME --format onnx OUT.onnx`: :func:`export_model` loads the model by name (as `upscale`
does) and exports it with :func:`videosr.models.export.export_onnx`."""

from __future__ import annotations

import json
import os
from typing import Any

DEFAULT_FRAMES = (
    5  # = videosr.models.export.DEFAULT_FRAMES / DEFAULT_OPSET (not imported: the CLI starts without torch)
)
DEFAULT_OPSET = 17


def register(sub) -> None:
    p = sub.add_parser(
        "export",
        help="export a model to ONNX (for onnxruntime and other runtimes)",
        description="Export a registered model (its shipped weights, --weights, or random "
        "weights when it ships none) to OUTPUT. Input 'lr' (B, T, 3, H, W) float32 "
        "RGB in [0, 1], output 'hr' (B, T, 3, sH, sW); batch, frames, height and "
        "width are dynamic. Needs the videosr[onnx] extra.",
    )
    p.add_argument("output", help="the .onnx file to write")
    p.add_argument(
        "--model",
        required=True,
        help="registered model name (see `videosr models`), family name with --scale, or a training checkpoint path",
    )
    p.add_argument("--weights", default=None, help="third-party weights for --model (.pth or .safetensors)")
    p.add_argument("--scale", type=int, default=None, help="2, 3 or 4 (default: the model's)")
    p.add_argument("--format", default="onnx", choices=["onnx"], help="export format (default: onnx)")
    p.add_argument(
        "--frames",
        type=int,
        default=DEFAULT_FRAMES,
        help=f"frames T of the example input used for tracing (default {DEFAULT_FRAMES}); "
        "T stays dynamic unless --static-frames",
    )
    p.add_argument(
        "--static-frames",
        action="store_true",
        help="fix T to --frames in the graph (for runtimes that want static shapes)",
    )
    p.add_argument(
        "--opset",
        type=int,
        default=DEFAULT_OPSET,
        help=f"ONNX opset (default {DEFAULT_OPSET}; at least 16 for grid_sample)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.add_argument("--json", action="store_true", help="print a JSON summary (file, size, metadata)")
    p.set_defaults(handler=run)


def export_model(
    model: str,
    output: str,
    *,
    weights: str | None = None,
    scale: int | None = None,
    format: str = "onnx",
    frames: int | None = None,
    static_frames: bool = False,
    opset: int | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """`videosr export`: resolve ``model`` like `upscale` does (name, family + scale, checkpoint: see
    :func:`videosr.models.resolve.load_model`) and export it with :func:`videosr.models.export.export_onnx`;
    returns its summary."""
    from ..errors import OutputExistsError, UsageError

    if format != "onnx":
        raise UsageError(f"unknown export format {format!r} (use onnx)")
    if not str(output).endswith(".onnx"):
        raise UsageError(f"the output of --format onnx must end in .onnx, not {output!r}")
    if os.path.exists(output) and not overwrite:
        raise OutputExistsError(f"{output} exists (use --overwrite to replace it)")
    from ..models.export import export_onnx
    from ..models.resolve import load_model, require_trained

    net = load_model(model, scale, weights)
    require_trained(net)  # an exported graph with random weights would only ever write noise
    return export_onnx(
        net, output, frames=frames or DEFAULT_FRAMES, static_frames=static_frames, opset=opset or DEFAULT_OPSET
    )


def run(args) -> int:
    import sys

    summary = export_model(
        args.model,
        args.output,
        weights=args.weights,
        scale=args.scale,
        format=args.format,
        frames=args.frames,
        static_frames=args.static_frames,
        opset=args.opset,
        overwrite=args.overwrite,
    )
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"wrote {summary['output']}: {summary['model']} x{summary['scale']}, frames {summary['frames']}, "
            f"opset {summary['opset']}, {summary['bytes'] / 1e6:.2f} MB",
            file=sys.stderr,
        )
    return 0
