"""What one request may cost: every lab's caps, in one place, with the sentences a student reads about them.

One server serves a whole class, so no single text box may be able to take it down. The costs that grow with the
input are tokens (time and the KV cache grow with T) and attention maps ((heads × T × T) numbers per layer), so
each lab bounds the tokens it reads before it computes anything, and says so next to the box.
``bench/bench_memory.py`` prints the peak memory of the worst input these caps allow.
"""
from __future__ import annotations

from .i18n import Msg

# Generation lab. A step keeps, for the attention view, every layer's row of the newest query over the context:
# n_layer × n_head × (prompt + generated) numbers per step, so a run holds about
# n_layer × n_head × max_new × (prompt + max_new / 2) of them (bench/bench_memory.py prints it at these caps).
GENERATION_MAX_PROMPT_TOKENS = 512
GENERATION_MAX_NEW_TOKENS = 256
# The prompt box's character limit. Streamlit drops a paste longer than this without a word, so the page states
# it; it is well above what GENERATION_MAX_PROMPT_TOKENS tokens usually take (2-3 characters of English a token),
# so a long prompt normally reaches the token check and gets its message.
GENERATION_PROMPT_MAX_CHARS = 4000
# Tokens one run may push through the model. With the KV cache a run reads prompt + new - 1 tokens, never near
# this; without it step i re-reads all prompt + i tokens, hundreds of times more at the caps above (minutes of a
# busy 2-core server's CPU for one click). The budget keeps the slow path a demonstration of tens of seconds at
# most; the KV-cache comparison replays without the cache under the same budget.
GENERATION_MAX_TOKENS_READ = 4_096
# A long prompt is read this many tokens at a time through the KV cache: the explicit attention of one chunk holds
# (heads × chunk × context) scores instead of (heads × context × context).
PREFILL_CHUNK_TOKENS = 128

# Model internals lab: every head's full (T × T) map is kept and drawn (30 layers × 9 heads for SmolLM2).
INTERNALS_MAX_TOKENS = 64

# Toy labs (attention, positional): a 32 × 32 heatmap is the largest that stays readable on a projector.
TOY_LAB_MAX_TOKENS = 32

# Tokenizer lab. Training a BPE costs, per merge, the chunks that hold the merged pair (explorer.bpe cuts chunks at 64
# characters), so a pasted corpus is capped in characters and in merges; bench/bench_bpe.py times 唐诗 (31k characters)
# at 200 merges. The sentence boxes only run the tokenizers, but every tokenizer's pieces are drawn as chips.
TOKENIZER_MAX_CORPUS_CHARS = 50_000
TOKENIZER_MAX_MERGES = 1_000
TOKENIZER_MAX_TEXT_CHARS = 1_000


def prompt_limits_note() -> Msg:
    """The generation lab's caps, said before anything is computed."""
    return Msg("generation.limits.note", prompt=GENERATION_MAX_PROMPT_TOKENS, new=GENERATION_MAX_NEW_TOKENS,
               read=GENERATION_MAX_TOKENS_READ, chars=GENERATION_PROMPT_MAX_CHARS)


def tokens_read(prompt_tokens: int, new_tokens: int, *, use_cache: bool) -> int:
    """Tokens run through the model to generate ``new_tokens`` after a prompt of ``prompt_tokens``."""
    if use_cache:
        return prompt_tokens + new_tokens - 1
    return prompt_tokens * new_tokens + new_tokens * (new_tokens - 1) // 2


def max_new_without_cache(prompt_tokens: int, budget: int = GENERATION_MAX_TOKENS_READ) -> int:
    """The most new tokens a run without the KV cache may generate after ``prompt_tokens`` within ``budget``
    (at least 1: one step reads the prompt once, as with the cache)."""
    n = 1
    while tokens_read(prompt_tokens, n + 1, use_cache=False) <= budget:
        n += 1
    return n


def no_cache_too_long(prompt_tokens: int, new_tokens: int) -> Msg | None:
    """Why a run without the KV cache is refused, or None when it fits the budget."""
    if tokens_read(prompt_tokens, new_tokens, use_cache=False) <= GENERATION_MAX_TOKENS_READ:
        return None
    return Msg("generation.limits.no_cache_too_long", new=new_tokens, prompt=prompt_tokens,
               read=tokens_read(prompt_tokens, new_tokens, use_cache=False), budget=GENERATION_MAX_TOKENS_READ,
               fits=max_new_without_cache(prompt_tokens))


def prompt_too_long(n_tokens: int, max_prompt_tokens: int = GENERATION_MAX_PROMPT_TOKENS) -> Msg:
    """Why a prompt is refused (not cut: the end of a prompt is what the model continues, and the start gives it
    its meaning, so neither can be dropped silently)."""
    return Msg("generation.limits.prompt_too_long", n=n_tokens, cap=max_prompt_tokens,
               over=n_tokens - max_prompt_tokens)
