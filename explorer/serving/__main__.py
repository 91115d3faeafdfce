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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m explorer.serving", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", help="smollm2 (default), tiny-gpt or tiny-llama; repeatable")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8600)
    args = parser.parse_args(argv)
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
