"""`videosr export --model NAME --format onnx OUT.onnx`: the CLI face of :func:`videosr.pipeline.export_model`."""

from __future__ import annotations

import json

DEFAULT_FRAMES = 5  # = videosr.export.DEFAULT_FRAMES / DEFAULT_OPSET (not imported: the CLI starts without torch)
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


def run(args) -> int:
    import sys

    from ..pipeline import export_model

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
