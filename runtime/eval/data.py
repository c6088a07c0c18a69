"""Reading SQuAD-format JSON (v1.1 and v2.0) into questions and paragraphs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    context: str
    answers: tuple[str, ...]
    paragraph: int  # index into SquadData.paragraphs
    impossible: bool


@dataclass(frozen=True)
class SquadData:
    version: str
    questions: tuple[Question, ...]
    paragraphs: tuple[str, ...]

    @property
    def has_impossible(self) -> bool:
        return any(q.impossible for q in self.questions)


def read_squad(path: str | Path, *, limit: int | None = None) -> SquadData:
    """Read a SQuAD v1.1 / v2.0 file; ``limit`` keeps the first N questions (and their paragraphs)."""
    path = Path(path).expanduser()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read {str(path)!r}: {exc}; pass a SQuAD-format JSON file with --data") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{str(path)!r} is not JSON ({exc}); pass a SQuAD-format JSON file with --data") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("data"), list):
        raise InputError(f"{str(path)!r} is not SQuAD format: expected an object with a \"data\" list of articles, "
                         "each with \"paragraphs\" holding \"context\" and \"qas\"")
    questions: list[Question] = []
    paragraphs: list[str] = []
    try:
        for article in raw["data"]:
            for paragraph in article["paragraphs"]:
                if limit is not None and len(questions) >= limit:
                    break
                context = paragraph["context"]
                index = len(paragraphs)
                paragraphs.append(context)
                for qa in paragraph["qas"]:
                    if limit is not None and len(questions) >= limit:
                        break
                    impossible = bool(qa.get("is_impossible", False))
                    answers = tuple(a["text"] for a in qa.get("answers", ()))
                    questions.append(Question(str(qa["id"]), qa["question"], context, answers, index, impossible))
    except (KeyError, TypeError) as exc:
        raise InputError(f"{str(path)!r} is not SQuAD format ({type(exc).__name__}: {exc}); each article needs "
                         "\"paragraphs\", each paragraph \"context\" and \"qas\", each question \"id\", \"question\" "
                         "and \"answers\"") from exc
    if not questions:
        raise InputError(f"{str(path)!r} holds no questions")
    return SquadData(str(raw.get("version", "")), tuple(questions), tuple(paragraphs))
