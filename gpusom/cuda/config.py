"""Launch settings of the CUDA backend.

The host drivers read these at every call (never at import), so tests and benchmarks can patch
them: every kernel uses grid-stride loops and is correct for any launch size.
"""

#: Threads per block of every kernel; at most ``gpusom.cuda.kernels.MAX_THREADS``. When the
#: persistent kernel used 72 registers, 128 kept more of it resident than 256 (896 against 768
#: threads per SM) and was 12 % faster per step on a 1000x1000x64 map on an H200. At its 63
#: registers now both keep 1024 resident; not measured again on a device (benchmarks/RESULTS.md).
THREADS_PER_BLOCK = 128

#: Most bytes of dynamic shared memory per block for the two data rows of a training step
#: (``gpusom.cuda.kernels._sample_rows``); wider rows are read from global memory. 16 KiB holds
#: 2048 float32 or 1024 float64 features, and with the kernels' 8 KiB of static shared memory
#: still lets the eight blocks of 128 threads that 64 registers allow share a multiprocessor's
#: 228 KiB (H100, H200).
SHARED_ROWS_BYTES = 16384

#: Most blocks of one launch of the per-step training kernel and of the BMU re-rank.
MAX_BLOCKS = 1024

#: Training driver: ``"persistent"`` (one launch per slice of steps, grid-wide synchronisation
#: between steps) or ``"per_step"`` (one launch per step, the simple reference).
DRIVER = "persistent"

#: Blocks of the persistent kernel; None means as many as the device can run at once (its
#: cooperative-launch limit). numba's simulator always gets one (see ``gpusom.cuda``).
PERSISTENT_BLOCKS = None

#: Batched late steps (``gpusom.cuda.late``): ``"auto"`` where its cost model says they pay,
#: ``"always"`` (every float32 Euclidean step on complete samples: what the tests compare with
#: plain steps) or ``"never"``.
LATE_STEPS = "auto"

#: Steps per block of batched late steps; None lets the cost model choose.
LATE_BLOCK = None
