"""Sampling: warm the state on the prime once, then the draw-and-feed rounds, carrying the state."""
from .draw import GumbelNoise, SampleConfig, filter_logits
from .sampler import Sampler, generate, generate_ids, sample_bytes, sample_texts, stop_after

__all__ = ["GumbelNoise", "SampleConfig", "Sampler", "filter_logits", "generate", "generate_ids", "sample_bytes",
           "sample_texts", "stop_after"]
