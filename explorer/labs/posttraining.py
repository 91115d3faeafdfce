"""The post-training lab (issue 16, the course's 后训练 section): from a model that continues text to one that answers.

One page, four tabs, one open at a time: ``sft`` (which tokens supervised fine-tuning trains on, and a short
fine-tune), ``lora`` (low-rank adapters), ``losses`` (cross-entropy, KL to a reference, the DPO loss) and ``grpo``
(group-relative advantages). Each tab is a module of its own (``explorer/labs/posttraining_<tab>.py``); this one holds
what the page shares: which tab is open, checked like any other control, and the tabs in the order the course
teaches them.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..checks import choice
from ..i18n import Msg
from .outcome import Outcome, run_lab

# The order of the chooser: imitate answers (SFT), do it cheaply (LoRA), the losses that compare a policy with a
# reference, then learning from rewards (GRPO).
TABS = ("sft", "lora", "losses", "grpo")


@dataclass(frozen=True)
class PosttrainingSettings:
    tab: str = TABS[0]

    def validate(self) -> None:
        choice(Msg("posttraining.name.tab"), self.tab, TABS)


@dataclass(frozen=True)
class PosttrainingPage:
    """The open tab, its place among the tabs, and the one sentence that says what it shows."""

    tab: str
    tabs: tuple[str, ...]
    summary: Msg

    @property
    def step(self) -> int:
        """1-based: 'step 2 of 4' of the course's order."""
        return self.tabs.index(self.tab) + 1


def nearest(settings: PosttrainingSettings) -> PosttrainingSettings:
    return dataclasses.replace(settings, tab=settings.tab if settings.tab in TABS else TABS[0])


def _page(settings: PosttrainingSettings) -> PosttrainingPage:
    return PosttrainingPage(settings.tab, TABS, Msg(f"posttraining.summary.{settings.tab}"))


def run(settings: PosttrainingSettings) -> Outcome[PosttrainingSettings, PosttrainingPage]:
    """The page's shared part for ``settings``; an unknown tab opens the first one, with a sentence saying so."""
    return run_lab(settings, _page, nearest)
