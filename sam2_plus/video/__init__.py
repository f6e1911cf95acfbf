"""The video engine: a tracking session over the model, frame by frame (SAM 2's video predictor)."""
