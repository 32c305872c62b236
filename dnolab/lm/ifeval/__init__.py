"""Instruction following with verifiable constraints (IFEval-style), for real-model DNO runs.

Why: a real chat model needs a task whose quality a program can check offline, with room to
improve on its own teacher, and a judge with the intransitivity real preference data has.

* ``constraints``: the constraint kinds, each phrased by one fixed sentence and checked by a
  program; ``parse_constraints(prompt)`` reads them back from the prompt text alone.
* ``prompts``: prompts = request about a topic + one or two compatible constraints;
  ``make_prompt_table`` (seeded) gives prompt, gold (the teacher's answer), kinds and a
  ``heldout`` flag for the kinds kept out of training (``HELDOUT_KINDS``).
* ``corrector``: a second teacher (``prompts.teacher: corrector``) that corrects one of the
  student's own samples to meet the constraints, so that gold answers are nearly on-policy.
* ``judging``: ``PanelJudge`` (training: constraints met, a cut penalty, and a three-annotator
  majority vote that makes Condorcet cycles) and ``HeldoutJudge`` (evaluation only: the
  checker gated by a sense score, so nonsense that meets the constraints does not win).
"""

from .constraints import (
    INCOMPATIBLE,
    KIND_NAMES,
    KINDS,
    Constraint,
    compatible,
    constraints_from_spec,
    constraints_met,
    count_sentences,
    only_questions,
    parse_constraints,
    words,
)
from .corrector import corrected_answer, correcting_teacher
from .judging import (
    Features,
    HeldoutJudge,
    PanelJudge,
    cyclic_share,
    features,
    response_metrics,
    sense,
    win_matrix,
)
from .prompts import (
    HELDOUT_KINDS,
    TASKS,
    TEACHER_LAPSES,
    TOPICS,
    lapses,
    make_prompt,
    make_prompt_table,
    prompt_topic,
    teacher_answer,
    topic_keywords,
)

__all__ = [
    "HELDOUT_KINDS", "INCOMPATIBLE", "KINDS", "KIND_NAMES", "TASKS", "TEACHER_LAPSES", "TOPICS",
    "Constraint", "Features", "HeldoutJudge", "PanelJudge", "compatible", "constraints_from_spec",
    "constraints_met", "corrected_answer", "correcting_teacher", "count_sentences", "cyclic_share",
    "features", "lapses", "make_prompt", "make_prompt_table", "only_questions", "parse_constraints", "prompt_topic",
    "response_metrics", "sense", "teacher_answer", "topic_keywords", "win_matrix", "words",
]
