"""minivideo: video generation from first principles (attention → VQ-VAE → VideoGPT, CogVideo)."""

from minivideo.utils import course_mode, fast_mode, pick_device, seed_everything

__version__ = "0.1.0"
__all__ = ["course_mode", "fast_mode", "pick_device", "seed_everything", "__version__"]
