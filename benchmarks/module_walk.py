"""How `videosr upscale` walks the package: the modules a reader passes following one run from the CLI to the
encoder, and every call back into a module already on the call stack (A -> B -> A: the reader leaves A, and B
sends them back to it). Issue 18 asks that the walk pass through each module once.

    .venv/bin/python benchmarks/module_walk.py [--model bicubic] [--json benchmarks/results/module_walk.json]

Traced with ``sys.setprofile`` (Python calls only, videosr's own modules) over ``videosr.cli.main(["upscale",
...])`` on a small generated clip (.mp4 out). Reported: the chain of modules on the stack when the output is planned (``io.plan_output``: container,
codec, pix_fmt, segmenting), the chain on the stack (in its thread) when the
first frame is handed to the io layer's writer (a ``write`` of ``videosr.io``; the encode stage runs in a thread
that starts at the pipeline's run_stages), the distinct call-backs (caller module -> a module lower on the
stack, with the function called) and how many calls each made, and the modules visited in order of first call.
Counts of calls depend on the clip's length; the distinct call-backs do not.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def trace(argv: list[str]) -> dict:
    from videosr.cli import main

    stacks: dict[int, list[tuple[str, object]]] = {}  # per thread: (module, frame) of each active videosr call
    backs: Counter = Counter()
    first: list[str] = []
    chain: list[str] | None = None
    plan: list[str] | None = None

    def prof(frame, event, arg):
        nonlocal chain, plan
        mod = frame.f_globals.get("__name__", "")
        if not mod.startswith("videosr") or frame.f_code.co_name == "<module>":  # imports are not the walk
            return
        stack = stacks.setdefault(threading.get_ident(), [])
        if event == "call":
            caller = stack[-1][0] if stack else None
            if mod not in first:
                first.append(mod)
            if caller is not None and mod != caller and any(m == mod for m, _ in stack):
                backs[(caller, mod, frame.f_code.co_name)] += 1
            stack.append((mod, frame))
            mods = [m for m, _ in stack]
            if chain is None and mod.startswith("videosr.io") and frame.f_code.co_name == "write":
                chain = [m for i, m in enumerate(mods) if i == 0 or mods[i - 1] != m]
            if plan is None and mod.startswith("videosr.io") and frame.f_code.co_name == "plan_output":
                plan = [m for i, m in enumerate(mods) if i == 0 or mods[i - 1] != m]
        elif event == "return" and stack and stack[-1][1] is frame:
            stack.pop()

    sys.setprofile(prof)
    threading.setprofile(prof)  # the pipeline's stages run in threads (decode, model, encode)
    try:
        code = main(argv)
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
    return {"exit": code, "chain": chain, "plan": plan, "backs": backs, "first": first}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="bicubic")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    import clips  # tests/clips.py: the suite's clip maker

    with tempfile.TemporaryDirectory() as d:
        src = clips.make_video(Path(d) / "in.mp4", frames=12, width=64, height=48, audio=True)
        out = str(Path(d) / "out.mp4")
        r = trace(["upscale", src, out, "--model", args.model, "--scale", "4", "--quiet"])
    chain = r["chain"] or []
    res = {
        "benchmark": "module_walk",
        "command": f"videosr upscale in.mp4 out.mp4 --model {args.model} --scale 4 (12 frames 64x48, with audio)",
        "exit": r["exit"],
        "chain_to_output_plan": r["plan"],
        "chain_to_encoder": chain,
        "modules_on_chain": len(chain),
        "repeated_on_chain": sorted({m for m in chain if chain.count(m) > 1}),
        "call_backs": [
            {"from": a, "into": b, "function": f, "calls": n} for (a, b, f), n in sorted(r["backs"].items())
        ],
        "distinct_call_backs": len(r["backs"]),
        "modules_in_order_of_first_call": r["first"],
    }
    text = json.dumps(res, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
