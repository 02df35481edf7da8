"""Sampling: warm the state on the prime once, then the draw-and-feed rounds, carrying the state."""
from .draw import GumbelNoise, SampleConfig, filter_logits
from .records import RecordSample, sample_records
from .sampler import Sampler, generate, generate_ids, sample_bytes, sample_texts, stop_after

__all__ = ["GumbelNoise", "RecordSample", "SampleConfig", "Sampler", "filter_logits", "generate", "generate_ids",
           "sample_bytes", "sample_records", "sample_texts", "stop_after"]
