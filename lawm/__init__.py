"""lawm: latent-action world models learned from unlabeled video.

The library: config schema, procedural worlds and simulators, video I/O, frozen encoders, the
feature cache, models, training, planning and evaluation. It never imports `pipelines`.
"""

from lawm.runtime import set_openmp_defaults

set_openmp_defaults()  # before anything imports torch: libgomp reads them when it loads

__version__ = "0.1.0"
