"""Compilation settings shared by every jitted kernel.

One place for the fastmath flags (``STYLE.md`` item 6): contraction into fused multiply-add and
signed-zero freedom help vectorisation; ``nnan``/``ninf`` are left out on purpose because
distances may legitimately overflow to inf on extreme (but finite) inputs.
"""

FASTMATH = {"contract", "nsz", "arcp"}

#: Steps handed to a backend per call; bounds the host memory of the sample order and schedules.
STEPS_PER_SLICE = 1 << 16

#: Soft cap on the temporary distance block of the batched analysis functions, in bytes.
ANALYSIS_BLOCK_BYTES = 32 * 1024 * 1024

#: CPU training: from this many features on, the BMU search is a partial distance search whose
#: first stage reads the leading ``PDS_HEAD_DIM`` features of every cell (gpusom.cpu.kernels).
PDS_MIN_DIM = 32
PDS_HEAD_DIM = 8
