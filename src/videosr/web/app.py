"""The `videosr serve` page: Gradio Blocks over :mod:`videosr.web.jobs` and :mod:`videosr.web.media`.

Tabs: **Upscale** (upload or the bundled sample, probe, model choice with Vid4 PSNR / speed class / run-time
estimate, a before/after preview of any time with a 1:1 crop, whole-clip jobs with progress, cancel and
download), **Jobs** (the queue) and **Models** (the model cards and the PSNR and speed tables).

Every handler turns an error into a message in the page (``#videosr-msg``), never a traceback. Gradio's file
cache is the jobs folder itself (``GRADIO_TEMP_DIR``), so uploads, previews and outputs are all served from
there, and Gradio refuses any other path. API names (for ``gradio_client``): ``/upload``, ``/sample``,
``/preview``, ``/run``, ``/status``, ``/cancel``, ``/jobs``, ``/download``.
"""

from __future__ import annotations

import functools
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from ..errors import UsageError, VideosrError
from ..io.writer import check_encoder_options
from . import media
from .jobs import JobError, JobQueue, JobStore, safe_stem

SAMPLE = Path(__file__).resolve().parent.parent / "assets" / "sample.mp4"
CODEC_CHOICES = ("libx264", "libx265", "libsvtav1", "libvpx-vp9", "ffv1")
SCALE_CHOICES = (2, 3, 4)
KEEP_PREVIEWS = 40  # preview images kept under JOBS/previews (oldest removed)
DEFAULT_MAX_UPLOAD = "2gb"
CSS = "#videosr-msg {min-height: 1.5em}"


def _message(e: BaseException) -> str:
    if isinstance(e, (VideosrError, JobError)):
        return f"⚠️ {e}"
    first = str(e).splitlines()[0] if str(e) else ""
    return f"⚠️ internal error: {type(e).__name__}: {first}"


def _crf_hint(codec: str) -> str:
    from ..io import CODEC_DEFAULTS

    d = CODEC_DEFAULTS.get(codec, {}).get("crf")
    return f"default {d}" if d is not None else "lossless: no CRF"


class App:
    """The page's handlers (plain methods: testable without a browser) and :meth:`blocks`."""

    def __init__(self, jobs_dir: str | os.PathLike, *, workers: int = 1, queue: JobQueue | None = None) -> None:
        self.store = queue.store if queue is not None else JobStore(jobs_dir)
        self.queue = queue or JobQueue(self.store, workers=workers)
        self.root = self.store.root
        self.previews = os.path.join(self.root, "previews")
        os.makedirs(self.previews, exist_ok=True)

    # -- uploads ------------------------------------------------------------------------------------------
    def _take(self, src: str | None, name: str | None, *, remove_src: bool) -> tuple[dict | None, str]:
        """Move (Gradio's upload) or copy (the sample) ``src`` into uploads/ under a random name and probe it.
        Returns (session, message); a file that is not a usable video leaves nothing behind."""
        if not src or not os.path.isfile(src):
            return None, "⚠️ no file was uploaded"
        shown = safe_stem(name, "upload")
        uid, dst = self.store.new_upload_path(name)
        ok = False
        try:
            if os.path.getsize(src) == 0:
                return None, f"⚠️ {shown}: the file is empty (0 bytes): not a video"
            if remove_src:
                try:
                    os.replace(src, dst)  # the same file system: Gradio's cache is the jobs folder
                except OSError:
                    shutil.copyfile(src, dst)
            else:
                shutil.copyfile(src, dst)
            try:
                info = media.probe(dst)
            except VideosrError as e:
                msg = str(e).replace(f"{dst}: ", "").replace(dst, "the file")
                return None, f"⚠️ {shown}: not a usable video: {msg}"
            ok = True
        finally:
            for path, drop in ((src, remove_src), (dst, not ok)):
                if drop and os.path.isfile(path):
                    try:
                        os.unlink(path)
                    except OSError:
                        pass
        return {"upload": uid, "name": shown, "info": info}, f"✅ {shown}: {media.describe(info)}"

    def upload(self, file: str | None):
        """Handler of the file box: probe the upload (its name is only ever shown sanitized)."""
        name = os.path.basename(file) if file else None
        return self._take(file, name, remove_src=True)

    def sample(self):
        return self._take(str(SAMPLE), "sample.mp4", remove_src=False)

    # -- models -------------------------------------------------------------------------------------------
    def model_choices(self, scale: int, info: dict | None) -> tuple[list[tuple[str, str]], str]:
        rows = media.model_facts(int(scale), info)
        choices = [(media.model_label(r), r["model"]) for r in rows]
        auto = self._auto(int(scale))
        return [(f"auto — {auto}", "auto")] + choices, (choices[0][1] if choices else "bicubic")

    @staticmethod
    def _auto(scale: int) -> str:
        from ..models import auto

        try:
            return auto.choose(scale).model
        except Exception:  # noqa: BLE001 - only a label
            return "by input"

    # -- preview ------------------------------------------------------------------------------------------
    def preview(
        self, session: dict | None, scale: int, model: str, compare: str, seconds: float, cx: float = 50, cy: float = 50
    ) -> dict[str, Any]:
        if not session:
            raise JobError("upload a video (or take the sample) first")
        path = self.store.upload_path(session["upload"])
        model = self._resolve(model, path, scale)
        compare = self._resolve(compare or "bicubic", path, scale)
        out = media.preview(
            path,
            float(seconds or 0),
            session["info"].get("fps"),
            model,
            compare,
            int(scale),
            float(cx) / 100,
            float(cy) / 100,
        )
        from PIL import Image

        key = uuid.uuid4().hex[:16]
        paths = []
        for part, fmt in (("compare", "jpg"), ("model", "jpg"), ("crop", "png")):
            p = os.path.join(self.previews, f"{key}-{part}.{fmt}")
            img = Image.fromarray(out[part])
            img.save(p, quality=92) if fmt == "jpg" else img.save(p, compress_level=1)
            paths.append(p)
        self._prune_previews()
        t = out["timing"]
        note = (
            f"frame {out['index']} ({out['seconds']:.2f} s): **{compare}** (left of the slider) vs **{model}** "
            f"(right); 1:1 crop below, {compare} left; computed in {t['total_s']:.2f} s"
        )
        return {"slider": (paths[0], paths[1]), "crop": paths[2], "message": note, "timing": t}

    def _resolve(self, model: str, path: str, scale: int) -> str:
        from ..models import VARIANTS
        from ..pipeline import resolve_model

        if model in (None, "", "auto"):
            return resolve_model(path, None, int(scale))[0]
        if model not in VARIANTS:
            raise JobError(f"unknown model {str(model)[:40]!r}")
        return model

    def _prune_previews(self) -> None:
        files = sorted((e for e in os.scandir(self.previews) if e.is_file()), key=lambda e: e.stat().st_mtime)
        for e in files[: -KEEP_PREVIEWS * 3]:
            try:
                os.unlink(e.path)
            except OSError:
                pass

    # -- jobs ---------------------------------------------------------------------------------------------
    def run(
        self, session: dict | None, scale: int, model: str, codec: str, crf: float | None, preset: str | None
    ) -> dict:
        from ..models import VARIANTS

        if not session:
            raise JobError("upload a video (or take the sample) first")
        if codec not in CODEC_CHOICES:
            raise JobError(f"unknown codec {str(codec)[:40]!r}")
        if int(scale) not in SCALE_CHOICES:
            raise JobError(f"unsupported scale {scale}")
        if model not in ("auto", *VARIANTS):
            raise JobError(f"unknown model {str(model)[:40]!r}")
        crf = str(crf if crf is not None else "").strip()
        if crf:
            if not crf.isdigit() or len(crf) > 3:
                raise JobError(f"CRF: a whole number, not {crf[:20]!r}")
            crf = int(crf)
        else:
            crf = None
        preset = (preset or "").strip() or None
        if preset is not None and not (preset.isalnum() and len(preset) <= 12):
            raise JobError("preset: a word such as medium, veryfast or 8")
        try:  # the codec's own CRF range and presets, as `videosr upscale` checks them
            check_encoder_options(codec, crf, preset)
        except UsageError as e:
            raise JobError(str(e).replace("--crf", "CRF").replace("--preset", "preset")) from None
        self.store.upload_path(session["upload"])  # still there?
        # the job takes a link (or copy) of the upload, so the upload stays usable for more previews and jobs
        uid, dst = self.store.new_upload_path(
            session["name"] + os.path.splitext(self.store.upload_path(session["upload"]))[1]
        )
        src = self.store.upload_path(session["upload"])
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)
        opts = {"scale": int(scale), "model": model or "auto", "codec": codec, "crf": crf, "preset": preset}
        return self.queue.submit(uid, name=session["name"], options=opts, info=session["info"])

    def status(self, job_id: str | None) -> tuple[str, str | None]:
        """(Markdown, output path when done) of a job."""
        job_id = (job_id or "").strip()
        if not job_id:
            return "no job yet", None
        job = self.store.get(job_id)
        o = job["options"]
        head = f"job `{job_id}` ({job['name']}, {o['model']} x{o['scale']}, {o['codec']}): **{job['state']}**"
        if job["state"] == "running":
            p = self.queue.progress(job_id)
            if p:
                total = p.get("total")
                pct = f" ({100 * p['done'] / total:.0f}%)" if total else ""
                fps = f"{p['fps']:.1f} fps" if p.get("fps") else "starting"
                resumed = f", resumed at frame {p['resumed_from']}" if p.get("resumed_from") else ""
                return (
                    f"{head}: {p['done']}/{total or '?'} frames{pct}, {fps}, ETA "
                    f"{media.fmt_seconds(p.get('eta'))}{resumed}"
                ), None
            return head, None
        if job["state"] == "done":
            r = job.get("result") or {}
            return (
                f"{head}: {r.get('frames')} frames with {r.get('model')} in {r.get('seconds')} s "
                f"({r.get('fps')} fps), {(r.get('bytes') or 0) / 1e6:.1f} MB"
            ), self.store.output_path(job_id)
        if job["state"] == "failed":
            return f"{head}: {job.get('error')}", None
        return head, None

    def jobs_table(self) -> list[list[Any]]:
        rows = []
        for job in reversed(self.store.list()):
            p = self.queue.progress(job["id"]) if job["state"] == "running" else {}
            total = (job.get("info") or {}).get("frames")
            prog = f"{p['done']}/{total or '?'}" if p else ("" if job["state"] != "done" else f"{total}/{total}")
            r = job.get("result") or {}
            rows.append(
                [
                    job["id"],
                    job["state"],
                    job["name"],
                    f"{job['options']['model']} x{job['options']['scale']}",
                    prog,
                    time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(job["created"])),
                    job.get("error") or (f"{r.get('fps')} fps, {(r.get('bytes') or 0) / 1e6:.1f} MB" if r else ""),
                ]
            )
        return rows

    # -- the page -----------------------------------------------------------------------------------------
    def blocks(self):
        import gradio as gr

        def safe(n_out: int, msg_at: int):
            """Wrap a handler: any exception -> its message at output ``msg_at``, other outputs unchanged."""

            def deco(fn):
                @functools.wraps(fn)
                def wrapper(*args):
                    try:
                        return fn(*args)
                    except Exception as e:  # noqa: BLE001 - shown as one line in the page
                        out = [gr.update()] * n_out
                        out[msg_at] = _message(e)
                        return tuple(out) if n_out > 1 else out[0]

                return wrapper

            return deco

        with gr.Blocks(title="videosr") as demo:
            session = gr.State(None)
            delivered = gr.State("")
            gr.Markdown(
                "# videosr — video super-resolution\nUpload a video, preview any frame, run the whole "
                "clip as a job. Everything stays on this machine."
            )
            with gr.Tab("Upscale"):
                with gr.Row():
                    with gr.Column(scale=1):
                        upload = gr.File(label="Video to upscale", type="filepath", elem_id="videosr-upload")
                        sample_btn = gr.Button("Use the bundled sample clip", elem_id="videosr-sample", size="sm")
                        probe_md = gr.Markdown("No video yet.", elem_id="videosr-probe")
                    with gr.Column(scale=1):
                        scale = gr.Radio(list(SCALE_CHOICES), value=4, label="Scale", elem_id="videosr-scale")
                        choices0, default0 = self.model_choices(4, None)
                        # allow_custom_value: the lists follow the scale per session; handlers check the names
                        model = gr.Dropdown(
                            label="Model (Vid4 PSNR-Y; speed class and run time for this clip on an "
                            "idle machine of this CPU kind, from the committed benchmarks)",
                            choices=choices0,
                            value=default0,
                            allow_custom_value=True,
                            elem_id="videosr-model",
                        )
                        compare = gr.Dropdown(
                            label="Compare with",
                            choices=[c for c in choices0 if c[1] != "auto"],
                            value="bicubic",
                            allow_custom_value=True,
                            elem_id="videosr-compare",
                        )
                        at = gr.Slider(0, 1, value=0, step=0.04, label="Preview time (s)", elem_id="videosr-time")
                        with gr.Row():
                            cx = gr.Slider(0, 100, value=50, step=1, label="Crop centre x (%)")
                            cy = gr.Slider(0, 100, value=50, step=1, label="Crop centre y (%)")
                        preview_btn = gr.Button("Preview frame", variant="secondary", elem_id="videosr-preview")
                msg = gr.Markdown("", elem_id="videosr-msg")
                slider = gr.ImageSlider(
                    label="Before / after (drag the handle)", type="filepath", elem_id="videosr-slider", max_height=720
                )
                crop = gr.Image(
                    label="1:1 crop (compare | model)", type="filepath", elem_id="videosr-crop", show_label=True
                )
                with gr.Row():
                    codec = gr.Dropdown(list(CODEC_CHOICES), value="libx264", label="Codec")
                    crf = gr.Textbox(
                        value="",
                        label="CRF (empty: the codec's default)",
                        max_lines=1,
                        placeholder=_crf_hint("libx264"),
                        elem_id="videosr-crf",
                    )
                    preset = gr.Textbox(value="", label="Preset (empty: default)")
                with gr.Row():
                    run_btn = gr.Button("Upscale the whole clip", variant="primary", elem_id="videosr-run")
                    cancel_btn = gr.Button("Cancel job", variant="stop", elem_id="videosr-cancel")
                job_id = gr.Textbox(label="Job", elem_id="videosr-job", max_lines=1)
                status_md = gr.Markdown("", elem_id="videosr-status")
                result = gr.File(label="Finished file", elem_id="videosr-result", interactive=False)
            with gr.Tab("Jobs"):
                table = gr.Dataframe(
                    headers=["job", "state", "name", "model", "frames", "created", "result"],
                    value=self.jobs_table,
                    interactive=False,
                    elem_id="videosr-jobs",
                )
                with gr.Row():
                    pick = gr.Textbox(label="Job id", max_lines=1)
                    dl_btn = gr.Button("Download")
                    cancel2 = gr.Button("Cancel", variant="stop")
                jobs_msg = gr.Markdown("")
                dl_file = gr.File(label="Output", interactive=False)
            with gr.Tab("Models"):
                gr.Markdown(media.tables_markdown())
                cards = media.model_cards()
                if not cards:
                    gr.Markdown("The model cards (docs/models/*.md) are in the source checkout.")
                for name, text in cards:
                    with gr.Accordion(f"Model card: {name}", open=False):
                        gr.Markdown(text)

            # -- events
            def after_probe(sess, text, scale_v):
                if sess is None:
                    return None, "No video yet.", text, gr.update(), gr.update(), gr.update()
                choices, default = self.model_choices(scale_v, sess["info"])
                dur = sess["info"].get("duration") or 0
                fps = sess["info"].get("fps") or 25
                return (
                    sess,
                    media.describe(sess["info"]),
                    text,
                    gr.update(choices=choices, value=default),
                    gr.update(choices=[c for c in choices if c[1] != "auto"], value="bicubic"),
                    gr.update(
                        minimum=0,
                        maximum=max(0.0, round(dur - 1 / fps, 2)),
                        value=round(dur / 2, 2),
                        step=round(1 / fps, 4),
                    ),
                )

            probe_outs = [session, probe_md, msg, model, compare, at]

            @safe(6, 2)
            def on_upload(file, scale_v):
                sess, text = self.upload(file)
                return after_probe(sess, text, scale_v)

            @safe(6, 2)
            def on_sample(scale_v):
                sess, text = self.sample()
                return after_probe(sess, text, scale_v)

            upload.upload(on_upload, [upload, scale], probe_outs, api_name="upload")
            sample_btn.click(on_sample, [scale], probe_outs, api_name="sample")

            @safe(3, 0)
            def on_scale(sess, scale_v):
                choices, default = self.model_choices(scale_v, sess["info"] if sess else None)
                return (
                    "",
                    gr.update(choices=choices, value=default),
                    gr.update(choices=[c for c in choices if c[1] != "auto"], value="bicubic"),
                )

            scale.change(on_scale, [session, scale], [msg, model, compare], api_name=False)

            @safe(3, 2)
            def on_preview(sess, scale_v, model_v, compare_v, t, x, y):
                out = self.preview(sess, scale_v, model_v, compare_v, t, x, y)
                return out["slider"], out["crop"], out["message"]

            preview_btn.click(
                on_preview, [session, scale, model, compare, at, cx, cy], [slider, crop, msg], api_name="preview"
            )

            @safe(3, 1)
            def on_run(sess, scale_v, model_v, codec_v, crf_v, preset_v):
                job = self.run(sess, scale_v, model_v, codec_v, crf_v, preset_v)
                return job["id"], f"job `{job['id']}` queued", None

            run_btn.click(
                on_run, [session, scale, model, codec, crf, preset], [job_id, status_md, result], api_name="run"
            )

            @safe(3, 0)
            def on_status(jid, done_id):
                text, path = self.status(jid)
                if path and done_id != jid:
                    return text, path, jid
                return text, gr.update(), done_id

            status_outs = [status_md, result, delivered]
            job_id.change(lambda: ("", None, ""), None, status_outs, api_name=False)
            timer = gr.Timer(1.0)
            timer.tick(on_status, [job_id, delivered], status_outs, api_name=False, show_progress="hidden")

            def api_status(job: str) -> str:
                try:
                    return self.status(job)[0]
                except Exception as e:  # noqa: BLE001
                    return _message(e)

            gr.api(api_status, api_name="status")

            @safe(1, 0)
            def on_cancel(jid):
                return self.queue.cancel((jid or "").strip())

            cancel_btn.click(on_cancel, [job_id], [status_md], api_name="cancel")

            codec.change(lambda c: gr.update(placeholder=_crf_hint(c)), [codec], [crf], api_name=False)

            slow = gr.Timer(2.0)
            slow.tick(self.jobs_table, None, [table], api_name=False, show_progress="hidden")

            def api_jobs() -> list:
                return self.jobs_table()

            gr.api(api_jobs, api_name="jobs")

            def on_download(jid):
                jid = (jid or "").strip()
                try:
                    return f"job `{jid}`: ready", self.store.output_path(jid)
                except Exception as e:  # noqa: BLE001 - a message, and no file
                    return _message(e), None

            dl_btn.click(on_download, [pick], [jobs_msg, dl_file], api_name="download")
            cancel2.click(on_cancel, [pick], [jobs_msg], api_name=False)
        return demo


def launch(
    jobs_dir: str,
    *,
    host: str = "127.0.0.1",
    port: int = 7860,
    auth=None,
    max_upload: str = DEFAULT_MAX_UPLOAD,
    workers: int = 1,
    block: bool = True,
    quiet: bool = False,
):
    """Start the server (the Gradio import happens here). Returns (App, Blocks) when ``block`` is False."""
    root = os.path.realpath(jobs_dir)
    os.makedirs(root, exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = root  # Gradio's cache is the jobs folder: it serves nothing else
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    app = App(root, workers=workers)
    again = app.queue.start()
    if again and not quiet:
        print(f"videosr serve: resuming {len(again)} job(s) left by the last run: {', '.join(again)}", flush=True)
    demo = app.blocks()
    demo.queue(default_concurrency_limit=1)
    demo.launch(
        server_name=host,
        server_port=port,
        auth=auth,
        max_file_size=max_upload,
        prevent_thread_lock=not block,
        quiet=quiet,
        show_error=False,
        allowed_paths=[],
        footer_links=["api"],
        css=CSS,
        ssr_mode=False,
        inbrowser=False,
    )
    if block:  # the server was stopped (Ctrl-C, SIGTERM): the running job stops at its next frame, stays queued
        app.queue.stop(10)
    return app, demo
