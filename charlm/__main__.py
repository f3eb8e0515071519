"""The library's command line.

``python -m charlm sample --checkpoint PATH --prompt TEXT``: print generated text.
``python -m charlm platform``: this machine's platform as a trial would record it (what decides
whether a published trial can be retrained here bit for bit).
"""

from __future__ import annotations

import argparse
import json
import sys

from charlm import platforms
from charlm.checkpoint import load_weights
from charlm.determinism import resolve_device
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
    p = sub.add_parser(
        "platform",
        help="print this machine's platform record (what decides bit-identity)",
        description="Print the platform record a trial run here would carry: the CPU (vendor, "
        "family, model, stepping, the instruction set torch dispatches to, native bf16), the "
        "thread count, the library versions. Two trials can be compared bit for bit only "
        "when their records agree (charlm/platforms.py).",
        formatter_class=_DefaultsFormatter,
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=2, help="the trial's intra-op thread count")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"), help="precision")
    p.add_argument("--json", action="store_true", help="the whole record as JSON")
    args = parser.parse_args(argv)
    if args.command == "platform":
        return _platform(args)
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


def _platform(args: argparse.Namespace) -> int:
    try:
        device = resolve_device(args.device)
    except (ValueError, RuntimeError) as exc:
        print(f"error: --device: {exc}", file=sys.stderr)
        return 2
    env = platforms.record(device, args.precision, args.threads)
    if args.json:
        print(json.dumps(env, indent=2, sort_keys=True))
        return 0
    print(platforms.describe(env))
    for key in platforms.BIT_KEYS[device.type]:
        print(f"  {key:<17} {env[key]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
