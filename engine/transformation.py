"""The transformation each prototype undergoes, as numbers both implementations share.

The TorchScript model (:mod:`engine.model`) and the fused numba kernels (:mod:`engine.fusedmodel`) compute the
same six bounded parameters; their names, bounds and the shelves' sharpness live here, outside both, so that
the kernels (and everything on the CPU streaming path) import without torch.
"""

PARAMETER_NAMES = ("pitch", "gain", "low_freq", "low_gain", "high_freq", "high_gain")
PARAMETER_BOUNDS = (1.0, 0.5, 0.25, 0.25, 0.25, 0.25)
N_PARAMETERS = len(PARAMETER_NAMES)
SHELF_SOFTPLUS_BETA = 10.0  # sharpness of the shelves' knees (softplus beta)
#: The predictor's optional convolution along each frame's bands (engine.model.TransformationPredictor's
#: ``band_channels``): its width in bands, and how many bands it pools into one feature.
BAND_KERNEL_SIZE = 5
BAND_POOL = 4
