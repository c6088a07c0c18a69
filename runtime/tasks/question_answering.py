"""question-answering: span extraction over overlapping context windows, scored like transformers.

Post-processing follows ``transformers.QuestionAnsweringPipeline`` step for step (softmax over the
window with non-context tokens masked, CLS zeroed, start x end outer product limited to
``max_answer_len``, answers with the same text merged across windows by adding their scores), so the
same logits give the same answers.  Contexts longer than one window are split with ``doc_stride``
tokens of overlap and every window is scored; nothing is truncated.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from tokenizers import Encoding

from ..errors import InputError
from ..outputs import QAOutput
from .base import Prepared, Task, as_text_list, check_top_k

logger = logging.getLogger(__name__)

_MASKED = np.float32(-10000.0)
_NO_NULL_ANSWER = 1000000.0  # "no null score seen yet", as transformers starts it


def _softmax_window(logits: np.ndarray, masked: np.ndarray) -> np.ndarray:
    values = np.where(masked, _MASKED, logits).astype(np.float32)
    values = np.exp(values - values.max())
    return values / values.sum()


def _top_spans(start: np.ndarray, end: np.ndarray, top_k: int, max_answer_len: int,
               allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``top_k`` best (start, end) token pairs with end >= start and length <= max_answer_len."""
    candidates = np.tril(np.triu(np.outer(start, end)), max_answer_len - 1)
    flat = candidates.flatten()
    if top_k == 1:
        order = np.array([np.argmax(flat)])
    elif len(flat) <= top_k:  # transformers uses `<` and then fails in argpartition when they are equal
        order = np.argsort(-flat)
    else:
        picked = np.argpartition(-flat, top_k)[0:top_k]
        order = picked[np.argsort(-flat[picked])]
    starts, ends = np.unravel_index(order, candidates.shape)
    # transformers tests membership against a 2-D mask's nonzero() tuple, whose row indices are all 0:
    # index 0 therefore always counts as allowed when anything does.  Kept so tie cases pick alike.
    usable = set(np.flatnonzero(allowed).tolist())
    if usable:
        usable.add(0)
    keep = np.array([int(s) in usable and int(e) in usable for s, e in zip(starts, ends)], dtype=bool)
    starts, ends = starts[keep], ends[keep]
    return starts, ends, candidates[starts, ends]


def _char_span(encoding: Encoding, start: int, end: int, align_to_words: bool) -> tuple[int, int]:
    """Character span in the context of tokens ``start``..``end``, widened to whole words if asked."""
    if align_to_words:
        start_word, end_word = encoding.token_to_word(start), encoding.token_to_word(end)
        if start_word is not None and end_word is not None:
            first = encoding.word_to_chars(start_word, sequence_index=1)
            last = encoding.word_to_chars(end_word, sequence_index=1)
            if first is not None and last is not None:
                return first[0], last[1]
    return encoding.offsets[start][0], encoding.offsets[end][1]


class QuestionAnswering(Task):
    """``qa(question=..., context=...)`` -> ``{"score", "start", "end", "answer"}``."""

    task = "question-answering"
    required_outputs = ("start_logits", "end_logits")

    def __call__(self, *args: Any, question: str | list[str] | None = None, context: str | list[str] | None = None,
                 inputs: Any = None, top_k: int = 1, doc_stride: int | None = None,
                 max_answer_len: int = 15, max_seq_len: int | None = None, max_question_len: int = 64,
                 handle_impossible_answer: bool = False, align_to_words: bool = True) -> QAOutput:
        """Answer each question from its context.

        The input forms transformers takes: ``qa(question=..., context=...)`` with strings or
        equal-length lists (a single context is shared by a list of questions), ``qa(QUESTION, CONTEXT)``,
        ``qa({"question": ..., "context": ...})`` or a list of such dicts (also as ``inputs=``).  One
        pair gives one answer dict (a list of ``top_k`` dicts when ``top_k`` > 1); several pairs give
        one such result per pair.  As in transformers, a list holding one pair counts as one pair.
        ``answer == context[start:end]`` always holds.

        Options as in transformers: ``doc_stride`` (default min(max_seq_len // 2, 128)) tokens of
        overlap between windows, ``max_seq_len`` (default min(model maximum, 384)) tokens per window,
        ``max_question_len`` (questions are cut to this many tokens), ``max_answer_len`` tokens per
        answer, ``handle_impossible_answer`` (adds the empty answer, scored by the CLS token) and
        ``align_to_words`` (widen spans to whole words).
        """
        prepared = self._prepare(args=args, question=question, context=context, inputs=inputs, top_k=top_k,
                                 doc_stride=doc_stride, max_answer_len=max_answer_len, max_seq_len=max_seq_len,
                                 max_question_len=max_question_len, handle_impossible_answer=handle_impossible_answer,
                                 align_to_words=align_to_words)
        results = self.run_prepared(prepared)
        return results[0] if prepared.single else results

    def _prepare(self, *, args: tuple[Any, ...], question: Any, context: Any, inputs: Any, top_k: Any,
                 doc_stride: Any, max_answer_len: Any, max_seq_len: Any, max_question_len: Any,
                 handle_impossible_answer: bool, align_to_words: bool) -> Prepared:
        questions, contexts, single = self._pairs(self._positional(args, inputs), question, context)
        top_k = check_top_k(top_k)
        if isinstance(max_answer_len, bool) or not isinstance(max_answer_len, int) or max_answer_len < 1:
            raise InputError(f"max_answer_len must be a positive integer, got {max_answer_len!r}")
        if max_seq_len is None:
            max_seq_len = min(self.max_sequence_length, 384)
        if not isinstance(max_seq_len, int) or not 1 <= max_seq_len <= self.max_sequence_length:
            raise InputError(f"max_seq_len must be an integer in 1..{self.max_sequence_length} (this model's maximum), "
                             f"got {max_seq_len!r}")
        if doc_stride is None:
            doc_stride = min(max_seq_len // 2, 128)
        if not isinstance(doc_stride, int) or not 0 <= doc_stride <= max_seq_len:
            raise InputError(f"doc_stride must be an integer in 0..max_seq_len ({max_seq_len}), got {doc_stride!r}")
        if not isinstance(max_question_len, int) or max_question_len < 1:
            raise InputError(f"max_question_len must be a positive integer, got {max_question_len!r}")
        pairs = tuple(zip(self.tokenizer.questions(questions, max_question_len=max_question_len),
                          self.tokenizer.tokenize(contexts)))
        lengths = tuple(self.tokenizer.window_tokens(q, c, max_seq_len=max_seq_len, doc_stride=doc_stride)
                        for q, c in pairs)
        options = {"top_k": top_k, "doc_stride": doc_stride, "max_answer_len": max_answer_len,
                   "max_seq_len": max_seq_len, "handle_impossible_answer": bool(handle_impossible_answer),
                   "align_to_words": bool(align_to_words)}
        return Prepared(self.task, options, pairs, tuple(contexts), lengths, single)

    def run_prepared(self, prepared: Prepared) -> list[Any]:
        """Every window of every pair through the model; each pair's answers from its windows."""
        options = prepared.options
        windows: list[Encoding] = []
        owners: list[int] = []
        for index, (question_tokens, context_tokens) in enumerate(prepared.inputs):
            encoded = self.tokenizer.windows(question_tokens, context_tokens, max_seq_len=options["max_seq_len"],
                                             doc_stride=options["doc_stride"])
            windows.extend(encoded)
            owners.extend([index] * len(encoded))
        logits = self.run_rows(windows, lambda out, enc: (out["start_logits"], out["end_logits"]))

        per_example: list[list[tuple[Encoding, np.ndarray, np.ndarray]]] = [[] for _ in prepared.inputs]
        for owner, encoding, (start, end) in zip(owners, windows, logits):
            per_example[owner].append((encoding, start, end))
        return [self._answers(context, windows_of, top_k=options["top_k"], max_answer_len=options["max_answer_len"],
                              handle_impossible_answer=options["handle_impossible_answer"],
                              align_to_words=options["align_to_words"])
                for context, windows_of in zip(prepared.texts, per_example)]

    @staticmethod
    def _positional(args: tuple[Any, ...], inputs: Any) -> Any:
        """Positional inputs read as transformers reads them: one value, or (question, context) strings."""
        if not args:
            return inputs
        if inputs is not None:
            raise InputError("pass the inputs either positionally or as inputs=, not both")
        if len(args) == 1:
            return args[0]
        if len(args) == 2 and all(isinstance(a, str) for a in args):
            return {"question": args[0], "context": args[1]}
        return list(args)

    @staticmethod
    def _pairs(inputs: Any, question: Any, context: Any) -> tuple[list[str], list[str], bool]:
        questions, contexts, single = QuestionAnswering._pair_lists(inputs, question, context)
        return questions, contexts, single or len(questions) == 1

    @staticmethod
    def _pair_lists(inputs: Any, question: Any, context: Any) -> tuple[list[str], list[str], bool]:
        if inputs is not None:
            if question is not None or context is not None:
                raise InputError("pass either inputs={'question', 'context'} or question=/context=, not both")
            items, single = ([inputs], True) if isinstance(inputs, dict) else (inputs, False)
            if not isinstance(items, (list, tuple)) or not all(isinstance(i, dict) for i in items):
                raise InputError("inputs must be a {'question': ..., 'context': ...} dict or a list of them, "
                                 f"got {type(inputs).__name__}")
            missing = [i for i, item in enumerate(items) if "question" not in item or "context" not in item]
            if missing:
                raise InputError(f"inputs {missing} lack a 'question' or 'context' key")
            question = [item["question"] for item in items]
            context = [item["context"] for item in items]
            questions, _ = as_text_list(question, "question")
            contexts, _ = as_text_list(context, "context")
            return questions, contexts, single
        if question is None or context is None:
            raise InputError("question answering needs question= and context= (strings or lists of strings)")
        questions, single_q = as_text_list(question, "question")
        contexts, single_c = as_text_list(context, "context")
        if single_c and not single_q:
            contexts = contexts * len(questions)
        elif single_q != single_c or len(questions) != len(contexts):
            raise InputError(f"got {len(questions)} question(s) and {len(contexts)} context(s); pass one context "
                             "for all questions, or lists of equal length")
        return questions, contexts, single_q

    def _answers(self, context: str, windows: list[tuple[Encoding, np.ndarray, np.ndarray]], *, top_k: int,
                 max_answer_len: int, handle_impossible_answer: bool, align_to_words: bool) -> Any:
        min_null_score = _NO_NULL_ANSWER
        answers: list[dict[str, Any]] = []
        candidates_per_window = top_k * 2 + 10 if align_to_words else top_k  # word alignment merges some
        cls_id = self.tokenizer.cls_id
        for encoding, start_logits, end_logits in windows:
            allowed = np.array([s == 1 for s in encoding.sequence_ids], dtype=bool)
            if cls_id is not None:  # CLS stays in the softmax: it scores the empty answer
                allowed |= np.asarray(encoding.ids) == cls_id
            start = _softmax_window(start_logits, ~allowed)
            end = _softmax_window(end_logits, ~allowed)
            if handle_impossible_answer:
                min_null_score = min(min_null_score, float(start[0] * end[0]))
            start[0] = end[0] = 0.0
            starts, ends, scores = _top_spans(start, end, candidates_per_window, max_answer_len, allowed)
            for s, e, score in zip(starts, ends, scores):
                first, last = _char_span(encoding, int(s), int(e), align_to_words)
                text = context[first:last]
                same = next((a for a in answers if a["answer"].lower() == text.lower()), None)
                if same is not None:
                    same["score"] += float(score)
                else:
                    answers.append({"score": float(score), "start": int(first), "end": int(last), "answer": text})
        if handle_impossible_answer:
            answers.append({"score": min_null_score, "start": 0, "end": 0, "answer": ""})
        answers = sorted(answers, key=lambda a: a["score"], reverse=True)[:top_k]
        if top_k == 1:
            return answers[0] if answers else {"score": 0.0, "start": 0, "end": 0, "answer": ""}
        return answers
