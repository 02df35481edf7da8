"""Text to ids: the vocabulary, which files a corpus is, reading them, the prepared cache, the split
and the batches.

Words for runs of bytes, characters and ids, each with one meaning throughout chargen/:
  block   bytes as read from a file, at most utf8.BLOCK_BYTES (utf8.read_blocks).
  piece   bytes or text that end on a character boundary, so they decode on their own: a block so
          cut (utf8.pieces), or sampled text as it completes (sample.sampler.text_pieces).
  slab    about BLOCK_BYTES of a corpus's files read in order, pieces of one file or several with
          their separators: what preparing the cache counts or encodes at once (stream.slabs).
  stream  ids read in order with the state carried along (CUDA's and Python's file streams aside): a
          text without --records is one stream, which training cuts into batch_size parallel ones.
  window  T consecutive ids of a stream: a training step reads seq_len of every stream (eval's --window,
          random ones from a zero state).
  batch   the rows one forward pass reads: a training step's windows or padded records, or evaluation's.
  chunk   steps run at once with the state carried to the next chunk (evaluation; the sampler's rounds).
"""
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
