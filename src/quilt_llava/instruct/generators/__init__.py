"""Generators of stage B, one module each, by command name."""

from __future__ import annotations

from quilt_llava.instruct.generators.abductive import AbductiveGenerator
from quilt_llava.instruct.generators.align import AlignGenerator
from quilt_llava.instruct.generators.base import Generator, GeneratorOptions
from quilt_llava.instruct.generators.conversation import ConversationGenerator
from quilt_llava.instruct.generators.detail import DetailGenerator
from quilt_llava.instruct.generators.diagnosis import DiagnosisGenerator
from quilt_llava.instruct.generators.medical_filter import FilterGenerator
from quilt_llava.instruct.generators.reasoning import ReasoningGenerator
from quilt_llava.instruct.generators.redcircle import RedCircleGenerator
from quilt_llava.instruct.generators.vqa import VQAGenerator

GENERATORS: dict[str, type[Generator]] = {
    g.name: g
    for g in (
        AlignGenerator,
        ConversationGenerator,
        DetailGenerator,
        DiagnosisGenerator,
        ReasoningGenerator,
        AbductiveGenerator,
        FilterGenerator,
        VQAGenerator,
        RedCircleGenerator,
    )
}

__all__ = ["GENERATORS", "Generator", "GeneratorOptions"]
