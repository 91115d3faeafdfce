"""The labs of the app, in the order the course teaches them: app.py builds the navigation from this list, the home
page its table of contents, and tests/test_lab_shape.py checks that every lab named here has its four modules.

Pages live in labs/, not pages/: Streamlit treats a folder named pages/ beside app.py as a legacy multipage app
until app.py first runs, so a student opening a lab's address on a fresh server got the lab without the router."""
from __future__ import annotations

from dataclasses import dataclass

from ..i18n import t


@dataclass(frozen=True)
class Lab:
    path: str  # relative to the repository root
    icon: str
    url_path: str  # what the browser's address bar shows: /attention, /sizing, ...; also its catalog section

    def text(self, lang: str, part: str) -> str:
        """``part`` ('title', 'blurb': one line for the home page, 'section': the course notes it makes
        interactive) in ``lang``."""
        return t(lang, f"nav.{self.url_path}.{part}")

    @property
    def title(self) -> str:
        return self.text("en", "title")

    @property
    def blurb(self) -> str:
        return self.text("en", "blurb")

    @property
    def section(self) -> str:
        return self.text("en", "section")


LABS: list[Lab] = [
    Lab("labs/attention.py", ":material/grid_on:", "attention"),
    Lab("labs/positional.py", ":material/waves:", "positional"),
    Lab("labs/sizing.py", ":material/calculate:", "sizing"),
    Lab("labs/internals.py", ":material/neurology:", "internals"),
    Lab("labs/generation.py", ":material/edit_note:", "generation"),
    Lab("labs/tokenizer.py", ":material/segment:", "tokenizer"),
    Lab("labs/training.py", ":material/model_training:", "training"),
    Lab("labs/inference.py", ":material/speed:", "inference"),
    Lab("labs/posttraining.py", ":material/school:", "posttraining"),
]
