"""Settings of ``stingy lm``: the corpus, the tokenizer, the teacher and student transformers,
their training, the distillation methods and the held-out evaluation.

:func:`load_lm_settings` lays a profile of ``lm_profiles.toml`` (``toy``, ``default``,
``gpu``) and any ``--set key=value`` over the defaults below and checks every value once;
nothing past it reads a table. The defaults are the ``default`` profile, sized for about 15
minutes on 2 CPU cores (docs/lm.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stingy.settings import (ALPHA, BATCH_SIZE, LEARNING_RATE, SEED, SIZE, STEPS, TEMPERATURE,
                             WEIGHT_DECAY, ListOf, Number, Settings, Text, from_table,
                             overlay_overrides, read_toml, section, setting)

PROFILES_FILE = Path(__file__).with_name("lm_profiles.toml")
VOCABULARY = Number(260, 65_536, integer=True)  # the 256 bytes and a few merges at least
KEPT = Number(1, integer=True)


@dataclass(frozen=True)
class CorpusSettings(Settings):
    """The standard library's own ``.py`` files (tests and site-packages left out), in an
    order fixed by a hash of their paths, up to ``max_bytes``; every ``held_out_every``-th file
    is held out for the metrics."""

    max_bytes: int = setting(3_000_000, SIZE)
    held_out_every: int = setting(10, Number(2, integer=True))


@dataclass(frozen=True)
class TokenizerSettings(Settings):
    """A byte-level BPE trained on the training files (tokenizers' BpeTrainer)."""

    vocab_size: int = setting(4096, VOCABULARY)
    min_frequency: int = setting(2, SIZE)


@dataclass(frozen=True)
class ModelSettings(Settings):
    """A causal pre-norm transformer: ``layers`` blocks of ``width`` with ``heads`` heads."""

    layers: int = setting(1, SIZE)
    width: int = setting(64, SIZE)
    heads: int = setting(2, SIZE)

    def check(self) -> None:
        if self.width % self.heads:
            raise ValueError(f"width must be a multiple of heads, got width={self.width}, "
                             f"heads={self.heads}")


@dataclass(frozen=True)
class TeacherModelSettings(ModelSettings):
    """The teacher's transformer: larger than the student's by default."""

    layers: int = setting(2, SIZE)
    width: int = setting(128, SIZE)
    heads: int = setting(4, SIZE)


@dataclass(frozen=True)
class TrainingSettings(Settings):
    """AdamW with a linear warm-up over ``warmup_steps`` and a cosine decay to 0; batches of
    ``batch_size`` blocks of the context length."""

    steps: int = setting(500, STEPS)
    batch_size: int = setting(16, BATCH_SIZE)
    learning_rate: float = setting(3e-3, LEARNING_RATE)
    weight_decay: float = setting(0.01, WEIGHT_DECAY)
    warmup_steps: int = setting(20, Number(0, integer=True))


@dataclass(frozen=True)
class TeacherTrainingSettings(TrainingSettings):
    """The teacher's training: on random windows of all the training text."""

    steps: int = setting(1000, STEPS)
    warmup_steps: int = setting(50, Number(0, integer=True))


@dataclass(frozen=True)
class DistillSettings(Settings):
    """The students: labels only, full KD (teacher online), stingy KD at each of ``top_k``,
    tail-bucket and uniform-floor KD at ``fix_k``, sampled KD at each of ``samples``; each
    trained from ``seeds`` seeds on the first ``train_blocks`` blocks of the training text."""

    temperature: float = setting(1.0, TEMPERATURE)
    alpha: float = setting(0.5, ALPHA)
    top_k: tuple[int, ...] = setting((1, 8, 64), ListOf(KEPT, min_length=1, distinct=True))
    fix_k: int = setting(8, KEPT)
    samples: tuple[int, ...] = setting((8, 64), ListOf(KEPT, min_length=1, distinct=True))
    seeds: int = setting(3, Number(2, integer=True))
    train_blocks: int = setting(2048, SIZE)
    sample_seed: int = setting(0, SEED)

    def check(self) -> None:
        if self.fix_k not in self.top_k:
            raise ValueError(f"distill.fix_k must be one of distill.top_k {list(self.top_k)}, "
                             f"got {self.fix_k}")


@dataclass(frozen=True)
class EvaluationSettings(Settings):
    """``blocks`` held-out blocks; the calibration error over ``ece_bins`` equal bins."""

    blocks: int = setting(128, SIZE)
    ece_bins: int = setting(15, Number(2, 1000, integer=True))


@dataclass(frozen=True)
class LmSettings(Settings):
    """Everything ``stingy lm`` runs from (see the module docstring)."""

    profile: str = setting("default", Text())
    context: int = setting(64, Number(2, 4096, integer=True))
    teacher_seed: int = setting(0, SEED)
    corpus: CorpusSettings = section(CorpusSettings)
    tokenizer: TokenizerSettings = section(TokenizerSettings)
    teacher: TeacherModelSettings = section(TeacherModelSettings)
    teacher_training: TeacherTrainingSettings = section(TeacherTrainingSettings)
    student: ModelSettings = section(ModelSettings)
    student_training: TrainingSettings = section(TrainingSettings)
    distill: DistillSettings = section(DistillSettings)
    evaluation: EvaluationSettings = section(EvaluationSettings)

    def check(self) -> None:
        largest = max(*self.distill.top_k, *self.distill.samples)
        if largest > self.tokenizer.vocab_size:
            raise ValueError(f"distill.top_k and distill.samples must be at most "
                             f"tokenizer.vocab_size = {self.tokenizer.vocab_size}, got {largest}")


def profile_names() -> tuple[str, ...]:
    return ("default", *read_toml(PROFILES_FILE, "lm profiles"))


def load_lm_settings(profile: str = "default", overrides=()) -> LmSettings:
    """The settings of ``profile`` with ``overrides`` (``["key=value", ...]``) laid over it;
    a ValueError names a bad profile, key or value."""
    profiles = read_toml(PROFILES_FILE, "lm profiles")
    if profile != "default" and profile not in profiles:
        raise ValueError(f"--profile must be one of {', '.join(profile_names())}, "
                         f"got {profile!r}")
    table = overlay_overrides({**profiles.get(profile, {}), "profile": profile}, overrides)
    return from_table(LmSettings, table, what="lm settings")
