"""Compilation settings shared by every jitted kernel.

One place for the fastmath flags: contraction into fused multiply-add and
signed-zero freedom help vectorisation; ``nnan``/``ninf`` are left out on purpose because
distances may legitimately overflow to inf on extreme (but finite) inputs.
"""

FASTMATH = {"contract", "nsz", "arcp"}

#: For reductions whose inputs are finite by construction (callers guarantee it): lets LLVM turn
#: a float min into a vector reduction.
FINITE_FASTMATH = FASTMATH | {"nnan", "ninf", "reassoc"}

#: Most steps handed to a backend per call; bounds the host memory of the sample order and
#: schedules.
STEPS_PER_SLICE = 1 << 16

#: Steps of a run's first slice, which is timed to size the following ones; small, because it
#: also pays for loading the kernels and a huge map may take milliseconds per step.
FIRST_SLICE_STEPS = 128

#: Target duration of one slice in seconds: Ctrl-C is honoured at slice boundaries, so this is
#: how long an interrupt waits at most (about); the per-slice overhead stays well under 1%.
SLICE_SECONDS = 0.2

#: With ``verbose=True``, a run expected (from the pace of its slices after the first) to take
#: longer than this many seconds shows a progress bar.
PROGRESS_MIN_SECONDS = 1.0

#: Soft cap on the temporary distance block of the batched analysis functions, in bytes.
ANALYSIS_BLOCK_BYTES = 32 * 1024 * 1024

#: CPU searches whose float32 inputs take at most this many bytes as float64 run in float64
#: (gpusom.cpu.search): the copies cost under a millisecond, a compiled re-rank 0.6-1.5 s.
ONE_DTYPE_BYTES = 4 * 1024 * 1024

#: CPU training: from this many features on, the BMU search is a partial distance search whose
#: first stage reads the leading ``PDS_HEAD_DIM`` features of every cell (gpusom.cpu.kernels).
PDS_MIN_DIM = 32
PDS_HEAD_DIM = 8
