"""wmlib: the library built, chapter by chapter, in *Working Memory in Large Language Models*.

Each module is named after the idea it teaches and is introduced by one chapter:

- :mod:`wmlib.kv_memory`   the KV cache's size per token, computed and measured (Chapter 1)
- :mod:`wmlib.knowledge`   closed-book facts and counterfactual contexts (Chapter 2)
- :mod:`wmlib.positional`  sinusoidal positional encodings and rotary embeddings, RoPE (Chapter 3)
- :mod:`wmlib.addressing`  NTM memory addressing, soft reads and erase/add writes (Chapter 4)
- :mod:`wmlib.distillation` knowledge-distillation losses with soft and hard targets (Chapter 4)
- :mod:`wmlib.attention`   scaled dot-product and multi-head attention (Chapter 5)
- :mod:`wmlib.transformer` encoder/decoder blocks and a small GPT (Chapter 5)
- :mod:`wmlib.synthetic`   synthetic working-memory tasks such as associative recall (Chapter 5)
- :mod:`wmlib.attention_maps` reading a pretrained model's attention weights; attention sinks (Chapter 6)
- :mod:`wmlib.induction`   induction heads: the repeated-random-tokens test, head ablation (Chapter 6)
- :mod:`wmlib.kv_cache`    the KV cache: cached decoding, memory per token, eviction policies (Chapter 7)
- :mod:`wmlib.memn2n`      end-to-end memory networks and ``wmlib babi`` (Chapter 8)
- :mod:`wmlib.copy_task`   the copy task, an LSTM baseline and a training loop (Chapter 9)
- :mod:`wmlib.ntm`         a Neural Turing Machine with an LSTM controller (Chapter 9)
- :mod:`wmlib.finetune`    fine-tuning an encoder for sentence classification (Chapters 10 and 11)
- :mod:`wmlib.student`     a smaller student distilled from a fine-tuned classifier; fair latency (Chapter 11)
- :mod:`wmlib.icl`         in-context classification: prompts, label scoring, calibration (Chapter 12)
- :mod:`wmlib.sentence_embeddings` mean-pooled sentence vectors from MiniLM (Chapters 12 and 13)
- :mod:`wmlib.customer_dialogues`  scripted multi-session support conversations (Chapter 13)
- :mod:`wmlib.conversation_memory` buffer, window, summary and retrieval memories (Chapter 13)
- :mod:`wmlib.probes`      working-memory probes: needle, lost in the middle, n-back, digit span (Chapter 14)
- :mod:`wmlib.stats`       intervals (Wilson, bootstrap), paired tests, verdict sentences (every chapter)
- :mod:`wmlib.models`      the book's pretrained models, offline first; any local folder or hub id, any dtype (Setup)
- :mod:`wmlib.lm`          one home for prompts (chat template, BOS, character offsets), scoring and greedy generation
- :mod:`wmlib.data`        data sets in a checksummed cache, and their loaders (Setup)
- :mod:`wmlib.viz`         attention heatmaps, an offline interactive attention view, other figures
- :mod:`wmlib.utils`       seeding, device choice, progress bars, timing
- :mod:`wmlib.cli`         the ``wmlib`` command line, one module per command (``wmlib --help``)
- :mod:`wmlib.exercises`   checkers for the exercises, one module per chapter
"""

__version__ = "0.1.0"
