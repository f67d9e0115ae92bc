"""wmlib: the library built, chapter by chapter, in *Working Memory in Large Language Models*.

Each module is named after the idea it teaches and is introduced by one chapter:

- :mod:`wmlib.positional`  sinusoidal positional encodings and rotary embeddings, RoPE (Chapter 3)
- :mod:`wmlib.addressing`  NTM memory addressing, soft reads and erase/add writes (Chapter 4)
- :mod:`wmlib.distillation` knowledge-distillation losses with soft and hard targets (Chapter 4)
- :mod:`wmlib.attention`   scaled dot-product and multi-head attention (Chapter 5)
- :mod:`wmlib.transformer` encoder/decoder blocks and a small GPT (Chapter 5)
- :mod:`wmlib.synthetic`   synthetic working-memory tasks such as associative recall (Chapter 5)
- :mod:`wmlib.attention_maps` reading a pretrained model's attention weights; attention sinks (Chapter 6)
- :mod:`wmlib.induction`   induction heads: the repeated-random-tokens test, head ablation (Chapter 6)
- :mod:`wmlib.memn2n`      end-to-end memory networks on bAbI (Chapter 8; ``wmlib babi``)
- :mod:`wmlib.models`      the book's pretrained models, offline first (Setup)
- :mod:`wmlib.data`        data sets in a checksummed cache (Setup)
- :mod:`wmlib.viz`         attention heatmaps, an offline interactive attention view, other figures
- :mod:`wmlib.utils`       seeding, device choice, progress bars, timing
- :mod:`wmlib.exercises`   checkers for the exercises, one module per chapter
"""

__version__ = "0.1.0"
