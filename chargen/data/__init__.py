"""Text to ids: the vocabulary, which files a corpus is, reading them, the prepared cache, the split
and the batches."""
from .batches import StreamBatcher
from .cache import PreparedCorpus, prepare_corpus
from .corpus import Corpus, encode_file, load_corpus, split_files, split_ids
from .sources import FILE_SEPARATOR, Sources
from .text import read_raw, read_text
from .vocab import UNKNOWN, Vocab

__all__ = ["FILE_SEPARATOR", "UNKNOWN", "Corpus", "PreparedCorpus", "Sources", "StreamBatcher", "Vocab", "encode_file",
           "load_corpus", "prepare_corpus", "read_raw", "read_text", "split_files", "split_ids"]
