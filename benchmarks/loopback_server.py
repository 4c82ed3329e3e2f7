"""A loopback OpenAI-compatible chat server with configurable latency, for the benchmarks.

It is the test suite's server (``tests/loopback.py``) with a chat model that suits a
benchmark: the role comes from the model name (``therapist``, ``patient``, ``summarizer``),
turns are distinct in-role paragraphs of a realistic length (so no guard of the simulator
asks for a regeneration, and both clients make the same calls), and the summarizer answers
with the five sections. Deterministic: the same request always gets the same reply.

    python benchmarks/loopback_server.py --port 8000 --latency-ms 50
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.loopback import LoopbackServer, RecordedRequest, Reply, completion
from tests.serieskit import VOCABULARY

SENTENCES_PER_TURN = (3, 6)
WORDS_PER_SENTENCE = 11
IDLE_TIMEOUT_S = 600.0
"""Keep-alive connections stay open this long: a client starved of CPU at high concurrency
may leave a pooled connection idle for many seconds, and a benchmark measures, not retries."""
MODELS = {"therapist": "therapist", "patient": "patient", "summarizer": "summarizer"}
"""The model name to give each role (``--therapist-model therapist`` ...)."""


def paragraph(seed: str) -> str:
    """A few sentences of words drawn from the seed: unlike any other paragraph."""
    rng = random.Random(seed)
    sentences = [
        " ".join(rng.sample(VOCABULARY, WORDS_PER_SENTENCE)).capitalize() + "."
        for _ in range(rng.randint(*SENTENCES_PER_TURN))
    ]
    return " ".join(sentences)


def summary(transcript: str) -> str:
    tag = hashlib.sha256(transcript.encode()).hexdigest()[:12]
    return (
        f"Main topics discussed:\n- {paragraph(tag + 'a')}\n\n"
        f"Techniques/exercises introduced:\n- {paragraph(tag + 'b')}\n\n"
        f"Things that appeared helpful:\n- {paragraph(tag + 'c')}\n\n"
        f"Homework assigned:\n- {paragraph(tag + 'd')}\n\n"
        f"Insights/realizations:\n- {paragraph(tag + 'e')}"
    )


def handler(request: RecordedRequest) -> Reply:
    body = request.json
    messages = body.get("messages") or []
    last = str(messages[-1].get("content", "")) if messages else ""
    model = str(body.get("model") or "loopback-model")
    if model == MODELS["summarizer"]:
        text = summary(last)
    else:
        text = paragraph(f"{model}:{len(messages)}:{last[-200:]}")
    prompt_tokens = sum(len(str(m.get("content", "")).split()) + 4 for m in messages)
    completion_tokens = len(text.split())
    return completion(
        text,
        model=model,
        completion_id=f"chatcmpl-bench-{request.index}",
        usage={
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port (default 8000)")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="added to every reply (default 50)")
    args = parser.parse_args(argv)
    server = LoopbackServer(
        handler,
        latency_s=args.latency_ms / 1000,
        host=args.host,
        port=args.port,
        record=False,
        idle_timeout_s=IDLE_TIMEOUT_S,
    )
    with server:
        print(f"{server.base_url}", flush=True)
        try:
            while True:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
