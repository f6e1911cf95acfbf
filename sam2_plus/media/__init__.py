"""Media pipeline: probe and decode sources, render overlays, encode MP4, export results.

Modules (import what you need; PyAV is only loaded for video files):

- ``decode``: ``probe``, ``FrameSource``, ``VideoInfo``, ``MediaError``, ``MediaLimits``, ``to_model_input``,
  ``open_container`` (PyAV input restricted to single-file video formats)
- ``render``: ``TrackRenderer``, ``color_for_id``, ``overlay_mask``, ``draw_box``, ``draw_point``
- ``encode``: ``VideoWriter`` (H.264 yuv420p MP4, faststart, optional audio)
- ``alpha``: ``AlphaVideoWriter`` (VP9 WebM / ProRes 4444 MOV with alpha), ``read_alpha_video``, RGBA PNGs
- ``export``: ``FrameRecord`` and the result writers/readers (JSON, mask ZIP, CSV, LaSOT, NPZ)
- ``rle``: COCO RLE encode/decode (pycocotools or a pure-numpy fallback)
"""
