"""The micro model that plumbing tests track with (configs/test-micro.yaml): every block of SAM 2++ with the
real state-dict keys, tiny tensors, 128x128 input. Real-size networks stay for parity, manifest and fast-mode
tests (tests/conftest.py marks those `model`)."""

MICRO = "test-micro"
