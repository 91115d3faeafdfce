"""OpenAI's ``stop`` strings on a text that arrives in pieces.

A stop string may begin in one token and end in a later one, so a stream may only send text that can no longer
turn out to be the start of a stop string; the rest is held back until the next piece decides it.
"""
from __future__ import annotations

from typing import Sequence


class StopText:
    """Feed the text pieces in order; each call returns what may be sent now. ``stopped`` turns True once a stop
    string appeared: the text before it has been returned, the stop string and everything after it never is."""

    def __init__(self, stops: Sequence[str]):
        self.stops = tuple(s for s in stops if s)
        self.text = ""  # everything fed so far
        self.sent = 0  # characters of ``text`` already returned
        self.stopped = False

    def feed(self, piece: str) -> str:
        if self.stopped:
            return ""
        self.text += piece
        hits = [i for i in (self.text.find(s, max(0, self.sent - len(s) + 1)) for s in self.stops) if i >= 0]
        if hits:
            self.stopped = True
            return self._send_until(min(hits))
        return self._send_until(len(self.text) - self._held())

    def flush(self) -> str:
        """At the end of the run: what was held back for a stop string that never came."""
        return "" if self.stopped else self._send_until(len(self.text))

    def _held(self) -> int:
        """Length of the longest end of the text that is the start of a stop string."""
        longest = 0
        for s in self.stops:
            for n in range(min(len(s) - 1, len(self.text)), longest, -1):
                if self.text.endswith(s[:n]):
                    longest = n
                    break
        return longest

    def _send_until(self, end: int) -> str:
        end = max(end, self.sent)
        out, self.sent = self.text[self.sent:end], end
        return out
