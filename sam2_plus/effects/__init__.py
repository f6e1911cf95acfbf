"""Per-object effects and cut-outs with transparency, for people who edit video (README: Effects and cut-outs).

- ``settings``: ``EffectSettings`` / ``parse_effects``, the ``effects`` object of the options JSON
- ``render``: ``EffectRenderer`` (OpenCV): an effect frame and the chosen objects' alpha matte
- ``outputs``: ``EffectOutputs`` / ``EffectWriter``, the effect MP4 and the cut-outs of a tracking job
- ``cli``: the command line's effect flags
"""
