import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from explorer.device import configure_process  # noqa: E402

# What app.py does at start: every test, whatever ran before it, computes with EXPLORER_TORCH_THREADS threads.
configure_process()


def shown_text(markdown: str) -> str:
    """What a student reads of a sentence the page escaped (explorer.safe_text.escape_markdown): the characters
    without their backslashes and invisible word joiners."""
    import re

    return re.sub(r"\\(.)", r"\1", markdown).replace("\u2060", "")


class RecordingSlot:
    """Stands in for the st.empty() a page tells a waiting student their place in: records what it would show."""

    def __init__(self):
        self.shown: list[str] = []
        self.cleared = False

    def info(self, text):
        self.shown.append(text)

    def empty(self):
        self.cleared = True
