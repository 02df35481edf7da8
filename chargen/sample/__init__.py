"""Sampling: warm the state on the prime once, then the draw-and-feed rounds, carrying the state."""
from .draw import GumbelNoise, SampleConfig, filter_logits
from .output import stream_bytes, stream_text, training_records, write_raw, write_records, write_samples
from .preview import draw_sample
from .records import RecordSample, sample_records
from .sampler import Sampler, generate, generate_ids, sample_bytes, sample_texts, stop_after

__all__ = ["GumbelNoise", "RecordSample", "SampleConfig", "Sampler", "filter_logits", "generate", "generate_ids",
           "sample_bytes", "sample_records", "sample_texts", "stop_after", "draw_sample", "stream_bytes", "stream_text",
           "training_records", "write_raw", "write_records", "write_samples"]
