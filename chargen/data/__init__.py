"""Text to ids: the vocabulary, which files a corpus is, reading them, the prepared cache, the split
and the batches."""
from .batches import StreamBatcher
from .cache import PreparedCorpus, prepare_corpus
from .corpus import Corpus, encode_file, load_corpus, split_files, split_ids
from .record_batches import RecordBatcher
from .records import RECORD_END, RecordCorpus, RecordSet, load_records, read_records
from .sources import FILE_SEPARATOR, Sources
from .text import read_raw, read_text
from .vocab import UNKNOWN, Vocab

__all__ = ["FILE_SEPARATOR", "RECORD_END", "UNKNOWN", "Corpus", "PreparedCorpus", "RecordBatcher", "RecordCorpus",
           "RecordSet", "Sources", "StreamBatcher", "Vocab", "encode_file", "load_corpus", "load_records",
           "prepare_corpus", "read_raw", "read_records", "read_text", "split_files", "split_ids"]
