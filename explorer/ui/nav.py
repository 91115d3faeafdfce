"""The labs of the app, in the order the course teaches them. app.py builds the navigation from this list; a lab
whose file is not there yet is left out, so labs can land one at a time."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Lab:
    path: str  # relative to the repository root
    title: str
    icon: str
    blurb: str  # one line for the home page
    section: str  # the section of the course notes it makes interactive
    url_path: str  # deliberately not the file's name: Streamlit would open pages/<name>.py on its own, without app.py


LABS: tuple[Lab, ...] = (
    Lab("pages/attention_lab.py", "Attention lab", ":material/grid_on:",
        "Type a sentence and follow it through Q, K, V, the scores, the mask and the softmax, head by head.",
        "Attention 机制 · Multi-Head Attention · Mask", "attention"),
    Lab("pages/positional_lab.py", "Positional encoding lab", ":material/waves:",
        "Sinusoidal, learned, RoPE and ALiBi side by side, and why attention needs positions at all.",
        "Positional Encoding", "positional"),
    Lab("pages/sizing_lab.py", "Model sizing lab", ":material/calculate:",
        "Exact parameter counts, memory and compute for GPT, BERT and LLaMA, and the course's table checked.",
        "GPT 系列模型的发展 · 模型规模", "sizing"),
    Lab("pages/internals_lab.py", "Model internals lab", ":material/neurology:",
        "Real weights (MiniLM, SmolLM2): every layer's attention, head ablation, the logit lens.",
        "Decoder Only · Encoder", "internals"),
    Lab("pages/generation_lab.py", "Generation lab", ":material/edit_note:",
        "Watch SmolLM2 write one token at a time: candidates, probabilities, sampling settings, KV cache.",
        "预训练任务——CLM · 推理", "generation"),
)


def available_labs() -> list[Lab]:
    return [lab for lab in LABS if (ROOT / lab.path).exists()]
