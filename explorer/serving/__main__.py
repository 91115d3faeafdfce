"""``python -m explorer.serving --model smollm2 --port 8600``: the generation engine as its own process.

Serves the models named (``--model`` again for more) on an OpenAI-compatible API at http://HOST:PORT/v1 and
answers GET /health once they are loaded. Loopback by default: put it behind your own proxy to open it wider.
"""
from __future__ import annotations

import argparse
import os

import uvicorn

from ..device import configure_process
from .app import make_app
from .served import load_served

# On a machine the engine shares with the app's processes, a page that computes (a slider moved elsewhere in the
# class) gets a core first and the engine decodes on what is left: the engine's own process cannot see the pages,
# as the engine inside the app does (explorer.priority), so the operating system's scheduler does it. Under Linux a
# nice of 10 weighs about a tenth of 0 when both want a core; alone on its machine the engine loses nothing.
DEFAULT_NICE = 10


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m explorer.serving", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", help="smollm2 (default), tiny-gpt or tiny-llama; repeatable")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8600)
    parser.add_argument("--nice", type=int, default=DEFAULT_NICE, choices=range(0, 20), metavar="0..19",
                        help=f"how much lower the engine's CPU priority is than the app's (default {DEFAULT_NICE})")
    args = parser.parse_args(argv)
    if args.nice:
        os.nice(args.nice)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    configure_process()  # as the app's server does: torch's threads (EXPLORER_TORCH_THREADS) and memory
    try:
        served = load_served(args.model or ["smollm2"])
    except ValueError as err:  # a model name the lab does not have
        parser.error(str(err))
    print(f"serving {', '.join(served)} at http://{args.host}:{args.port}/v1", flush=True)
    # The keep-alive outlives a student's pause between two clicks, so a replica reuses its connection.
    uvicorn.run(make_app(served), host=args.host, port=args.port, log_level="warning", timeout_keep_alive=75)


if __name__ == "__main__":
    main()
