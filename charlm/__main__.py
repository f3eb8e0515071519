"""``python -m charlm sample --checkpoint PATH --prompt TEXT``: print generated text."""

from __future__ import annotations

import argparse
import sys

from charlm.checkpoint import load_weights
from charlm.sample import DEFAULT_TEMPERATURE, DEFAULT_TOKENS, sample_text


class _DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: X)`` only for options that have a default: not for required ones,
    nor for those whose default None means "not set" (their help says what happens then)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.required or action.default is None:
            return action.help
        return super()._get_help_string(action)


def main(argv: list[str] | None = None) -> int:
    """Command line of the library; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m charlm", description="The CharLM library's command line."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "sample",
        help="generate text from a weights.safetensors file",
        description="Print the prompt and sampled characters. With the defaults and a run's "
        "sample prompt it prints the sample that the run's report shows for that trial.",
        formatter_class=_DefaultsFormatter,
    )
    p.add_argument("--checkpoint", required=True, help="a trial's weights.safetensors")
    p.add_argument("--prompt", required=True, help="text to continue (characters of the corpus)")
    p.add_argument("--tokens", type=int, default=DEFAULT_TOKENS, help="characters to generate")
    p.add_argument(
        "--temperature", type=float, default=DEFAULT_TEMPERATURE, help="softmax temperature"
    )
    p.add_argument("--top-k", type=int, default=None, help="keep the k most likely (default: all)")
    p.add_argument("--seed", type=int, default=0, help="sampling generator seed")
    args = parser.parse_args(argv)
    try:
        model, chars = load_weights(args.checkpoint)
        text = sample_text(
            model, chars, args.prompt, args.tokens, args.temperature, args.top_k, args.seed
        )
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
