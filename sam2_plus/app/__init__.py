"""The logic of the Gradio app (`app.py`), free of Gradio so that it can be tested on its own.

- `settings`: the models offered, the limits (`AppLimits`, from SAM2PLUS_* variables), the weights banner.
- `errors`: `AppInputError` and the one-line messages for people (`user_message`).
- `options`: the options JSON of a job (`TrackOptions`, `parse_options`).
- `gpu_time`: the GPU seconds a job asks ZeroGPU for, and where its constants come from.
- `plan`: every check of a job before the GPU is involved (`plan_job`).
- `gpu_slots`: the GPU slots every GPU event holds around its GPU part only, after its checks (`GpuSlots`).
- `jobs`: the tracking job over `sam2_plus.service.run_tracking`, streamed (`run_job`, `JobResult`).
- `preview`: one prompt on one frame through the predictor (`preview_prompt`).
- `editing`: one object's prompts as edited (clicks, boxes, masks, granularity); `masks`: masks from the
  brush and from PNGs; `drawing`: the prompts drawn on the frame view.
- `session`: one browser session (`AppSession`); `api`: one call of the endpoint /track (`api_job`).
- `workdirs`: the folders of sessions and API calls, their removal once a client is gone past the reconnect
  grace (`SessionFiles`, `HeartbeatWatch`), and the sweeper thread (`Sweeper`).
"""
