"""SAM 2++ Space: track anything at any granularity in a video (Gradio Blocks).

    python app.py            # http://127.0.0.1:7860

UI wiring only; the logic is in the package sam2_plus/app/. The GPU work is two pure functions under
`spaces.GPU` (a no-op off ZeroGPU): `gpu_preview` (one prompt on one frame) and `gpu_job` (a job of any mode,
a `sam2_plus.jobs.JobSpec`, streamed: tracking, and the still-image calls). They
run on the model provider the server holds (`build_demo(models=...)`; default: the process's shared ModelCache,
whose models are built once per process: sam2_plus/app/hardware.py, on ZeroGPU at import, before the server
starts). The scripted API is three endpoints: `/track` (video, prompts JSON, options JSON) -> (overlay MP4,
results ZIP, results JSON), `/segment_image` (image, prompts JSON, options JSON) -> (masks ZIP, results JSON) and
`/find_objects` (image or video, frame, options JSON) -> proposals JSON; live tracking from a script adds
`/live_frame` (a camera frame, prompts JSON, options JSON) -> (the frame drawn, status JSON) and `/live_stop` ->
(overlay MP4, results ZIP, results JSON), the Live tab's logic (`gpu_live`, one GPU call per live session). Every
other event is private to the UI.
"""

from __future__ import annotations

import spaces  # noqa: I001  (first: on ZeroGPU it must come before anything initialises CUDA)

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import gradio as gr
from gradio.exceptions import InvalidPathError
from starlette.middleware import Middleware

from sam2_plus.app.api import api_job
from sam2_plus.app.api_examples import (
    EXAMPLE_FIND_OPTIONS, EXAMPLE_IMAGE, EXAMPLE_IMAGE_PROMPTS, EXAMPLE_PROMPTS, EXAMPLE_SEGMENT_OPTIONS, example_clip,
    uploaded_example, with_example,
)
from sam2_plus.app.editing import BOX, BRUSH, MASK_FILE, POSITIVE, TOOLS, ObjectState
from sam2_plus.app.errors import AppInputError, failure_message, refused_upload, user_message
from sam2_plus.app.estimate import SPEEDS
from sam2_plus.app.gpu_slots import GpuSlots, WaitReport, describe_wait
from sam2_plus.app.cpu_speed import cpu_speed_probe
from sam2_plus.app.hardware import on_zero_gpu, prepare_models, use_worker_threads
from sam2_plus.app.image_api import find_objects_call, segment_image_call
from sam2_plus.app.detached import DetachedJob
from sam2_plus.app.jobs import (
    PROGRESS_INTERVAL, JobRunner, JobUpdate, describe_progress, job_gpu_seconds, job_result, progress_html, run_job,
)
from sam2_plus.app.gpu_time import live_session_gpu_seconds
from sam2_plus.app.live import LiveFiles, LiveSpec, LiveUpdate, run_live
from sam2_plus.app.live_page import api_frame, api_status, live_cost, open_live
from sam2_plus.app.live_picture import LivePicture
from sam2_plus.app.live_session import LIVE_TOOLS, LiveSession
from sam2_plus.app.masks import mask_from_editor, mask_from_png
from sam2_plus.app.options import TrackOptions, parse_options
from sam2_plus.app.feature_store import CachedFeatures, FeatureStore, features_key
from sam2_plus.app.preview import PREVIEW_GPU_SECONDS, PreviewOutput, preview_with_features
from sam2_plus.app.find_panel import FIND_MODES, FindChoices, parse_find_choices
from sam2_plus.app.proposals import DEFAULT_DENSITY, found_on_frame
from sam2_plus.app.rerender import SceneChoices, parse_scene
from sam2_plus.app.rejoin import PageTokens, earlier_session_ended
from sam2_plus.app.session import ENDED, NO_VIDEO, AppSession
from sam2_plus.app.settings import DEFAULT_MODEL, MODELS, AppLimits, describe_weights, offered_models
from sam2_plus.app.workdirs import HeartbeatWatch, SessionFiles, Sweeper
from sam2_plus.effects.settings import (
    BACKGROUND_EFFECTS, CUTOUT_FORMATS, DEFAULT_CUTOUT, OBJECT_EFFECTS, PARAMETERS, RANGES, Effect,
)
from sam2_plus.errors import INPUT_ERRORS
from sam2_plus.exports import EXPORT_FORMATS
from sam2_plus.media.render import hex_color
from sam2_plus.prompts import TASKS
from sam2_plus.jobs import JobSpec, TrackRequest
from sam2_plus.provider import ModelProvider, shared_models
from sam2_plus.service import StepCallback
from sam2_plus.weights import weights_from_env
from sam2_plus.segment.inputs import DENSITIES

HERE = Path(__file__).resolve().parent
EXAMPLES_DIR = HERE / "examples"
# the only files of examples/ that the app serves: the clips and the still-image API's example image
EXAMPLE_CLIPS = tuple(sorted([*EXAMPLES_DIR.glob("*.mp4"), EXAMPLES_DIR / EXAMPLE_IMAGE]))
LIMITS = AppLimits.from_env()
DELETE_CACHE = (1800, 3600)  # every 30 min, Gradio deletes the files it served that are older than 1 h
UI_ONLY = {"api_visibility": "private"}
PLAY_INTERVAL = 0.2  # seconds a frame shows when the results play in the frame view
# The Video / Live tabs sit at the right of the intro's last lines (kept free for them), not on a row of their own,
# so that the video workspace still fits on one screen at 1366x768.
# Gradio has no setting for an image that follows its column's width at its own aspect ratio (the frame view
# is served at least as large as the column, `AppSession.view_scale`, and shrunk to fit; shorter while the
# review shows, so that both fit on one screen) nor for the order of the boxes on a phone (that of the work).
CSS = """
#intro h2 { margin: 0 0 2px 0; font-size: 1.3em; }
#estimate p { font-size: 0.85rem; line-height: 1.3; }
#track-progress:not(:has(.progress-text)), #rerender-progress:not(:has(.progress-text)) { display: none; }
#intro p { margin: 0; font-size: 0.9em; line-height: 1.3; }
#intro { padding-right: 150px; }
#modes { position: relative; }
#modes > .tab-wrapper { position: absolute; top: -46px; right: 0; z-index: 1; border-bottom: none; }
#timeline img { max-height: 110px; width: auto; max-width: 100%; }
#frame-view .image-container, #frame-view .image-frame { height: auto; }
#frame-view img { height: auto; max-height: calc(100vh - 250px); min-height: 160px; }
#frame-column:has(#review:not(.hidden)) #frame-view img { max-height: calc(100vh - 470px); }
#frame-view .wrap.default { background: rgba(255, 255, 255, 0.4); }
@media (max-width: 480px) {
  #intro { padding-right: 0; }
  #modes > .tab-wrapper { position: static; }
  #workspace { flex-direction: column; }
  #setup-column, #frame-column { display: contents; }
  #video-box { order: 1; } #frame-box { order: 2; } #objects-box { order: 3; } #settings { order: 4; }
  #track-box { order: 5; } #review { order: 6; } #results-box { order: 7; }
}
"""
# outside Gradio's css, which only reaches what is inside the page's main column
HEAD = ("<style>@media (max-width: 480px) { .main.app { padding-left: 4px !important; "
        "padding-right: 4px !important; } }</style>")
# Leaving or reloading the page while a job runs (Stop is enabled exactly then) asks first. The job would go on
# (a reloaded page rejoins it within the grace), but a closed tab's job is stopped once the grace is over.
HEAD += ("<script>window.addEventListener('beforeunload', (event) => { const stop = document.getElementById('stop'); "
         "if (stop !== null && !stop.disabled) { event.preventDefault(); event.returnValue = ''; } });</script>")
# A new video (an upload, an example, the video's x) asks first when the page would lose something: the
# question (ui.question, set by the event before) is the last input; it becomes DECLINED or "".
CONFIRM_JS = ("(...inputs) => { const question = inputs[inputs.length - 1]; "
              "return [...inputs.slice(0, -1), question && !window.confirm(question) ? 'declined' : '']; }")
DECLINED = "declined"

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
SEGMENT_DESCRIPTION = (
    "Segment objects in a still image. image: PNG, JPEG or WebP. prompts: the prompts JSON of /track with every "
    "prompt on frame 0 (clicks, a box, clicks and a box, or a COCO RLE mask per object); a lone click gives three "
    "candidate masks. options: JSON, e.g. {\"model\": \"sam2++\", \"multimask\": true, \"choices\": {\"1\": 2}} "
    "(choices: the candidate kept per object, default the highest predicted IoU; an optional \"effects\" object "
    "applies to the cut-outs). Returns a ZIP (masks/obj_ID.png, cutouts/obj_ID.png, coco/instances.json, "
    "results.json) and the results JSON (per object: chosen candidate, candidates' predicted IoUs, box, point, area, "
    "COCO RLE mask)."
)
FIND_DESCRIPTION = (
    "Find the objects in an image or a video frame (automatic masks). source: an image or a video; frame: the "
    "video's frame (0 for an image). options: JSON, e.g. {\"model\": \"sam2++\", \"density\": \"normal\", "
    "\"max_proposals\": 16, \"sort\": \"area\"}; density coarse, normal or fine (8, 16 or 32 points per side), "
    "points_per_side, pred_iou_thresh, stability_score_thresh, box_nms_thresh, crop_n_layers, "
    "min_mask_region_area. Returns the proposals JSON: id, COCO RLE mask, bbox (XYWH), predicted_iou, "
    "stability_score, area and point of each, largest first (sort \"area\") or best first (\"score\")."
)


# --------------------------------------------------------------------------- GPU functions (pure)


@spaces.GPU(duration=job_gpu_seconds)
def gpu_job(spec: JobSpec, models: ModelProvider,
            between_steps: Optional[StepCallback] = None) -> Iterator[JobUpdate]:
    use_worker_threads()
    yield from run_job(spec, models, between_steps)


@spaces.GPU(duration=PREVIEW_GPU_SECONDS)
def gpu_preview(request: TrackRequest, cached: Optional[CachedFeatures], models: ModelProvider) -> PreviewOutput:
    use_worker_threads()
    return preview_with_features(request, cached, models)


@spaces.GPU(duration=live_session_gpu_seconds)
def gpu_live(spec: LiveSpec, models: ModelProvider,
             between_steps: Optional[StepCallback] = None) -> Iterator[LiveUpdate]:
    use_worker_threads()
    yield from run_live(spec, models, between_steps)


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


VIEW_LABEL = "Click on the frame to prompt the selected object"
COMPUTING_PREVIEW = "Computing the preview…"
TRACKING_NOTE = ("Tracking runs from all the prompts: the frame view shows its live frames; prompts can be edited "
                 "when it ends (objects can be removed now).")


VIDEO_DOWNLOADS = ("Downloads: results ZIP (masks, DAVIS PNGs, COCO RLE JSON, boxes CSV, LaSOT, points NPZ), results "
                   "JSON, overlay MP4; with effects the effect MP4 and the cut-outs (WebM, MOV; PNGs in the ZIP)")
IMAGE_DOWNLOADS = ("Downloads: the ZIP (mask PNGs, cut-outs, COCO JSON, results JSON), each object's cut-out (RGBA "
                   "PNG), with effects the effect PNG, COCO instances JSON, results JSON")
SEGMENTING_NOTE = "Segmenting the image: each object's mask from the image predictor (its preview)."


def session_problem(session: Optional[AppSession]) -> Optional[str]:
    """Why an action cannot use `session`: none yet (or its video was cleared), or its files are gone (a
    reconnect after the grace)."""
    if session is None or session.cleared:
        return NO_VIDEO
    return ENDED if session.closed else None


def require(session: Optional[AppSession]) -> AppSession:
    problem = session_problem(session)
    if problem is not None:
        raise gr.Error(problem, print_exception=False)
    return session


def close_session(session: Optional[AppSession]) -> None:
    """A page's gr.State dropped by Gradio: the session closes unless a reloaded page holds it too."""
    if session is not None:
        session.release()


def close_live(live: Optional[LiveSession]) -> None:
    """A page's live session dropped by Gradio: its loop ends (its folder goes with its client)."""
    if live is not None:
        live.close()


# --------------------------------------------------------------------------- the API


def wait_reporter(progress: gr.Progress) -> WaitReport:
    """A job's "waiting for the GPU" line, on its progress bar."""
    return lambda ahead: progress(None, desc=describe_wait(ahead))


def api_function(limits: AppLimits, session_files: SessionFiles, slots: GpuSlots,
                 keep: Callable[[Path], str], models: ModelProvider) -> Callable[..., tuple[str, str, str]]:
    def track(video: Optional[str], prompts: str, options: str, request: gr.Request,
              progress=gr.Progress()) -> tuple[str, str, str]:
        """Track the objects of `prompts` through `video` with `options`; returns the overlay MP4, the results
        ZIP and the results JSON."""
        result = None
        run = slots.runner(gpu_job, wait_reporter(progress))  # checked first, then waits for the GPU
        with job_errors():
            for update in api_job(video, prompts, options, limits, session_files, request.session_hash, run,
                                  keep=keep, models=models):
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


def build_demo(limits: AppLimits = LIMITS, models: Optional[ModelProvider] = None) -> SpaceBlocks:
    """The app with `limits`; its previews and jobs run on `models` (default: the process's shared ModelCache, the
    one `prepare_models` fills; tests pass stand-ins)."""
    models = models or shared_models()
    session_files = SessionFiles(limits.reconnect_seconds)
    # every GPU event's, around its GPU part only; a job lends its slot to previews between frames, except on
    # ZeroGPU, where the job runs in another process
    slots = GpuSlots(limits.gpu_concurrency, limits.queue_size, lending=not on_zero_gpu())
    with SpaceBlocks(title="SAM 2++: track anything at any granularity", delete_cache=DELETE_CACHE,
                   analytics_enabled=False) as demo:
        _build_api(demo, limits, session_files, slots, models)  # first, so that it owns the name "track"
        _wire_image_api(demo, limits, slots, models)
        _wire_live_api(demo, limits, session_files, slots, models)
        ui = _build_ui(limits)
        _wire(ui, limits, session_files, slots, models)
        _wire_cpu_speed(ui, models)

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
    tokens: gr.BrowserState
    question: gr.Textbox
    video: gr.Video
    examples: gr.Dataset
    model: gr.Dropdown
    motion: gr.Checkbox
    cpu_speed: gr.Markdown
    objects: gr.Radio
    objects_html: gr.HTML
    add: gr.Button
    remove: gr.Button
    name: gr.Textbox
    task: gr.Radio
    effect: gr.Dropdown
    effect_strength: gr.Slider
    effect_block: gr.Slider
    effect_color: gr.ColorPicker
    effect_thickness: gr.Slider
    background: gr.Dropdown
    background_strength: gr.Slider
    background_color: gr.ColorPicker
    background_dim: gr.Slider
    feather: gr.Slider
    cutout_formats: gr.CheckboxGroup
    export_formats: gr.CheckboxGroup
    rerender_progress: gr.HTML
    cutout_preview: gr.Image
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
    image: gr.File  # a still image: a one-frame session (the video input takes videos only)
    candidates: gr.Gallery  # the selected object's click candidates on this frame, with their predicted IoU
    density: gr.Dropdown
    find: gr.Button
    add_all: gr.Button
    hide_found: gr.Button
    find_mode: gr.Radio  # the Find tab: what Find objects and Track (with keep finding) look for
    find_phrases: gr.Textbox
    find_interval: gr.Number
    find_score: gr.Slider
    find_iou: gr.Slider
    find_stability: gr.Slider
    find_keep: gr.Checkbox

    @property
    def panel(self) -> list[gr.components.Component]:
        """What an edit of the objects or prompts updates."""
        return [self.view, self.objects, self.objects_html, self.name, self.task, *self.effect_panel, self.status,
                *self.found_panel]

    @property
    def found_panel(self) -> list[gr.components.Component]:
        """The candidates under the frame view and the buttons of Find objects' proposals (`_found_panel`)."""
        return [self.candidates, self.add_all, self.hide_found]

    @property
    def find_inputs(self) -> list[gr.components.Component]:
        """The Find tab's controls, in `find_panel.parse_find_choices`' order."""
        return [self.find_mode, self.find_phrases, self.find_interval, self.find_score, self.find_iou,
                self.find_stability, self.find_keep]

    @property
    def effect_panel(self) -> list[gr.components.Component]:
        """The selected object's effect and its parameters (`_effect_panel`)."""
        return [self.effect, self.effect_strength, self.effect_block, self.effect_color, self.effect_thickness]

    @property
    def scene_inputs(self) -> list[gr.components.Component]:
        """The choices for the whole frame, in `rerender.parse_scene`'s order."""
        return [self.background, self.background_strength, self.background_color, self.background_dim,
                self.feather, self.cutout_formats, self.export_formats]

    @property
    def edit_inputs(self) -> list[gr.components.Component]:
        """What every edit handler (`_edit`) takes first: the session, the frame, whether results are shown."""
        return [self.state, self.frame, self.show_results]


def _build_ui(limits: AppLimits) -> UI:
    """Two columns, on one screen at 1366x768: on the left the video, the objects with their granularity and
    Track with its progress, then the settings in tabs; on the right the prompt tools, the frame view, the frame
    slider with Play, and the review of the results under it, then the result video and the downloads. On a
    phone they stack in the order of the work (CSS): video, frame, objects and their settings, Track,
    review, downloads."""
    ui = UI()
    ui.state = gr.State(None, delete_callback=close_session)
    _build_kept(ui)
    gr.Markdown(
        "## SAM 2++: track anything at any granularity\n"
        "Upload or pick a video · add objects, prompt them on any frame (clicks, a box or a mask) · **Track** · "
        "correct on any frame and track again. Scripts: *Use via API* (page bottom). " + describe_weights(),
        elem_id="intro")
    with gr.Tabs(elem_id="modes"):
        with gr.Tab("Video", elem_id="video-tab"):
            with gr.Row(equal_height=False, elem_id="workspace"):
                with gr.Column(scale=1, min_width=300, elem_id="setup-column"):
                    _build_setup_column(ui, limits)
                with gr.Column(scale=2, min_width=300, elem_id="frame-column"):
                    _build_frame_column(ui)
        with gr.Tab("Live", elem_id="live-tab"):
            _build_live(ui, limits)
    _build_upload_check(ui)
    return ui


LIVE_INTRO = (
    "Track what your camera sees: start the camera (its button under the picture), then click on the live picture "
    "on the right to prompt an object (a click, or a box with two clicks); **Freeze** holds the picture while you "
    "prompt. The newest camera frame is processed and late ones are dropped when the model is slower than the "
    "camera. **Stop** writes the overlay MP4 and the results ZIP and JSON, as a tracking job does.")


def _build_live(ui: UI, limits: AppLimits) -> None:
    """The Live tab: the camera, the live picture to click on, its tools, the status line, Stop and the files."""
    ui.live_state = gr.State(None, delete_callback=close_live)
    gr.Markdown(LIVE_INTRO + " " + limits.describe_live() + " " + live_cost(limits), elem_id="live-intro")
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            ui.live_camera = gr.Image(sources=["webcam"], streaming=True, type="numpy", label="Camera",
                                      elem_id="live-camera")
            ui.live_model = gr.Dropdown(list(offered_models()), value=DEFAULT_MODEL, label="Model",
                                        info="taken when a session starts", elem_id="live-model")
            ui.live_task = gr.Radio(list(TASKS), value="mask", label="Granularity of a new object",
                                    elem_id="live-task")
            ui.live_tool = gr.Radio(list(LIVE_TOOLS), value=POSITIVE, label="Tool", elem_id="live-tool")
            with gr.Row():
                ui.live_new_object = gr.Button("New object", size="sm", elem_id="live-new-object")
                ui.live_remove = gr.Button("Remove object", size="sm", variant="stop", elem_id="live-remove")
                ui.live_freeze = gr.Button("Freeze", size="sm", elem_id="live-freeze")
        with gr.Column(scale=2, min_width=300):
            ui.live_view = LivePicture(label="Live picture (click to prompt)", interactive=False, type="numpy",
                                       elem_id="live-view")
            ui.live_status = gr.Markdown(elem_id="live-status")
            with gr.Row():
                ui.live_stop = gr.Button("Stop", variant="stop", elem_id="live-stop")
                ui.live_restart = gr.Button("New session", elem_id="live-restart")
            ui.live_files = gr.File(label="Downloads: overlay MP4, results ZIP, results JSON", file_count="multiple",
                                    elem_id="live-files")


def _build_setup_column(ui: UI, limits: AppLimits) -> None:
    """The video; the objects, each with its granularity; Track with its progress; then the settings."""
    with gr.Column(elem_id="video-box"):
        ui.video = gr.Video(label="Video", sources=["upload"], height=100, elem_id="video-input")
        _build_image_input(ui)
    with gr.Column(elem_id="objects-box"):
        _build_objects(ui)
    with gr.Column(elem_id="track-box"):
        with gr.Row():
            ui.track = gr.Button("Track", variant="primary", interactive=False, elem_id="track")
            ui.stop = gr.Button("Stop", variant="stop", interactive=False, elem_id="stop")
        _build_estimate(ui)
        ui.progress = gr.HTML(elem_id="track-progress")
        ui.rerender_progress = gr.HTML(elem_id="rerender-progress")  # whichever settings tab changed them
        ui.status = gr.Markdown(elem_id="status")
    with gr.Tabs(elem_id="settings"):
        with gr.Tab("Examples", elem_id="examples-tab"):
            _build_examples(ui)
        with gr.Tab("Object", elem_id="object-tab"):
            _build_object_settings(ui)
        with gr.Tab("Find", elem_id="find-tab"):
            _build_find_settings(ui)
        with gr.Tab("Exports", elem_id="exports-tab"):
            _build_export_formats(ui)
        with gr.Tab("Model", elem_id="model-tab"):
            _build_model_settings(ui, limits)


IMAGE_TYPES = (".png", ".jpg", ".jpeg", ".webp")


def _build_image_input(ui: UI) -> None:
    """A still image (PNG, JPEG, WebP) opens like a one-frame video: a button beside the video input, which
    takes video files only (its accept list; its player cannot show an image). Everything after the upload is
    the same session; Track segments it (the objects' masks from the image predictor)."""
    ui.image = gr.UploadButton("Or open an image (PNG, JPEG, WebP)", file_types=list(IMAGE_TYPES), size="sm",
                               variant="secondary", elem_id="image-input")


def _build_objects(ui: UI) -> None:
    """The object list (each object's granularity and prompted frames), the selected object's granularity, and
    the buttons that edit the objects and their prompts."""
    ui.objects = gr.Radio([], label="Objects (select one to prompt it)", elem_id="objects")
    ui.objects_html = gr.HTML(elem_id="objects-list")
    ui.task = gr.Radio(list(TASKS), value="mask", label="Granularity of the selected object: what is tracked and "
                       "drawn", elem_id="granularity")
    with gr.Row(elem_id="object-buttons"):  # one row: they are small
        ui.add = gr.Button("Add object", size="sm", min_width=60)
        ui.remove = gr.Button("Remove selected", size="sm", variant="stop", min_width=60)
        ui.undo = gr.Button("Undo last prompt", size="sm", min_width=60)
        ui.clear = gr.Button("Clear this frame", size="sm", min_width=60)


def _build_kept(ui: UI) -> None:
    """What keeps the page's work: its browser's page tokens (a reloaded page rejoins its session) and the
    question asked before a new video replaces the work (hidden)."""
    ui.tokens = gr.BrowserState([], storage_key="sam2plus-pages")
    ui.question = gr.Textbox(visible=False)


def _build_examples(ui: UI) -> None:
    """The example clips: a click loads one into the video (asking first when the page would lose work)."""
    ui.examples = gr.Dataset(components=[ui.video], samples=[[str(p)] for p in sorted(EXAMPLES_DIR.glob("*.mp4"))],
                             type="values", label="Example clips (made by examples/make_examples.py)",
                             elem_id="examples")


def _build_object_settings(ui: UI) -> None:
    """The selected object's name and effect with its parameters, and the background's."""
    ui.name = gr.Textbox(label="Name of the selected object (Enter to rename)", max_lines=1)
    _build_effect_settings(ui)


def _build_model_settings(ui: UI, limits: AppLimits) -> None:
    """The model, the motion-aware mode and the app's limits."""
    with gr.Row():
        ui.model = gr.Dropdown(list(offered_models()), value=DEFAULT_MODEL, label="Model",
                               info="SAM 2.1 models and EdgeTAM take the mask granularity only")
        ui.motion = gr.Checkbox(label="motion-aware (SAMURAI)", value=False)
    gr.Markdown(f"<small>{limits.describe()}</small>")
    ui.cpu_speed = gr.Markdown(elem_id="cpu-speed")


def _wire_cpu_speed(ui: UI, models: ModelProvider) -> None:
    """On a CPU, the fastest model and a frame's cost, measured once from start-up (sam2_plus/app/cpu_speed.py)."""
    try:
        probe = cpu_speed_probe(models, weights_from_env())
    except ValueError:  # a bad SAM2PLUS_WEIGHTS: the header already says so
        return
    probe.start()
    gr.context.Context.root_block.load(probe.notes, None, ui.cpu_speed, show_progress="hidden",
                                       concurrency_limit=None, **UI_ONLY)


def _parameter_slider(name: str, label: str, elem_id: str, step: float, value: float, visible: bool = False,
                      info: Optional[str] = None) -> gr.Slider:
    low, high, _ = RANGES[name]
    return gr.Slider(low, high, value=value, step=step, label=label, info=info, visible=visible, elem_id=elem_id)


def _build_effect_settings(ui: UI) -> None:
    """The selected object's effect with its parameters (those of its effect show), the background's effect
    with its parameters, the feather, and the cut-out formats (with the background erased). Before tracking
    they are what Track makes; after it, a change re-renders the results (`_wire_rerender`)."""
    default = Effect()
    with gr.Group(elem_id="effect-settings"):
        with gr.Row():
            ui.effect = gr.Dropdown(list(OBJECT_EFFECTS), value="none", label="Effect of the selected object",
                                    elem_id="object-effect")
            ui.background = gr.Dropdown(list(BACKGROUND_EFFECTS), value="none", label="Background effect",
                                        info="erase: cut-outs with transparency", elem_id="background-effect")
        with gr.Row():
            ui.effect_strength = _parameter_slider("strength", "Blur strength (pixels)", "effect-strength", 0.5,
                                                   default.strength)
            ui.effect_block = _parameter_slider("block", "Pixel block (pixels)", "effect-block", 1, default.block)
            ui.effect_color = gr.ColorPicker("#000000", label="Colour", visible=False, elem_id="effect-color")
            ui.effect_thickness = _parameter_slider("thickness", "Outline thickness (pixels)", "effect-thickness", 1,
                                                    default.thickness)
        with gr.Row():
            ui.background_strength = _parameter_slider("strength", "Background blur strength (pixels)",
                                                       "background-strength", 0.5, default.strength)
            ui.background_color = gr.ColorPicker("#000000", label="Background colour", visible=False,
                                                 elem_id="background-color")
            ui.background_dim = _parameter_slider("dim", "Brightness outside the objects", "background-dim", 0.05,
                                                  default.dim, info="0 black, 1 unchanged")
            ui.feather = _parameter_slider("feather", "Feather (pixels)", "feather", 0.5, 0.0, visible=True,
                                           info="soft edges between the objects and the background")
        ui.cutout_formats = gr.CheckboxGroup(list(CUTOUT_FORMATS), value=list(DEFAULT_CUTOUT), label="Cut-outs",
                                             info="WebM (VP9) and MOV (ProRes 4444) with transparency; PNGs go into "
                                             "the results ZIP", visible=False, elem_id="cutout-formats")


def _build_export_formats(ui: UI) -> None:
    """The tools' formats added to the results ZIP (sam2_plus.exports)."""
    written = [(name, name) for name, export in EXPORT_FORMATS.items() if export.open is not None]
    ui.export_formats = gr.CheckboxGroup(
        written, value=[], label="Export formats in the results ZIP", elem_id="export-formats",
        info="; ".join(f"{name}: {EXPORT_FORMATS[name].description}" for name, _ in written)
        + ". Every ZIP has the masks, DAVIS PNGs, COCO RLE JSON, boxes CSV, LaSOT and points (TAP-Vid).")


def _build_cutout_preview(ui: UI) -> None:
    """A frame of the cut-out (the background erased) over a checkerboard, shown when the results have one."""
    ui.cutout_preview = gr.Image(label="Cut-out preview: the frame above, transparent where the checkerboard shows",
                                 interactive=False, type="numpy", visible=False, buttons=[], elem_id="cutout-preview")


def _build_estimate(ui: UI) -> None:
    """Track's time on this machine, before it is pressed (`estimate.describe_estimate`)."""
    ui.estimate = gr.Markdown(elem_id="estimate")


def _build_upload_check(ui: UI) -> None:
    """Nothing to see: it tells the server of a file that the video input refused in the browser (UPLOAD_CHECK_JS)."""
    ui.upload_check = gr.HTML(visible="hidden", js_on_load=UPLOAD_CHECK_JS, elem_id="upload-check")


def _build_frame_column(ui: UI) -> None:
    """The prompt tools, the frame view (the brush paints in its place), the frame slider and Play, the review
    under them, then the result video, the downloads and the summary."""
    with gr.Column(elem_id="frame-box"):
        ui.tool = gr.Radio(list(TOOLS), value=POSITIVE, label="Prompt tool", elem_id="tool", container=False)
        ui.view = gr.Image(label=VIEW_LABEL, interactive=False, type="numpy", elem_id="frame-view", buttons=[])
        ui.candidates = gr.Gallery(label="Candidates of the click (predicted IoU): click one to use it", columns=3,
                                   rows=1, height=190, allow_preview=False, object_fit="contain", visible=False,
                                   elem_id="candidates", buttons=[])
        ui.editor = gr.ImageEditor(label="Paint the selected object's mask, then press Use the painted mask",
                                   type="numpy", visible=False, sources=(), transforms=(), layers=False,
                                   elem_id="mask-editor", brush=gr.Brush(colors=["#ff3030"], default_color="#ff3030",
                                                                         color_mode="fixed"))
        ui.apply_mask = gr.Button("Use the painted mask", visible=False, variant="primary")
        ui.mask_file = gr.File(label="Mask PNG: the video's size, nonzero (or opaque) pixels are the object",
                               file_types=["image"], visible=False)
        with gr.Row(equal_height=True, elem_id="frame-row"):
            ui.frame = gr.Slider(0, 1, value=0, step=1, label="Frame", interactive=False, elem_id="frame-slider",
                                 scale=4)
            with gr.Column(scale=1, min_width=150):
                ui.play = gr.Button("▶ Play", size="sm", elem_id="play")
                ui.show_results = gr.Checkbox(label="Show the results", value=True, elem_id="show-results",
                                              info="scrub the frames, or Play")
            _build_find(ui)
        ui.player = gr.Timer(PLAY_INTERVAL, active=False)
    _build_review(ui)
    with gr.Column(elem_id="results-box"):
        ui.result_video = gr.Video(label="Tracking result", interactive=False, height=400, elem_id="result-video")
        _build_cutout_preview(ui)
        ui.downloads = gr.File(label=VIDEO_DOWNLOADS, file_count="multiple", interactive=False, elem_id="downloads")
        ui.summary = gr.Textbox(label="Summary", lines=4, interactive=False)


def _build_find(ui: UI) -> None:
    """Find objects on the frame shown, with a density; its proposals' buttons show while they do."""
    with gr.Column(scale=1, min_width=150, elem_id="find-box"):
        ui.find = gr.Button("Find objects", size="sm", elem_id="find")
        ui.density = gr.Dropdown([(f"density: {name}", name) for name in DENSITIES], value=DEFAULT_DENSITY,
                                 show_label=False, container=False, elem_id="density")
        with gr.Row(equal_height=True):
            ui.add_all = gr.Button("Add all", size="sm", visible=False, min_width=60, elem_id="add-all")
            ui.hide_found = gr.Button("Hide", size="sm", visible=False, min_width=60, elem_id="hide-found")


def _build_find_settings(ui: UI) -> None:
    """What Find objects looks for on the frame shown (Everything: automatic masks at the density beside it; By
    text: the phrases through the detector), and whether Track goes on finding new objects every keyframe
    interval (sam2_plus/app/find_panel.py). The thresholds of the mode chosen show."""
    default = FindChoices()
    with gr.Row(equal_height=True):
        ui.find_mode = gr.Radio(list(FIND_MODES), value="Everything", label="Find", elem_id="find-mode", scale=2)
        ui.find_interval = gr.Number(default.keyframe_interval, label="Keyframe interval (frames)", precision=0,
                                     minimum=1, maximum=10_000, elem_id="find-interval", scale=1, min_width=120)
    ui.find_phrases = gr.Textbox(label="Phrases (each ends with a period)", placeholder="person. red car.",
                                 max_lines=1, visible=False, elem_id="find-phrases")
    with gr.Row():
        ui.find_score = gr.Slider(0, 1, value=default.score_threshold, step=0.05, label="Detector score at least",
                                  visible=False, elem_id="find-score")
        ui.find_iou = gr.Slider(0, 1, value=default.pred_iou_thresh, step=0.05, label="Predicted IoU at least",
                                elem_id="find-iou")
        ui.find_stability = gr.Slider(0, 1, value=default.stability_score_thresh, step=0.05,
                                      label="Stability at least", elem_id="find-stability")
    ui.find_keep = gr.Checkbox(label="Keep finding new objects while tracking (every keyframe interval)",
                               value=default.keep_finding, elem_id="find-keep")


def _build_review(ui: UI) -> None:
    """The last results' timeline (a click on it moves the frame view) and the flagged-frame buttons."""
    with gr.Column(visible=False, elem_id="review") as ui.review:
        ui.timeline = gr.Image(show_label=False, interactive=False, type="numpy", elem_id="timeline", buttons=[],
                               container=False)
        with gr.Row():
            ui.previous_flag = gr.Button("◀ Previous flagged frame", size="sm")
            ui.next_flag = gr.Button("Next flagged frame ▶", size="sm")
        ui.flag_note = gr.Markdown(elem_id="flag-note")


def _build_api(demo: gr.Blocks, limits: AppLimits, session_files: SessionFiles, slots: GpuSlots,
               models: ModelProvider) -> None:
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
    keep = overlay.move_resource_to_block_cache  # Gradio's copies
    track = api_function(limits, session_files, slots, keep, models)
    run.click(track, [video, prompts, options], [overlay, results_zip, results_json], api_name="track",
              api_description=API_DESCRIPTION, **_checks_first())


def _wire_image_api(demo: gr.Blocks, limits: AppLimits, slots: GpuSlots, models: ModelProvider) -> None:
    """/segment_image and /find_objects (sam2_plus/app/image_api.py): hidden components like /track's; their GPU
    part is a short call of `slots`, as a preview's."""
    with gr.Column(visible=False):
        image = with_example(gr.File(label="image"), lambda: example_clip(EXAMPLES_DIR, demo.local_url, EXAMPLE_IMAGE))
        prompts = with_example(gr.Textbox(label="prompts"), EXAMPLE_IMAGE_PROMPTS)
        options = with_example(gr.Textbox(label="options", value=""), EXAMPLE_SEGMENT_OPTIONS)
        source = with_example(gr.File(label="source"), lambda: example_clip(EXAMPLES_DIR, demo.local_url))
        frame = with_example(gr.Number(label="frame", value=0, precision=0), 12)
        find_options = with_example(gr.Textbox(label="options", value=""), EXAMPLE_FIND_OPTIONS)
        masks_zip, results_json, proposals_json = (gr.File(label=name) for name in
                                                   ("masks_zip", "results_json", "proposals_json"))
        segment_button, find_button = gr.Button("segment_image"), gr.Button("find_objects")
    keep = masks_zip.move_resource_to_block_cache
    def run(spec: JobSpec) -> Any:
        return job_result(gpu_job(spec, models))


    def segment_image(image: Optional[str], prompts: str, options: str,
                      progress=gr.Progress()) -> tuple[str, str]:
        """Segment the objects of `prompts` on `image`; returns the masks ZIP and the results JSON."""
        with job_errors():
            archive, document = segment_image_call(image, prompts, options, limits, slots, run, keep,
                                                   lambda wait: progress(None, desc=wait.describe()))
        return str(archive), str(document)

    def find_objects(source: Optional[str], frame: Optional[float], options: str, progress=gr.Progress()) -> str:
        """Find the objects on frame `frame` of `source` (an image or a video); returns the proposals JSON."""
        with job_errors():
            return str(find_objects_call(source, frame, options, limits, slots, run, keep,
                                         lambda wait: progress(None, desc=wait.describe())))

    segment_button.click(segment_image, [image, prompts, options], [masks_zip, results_json],
                         api_name="segment_image", api_description=SEGMENT_DESCRIPTION, **_checks_first())
    find_button.click(find_objects, [source, frame, find_options], proposals_json, api_name="find_objects",
                      api_description=FIND_DESCRIPTION, **_checks_first())


# --------------------------------------------------------------------------- handlers


def _panel(ui: UI, session: AppSession, frame: int, show: bool, note: str = "") -> dict:
    obj = session.objects.get(session.selected) if session.selected is not None else None
    return {
        # live frames own the view during a job; a cleared video has none
        ui.view: gr.skip() if session.tracking else None if session.closed else session.render_view(frame, show),
        ui.objects: gr.Radio(choices=session.object_choices(), value=session.selected),
        ui.objects_html: session.objects_html(),
        ui.name: obj.name if obj else "",
        ui.task: obj.task if obj else "mask",
        **_effect_panel(ui, session, obj),
        ui.status: note,
        **_found_panel(ui, session, frame),
    }


def _found_panel(ui: UI, session: Optional[AppSession], frame: int) -> dict:
    """The selected object's candidates on `frame` (hidden without), and the proposals' buttons while Find
    objects' proposals show on it."""
    usable = session is not None and not session.closed and not session.cleared
    shown = session.candidate_view(frame) if usable and not session.tracking else None
    found = session.found if usable else None
    proposals = found is not None and found.frame == frame and bool(found.proposals)
    gallery = (gr.Gallery(value=None, visible=False) if shown is None
               else gr.Gallery(value=shown[0], selected_index=shown[1], visible=True))
    return {ui.candidates: gallery, ui.add_all: gr.Button(visible=proposals),
            ui.hide_found: gr.Button(visible=proposals)}


def _effect_panel(ui: UI, session: AppSession, obj: Optional[ObjectState]) -> dict:
    """The selected object's effect, and the parameters its effect takes, with their values."""
    effect = session.effect_of(obj.obj_id) if obj else Effect()
    takes = PARAMETERS[effect.name]
    color = effect.color or (obj.color if obj and effect.name == "outline" else (0, 0, 0))
    return {ui.effect: effect.name,
            ui.effect_strength: gr.Slider(value=effect.strength, visible="strength" in takes),
            ui.effect_block: gr.Slider(value=effect.block, visible="block" in takes),
            ui.effect_color: gr.ColorPicker(value=hex_color(color), visible="color" in takes),
            ui.effect_thickness: gr.Slider(value=effect.thickness, visible="thickness" in takes)}


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


def _wire(ui: UI, limits: AppLimits, session_files: SessionFiles, slots: GpuSlots, models: ModelProvider) -> None:
    """Each panel's events, one function each; the sessions they open run on `models`."""
    previewer = Previewer(limits, slots)
    preview_on = _previews(ui, previewer)
    pages = PageTokens(session_files)
    loaded = _wire_video(ui, limits, session_files, pages, models)
    _wire_rejoin(ui, limits, pages)
    _wire_frame_browser(ui, preview_on)
    _wire_player(ui)
    _wire_objects(ui, preview_on)
    _wire_prompts(ui, preview_on)
    _wire_tools(ui)
    tracked = _wire_tracking(ui, limits, slots, previewer)
    _wire_find(ui, slots, preview_on)
    _wire_candidates(ui, preview_on)
    _wire_review(ui)
    _wire_rerender(ui)
    _wire_estimate(ui, [*loaded, tracked])
    _wire_upload_check(ui)
    _wire_status(ui)
    _wire_live(ui, limits, session_files, slots, models)


def _checks_first() -> dict:
    """Events that use the GPU run their checks at once (no Gradio concurrency limit: each check's cost is
    bounded) and hold one of the app's `GpuSlots` around their GPU part only; the slots bound the waiting."""
    return {"concurrency_limit": None}


class Previewer:
    """Computes and keeps previews (`gpu_preview` holding a GPU slot), from the frame's image features when an
    earlier preview left them in the app's `FeatureStore`; used by the previews and by Track on an image."""

    def __init__(self, limits: AppLimits, slots: GpuSlots) -> None:
        self.features, self.slots = FeatureStore(limits.feature_cache_bytes), slots

    def compute(self, session: AppSession, obj_id: int, frame: int, options: TrackOptions) -> Iterator[str]:
        """Yields the status line while it waits for the GPU; the preview goes into the session. Input errors
        are raised (AppInputError, INPUT_ERRORS)."""
        request = session.preview_request(obj_id, frame, options)
        key = features_key(request, frame)
        with self.slots.short_call() as turn:
            waited = False
            for wait in turn:
                waited = True
                yield wait.describe()
            if waited:  # the line no longer says that it waits
                yield COMPUTING_PREVIEW
            output = gpu_preview(request, self.features.get(key), session.models)
        self.features.put(output.features)
        if output.encoded:  # a whole preview: Track's estimate (sam2_plus/app/estimate.py)
            SPEEDS.preview(request.model, output.model_seconds)
        session.store_preview(obj_id, frame, options, output.record, output.candidates)


def _previews(ui: UI, previewer: Previewer) -> Callable[[Callable], None]:
    """`preview_on(trigger)`: after `trigger`, show the selected object's result on this frame when it has a
    prompt here without a fresh preview (`Previewer`), with its candidates when it has several."""

    def preview(session: Optional[AppSession], frame: int, model: str, motion: bool, show: bool):
        """While it waits for the GPU (a tracking job runs: the preview comes after the job's current frame),
        the status line says so (Gradio's progress shows only a timer on the frame view without a fraction)."""
        if session_problem(session) is not None or session.tracking:  # the event before it said so
            yield {ui.status: gr.skip()}
            return
        options = TrackOptions(model, bool(motion))
        target = session.preview_target(int(frame), options)
        if target is None:
            yield {ui.status: gr.skip()}
            return
        obj_id, frame = target
        try:
            for waiting in previewer.compute(session, obj_id, frame, options):
                yield {ui.status: waiting}
        except (AppInputError, *INPUT_ERRORS) as error:
            yield {ui.status: f"⚠️ Preview: {user_message(error)}"}
            return
        note = f"Preview of {session.objects[obj_id].name} on frame {frame} ({model})."
        yield {ui.view: session.render_view(frame, show), ui.status: note, ui.estimate: session.estimate(model),
               **_found_panel(ui, session, frame)}

    def idle(session: Optional[AppSession]) -> None:
        """Ends the chain during this session's own job: its prompts cannot change and its live frames own the
        frame view (previews of other sessions run between the job's frames: gpu_slots)."""
        if session is not None and session.tracking:
            raise gr.Error("tracking is running", visible=False, print_exception=False)

    def preview_on(trigger: Callable) -> None:
        trigger(idle, [ui.state], None, queue=False, **UI_ONLY).success(
            preview, [ui.state, ui.frame, ui.model, ui.motion, ui.show_results],
            [ui.view, ui.status, ui.estimate, *ui.found_panel], show_progress="full", show_progress_on=[ui.view],
            **_checks_first(), **UI_ONLY)  # busy on the frame

    return preview_on


def _wire_video(ui: UI, limits: AppLimits, session_files: SessionFiles, pages: PageTokens,
                models: ModelProvider) -> list[Any]:
    """A new video (an upload or an example) replaces the session; the video's x clears it, keeping its objects
    for the next video. Each asks first when the page would lose something (CONFIRM_JS). Returns the events
    that load or clear a video."""

    def ask_replacing(session: Optional[AppSession]) -> str:
        return "" if session is None else session.replacing_question()

    def ask_clearing(session: Optional[AppSession]) -> str:
        return "" if session is None else session.clearing_question()

    def load_video(old: Optional[AppSession], video: Optional[str], answer: str, request: gr.Request,
                   what: str = "video"):
        if answer == DECLINED or not video:
            return _declined(ui, old)
        try:
            session = AppSession.open(video, limits, models=models)
        except (AppInputError, *INPUT_ERRORS) as error:  # the page keeps what it had
            message = user_message(error).replace("The video cannot be used", f"The {what} cannot be used", 1)
            gr.Warning(f"⚠️ {message}")
            return {**_declined(ui, old), ui.status: f"⚠️ {message}"}
        if old is not None:
            session_files.discard(old.close)
            old.close()
        session_files.add(request.session_hash, session.close, needs_heartbeat=True)
        if session.closed:  # its client was already gone for good: nobody to show it to
            return {**_no_video(ui), ui.status: ENDED}
        pages.attach(request.session_hash, session)
        note = _loaded_note(session, "" if old is None else session.keep_objects_of(old))
        return {ui.state: session, ui.video: _video_value(session), **_media_controls(ui, session, 0),
                **_panel(ui, session, 0, True, note), **_no_results(ui)}

    def load_image(old: Optional[AppSession], image: Optional[str], answer: str, request: gr.Request):
        return load_video(old, image, answer, request, what="image")

    def load_example(old: Optional[AppSession], example: Optional[list], answer: str, request: gr.Request):
        if not example:
            return {}
        shown = load_video(old, example[0], answer, request)
        taken = answer != DECLINED and shown.get(ui.state) is not None
        return {**shown, ui.video: example[0] if taken else shown.get(ui.video, gr.skip())}

    clear_video = _video_clearing(ui, session_files)
    loaded = [ui.state, ui.video, ui.frame, ui.track, *_no_results(ui), *ui.panel]
    return [ui.video.upload(ask_replacing, [ui.state], [ui.question], queue=False, **UI_ONLY).then(
                load_video, [ui.state, ui.video, ui.question], loaded, js=CONFIRM_JS, **UI_ONLY),
            ui.examples.click(ask_replacing, [ui.state], [ui.question], queue=False, **UI_ONLY).then(
                load_example, [ui.state, ui.examples, ui.question], loaded, js=CONFIRM_JS, **UI_ONLY),
            ui.video.clear(ask_clearing, [ui.state], [ui.question], queue=False, **UI_ONLY).then(
                clear_video, [ui.state, ui.question], loaded, js=CONFIRM_JS, **UI_ONLY),
            ui.image.upload(ask_replacing, [ui.state], [ui.question], queue=False, **UI_ONLY).then(
                load_image, [ui.state, ui.image, ui.question], loaded, js=CONFIRM_JS, **UI_ONLY)]


def _video_clearing(ui: UI, session_files: SessionFiles) -> Callable[[Optional[AppSession], str], dict]:
    """The video's x (once confirmed): the session's video and files go, its objects wait for the next video."""

    def clear_video(session: Optional[AppSession], answer: str):
        if session is None or session.closed:
            return _no_video(ui)
        if answer == DECLINED:
            return _declined(ui, session)
        session_files.discard(session.close)
        session.clear_video()
        kept = (f"The video is cleared; its {len(session.objects)} object(s) and their prompts wait for the next "
                "video." if session.objects else "")
        return {**_no_video(ui), **_panel(ui, session, 0, True, kept), ui.state: session}

    return clear_video


def _loaded_note(session: AppSession, kept: str) -> str:
    """What a new video or image is, and what to do (or what was kept of the page's objects)."""
    info = session.info
    if session.is_image:
        return f"Image {info.width}x{info.height}. " + (kept or "Click on an object, or press Find objects.")
    return (f"{info.num_frames} frames, {info.width}x{info.height}, {info.fps:.2f} fps, {info.duration:.1f} s. "
            + (kept or "Click on the object to track."))


def _declined(ui: UI, session: Optional[AppSession]) -> dict:
    """The page as it was: its video back in the video component (the upload or x changed it), nothing else."""
    kept = session is not None and not session.closed
    what = "image" if kept and session.is_image else "video"
    return {ui.video: _video_value(session), ui.status: f"Kept the current {what}." if kept else gr.skip()}


def _video_value(session: Optional[AppSession]) -> Optional[str]:
    """What the video input shows for `session`: its video (nothing for an image, or without one)."""
    return None if session is None or session.closed or session.is_image else str(session.video)


def _media_controls(ui: UI, session: AppSession, frame: int, running: bool = False) -> dict:
    """The frame slider (fixed on an image) and Track, which segments an image."""
    frames = session.info.num_frames
    return {ui.frame: gr.Slider(0, max(1, frames - 1), value=frame, step=1, interactive=frames > 1 and not running),
            ui.track: gr.Button("Segment" if session.is_image else "Track", interactive=not running)}


def _no_results(ui: UI) -> dict:
    return {ui.result_video: None, ui.downloads: None, ui.summary: "", ui.progress: "",
            ui.review: gr.Column(visible=False), ui.timeline: None, ui.flag_note: ""}


def _no_video(ui: UI) -> dict:
    return {ui.state: None, ui.view: None, ui.frame: gr.Slider(0, 1, value=0, interactive=False),
            ui.track: gr.Button("Track", interactive=False), ui.objects: gr.Radio(choices=[], value=None),
            ui.objects_html: "", ui.name: "", ui.task: "mask", ui.effect: "none", ui.status: "", **_no_results(ui)}


def _wire_rejoin(ui: UI, limits: AppLimits, pages: PageTokens) -> None:
    """A page's load: it takes back the session of the page it reloads (PageTokens): the video and the frame
    view, the objects and prompts, the last results, and a running job, which it follows to its results."""

    def rejoin(tokens: Any, request: gr.Request):
        found = pages.rejoin(tokens, request.session_hash)
        session = found.session
        if session is None:
            ended = earlier_session_ended(limits.reconnect_seconds) if found.ended else gr.skip()
            yield {ui.tokens: found.tokens, ui.status: ended}
            return
        yield {ui.tokens: found.tokens, **_restored(ui, session)}
        if session.tracking and session.job is not None:
            try:
                yield from _follow_job(ui, session, session.job, session.view_frame, True)
            except gr.Error as error:  # the job failed: said where its progress showed
                yield {ui.progress: progress_html(f"⚠️ {error.message}")}
            yield _job_ended(ui, session)

    outputs = [ui.tokens, ui.state, ui.video, ui.frame, ui.track, ui.stop, ui.model, ui.motion, *ui.scene_inputs,
               *_no_results(ui), *ui.panel, ui.cutout_preview]
    gr.context.Context.root_block.load(rejoin, [ui.tokens], outputs, show_progress="minimal",
                                       show_progress_on=[ui.progress], **_checks_first(), **UI_ONLY)


def _restored(ui: UI, session: AppSession) -> dict:
    """A rejoined session on the page: as it was left, with a note of what came back."""
    if session.cleared:
        note = f"Rejoined your earlier session: the video was cleared; its {len(session.objects)} object(s) wait."
        return {**_no_video(ui), **_panel(ui, session, 0, True, note), ui.state: session}
    running, frame = session.tracking, session.view_frame
    parts = ["its video", f"its {len(session.objects)} object(s) and their prompts"]
    if running:
        parts.append("its running tracking job")
    elif session.results is not None:
        parts.append("its tracking results")
    note = "Rejoined your earlier session: " + ", ".join(parts) + "." + (f" {TRACKING_NOTE}" if running else "")
    restored = {ui.state: session, ui.video: _video_value(session), ui.stop: gr.Button(interactive=running),
                **_no_results(ui), **_media_controls(ui, session, frame, running),
                **_panel(ui, session, frame, True, note)}
    options = session.last_options
    if options is not None:
        restored.update({ui.model: options.model, ui.motion: options.motion_aware})
    restored.update(_scene_view(ui, session.scene))
    if running:
        restored[ui.progress] = progress_html("Rejoining the running job…")
    elif session.results is not None:
        restored.update(_results_view(ui, session, frame))
    elif session.image_results is not None:
        restored.update(_image_results_view(ui, session))
    return restored


def _scene_view(ui: UI, scene: SceneChoices) -> dict:
    """The page's choices for the whole frame as `scene` holds them (a rejoined page shows them again)."""
    background = scene.background
    takes = PARAMETERS.get(background.name, ())
    color = background.color or (0, 0, 0)
    return {ui.background: background.name, ui.feather: scene.feather, ui.export_formats: list(scene.export_formats),
            ui.background_strength: gr.Slider(value=background.strength, visible="strength" in takes),
            ui.background_color: gr.ColorPicker(value=hex_color(color), visible="color" in takes),
            ui.background_dim: gr.Slider(value=background.dim, visible="dim" in takes),
            ui.cutout_formats: gr.CheckboxGroup(value=list(scene.cutout), visible=background.name == "erase")}


def _job_ended(ui: UI, session: Optional[AppSession]) -> dict:
    """Track and the frame slider usable again (with a session to use), Stop not."""
    usable = session_problem(session) is None
    ended = {ui.track: gr.Button(interactive=usable), ui.stop: gr.Button(interactive=False),
             ui.status: session.found_note() if usable else "",
             ui.frame: gr.Slider(interactive=usable and session.info.num_frames > 1)}
    if usable:  # the objects the job found by itself join the list
        ended.update({ui.objects: gr.Radio(choices=session.object_choices(), value=session.selected),
                      ui.objects_html: session.objects_html()})
    return ended


def _wire_frame_browser(ui: UI, preview_on: Callable[[Callable], None]) -> None:
    """The frame slider, the results checkbox, and the options a preview depends on."""

    def show_frame(session: Optional[AppSession], frame: int, show: bool, tool: str):
        if session is None or session.cleared or session.tracking:  # a running job draws the live frames
            return {ui.view: gr.skip()}
        if session.closed:
            gr.Warning(ENDED)
            return {ui.view: gr.skip()}
        shown = {ui.view: session.render_view(int(frame), show), **_found_panel(ui, session, int(frame))}
        if tool == BRUSH:
            shown[ui.editor] = _editor_value(session, int(frame))
        if session.review is not None:
            shown.update({ui.timeline: session.render_timeline(int(frame)),
                          ui.flag_note: session.describe_flags(int(frame))})
        return shown

    for trigger in (ui.frame.change, ui.show_results.change):
        shown = trigger(show_frame, [*ui.edit_inputs, ui.tool],
                        [ui.view, ui.editor, ui.timeline, ui.flag_note, *ui.found_panel], show_progress="hidden",
                        trigger_mode="always_last", **UI_ONLY)
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
    """Add, remove, select and rename objects, and set the selected object's granularity."""

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

    inputs = ui.edit_inputs
    ui.add.click(_edit(ui, add_object), inputs, ui.panel, **UI_ONLY)
    ui.remove.click(_edit(ui, remove_object), inputs, ui.panel, **UI_ONLY)
    preview_on(ui.objects.input(_edit(ui, select_object), [*inputs, ui.objects], ui.panel, **UI_ONLY).then)
    ui.name.submit(_edit(ui, rename_object), [*inputs, ui.name], ui.panel, **UI_ONLY)
    preview_on(ui.task.input(_edit(ui, set_task), [*inputs, ui.task], ui.panel, **UI_ONLY).then)


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


def _wire_candidates(ui: UI, preview_on: Callable[[Callable], None]) -> None:
    """A click on one of the candidates under the frame view makes it the selected object's prompt there."""

    def pick(session: Optional[AppSession], frame: int, show: bool, evt: gr.SelectData) -> dict:
        return _edit(ui, lambda s, f: s.pick_candidate(f, int(evt.index)))(session, frame, show)

    preview_on(ui.candidates.select(pick, ui.edit_inputs, ui.panel, show_progress="hidden", **UI_ONLY).then)


def _wire_find(ui: UI, slots: GpuSlots, preview_on: Callable[[Callable], None]) -> None:
    """Find objects on the frame shown (a find_objects job on `gpu_job`, holding a GPU slot as a preview does); its proposals
    are drawn on the frame view until they are made objects (a click on one, Add all) or hidden."""

    def find(session: Optional[AppSession], frame: int, show: bool, model: str, density: str, *controls: Any):
        problem = session_problem(session)
        if problem is not None:
            gr.Warning(problem)
            yield {ui.status: f"⚠️ {problem}"}
            return
        try:
            choices = parse_find_choices(*controls)
            request = session.find_request(int(frame), model, choices, density)
            what = choices.looked_for(density)
            with slots.short_call() as turn:
                for wait in turn:
                    yield {ui.status: wait.describe().replace("the preview runs", "Find objects runs")}
                yield {ui.status: f"Finding objects on frame {int(frame)} ({what})…"}
                outcome = job_result(gpu_job(JobSpec("find_frame", request).in_folder(session.find_dir()),
                                             session.models))
        except (AppInputError, *INPUT_ERRORS) as error:
            yield {ui.status: f"⚠️ Find objects: {user_message(error)}"}
            return
        except Exception as error:  # out of memory, a failure of the model: said, and the page goes on
            logging.getLogger(__name__).exception("find objects failed")
            yield {ui.status: "⚠️ " + failure_message(error).replace("Tracking failed", "Find objects failed")}
            return
        note = session.set_found(found_on_frame(outcome.found, int(frame), what))
        yield _panel(ui, session, int(frame), show, note)

    def show_thresholds(mode: str) -> tuple:
        text = FIND_MODES.get(mode) == "text"
        return (gr.Textbox(visible=text), gr.Slider(visible=text), gr.Slider(visible=not text),
                gr.Slider(visible=not text))

    inputs = ui.edit_inputs
    ui.find_mode.change(show_thresholds, [ui.find_mode], [ui.find_phrases, ui.find_score, ui.find_iou,
                                                          ui.find_stability], queue=False, **UI_ONLY)
    ui.find.click(find, [*inputs, ui.model, ui.density, *ui.find_inputs], ui.panel, show_progress="full",
                  show_progress_on=[ui.view], **_checks_first(), **UI_ONLY)
    preview_on(ui.add_all.click(_edit(ui, lambda s, f: s.adopt_all(f)), inputs, ui.panel, **UI_ONLY).then)
    ui.hide_found.click(_edit(ui, lambda s, f: s.hide_found() or ""), inputs, ui.panel, **UI_ONLY)


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


def _wire_tracking(ui: UI, limits: AppLimits, slots: GpuSlots, previewer: Previewer) -> Any:
    """Track (a job from every prompt, streamed; on an image, its segmentation: `_segment_image`) and Stop;
    returns the tracking event."""

    def start(session: Optional[AppSession], *scene: Any):
        require(session)
        with user_errors():  # the page's effects and formats, for the job (and for re-renders of its results)
            session.scene = parse_scene(*scene)
        # the last run's results go: what shows from here on is this run's
        starting = describe_wait(slots.waiting) if slots.busy >= slots.slots else "Starting…"
        note = SEGMENTING_NOTE if session.is_image else TRACKING_NOTE
        return (gr.Button(interactive=False), gr.Button(interactive=not session.is_image), progress_html(starting),
                note, None, None, "", gr.Column(visible=False), gr.Slider(interactive=False))

    def run_track(session: Optional[AppSession], frame: int, model: str, motion: bool, show: bool, density: str,
                  *find_controls: Any, progress=gr.Progress()):
        session = require(session)
        try:
            if session.is_image:
                yield from _segment_image(ui, session, previewer, TrackOptions(model, bool(motion)), show)
                return
            with job_errors():
                settings = session.render_settings()
                find = session.tracking_find(parse_find_choices(*find_controls), density)
                options = TrackOptions(model, bool(motion), settings.export_formats, settings.effects, find)
            yield from _stream_job(ui, session, int(frame), options, show, limits,
                                   slots.runner(gpu_job, wait_reporter(progress)))
        except gr.Error as error:  # refused or failed: said where the progress shows; the chain goes on to finish
            gr.Warning(error.message)
            yield {ui.progress: progress_html(f"⚠️ {error.message}"), ui.view: gr.Image(label=VIEW_LABEL)}

    def finish(session: Optional[AppSession]) -> dict:
        return _job_ended(ui, session)

    def stop(session: Optional[AppSession]):
        if session is None or not session.tracking:
            return gr.skip()
        session.stop.set()
        return progress_html("Stopping after the current frame…")

    started = [ui.track, ui.stop, ui.progress, ui.status, ui.result_video, ui.downloads, ui.summary, ui.review,
               ui.frame]
    tracking = (ui.track.click(start, [ui.state, *ui.scene_inputs], started, **UI_ONLY)
                .success(run_track, [ui.state, ui.frame, ui.model, ui.motion, ui.show_results, ui.density,
                                     *ui.find_inputs],
                         [ui.view, ui.frame, ui.status, ui.progress, ui.result_video, ui.downloads, ui.summary,
                          ui.review, ui.timeline, ui.flag_note, ui.cutout_preview], show_progress="minimal",
                         show_progress_on=[ui.progress], **_checks_first(), **UI_ONLY))
    # Gradio runs `.then` listeners after a success only (not after an error), so finish is on both
    ended = [ui.track, ui.stop, ui.status, ui.frame, ui.objects, ui.objects_html]
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


def _wire_rerender(ui: UI) -> None:
    """The effects and export formats: the selected object's effect and its parameters, the background's, the
    feather, the cut-outs and the formats. Before tracking they are kept for Track; after it, each change
    re-renders the results from their stored masks without the model (`AppSession.rerender`), with its
    progress under the settings; a change during a run is applied to its results when it ends (the result
    video changes). The cut-out previews on the frame the slider shows."""
    rendered = [ui.rerender_progress, ui.result_video, ui.downloads, ui.cutout_preview]
    rerender = _rerender_handler(ui)

    def after_results(session: Optional[AppSession], video: Optional[str], frame: int, *scene: Any):
        """New results (a run's end, a re-render's): re-rendered when the page's choices changed meanwhile."""
        if not video:
            yield {ui.cutout_preview: gr.Image(value=None, visible=False)}
            return
        yield from rerender(session, frame, *scene)

    # unprocessed: a number typed past a slider's end gets the setting's own message (Gradio's check would
    # mark every output as failed), and the panel shows the value kept
    after = {"fn": rerender, "inputs": [ui.state, ui.frame, *ui.scene_inputs], "outputs": rendered,
             "show_progress": "hidden", "trigger_mode": "always_last", "preprocess": False, **UI_ONLY}
    inputs = ui.edit_inputs
    ui.effect.input(_edit(ui, lambda s, f, name: s.set_effect(name)), [*inputs, ui.effect], ui.panel,
                    **UI_ONLY).success(**after)
    for parameter, control in (("strength", ui.effect_strength), ("block", ui.effect_block),
                               ("color", ui.effect_color), ("thickness", ui.effect_thickness)):
        tune = _edit(ui, lambda s, f, value, p=parameter: s.set_effect_parameter(p, value))
        triggers = (control.release,) if isinstance(control, gr.Slider) else (control.release, control.submit,
                                                                              control.blur)
        for trigger in triggers:
            trigger(tune, [*inputs, control], ui.panel, preprocess=False, **UI_ONLY).success(**after)
    ui.background.input(_background_parameters(ui), [ui.background],
                        [ui.background_strength, ui.background_color, ui.background_dim, ui.cutout_formats],
                        queue=False, **UI_ONLY).then(**after)
    for control in (ui.background_strength, ui.background_dim, ui.feather):
        control.release(**after)
    for trigger in (ui.background_color.release, ui.background_color.submit, ui.background_color.blur,
                    ui.cutout_formats.input, ui.export_formats.input):
        trigger(**after)
    ui.result_video.change(after_results, [ui.state, ui.result_video, ui.frame, *ui.scene_inputs], rendered,
                           show_progress="hidden", trigger_mode="always_last", **UI_ONLY)
    ui.frame.change(lambda session, frame: _cutout_update(session, int(frame)), [ui.state, ui.frame],
                    [ui.cutout_preview], show_progress="hidden", trigger_mode="always_last", **UI_ONLY)


def _rerender_handler(ui: UI) -> Callable[..., Iterator[dict]]:
    """After a change of the effects or formats: the page's choices kept in the session, and the results
    re-rendered when they no longer show them (said and put off while a run is on)."""

    def rerender(session: Optional[AppSession], frame: int, *scene: Any) -> Iterator[dict]:
        if session_problem(session) is not None:
            yield {ui.rerender_progress: gr.skip()}
            return
        try:
            session.scene = parse_scene(*scene)
            stale = session.rerender_target() is not None
        except AppInputError as error:
            gr.Warning(str(error))
            yield {ui.rerender_progress: progress_html(f"⚠️ {error}")}
            return
        if session.tracking:
            yield {ui.rerender_progress: progress_html(RERENDER_AFTER_RUN)}
        elif stale:
            yield from _stream_rerender(ui, session, int(frame))
        else:
            yield {ui.cutout_preview: _cutout_update(session, int(frame))}

    return rerender


RERENDER_AFTER_RUN = ("Tracking is running: its results get these effects and formats when it ends (re-rendered "
                      "from the masks, without the model).")


def _background_parameters(ui: UI) -> Callable[[str], tuple]:
    """The background's parameters that its effect takes show, the cut-out formats when it is erased."""

    def show(name: str) -> tuple:
        takes = PARAMETERS.get(name, ())
        return (gr.Slider(visible="strength" in takes), gr.ColorPicker(visible="color" in takes),
                gr.Slider(visible="dim" in takes), gr.CheckboxGroup(visible=name == "erase"))

    return show


def _stream_rerender(ui: UI, session: AppSession, frame: int) -> Iterator[dict]:
    """A re-render's progress bar (every PROGRESS_INTERVAL), then its files on the page."""
    shown = 0.0
    try:
        for update in session.rerender():
            if update.result is not None:
                files = update.result.files
                yield {ui.rerender_progress: update.html(), ui.result_video: str(files.video),
                       ui.downloads: files.downloads(), ui.cutout_preview: _cutout_update(session, frame)}
                return
            if time.monotonic() - shown >= PROGRESS_INTERVAL:
                shown = time.monotonic()
                yield {ui.rerender_progress: update.html()}
    except (AppInputError, *INPUT_ERRORS) as error:
        gr.Warning(user_message(error))
        yield {ui.rerender_progress: progress_html(f"⚠️ {user_message(error)}")}
        return
    except Exception as error:
        logging.getLogger(__name__).exception("re-render failed")
        yield {ui.rerender_progress: progress_html(f"⚠️ {failure_message(error)}")}
        return
    stopped = RERENDER_AFTER_RUN if session.tracking else "Re-rendering with the newer settings…"
    yield {ui.rerender_progress: gr.skip() if session.closed else progress_html(stopped)}


def _cutout_update(session: Optional[AppSession], frame: int) -> gr.Image:
    """The cut-out preview of `frame`, hidden when the results have no cut-out."""
    image = None
    if session_problem(session) is None and not session.tracking:
        try:
            image = session.cutout_preview(frame)
        except (AppInputError, *INPUT_ERRORS):
            image = None
    return gr.Image(value=image, visible=image is not None)


def _reset_refused_frame(ui: UI, shown: Any) -> None:
    """A frame number that the slider refused (outside the video: Gradio says so) gives way to the frame that the
    view shows, in the slider and with a note."""

    def back(session: Optional[AppSession]):
        if session_problem(session) is not None:
            return gr.skip(), gr.skip()
        last = session.info.num_frames - 1
        return session.view_frame, f"⚠️ Frames go from 0 to {last}: back to frame {session.view_frame}."

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


def _segment_image(ui: UI, session: AppSession, previewer: Previewer, options: TrackOptions,
                   show: bool) -> Iterator[dict]:
    """Track on an image: every object's preview that is missing (image-predictor calls, one GPU slot each),
    then the files from them (`AppSession.segment_image`): mask PNGs, COCO JSON, the RGBA cut-out, ..."""
    with job_errors():
        missing = session.unpreviewed(options)
        for number, obj_id in enumerate(missing, 1):
            doing = f"Segmenting: {session.objects[obj_id].name} ({number} of {len(missing)})…"
            yield {ui.progress: progress_html(doing)}
            for waiting in previewer.compute(session, obj_id, 0, options):
                yield {ui.progress: progress_html(waiting)}
        session.segment_image(options)
    yield {ui.view: gr.Image(session.render_view(0, show), label=VIEW_LABEL), **_image_results_view(ui, session)}


def _image_results_view(ui: UI, session: AppSession) -> dict:
    """An image's last segmentation on the page: how it ended, the downloads, the summary and the cut-out."""
    found = session.image_results
    summary = "\n".join(f"{session.objects[obj.obj_id].name} (id {obj.obj_id}): {obj.area} pixels"
                        + ("" if obj.iou is None else f", predicted IoU {obj.iou:.2f}")
                        for obj in found.segmentation.objects if obj.obj_id in session.objects)
    return {ui.progress: progress_html(found.describe()), ui.summary: summary,
            ui.downloads: gr.File(found.downloads(), label=IMAGE_DOWNLOADS), ui.cutout_preview: _cutout_update(session, 0)}


def _stream_job(ui: UI, session: AppSession, frame: int, options: TrackOptions, show: bool, limits: AppLimits,
                run: JobRunner) -> Iterator[dict]:
    """A Track click's job (`run`: gpu_job holding a GPU slot), started in a thread of its own (it goes on
    when this page goes: a reloaded page rejoins it) and followed here (`_follow_job`)."""
    with job_errors():
        job = session.start_job(options, limits, run)
    yield from _follow_job(ui, session, job, frame, show, {ui.status: TRACKING_NOTE})  # over a preview's note


def _follow_job(ui: UI, session: AppSession, job: DetachedJob, frame: int, show: bool,
                first: Optional[dict] = None) -> Iterator[dict]:
    """A running job on a page: its progress bar, its live frames (labelled with their number; the frame slider
    follows them) with the timeline so far, then its results on the frame the slider shows. `first` goes
    with the first update."""
    first = dict(first or {})
    with job_errors():
        for update in job.follow():
            live = {}
            if update.frame is not None:
                frame = update.frame_idx
                live = {ui.view: gr.Image(session.enlarge(update.frame), label=f"Tracking: frame {frame} (live)"),
                        ui.frame: frame, ui.review: gr.Column(visible=True),
                        ui.timeline: session.render_timeline(frame, update.review)}
            yield {ui.progress: progress_html(describe_progress(update.progress), update.progress), **first, **live}
            first = {}
    result = job.result
    if session.closed or result is None:  # a new video replaced this session during the job
        return
    if result.failed:
        gr.Warning(result.describe())
    yield {ui.view: gr.Image(session.render_view(frame, show), label=VIEW_LABEL), ui.frame: frame,
           **_results_view(ui, session, frame)}


def _results_view(ui: UI, session: AppSession, frame: int) -> dict:
    """The session's last results on the page: how the job ended, the result video, the downloads, the summary
    and the review on `frame`."""
    result = session.results
    summary = "\n".join(line for line in result.summary.splitlines() if not line.startswith("wrote "))
    return {ui.progress: progress_html(result.describe()), ui.summary: summary,
            ui.result_video: str(result.files.video) if result.files.video else None,
            ui.downloads: gr.File(result.files.downloads() or None, label=VIDEO_DOWNLOADS),
            ui.review: gr.Column(visible=session.review is not None),
            ui.timeline: session.render_timeline(frame), ui.flag_note: session.describe_flags(frame)}


# --------------------------------------------------------------------------- Live


LIVE_STREAM_EVERY = 0.1  # seconds between two camera frames sent: at most 10 frames/s reach the server


def _wire_live(ui: UI, limits: AppLimits, session_files: SessionFiles, slots: GpuSlots,
               models: ModelProvider) -> None:
    """The Live tab: each camera frame goes to the page's live session (opened on the first frame), which answers at
    once with the newest drawn picture there is (the model runs on a loop of its own: `LiveSession`). Gradio's
    stream sends a frame every LIVE_STREAM_EVERY seconds and keeps only the newest one waiting while the handler
    runs; the handler never waits for the model, so it needs no concurrency limit (the model loop holds one of
    the app's GPU slots instead); time_limit ends the stream with the session's own limit."""

    def on_frame(live: Optional[LiveSession], image: Any, model: str, request: gr.Request):
        if image is None:
            return live, gr.skip(), "⚠️ No camera frame came: allow the camera in the browser and start it."
        with user_errors():
            live, _ = _fed(live, lambda: open_live(model, limits, slots, models, gpu_live, ui.session_files,
                                                    request.session_hash), lambda opened: opened.put_frame(image))
        picture = live.fresh_view()
        return live, gr.skip() if picture is None else picture, live.describe()

    ui.session_files = session_files
    ui.live_camera.stream(on_frame, [ui.live_state, ui.live_camera, ui.live_model],
                          [ui.live_state, ui.live_view, ui.live_status], stream_every=LIVE_STREAM_EVERY,
                          time_limit=int(limits.live_seconds) + 5, concurrency_limit=None, show_progress="hidden",
                          **UI_ONLY)
    _wire_live_prompts(ui)
    _wire_live_end(ui)


def _fed(live: Optional[LiveSession], open_new: Callable[[], LiveSession],
         feed: Callable[[LiveSession], Any]) -> tuple[LiveSession, Any]:
    """`feed(session)` on `live`, or on a session opened now, which is closed again when its first input is refused
    (it would hold a GPU slot unseen)."""
    opened = live is None
    live = open_new() if opened else live
    try:
        return live, feed(live)
    except BaseException:
        if opened:
            live.close()
        raise


def _live(live: Optional[LiveSession]) -> LiveSession:
    if live is None:
        raise gr.Error("No live session yet: start the camera (its button under the picture) and wait for the "
                       "first frame.", print_exception=False)
    return live


def _wire_live_prompts(ui: UI) -> None:
    """A click on the live picture prompts (the tool's click, or a box's corner); objects; Freeze."""

    def click(live: Optional[LiveSession], tool: str, task: str, evt: gr.SelectData):
        live = _live(live)
        with user_errors():
            live.click(float(evt.index[0]), float(evt.index[1]), tool, task)
        return live.describe()

    def new_object(live: Optional[LiveSession], task: str):
        live = _live(live)
        with user_errors():
            obj_id = live.new_object(task)
        return f"Object {obj_id} ({task}) added: click on the live picture to prompt it."

    def remove(live: Optional[LiveSession]):
        with user_errors():
            return _live(live).remove_selected()

    def freeze(live: Optional[LiveSession]):
        live = _live(live)
        live.frozen = not live.frozen
        return gr.Button("Go on" if live.frozen else "Freeze"), live.describe()

    ui.live_view.select(click, [ui.live_state, ui.live_tool, ui.live_task], [ui.live_status], **UI_ONLY)
    ui.live_new_object.click(new_object, [ui.live_state, ui.live_task], [ui.live_status], **UI_ONLY)
    ui.live_remove.click(remove, [ui.live_state], [ui.live_status], **UI_ONLY)
    ui.live_freeze.click(freeze, [ui.live_state], [ui.live_freeze, ui.live_status], **UI_ONLY)


def _wire_live_end(ui: UI) -> None:
    """Stop: the session ends and its files come; New session: the next camera frame opens another."""

    def stop(live: Optional[LiveSession]):
        files = _live_files(_live(live))
        return live.describe(), files.downloads()

    def restart(live: Optional[LiveSession]):
        if live is not None:
            live.close()
        return None, None, "", None, gr.Button("Freeze")

    ui.live_stop.click(stop, [ui.live_state], [ui.live_status, ui.live_files], **UI_ONLY)
    ui.live_restart.click(restart, [ui.live_state],
                          [ui.live_state, ui.live_view, ui.live_status, ui.live_files, ui.live_freeze], **UI_ONLY)


def _live_files(live: LiveSession) -> LiveFiles:
    files = live.stop()
    if live.error is not None:
        raise gr.Error(live.describe(), print_exception=False)
    if files is None or files.overlay is None:
        raise gr.Error("The live session processed no frame: there are no files.", print_exception=False)
    return files


LIVE_FRAME_DESCRIPTION = (
    "Live tracking from a script: send camera frames one call each (the client's session holds the live session; "
    "the first call opens it). frame: an image; prompts: the prompts JSON of /track with every prompt on this "
    "frame's index (0 for the first frame sent, then 1, 2, ...), or empty; options: JSON, e.g. {\"model\": "
    "\"sam2++\"} (read on the first call). Waits for this frame's result; returns the frame with the results drawn "
    "and the status JSON (frame, sent, processed, frames_per_second, latency_ms, objects, note, ended).")
LIVE_STOP_DESCRIPTION = ("End this client's live session; returns its overlay MP4, results ZIP and results JSON (as "
                         "/track's).")


def _wire_live_api(demo: gr.Blocks, limits: AppLimits, session_files: SessionFiles, slots: GpuSlots,
                   models: ModelProvider) -> None:
    """/live_frame and /live_stop (sam2_plus/app/live_page.py): hidden components like /track's; the live session
    is the client's (gr.State), as a page's is."""
    with gr.Column(visible=False):
        state = gr.State(None, delete_callback=close_live)
        frame_input = gr.Image(label="frame", type="numpy")
        prompts_input = gr.Textbox(label="prompts", value="")
        options_input = gr.Textbox(label="options", value="")
        drawn = gr.Image(label="drawn", type="numpy", format="png")
        status = gr.JSON(label="status")
        files = [gr.File(label=name) for name in ("overlay_mp4", "results_zip", "results_json")]
        send, stop = gr.Button("live_frame"), gr.Button("live_stop")

    def live_frame(live: Optional[LiveSession], frame: Any, prompts: str, options: str, request: gr.Request):
        with user_errors():
            live, picture = _fed(live, lambda: open_live(parse_options(options).model, limits, slots, models,
                                                         gpu_live, session_files, request.session_hash),
                                 lambda opened: api_frame(opened, frame, prompts or ""))
        return live, picture, api_status(live)

    def live_stop(live: Optional[LiveSession]):
        if live is None:
            raise gr.Error("No live session: send a frame with /live_frame first.", print_exception=False)
        found = _live_files(live)
        return None, str(found.overlay), str(found.export), str(found.results_json)

    send.click(live_frame, [state, frame_input, prompts_input, options_input], [state, drawn, status],
               api_name="live_frame",
               api_description=LIVE_FRAME_DESCRIPTION, **_checks_first())
    stop.click(live_stop, [state], [state, *files], api_name="live_stop", api_description=LIVE_STOP_DESCRIPTION,
               **_checks_first())


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
