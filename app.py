"""SAM 2++ Space: track anything at any granularity in a video (Gradio Blocks).

    python app.py            # http://127.0.0.1:7860

UI wiring only; the logic is in the package sam2_plus/app/. The GPU work is two pure functions under
`spaces.GPU` (a no-op off ZeroGPU): `gpu_preview` (one prompt on one frame) and `gpu_track` (a tracking
job, streamed). The models they use are built once per process (sam2_plus/app/hardware.py: on ZeroGPU
at import, before the server starts). The scripted API is one endpoint, `/track` (video, prompts JSON, options JSON) ->
(overlay MP4, results ZIP, results JSON); every other event is private to the UI.
"""

from __future__ import annotations

import spaces  # noqa: I001  (first: on ZeroGPU it must come before anything initialises CUDA)

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import gradio as gr
from gradio.exceptions import InvalidPathError
from starlette.middleware import Middleware

from sam2_plus.app.api import api_job
from sam2_plus.app.api_examples import EXAMPLE_PROMPTS, example_clip, uploaded_example, with_example
from sam2_plus.app.editing import BOX, BRUSH, MASK_FILE, POSITIVE, TOOLS
from sam2_plus.app.errors import AppInputError, failure_message, refused_upload, user_message
from sam2_plus.app.estimate import SPEEDS
from sam2_plus.app.gpu_slots import GpuSlots, WaitReport, describe_wait
from sam2_plus.app.gpu_time import job_gpu_seconds
from sam2_plus.app.hardware import prepare_models, use_worker_threads
from sam2_plus.app.jobs import JobRunner, JobUpdate, describe_progress, progress_html, run_job
from sam2_plus.app.masks import mask_from_editor, mask_from_png
from sam2_plus.app.options import TrackOptions
from sam2_plus.app.feature_store import CachedFeatures, FeatureStore, features_key
from sam2_plus.app.preview import PREVIEW_GPU_SECONDS, PreviewOutput, preview_with_features
from sam2_plus.app.session import ENDED, AppSession
from sam2_plus.app.settings import DEFAULT_MODEL, MODELS, AppLimits, describe_weights, offered_models
from sam2_plus.app.workdirs import HeartbeatWatch, SessionFiles, Sweeper
from sam2_plus.effects.settings import BACKGROUND_EFFECTS, OBJECT_EFFECTS, EffectSettings
from sam2_plus.errors import INPUT_ERRORS
from sam2_plus.prompts import TASKS
from sam2_plus.service import TrackRequest

HERE = Path(__file__).resolve().parent
EXAMPLES_DIR = HERE / "examples"
EXAMPLE_CLIPS = tuple(sorted(EXAMPLES_DIR.glob("*.mp4")))  # the only files of examples/ that the app serves
LIMITS = AppLimits.from_env()
DELETE_CACHE = (1800, 3600)  # every 30 min, Gradio deletes the files it served that are older than 1 h
UI_ONLY = {"api_visibility": "private"}
PLAY_INTERVAL = 0.2  # seconds a frame shows when the results play in the frame view
# Gradio has no setting for an image that follows its column's width at its own aspect ratio (the frame view
# is served at least as large as the column, `AppSession.view_scale`, and shrunk to fit) nor for the page's
# margins and the order of the columns on a phone (the frame right after Track, each object's settings after it).
CSS = """
#frame-view .image-container, #frame-view .image-frame { height: auto; }
#frame-view img { height: auto; max-height: calc(100vh - 330px); min-height: 160px; }
#frame-view .wrap.default { background: rgba(255, 255, 255, 0.4); }
@media (max-width: 480px) { #setup-column { display: contents; } #frame-column { order: 1; } #settings { order: 2; } }
"""
# outside Gradio's css, which only reaches what is inside the page's main column
HEAD = ("<style>@media (max-width: 480px) { .main.app { padding-left: 4px !important; "
        "padding-right: 4px !important; } }</style>")

# The video input drops a file that is not a video in the browser (a passing toast at most): the same rule
# (Gradio's accept list, video/*) sends the file's name and type to the server, which says why in the status line.
# Drops count only where the input takes them (its upload area).
UPLOAD_CHECK_JS = """
if (!window.sam2plusUploadCheck) {
  window.sam2plusUploadCheck = true;
  const refuse = (files) => {
    const other = Array.from(files || []).find((f) => !(f.type || '').startsWith('video/'));
    if (other) trigger('upload', {name: other.name, type: other.type || ''});
  };
  const uploadArea = (node) => node instanceof Element && node.closest('#video-input') !== null
    && document.querySelector('#video-input input[type=file]') !== null;
  document.addEventListener('change', (e) => {
    const input = e.target;
    if (input instanceof HTMLInputElement && input.type === 'file' && uploadArea(input)) refuse(input.files);
  }, true);
  document.addEventListener('drop', (e) => {
    if (uploadArea(e.target) && e.dataTransfer) refuse(e.dataTransfer.files);
  }, true);
}
"""

API_DESCRIPTION = (
    "Track objects through a video. video: a video file (MP4, MOV, WebM, ...). prompts: the prompts JSON of "
    "sam2_plus/prompts.py, e.g. {\"objects\": [{\"id\": 1, \"task\": \"box\", \"prompts\": [{\"frame\": 0, "
    "\"box\": [10, 20, 200, 180]}]}]}. options: JSON, e.g. {\"model\": \"sam2++\", \"motion_aware\": false}; "
    f"model is one of {', '.join(MODELS)}; an optional \"effects\" object (README: Effects and cut-outs) adds the "
    "effect MP4 and, when the background is erased, cut-outs with alpha to the results ZIP. Returns the overlay "
    "MP4, the results ZIP and the results JSON."
)


# --------------------------------------------------------------------------- GPU functions (pure)


@spaces.GPU(duration=job_gpu_seconds)
def gpu_track(request: TrackRequest, job_dir: str, stop_file: Optional[str] = None,
              export_formats: tuple[str, ...] = (), effects: Optional[EffectSettings] = None) -> Iterator[JobUpdate]:
    use_worker_threads()
    yield from run_job(request, job_dir, stop_file, export_formats, effects)


@spaces.GPU(duration=PREVIEW_GPU_SECONDS)
def gpu_preview(request: TrackRequest, cached: Optional[CachedFeatures] = None) -> PreviewOutput:
    use_worker_threads()
    return preview_with_features(request, cached)


# --------------------------------------------------------------------------- helpers


@contextmanager
def user_errors() -> Iterator[None]:
    """Input problems become a gr.Error with the precise message (no traceback)."""
    try:
        yield
    except (AppInputError, *INPUT_ERRORS) as error:
        raise gr.Error(user_message(error), print_exception=False) from None


@contextmanager
def job_errors() -> Iterator[None]:
    """A tracking job's errors: input problems as user_errors; anything else (a failure before tracking
    started, e.g. out of memory while adding the prompts) as a gr.Error saying what happened."""
    try:
        with user_errors():
            yield
    except gr.Error:
        raise
    except Exception as error:
        logging.getLogger(__name__).exception("tracking job failed")
        raise gr.Error(failure_message(error), print_exception=False) from None


NO_VIDEO = "Upload a video or pick an example first."
VIEW_LABEL = "Click on the frame to prompt the selected object"
TRACKING_NOTE = ("Tracking runs from all the prompts: the frame view shows its live frames; prompts can be edited "
                 "when it ends (objects can be removed now).")


def session_problem(session: Optional[AppSession]) -> Optional[str]:
    """Why an action cannot use `session`: none yet, or its files are gone (a reconnect after the grace)."""
    if session is None:
        return NO_VIDEO
    return ENDED if session.closed else None


def require(session: Optional[AppSession]) -> AppSession:
    problem = session_problem(session)
    if problem is not None:
        raise gr.Error(problem, print_exception=False)
    return session


def close_session(session: Optional[AppSession]) -> None:
    if session is not None:
        session.close()


# --------------------------------------------------------------------------- the API


def wait_reporter(progress: gr.Progress) -> WaitReport:
    """A job's "waiting for the GPU" line, on its progress bar."""
    return lambda ahead: progress(None, desc=describe_wait(ahead))


def api_function(limits: AppLimits, session_files: SessionFiles, slots: GpuSlots,
                 keep: Callable[[Path], str]) -> Callable[..., tuple[str, str, str]]:
    def track(video: Optional[str], prompts: str, options: str, request: gr.Request,
              progress=gr.Progress()) -> tuple[str, str, str]:
        """Track the objects of `prompts` through `video` with `options`; returns the overlay MP4, the results
        ZIP and the results JSON."""
        result = None
        run = slots.runner(gpu_track, wait_reporter(progress))  # checked first, then waits for the GPU
        with job_errors():
            for update in api_job(video, prompts, options, limits, session_files, request.session_hash, run,
                                  keep=keep):
                if update.progress is not None:
                    progress(update.progress.fraction, desc=describe_progress(update.progress))
                result = update.result or result
        files = result.files
        if files.overlay is None:
            raise gr.Error(result.describe() if result.failed else "No frame was tracked.", print_exception=False)
        if result.failed:  # the frames tracked before the failure are returned, with the reason
            gr.Warning(result.describe())
        return str(files.overlay), str(files.export), str(files.results_json)

    return track


# --------------------------------------------------------------------------- the UI

NOT_UPLOADED = ("A file input must be uploaded with the call (in gradio_client, pass handle_file(path or URL)); "
                "a path on the server is not accepted.")


class SpaceBlocks(gr.Blocks):
    """Gradio's Blocks with the app's session files: their sweeper (`Sweeper`) runs while the server does; and a
    file input Gradio refuses while it prepares the inputs (a path on the server that no client uploaded) is
    answered with a sentence. Gradio would send that refusal as `{"error": null}`, its text shown only with
    launch(show_error=True), which would show every unexpected error's raw text too."""

    session_files: SessionFiles
    leftover_seconds: float
    sweeper: Optional[Sweeper] = None

    def launch(self, *args: Any, **kwargs: Any) -> Any:
        self.sweeper = Sweeper(self.session_files, self.leftover_seconds).start()
        try:
            return super().launch(*args, **kwargs)
        except BaseException:
            self.sweeper.stop()
            raise

    def close(self, verbose: bool = True) -> None:
        super().close(verbose)
        if self.sweeper is not None:
            self.sweeper.stop()

    async def preprocess_data(self, block_fn: Any, inputs: list[Any], *args: Any, **kwargs: Any) -> Any:
        inputs = [uploaded_example(value, EXAMPLE_CLIPS) for value in inputs]  # the API page's example URL
        try:
            return await super().preprocess_data(block_fn, inputs, *args, **kwargs)
        except InvalidPathError:
            raise gr.Error(NOT_UPLOADED, print_exception=False) from None


def build_demo(limits: AppLimits = LIMITS) -> SpaceBlocks:
    session_files = SessionFiles(limits.reconnect_seconds)
    slots = GpuSlots(limits.gpu_concurrency, limits.queue_size)  # every GPU event's, around its GPU part only
    with SpaceBlocks(title="SAM 2++: track anything at any granularity", delete_cache=DELETE_CACHE,
                   analytics_enabled=False) as demo:
        _build_api(demo, limits, session_files, slots)  # first, so that it owns the name "track"
        ui = _build_ui(limits)
        _wire(ui, limits, session_files, slots)

        def client_left(request: gr.Request) -> None:
            """A browser tab or API client went away: its files and job go unless it is back within the grace."""
            session_files.disconnected(request.session_hash)

        demo.unload(client_left)
    demo.queue(max_size=limits.queue_size, default_concurrency_limit=8)
    demo.session_files = session_files  # launch() watches its clients' heartbeats and sweeps their leftovers
    demo.leftover_seconds = limits.leftover_seconds
    return demo


class UI:
    """The components (a namespace, filled by _build_ui)."""

    state: gr.State
    video: gr.Video
    model: gr.Dropdown
    motion: gr.Checkbox
    objects: gr.Radio
    objects_html: gr.HTML
    add: gr.Button
    remove: gr.Button
    name: gr.Textbox
    task: gr.Radio
    effect: gr.Dropdown
    background: gr.Dropdown
    tool: gr.Radio
    undo: gr.Button
    clear: gr.Button
    frame: gr.Slider
    show_results: gr.Checkbox
    play: gr.Button
    player: gr.Timer
    view: gr.Image
    editor: gr.ImageEditor
    apply_mask: gr.Button
    mask_file: gr.File
    status: gr.Markdown
    track: gr.Button
    stop: gr.Button
    progress: gr.HTML
    review: gr.Column
    timeline: gr.Image
    previous_flag: gr.Button
    next_flag: gr.Button
    flag_note: gr.Markdown
    result_video: gr.Video
    downloads: gr.File
    summary: gr.Textbox
    estimate: gr.Markdown
    upload_check: gr.HTML

    @property
    def panel(self) -> list[gr.components.Component]:
        """What an edit of the objects or prompts updates."""
        return [self.view, self.objects, self.objects_html, self.name, self.task, self.effect, self.status]

    @property
    def edit_inputs(self) -> list[gr.components.Component]:
        """What every edit handler (`_edit`) takes first: the session, the frame, whether results are shown."""
        return [self.state, self.frame, self.show_results]


def _build_ui(limits: AppLimits) -> UI:
    """Two columns around the frame: on the left what a run needs (the video, the objects, Track) and then
    each object's settings; on the right the prompt tools, the frame view at the column's full width and the
    frame slider, then the results. On a narrow screen they stack."""
    ui = UI()
    ui.state = gr.State(None, delete_callback=close_session)
    gr.Markdown(
        "## SAM 2++: track anything at any granularity\n"
        "Upload or pick a video · add objects, prompt them on any frame (clicks, a box or a mask) · **Track** · "
        "correct on any frame and track again. Scripts: *Use via API* (page bottom). " + describe_weights(),
        elem_id="intro")
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300, elem_id="setup-column"):
            _build_setup_column(ui, limits)
        with gr.Column(scale=2, min_width=300, elem_id="frame-column"):
            _build_frame_column(ui)
    _build_upload_check(ui)
    return ui


def _build_setup_column(ui: UI, limits: AppLimits) -> None:
    """The video, the objects, undo and Track (on one screen with the frame), then each object's settings."""
    with gr.Column(elem_id="controls"):
        ui.video = gr.Video(label="Video", sources=["upload"], height=120, elem_id="video-input")
        ui.objects = gr.Radio([], label="Objects (select one to prompt it)", elem_id="objects")
        with gr.Row():
            ui.add = gr.Button("Add object", size="sm")
            ui.remove = gr.Button("Remove selected", size="sm", variant="stop")
        with gr.Row():
            ui.undo = gr.Button("Undo last prompt", size="sm")
            ui.clear = gr.Button("Clear this frame", size="sm")
        with gr.Row():
            ui.track = gr.Button("Track", variant="primary", interactive=False, elem_id="track")
            ui.stop = gr.Button("Stop", variant="stop", interactive=False)
        _build_estimate(ui)
        ui.progress = gr.HTML(elem_id="track-progress")
        ui.status = gr.Markdown(elem_id="status")
        gr.Examples([[str(p)] for p in sorted(EXAMPLES_DIR.glob("*.mp4"))], inputs=[ui.video],
                    label="Examples (made by examples/make_examples.py)", api_visibility="private")
    with gr.Column(elem_id="settings"):
        _build_object_settings(ui, limits)


def _build_object_settings(ui: UI, limits: AppLimits) -> None:
    """The objects' legend, the selected object's name, granularity and effect, the model and the limits."""
    ui.objects_html = gr.HTML()
    ui.name = gr.Textbox(label="Name of the selected object (Enter to rename)", max_lines=1)
    ui.task = gr.Radio(list(TASKS), value="mask", label="Granularity of the selected object",
                       info="what is tracked and drawn: mask, box or point")
    with gr.Row():
        ui.effect = gr.Dropdown(list(OBJECT_EFFECTS), value="none", label="Effect of the selected object",
                                elem_id="object-effect")
        ui.background = gr.Dropdown(list(BACKGROUND_EFFECTS), value="none", label="Background effect",
                                    info="erase: cut-outs with transparency", elem_id="background-effect")
    with gr.Row():
        ui.model = gr.Dropdown(list(offered_models()), value=DEFAULT_MODEL, label="Model",
                               info="SAM 2.1 models take the mask granularity only")
        ui.motion = gr.Checkbox(label="motion-aware (SAMURAI)", value=False)
    gr.Markdown(f"<small>{limits.describe()}</small>")


def _build_estimate(ui: UI) -> None:
    """Track's time on this machine, before it is pressed (`estimate.describe_estimate`)."""
    ui.estimate = gr.Markdown(elem_id="estimate")


def _build_upload_check(ui: UI) -> None:
    """Nothing to see: it tells the server of a file that the video input refused in the browser (UPLOAD_CHECK_JS)."""
    ui.upload_check = gr.HTML(visible="hidden", js_on_load=UPLOAD_CHECK_JS, elem_id="upload-check")


def _build_frame_column(ui: UI) -> None:
    """The prompt tools, the frame view (the brush paints in its place), the frame slider and Play, then the
    results."""
    ui.tool = gr.Radio(list(TOOLS), value=POSITIVE, label="Prompt tool", elem_id="tool")
    ui.view = gr.Image(label=VIEW_LABEL, interactive=False, type="numpy", elem_id="frame-view", buttons=[])
    ui.editor = gr.ImageEditor(label="Paint the selected object's mask, then press Use the painted mask",
                               type="numpy", visible=False, sources=(), transforms=(), layers=False,
                               elem_id="mask-editor", brush=gr.Brush(colors=["#ff3030"], default_color="#ff3030",
                                                                     color_mode="fixed"))
    ui.apply_mask = gr.Button("Use the painted mask", visible=False, variant="primary")
    ui.mask_file = gr.File(label="Mask PNG: the video's size, nonzero (or opaque) pixels are the object",
                           file_types=["image"], visible=False)
    ui.frame = gr.Slider(0, 1, value=0, step=1, label="Frame", interactive=False, elem_id="frame-slider")
    with gr.Row():
        ui.show_results = gr.Checkbox(label="Show the last tracking result (scrub the frames, or Play)",
                                      value=True, scale=3)
        ui.play = gr.Button("▶ Play", size="sm", scale=1, elem_id="play")
    ui.player = gr.Timer(PLAY_INTERVAL, active=False)
    with gr.Column(visible=False, elem_id="review") as ui.review:
        gr.Markdown("**Review**: each object's presence over the frames and the frames to check (flags). Click the "
                    "timeline to go to a frame.")
        ui.timeline = gr.Image(show_label=False, interactive=False, type="numpy", elem_id="timeline", buttons=[],
                               container=False)
        with gr.Row():
            ui.previous_flag = gr.Button("◀ Previous flagged frame", size="sm")
            ui.next_flag = gr.Button("Next flagged frame ▶", size="sm")
        ui.flag_note = gr.Markdown(elem_id="flag-note")
    ui.result_video = gr.Video(label="Tracking result", interactive=False, height=400, elem_id="result-video")
    ui.downloads = gr.File(label="Downloads: results ZIP (masks, DAVIS PNGs, COCO RLE JSON, boxes CSV, "
                           "LaSOT, points NPZ), results JSON, overlay MP4; with effects the effect MP4 and "
                           "the cut-outs (WebM, MOV; PNGs in the ZIP)", file_count="multiple",
                           interactive=False, elem_id="downloads")
    ui.summary = gr.Textbox(label="Summary", lines=4, interactive=False)


def _build_api(demo: gr.Blocks, limits: AppLimits, session_files: SessionFiles, slots: GpuSlots) -> None:
    """The scripted endpoint: hidden components, so that the page shows only the UI. Outside Gradio's
    concurrency limits, so that its checks answer at once; its GPU part waits for one of `slots`. Its example
    clip is fetched from this app once it runs (`demo.local_url`)."""
    with gr.Column(visible=False):
        video = with_example(gr.File(label="video"), lambda: example_clip(EXAMPLES_DIR, demo.local_url))
        prompts = with_example(gr.Textbox(label="prompts"), EXAMPLE_PROMPTS)
        # empty options mean the defaults; a JSON default would show on the API page unescaped (not Python)
        options = with_example(gr.Textbox(label="options", value=""), TrackOptions().to_json())
        overlay = gr.File(label="overlay_mp4")
        results_zip = gr.File(label="results_zip")
        results_json = gr.File(label="results_json")
        run = gr.Button("track")
    track = api_function(limits, session_files, slots, overlay.move_resource_to_block_cache)  # Gradio's copies
    run.click(track, [video, prompts, options], [overlay, results_zip, results_json], api_name="track",
              api_description=API_DESCRIPTION, **_checks_first())


# --------------------------------------------------------------------------- handlers


def _panel(ui: UI, session: AppSession, frame: int, show: bool, note: str = "") -> dict:
    obj = session.objects.get(session.selected) if session.selected is not None else None
    return {
        ui.view: gr.skip() if session.tracking else session.render_view(frame, show),  # live frames own it
        ui.objects: gr.Radio(choices=session.object_choices(), value=session.selected),
        ui.objects_html: session.objects_html(),
        ui.name: obj.name if obj else "",
        ui.task: obj.task if obj else "mask",
        ui.effect: session.effects.get(obj.obj_id, "none") if obj else "none",
        ui.status: note,
    }


def _edit(ui: UI, action: Callable[..., str]) -> Callable[..., dict]:
    """A handler that applies `action` to the session and redraws the panel; a refused edit is a warning."""

    def handler(session: Optional[AppSession], frame: int, show: bool, *args: Any) -> dict:
        problem = session_problem(session)
        if problem is not None:  # a warning, not an error on every component of the panel
            gr.Warning(problem)
            return {ui.status: f"⚠️ {problem}"}
        try:
            note = action(session, int(frame), *args) or ""
        except AppInputError as error:
            gr.Warning(str(error))
            note = f"⚠️ {error}"
        return _panel(ui, session, int(frame), show, note)

    return handler


def _wire(ui: UI, limits: AppLimits, session_files: SessionFiles, slots: GpuSlots) -> None:
    """Each panel's events, one function each."""
    preview_on = _previews(ui, limits, slots)
    loaded = _wire_video(ui, limits, session_files)
    _wire_frame_browser(ui, preview_on)
    _wire_player(ui)
    _wire_objects(ui, preview_on)
    _wire_prompts(ui, preview_on)
    _wire_tools(ui)
    tracked = _wire_tracking(ui, limits, slots)
    _wire_review(ui)
    _wire_estimate(ui, [loaded, tracked])
    _wire_upload_check(ui)
    _wire_status(ui)


def _checks_first() -> dict:
    """Events that use the GPU run their checks at once (no Gradio concurrency limit: each check's cost is
    bounded) and hold one of the app's `GpuSlots` around their GPU part only; the slots bound the waiting."""
    return {"concurrency_limit": None}


def _previews(ui: UI, limits: AppLimits, slots: GpuSlots) -> Callable[[Callable], None]:
    """`preview_on(trigger)`: after `trigger`, show the selected object's result on this frame when it has a
    prompt here without a fresh preview (computed by `gpu_preview`, from the frame's image features when an
    earlier preview left them in the app's `FeatureStore`)."""
    features = FeatureStore(limits.feature_cache_bytes)

    def preview(session: Optional[AppSession], frame: int, model: str, motion: bool, show: bool,
                progress=gr.Progress()):
        if session_problem(session) is not None or session.tracking:  # the event before it said so
            return gr.skip(), gr.skip(), gr.skip()
        options = TrackOptions(model, bool(motion))
        target = session.preview_target(int(frame), options)
        if target is None:
            return gr.skip(), gr.skip(), gr.skip()
        obj_id, frame = target
        try:
            request = session.preview_request(obj_id, frame, options)
            key = features_key(request, frame)
            with slots.held(wait_reporter(progress)):
                output = gpu_preview(request, features.get(key))
        except (AppInputError, *INPUT_ERRORS) as error:
            return gr.skip(), f"⚠️ Preview: {user_message(error)}", gr.skip()
        features.put(output.features)
        if output.encoded:  # a whole preview: Track's estimate (sam2_plus/app/estimate.py)
            SPEEDS.preview(request.model, output.model_seconds)
        session.store_preview(obj_id, frame, options, output.record)
        note = f"Preview of {session.objects[obj_id].name} on frame {frame} ({model})."
        return session.render_view(frame, show), note, session.estimate(model)

    def idle(session: Optional[AppSession]) -> None:
        """Ends the chain during a job: a preview would wait in the GPU queue until the job ends."""
        if session is not None and session.tracking:
            raise gr.Error("tracking is running", visible=False, print_exception=False)

    def preview_on(trigger: Callable) -> None:
        trigger(idle, [ui.state], None, queue=False, **UI_ONLY).success(
            preview, [ui.state, ui.frame, ui.model, ui.motion, ui.show_results], [ui.view, ui.status, ui.estimate],
            show_progress="full", show_progress_on=[ui.view], **_checks_first(), **UI_ONLY)  # busy on the frame

    return preview_on


def _wire_video(ui: UI, limits: AppLimits, session_files: SessionFiles) -> Any:
    """A new video (an upload or an example) replaces the session; returns that event."""

    def load_video(old: Optional[AppSession], video: Optional[str], request: gr.Request):
        if old is not None:
            session_files.discard(old.close)
        close_session(old)
        session, note = None, ""
        if video:
            try:
                session = AppSession.open(video, limits)
                session_files.add(request.session_hash, session.close, needs_heartbeat=True)
                if session.closed:  # its client was already gone for good: nobody to show it to
                    session, note = None, ENDED
            except (AppInputError, *INPUT_ERRORS) as error:
                note = f"⚠️ {user_message(error)}"
                gr.Warning(note)
        cleared = {ui.result_video: None, ui.downloads: None, ui.summary: "", ui.progress: "",
                   ui.review: gr.Column(visible=False), ui.timeline: None, ui.flag_note: ""}
        if session is None:
            return {ui.state: None, ui.view: None, ui.frame: gr.Slider(0, 1, value=0, interactive=False),
                    ui.track: gr.Button(interactive=False), ui.objects: gr.Radio(choices=[], value=None),
                    ui.objects_html: "", ui.name: "", ui.task: "mask", ui.effect: "none", ui.status: note,
                    **cleared}
        info = session.info
        kept = "" if old is None else session.keep_objects_of(old)
        note = (f"{info.num_frames} frames, {info.width}x{info.height}, {info.fps:.2f} fps, {info.duration:.1f} s. "
                + (kept or "Click on the object to track."))
        return {ui.state: session, ui.frame: gr.Slider(0, info.num_frames - 1, value=0, step=1, interactive=True),
                ui.track: gr.Button(interactive=True), **_panel(ui, session, 0, True, note), **cleared}

    return ui.video.change(load_video, [ui.state, ui.video],
                           [ui.state, ui.frame, ui.track, ui.result_video, ui.downloads, ui.summary, ui.progress,
                            ui.review, ui.timeline, ui.flag_note, *ui.panel],
                           **UI_ONLY)


def _wire_frame_browser(ui: UI, preview_on: Callable[[Callable], None]) -> None:
    """The frame slider, the results checkbox, and the options a preview depends on."""

    def show_frame(session: Optional[AppSession], frame: int, show: bool, tool: str):
        if session is None or session.tracking:  # a running job draws the live frames and timeline
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        if session.closed:
            gr.Warning(ENDED)
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        editor = _editor_value(session, int(frame)) if tool == BRUSH else gr.skip()
        if session.review is None:
            return session.render_view(int(frame), show), editor, gr.skip(), gr.skip()
        return (session.render_view(int(frame), show), editor, session.render_timeline(int(frame)),
                session.describe_flags(int(frame)))

    for trigger in (ui.frame.change, ui.show_results.change):
        shown = trigger(show_frame, [*ui.edit_inputs, ui.tool], [ui.view, ui.editor, ui.timeline, ui.flag_note],
                        show_progress="hidden", trigger_mode="always_last", **UI_ONLY)
        preview_on(shown.then)
        _reset_refused_frame(ui, shown)
    def check_model_choice(session: Optional[AppSession], model: str):
        """A model that cannot track some object's granularity is said when chosen, not at Track."""
        return "" if session is None else session.model_note(model)  # a note of another model goes

    ui.model.change(check_model_choice, [ui.state, ui.model], [ui.status], **UI_ONLY)
    preview_on(ui.model.change)
    preview_on(ui.motion.change)


def _wire_player(ui: UI) -> None:
    """Play steps the frame slider through the tracked frames (the frame view shows the results); Pause."""

    def paused() -> tuple[gr.Timer, gr.Button]:  # updates: made in a handler, outside the Blocks
        return gr.Timer(active=False), gr.Button("▶ Play")

    def toggle(session: Optional[AppSession], frame: int, label: str):
        if not label.startswith("▶"):
            return (*paused(), gr.skip(), gr.skip())
        if session is None or session.results is None or session.results.first_frame is None:
            gr.Info("Play shows the tracked frames: press Track first.")
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        at_end = session.play_step(int(frame)) is None  # from the start again
        return (gr.Timer(active=True), gr.Button("⏸ Pause"), True,
                session.results.first_frame if at_end else gr.skip())

    def step(session: Optional[AppSession], frame: int):
        following = None if session is None or session.tracking else session.play_step(int(frame))
        return (*paused(), gr.skip()) if following is None else (gr.skip(), gr.skip(), following)

    ui.play.click(toggle, [ui.state, ui.frame, ui.play], [ui.player, ui.play, ui.show_results, ui.frame],
                  queue=False, **UI_ONLY)
    ui.player.tick(step, [ui.state, ui.frame], [ui.player, ui.play, ui.frame], show_progress="hidden", **UI_ONLY)


def _wire_objects(ui: UI, preview_on: Callable[[Callable], None]) -> None:
    """Add, remove, select and rename objects, and set the selected object's granularity and effect."""

    def add_object(session: AppSession, frame: int) -> str:
        return f"Added {session.add_object().name}: prompt it on any frame."

    def remove_object(session: AppSession, frame: int) -> str:
        return f"Removed {session.remove_selected().name}."

    def select_object(session: AppSession, frame: int, obj_id: Optional[int]) -> str:
        return "" if obj_id is None else f"Selected {session.select(int(obj_id)).name}."

    def rename_object(session: AppSession, frame: int, name: str) -> str:
        session.rename(name)
        return ""

    def set_task(session: AppSession, frame: int, task: str) -> str:
        return session.set_task(task)

    def set_effect(session: AppSession, frame: int, effect: str) -> str:
        return session.set_effect(effect)

    inputs = ui.edit_inputs
    ui.add.click(_edit(ui, add_object), inputs, ui.panel, **UI_ONLY)
    ui.remove.click(_edit(ui, remove_object), inputs, ui.panel, **UI_ONLY)
    preview_on(ui.objects.input(_edit(ui, select_object), [*inputs, ui.objects], ui.panel, **UI_ONLY).then)
    ui.name.submit(_edit(ui, rename_object), [*inputs, ui.name], ui.panel, **UI_ONLY)
    preview_on(ui.task.input(_edit(ui, set_task), [*inputs, ui.task], ui.panel, **UI_ONLY).then)
    ui.effect.input(_edit(ui, set_effect), [*inputs, ui.effect], ui.panel, **UI_ONLY)


def _wire_prompts(ui: UI, preview_on: Callable[[Callable], None]) -> None:
    """Clicks on the frame, undo, clear, the painted mask and the mask PNG."""

    def on_click(session: Optional[AppSession], frame: int, show: bool, tool: str, evt: gr.SelectData) -> dict:
        x, y = evt.index
        return _edit(ui, lambda s, f: s.click_view(tool, f, float(x), float(y)))(session, frame, show)

    def undo(session: AppSession, frame: int) -> str:
        session.undo(frame)
        return ""

    def clear(session: AppSession, frame: int) -> str:
        session.clear_frame(frame)
        return ""

    def brush(session: AppSession, frame: int, value: Optional[dict]) -> str:
        return session.apply_mask(frame, mask_from_editor(value, session.info.size))

    def apply_brush(session: Optional[AppSession], frame: int, show: bool, value: Optional[dict]) -> dict:
        """The painted mask; when taken, the frame view (with its preview) replaces the cleared editor."""
        panel = _edit(ui, brush)(session, frame, show, value)
        taken = session is not None and not panel[ui.status].startswith("⚠️")
        return {**panel, ui.tool: POSITIVE if taken else gr.skip()}

    def mask_png(session: AppSession, frame: int, path: Optional[str]) -> str:
        if not path:
            raise AppInputError("no mask file was uploaded")
        return session.apply_mask(frame, mask_from_png(path, session.info.size))

    inputs = ui.edit_inputs
    preview_on(ui.view.select(on_click, [*inputs, ui.tool], ui.panel, show_progress="hidden", **UI_ONLY).then)
    preview_on(ui.undo.click(_edit(ui, undo), inputs, ui.panel, **UI_ONLY).then)
    ui.clear.click(_edit(ui, clear), inputs, ui.panel, **UI_ONLY)
    preview_on(ui.apply_mask.click(apply_brush, [*inputs, ui.editor], [*ui.panel, ui.tool], **UI_ONLY).then)
    preview_on(ui.mask_file.upload(_edit(ui, mask_png), [*inputs, ui.mask_file], ui.panel, **UI_ONLY).then)


def _wire_tools(ui: UI) -> None:
    """The prompt tool: the brush shows the mask editor, the mask PNG tool the file input."""

    def choose_tool(session: Optional[AppSession], frame: int, tool: str):
        hints = {BOX: "Click one corner of the box, then the opposite corner.",
                 BRUSH: "Paint over the object on the frame, then press *Use the painted mask*.",
                 MASK_FILE: "Upload a mask image of the video's size."}
        editor = _editor_value(session, int(frame)) if (tool == BRUSH and session_problem(session) is None) else None
        return (gr.ImageEditor(visible=tool == BRUSH, value=editor), gr.Button(visible=tool == BRUSH),
                gr.Image(visible=tool != BRUSH), gr.File(visible=tool == MASK_FILE, value=None), hints.get(tool, ""))

    ui.tool.change(choose_tool, [ui.state, ui.frame, ui.tool],
                   [ui.editor, ui.apply_mask, ui.view, ui.mask_file, ui.status], **UI_ONLY)


def _wire_tracking(ui: UI, limits: AppLimits, slots: GpuSlots) -> Any:
    """Track (a job from every prompt, streamed) and Stop; returns the tracking event."""

    def start(session: Optional[AppSession]):
        require(session)
        # the last run's results go: what shows from here on is this run's
        starting = describe_wait(slots.waiting) if slots.busy >= slots.slots else "Starting…"
        return (gr.Button(interactive=False), gr.Button(interactive=True), progress_html(starting),
                TRACKING_NOTE, None, None, "", gr.Column(visible=False), gr.Slider(interactive=False))

    def run_track(session: Optional[AppSession], frame: int, model: str, motion: bool, show: bool, background: str,
                  progress=gr.Progress()):
        session = require(session)
        try:
            with job_errors():
                options = TrackOptions(model, bool(motion), effects=session.effect_settings(background))
            yield from _stream_job(ui, session, int(frame), options, show, limits,
                                   slots.runner(gpu_track, wait_reporter(progress)))
        except gr.Error as error:  # refused or failed: said where the progress shows; the chain goes on to finish
            gr.Warning(error.message)
            yield {ui.progress: progress_html(f"⚠️ {error.message}"), ui.view: gr.Image(label=VIEW_LABEL)}

    def finish(session: Optional[AppSession]):
        usable = session_problem(session) is None
        return gr.Button(interactive=usable), gr.Button(interactive=False), "", gr.Slider(interactive=usable)

    def stop(session: Optional[AppSession]):
        if session is None or not session.tracking:
            return gr.skip()
        session.stop.set()
        return progress_html("Stopping after the current frame…")

    started = [ui.track, ui.stop, ui.progress, ui.status, ui.result_video, ui.downloads, ui.summary, ui.review,
               ui.frame]
    tracking = (ui.track.click(start, [ui.state], started, **UI_ONLY)
                .success(run_track, [ui.state, ui.frame, ui.model, ui.motion, ui.show_results, ui.background],
                         [ui.view, ui.frame, ui.status, ui.progress, ui.result_video, ui.downloads, ui.summary,
                          ui.review, ui.timeline, ui.flag_note], show_progress="minimal",
                         show_progress_on=[ui.progress], **_checks_first(), **UI_ONLY))
    # Gradio runs `.then` listeners after a success only (not after an error), so finish is on both
    ended = [ui.track, ui.stop, ui.status, ui.frame]
    tracking.then(finish, [ui.state], ended, **UI_ONLY)
    tracking.failure(finish, [ui.state], ended, **UI_ONLY)
    ui.stop.click(stop, [ui.state], [ui.progress], queue=False, **UI_ONLY)
    return tracking


def _wire_review(ui: UI) -> None:
    """The timeline of the last results: a click on it, or a flag button, moves the frame view."""

    def timeline_click(session: Optional[AppSession], evt: gr.SelectData) -> int:
        with user_errors():
            return require(session).frame_at_timeline(float(evt.index[0]))

    def step_to_flag(forward: bool) -> Callable[[Optional[AppSession], int], Any]:
        def step(session: Optional[AppSession], frame: int):
            try:
                return require(session).flagged_frame(int(frame), forward)
            except AppInputError as error:
                gr.Info(str(error))
                return gr.skip()

        return step

    ui.timeline.select(timeline_click, [ui.state], [ui.frame], **UI_ONLY)
    ui.previous_flag.click(step_to_flag(False), [ui.state, ui.frame], [ui.frame], **UI_ONLY)
    ui.next_flag.click(step_to_flag(True), [ui.state, ui.frame], [ui.frame], **UI_ONLY)


def _reset_refused_frame(ui: UI, shown: Any) -> None:
    """A frame number that the slider refused (outside the video: Gradio says so) gives way to the frame that the
    view shows, in the slider and with a note."""

    def back(session: Optional[AppSession]):
        if session_problem(session) is not None:
            return gr.skip(), gr.skip()
        last = session.info.num_frames - 1
        return session.shown_frame, f"⚠️ Frames go from 0 to {last}: back to frame {session.shown_frame}."

    shown.failure(back, [ui.state], [ui.frame, ui.status], **UI_ONLY)


def _wire_estimate(ui: UI, after: list[Any]) -> None:
    """Track's time on this machine (measured by previews and runs; `estimate.py`) follows the model, the objects,
    the video and each run. (A preview updates it itself.)"""

    def estimate(session: Optional[AppSession], model: str) -> str:
        return "" if session_problem(session) is not None else session.estimate(model)

    for trigger in (ui.model.change, ui.objects_html.change, *(event.then for event in after)):
        trigger(estimate, [ui.state, ui.model], [ui.estimate], queue=False, show_progress="hidden", **UI_ONLY)


def _wire_upload_check(ui: UI) -> None:
    """A file that the video input refused in the browser (not a video) is said in the status line."""

    def refused(evt: gr.EventData) -> str:
        data = evt._data if isinstance(evt._data, dict) else {}
        return "⚠️ " + refused_upload(str(data.get("name", "")), str(data.get("type", "")))

    ui.upload_check.upload(refused, None, [ui.status], queue=False, **UI_ONLY)


def _wire_status(ui: UI) -> None:
    """The status line says what the last action did: a move to another frame (the slider, the timeline, a flag
    button, Play) ends what it said."""
    for trigger in (ui.frame.input, ui.timeline.select, ui.previous_flag.click, ui.next_flag.click, ui.play.click):
        trigger(lambda: "", None, [ui.status], queue=False, show_progress="hidden", **UI_ONLY)


def _editor_value(session: AppSession, frame: int) -> dict:
    return {"background": session.brush_background(frame), "layers": [], "composite": None}


def _stream_job(ui: UI, session: AppSession, frame: int, options: TrackOptions, show: bool, limits: AppLimits,
                run: JobRunner) -> Iterator[dict]:
    """A Track click's job (`run`: gpu_track holding a GPU slot): its progress bar, and its live frames
    (labelled with their number; the frame slider follows them), then its results on the frame the slider
    shows."""
    result = None
    note = {ui.status: TRACKING_NOTE}  # once, over a preview's note that came before the job
    with job_errors():
        for update in session.tracking_job(options, limits, run):
            if update.result is not None:
                result = update.result
                continue
            live = {}
            if update.frame is not None:
                frame = update.frame_idx
                live = {ui.view: gr.Image(session.enlarge(update.frame), label=f"Tracking: frame {frame} (live)"),
                        ui.frame: frame, ui.review: gr.Column(visible=True),
                        ui.timeline: session.render_timeline(frame, update.review)}
            yield {ui.progress: progress_html(describe_progress(update.progress), update.progress), **note, **live}
            note = {}
    if session.closed:  # a new video replaced this session during the job
        return
    if result.failed:
        gr.Warning(result.describe())
    summary = "\n".join(line for line in result.summary.splitlines() if not line.startswith("wrote "))
    yield {ui.view: gr.Image(session.render_view(frame, show), label=VIEW_LABEL), ui.frame: frame,
           ui.progress: progress_html(result.describe()), ui.summary: summary,
           ui.result_video: str(result.files.video) if result.files.video else None,
           ui.downloads: result.files.downloads() or None, ui.review: gr.Column(visible=session.review is not None),
           ui.timeline: session.render_timeline(frame), ui.flag_note: session.describe_flags(frame)}


def launch(demo: gr.Blocks, limits: AppLimits = LIMITS, **kwargs: Any):
    """Launch with the upload limit and the example clips allowed, nothing else of examples/, and the clients'
    heartbeats watched (a session that reconnects keeps its files; tests pass host, port, ...)."""
    kwargs.setdefault("max_file_size", limits.max_upload_bytes)
    kwargs.setdefault("css", CSS)
    kwargs.setdefault("head", HEAD)
    kwargs.setdefault("allowed_paths", [str(p) for p in EXAMPLE_CLIPS])  # the clips only
    kwargs.setdefault("app_kwargs", {"middleware": [Middleware(HeartbeatWatch, session_files=demo.session_files)]})
    return demo.launch(**kwargs)


demo = build_demo()
MODELS_AT_START = prepare_models(MODELS)  # on ZeroGPU: every offered model, before the server starts

if __name__ == "__main__":
    launch(demo)
