"""Still images: segment objects from prompts, find objects automatically, write the results.

    python -m sam2_plus.segment photo.jpg --prompts prompts.json --out results/
    python -m sam2_plus.segment photo.jpg --everything --density fine --out proposals/

- inputs.py: the image (or a video's frame) and the options, checked;
- still.py: `segment_image` (the prompts JSON on a one-frame video; three candidates for a lone click);
- proposals.py: `find_objects` (the automatic mask generator's masks as numbered proposals);
- writers.py: mask PNGs, RGBA cut-outs, COCO JSON, results / proposals JSON and their ZIP;
- runs.py: the two jobs, checked then run (the CLI's and the app's); models.py: where they get the network;
- cli.py: the command line.
"""

from .inputs import (DENSITIES, FindOptions, SegmentOptions, StillImage, parse_find_options, parse_segment_options,
                     read_frame, read_image)
from .proposals import MaskGenerator, Proposal, find_objects
from .runs import (FindOutcome, FindRequest, SegmentOutcome, SegmentRequest, prepare_find, prepare_segment,
                   run_find_objects, run_segment_image)
from .still import Candidate, ImagePredictorLike, ImageSegmentation, ObjectSegmentation, segment_image
from .writers import WrittenFiles, write_proposals, write_segmentation

__all__ = ["DENSITIES", "Candidate", "FindOptions", "FindOutcome", "FindRequest", "ImagePredictorLike",
           "ImageSegmentation", "MaskGenerator", "ObjectSegmentation", "Proposal", "SegmentOptions",
           "SegmentOutcome", "SegmentRequest", "StillImage", "WrittenFiles", "find_objects", "parse_find_options",
           "parse_segment_options", "prepare_find", "prepare_segment", "read_frame", "read_image",
           "run_find_objects", "run_segment_image", "segment_image", "write_proposals", "write_segmentation"]
