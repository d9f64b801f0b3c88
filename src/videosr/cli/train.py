"""`videosr train CONFIG.toml [--resume] [--set key=value ...]` and `--export CKPT OUT.safetensors`."""

from __future__ import annotations

from ..errors import UsageError


def register(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a model from a TOML config (see docs/training.md)",
        description="Train a registered model on the set built by scripts/build_dataset.py. Multi-process: "
        "torchrun --nproc_per_node N -m videosr train CONFIG.toml",
    )
    p.add_argument("config", nargs="?", help="TOML config (configs/fast-x4.toml, configs/quality-x4.toml)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in the config's out_dir; each config key changed since its checkpoint "
        "is reported and applied (lr, steps, data, validation, ...) or refused (model, scale, "
        "optimizer)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, dotted (e.g. --set optim.lr=3e-4 --set data.batch=8); repeatable",
    )
    p.add_argument(
        "--max-steps",
        type=int,
        default=None,
        metavar="N",
        help="stop after N steps of this call (checkpoint written; schedule unchanged)",
    )
    p.add_argument("--print-config", action="store_true", help="print the resolved config as TOML-like lines and exit")
    p.add_argument(
        "--export",
        nargs=2,
        metavar=("CHECKPOINT", "OUT"),
        help="write a checkpoint's EMA weights as safetensors and print the sha256 (no training)",
    )
    p.set_defaults(handler=run)


def _flat(d: dict, prefix: str = "") -> list[str]:
    lines = []
    for k, v in d.items():
        if isinstance(v, dict) and k != "kwargs":
            lines += _flat(v, f"{prefix}{k}.")
        else:
            lines.append(f"{prefix}{k} = {v!r}")
    return lines


def run(args) -> int:
    if args.export:
        from ..checkpoint import export_weights

        export_weights(args.export[0], args.export[1])
        return 0
    if not args.config:
        raise UsageError("videosr train needs a CONFIG.toml (or --export CHECKPOINT OUT)")
    from ..training.config import load_config

    cfg = load_config(args.config, overrides=list(args.overrides))
    if args.print_config:
        print("\n".join(_flat(cfg.to_dict())))
        return 0
    if args.max_steps is not None and args.max_steps < 1:
        raise UsageError(f"--max-steps must be >= 1, got {args.max_steps}")
    from ..training.loop import train

    train(cfg, resume=args.resume, max_steps=args.max_steps)
    return 0
