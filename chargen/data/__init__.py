"""Text to ids: the vocabulary, reading files, the prepared cache, the split and the batches."""
from .batches import StreamBatcher
from .cache import PreparedCorpus, prepare_corpus
from .corpus import Corpus, encode_file, load_corpus, split_ids
from .text import read_raw, read_text
from .vocab import UNKNOWN, Vocab

__all__ = ["UNKNOWN", "Corpus", "PreparedCorpus", "StreamBatcher", "Vocab", "encode_file", "load_corpus",
           "prepare_corpus", "read_raw", "read_text", "split_ids"]
