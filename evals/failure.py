"""Per-sample evaluation failures: recorded and counted, never folded silently into an average."""

from __future__ import annotations

# Reason codes a failure can carry (the report counts them per task and source).
REASONS = (
    "bad_prediction",   # not an (H, W, 3) uint8 image (or a prediction file that does not decode)
    "missing_prediction",  # predictions=DIR has no image for the sample
    "wrong_size",       # aspect ratio differs from the raw target's: resizing would distort it
    "decode_error",     # the codec rejected the image
    "no_valid_pixels",  # (unused since undecodable depth counts at min_depth; kept for old reports)
    "no_valid_truth",   # the raw target has no valid pixel under the protocol (nothing to score)
    "missing_truth",    # an eval sample without the raw target its task needs
)


class EvalFailure(ValueError):
    """One sample cannot be scored; `reason` is one of REASONS."""

    def __init__(self, reason: str, message: str) -> None:
        if reason not in REASONS:
            raise ValueError(f"EvalFailure: unknown reason {reason!r}; allowed: {list(REASONS)}")
        super().__init__(message)
        self.reason = reason
