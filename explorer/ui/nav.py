"""The labs of the app, in the order the course teaches them: app.py builds the navigation from this list, the home
page its table of contents, and tests/test_lab_shape.py checks that every lab named here has its four modules.

Pages live in labs/, not pages/: Streamlit treats a folder named pages/ beside app.py as a legacy multipage app
until app.py first runs, so a student opening a lab's address on a fresh server got the lab without the router."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Lab:
    path: str  # relative to the repository root
    title: str
    icon: str
    blurb: str  # one line for the home page
    section: str  # the section of the course notes it makes interactive
    url_path: str  # what the browser's address bar shows: /attention, /sizing, ...


LABS: list[Lab] = [
    Lab("labs/attention.py", "Attention lab", ":material/grid_on:",
        "Type a sentence and follow it through Q, K, V, the scores, the mask and the softmax, head by head.",
        "Attention 机制 · Multi-Head Attention · Mask", "attention"),
    Lab("labs/positional.py", "Positional encoding lab", ":material/waves:",
        "Sinusoidal, learned, RoPE and ALiBi side by side, and why a bidirectional layer needs positions at all.",
        "Positional Encoding", "positional"),
    Lab("labs/sizing.py", "Model sizing lab", ":material/calculate:",
        "Exact parameter counts, memory and compute for GPT, BERT and LLaMA, and the course's table checked.",
        "GPT 系列模型的发展 · 模型规模", "sizing"),
    Lab("labs/internals.py", "Model internals lab", ":material/neurology:",
        "Trained weights (MiniLM; SmolLM2 from its 4-bit release): every layer's attention, head ablation, the "
        "logit lens.",
        "Decoder Only · Encoder", "internals"),
    Lab("labs/generation.py", "Generation lab", ":material/edit_note:",
        "Watch SmolLM2 (4-bit release, run in float32) write one token at a time: candidates, probabilities, "
        "sampling settings, KV cache.",
        "预训练任务——CLM · 推理", "generation"),
]
