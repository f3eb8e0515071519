"""``python -m reproduce reference import``: the study's raw data into ``artifacts/reference/``;
``python -m reproduce reference trials DIR``: a study-protocol sweep trial by trial beside the
study's trials of the same configuration (:mod:`reproduce.studytrials`).

``import`` writes ``study-raw.json`` (:mod:`reproduce.rawdata.importer`) and ``provenance.json``
(:mod:`reproduce.rawdata.provenance`) from a copy of the study's repository, atomically, each
checked against its schema before it is written. The same copy always gives the same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

from charlm.io import atomic_write_text
from reproduce import results, terminal
from reproduce.options import add_data_option
from reproduce.rawdata import findings, importer, markdown, provenance, selfpd, step0

__all__ = [
    "AUDIT",
    "DEFAULT_SOURCE",
    "PROVENANCE",
    "RAW",
    "REPORT_REFERENCE",
    "audit_markdown",
    "import_reference",
    "register",
]

RAW = "study-raw.json"
PROVENANCE = provenance.FILE
AUDIT = "audit.md"
REPORT_REFERENCE = "charlm-full-20251208.json"  # the report's own numbers, beside the raw data
REPO = Path(__file__).resolve().parents[2]
DEFAULT_SOURCE = REPO.parent / "shared" / "original-study"
DEFAULT_OUT = REPO / "artifacts" / "reference"


def provenance_text(raw_text: str, store: step0.Store | None = None) -> str:
    """provenance.json's text for study-raw.json's text (its digest is recorded), with the
    step-0 losses recomputed in ``store`` (:mod:`reproduce.rawdata.step0`), if given."""
    raw = json.loads(raw_text)
    digest = hashlib.sha256(raw_text.encode("utf-8")).hexdigest()
    doc = provenance.build(raw, RAW, digest, store.lookup if store is not None else None)
    try:
        results.validate(doc, provenance.SCHEMA)
    except ValueError as exc:
        raise ValueError(f"provenance: {exc}") from None
    return importer.dumps(doc)


def load_findings(raw_path: str | Path) -> tuple[dict, dict]:
    """The findings of :mod:`reproduce.rawdata.findings` for a study-raw.json, with
    provenance.json and the report's reference file read from the same directory.

    Raises:
        ValueError: a file is missing or invalid (one line).
    """
    raw_path = Path(raw_path)
    raw = importer.load(raw_path)
    prov_path, ref_path = raw_path.with_name(PROVENANCE), raw_path.with_name(REPORT_REFERENCE)
    for path in (prov_path, ref_path):
        if not path.is_file():
            raise ValueError(f"{path}: missing (it belongs beside {raw_path.name})")
    prov = json.loads(prov_path.read_text(encoding="utf-8"))
    results.validate(prov, provenance.SCHEMA)
    from reproduce import audit

    reference = audit.load_document(ref_path)
    return findings.collect(raw, prov, reference, _self_pd_doc(raw_path.parent)), prov


def _self_pd_doc(directory: Path) -> dict | None:
    """self-pd.json of ``directory`` (schema-checked), or None where it was not measured."""
    path = directory / selfpd.FILE
    if not path.is_file():
        return None
    doc = json.loads(path.read_text(encoding="utf-8"))
    try:
        results.validate(doc, selfpd.SCHEMA)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    return doc


def audit_markdown(raw_path: str | Path, width: int = 80) -> str:
    """audit.md of the raw data in ``raw_path``'s directory, wrapped to ``width``."""
    found, prov = load_findings(raw_path)
    return markdown.markdown(found, prov, width)


def import_reference(source: str | Path, out: str | Path) -> dict[str, str]:
    """Build study-raw.json, provenance.json and audit.md from the study's copy at ``source``
    into ``out``, and set the ``raw_data`` verdicts of the report's reference file there;
    provenance uses the recomputed step-0 losses stored in ``out`` (step0-recomputed.json).

    Returns:
        file name -> text written.

    Raises:
        ValueError: the copy is missing a file or a file cannot be parsed (one line).
    """
    out = Path(out)
    if not out.is_dir():
        raise ValueError(f"{out}: no such directory (create it or give --out)")
    reference_path = out / REPORT_REFERENCE
    if not reference_path.is_file():
        raise ValueError(f"{reference_path}: missing (the report's reference file goes beside)")
    from reproduce import audit

    reference = audit.load_document(reference_path)
    raw_text = importer.dumps(importer.build(source))
    prov_text = provenance_text(raw_text, step0.Store(out / step0.FILE))
    prov = json.loads(prov_text)
    found = findings.collect(json.loads(raw_text), prov, reference, _self_pd_doc(out))
    texts = {  # every text is made (and checked) before any file is written
        RAW: raw_text,
        PROVENANCE: prov_text,
        AUDIT: markdown.markdown(found, prov),
        REPORT_REFERENCE: _with_raw_verdicts(reference_path, raw_text, found),
    }
    for name, text in texts.items():
        atomic_write_text(out / name, text)
    return texts


def _with_raw_verdicts(reference_path: Path, raw_text: str, found: dict) -> str:
    """The report's reference file with its ``raw_data`` section (the verdicts of the raw
    data, so that they travel with the reference into every report rendered with it) set;
    everything else as it was (the file's own layout: 2-space JSON, UTF-8)."""
    reference = json.loads(reference_path.read_text(encoding="utf-8"))
    reference["raw_data"] = {
        "file": RAW,
        "sha256": hashlib.sha256(raw_text.encode("utf-8")).hexdigest(),
        "audit": AUDIT,
        "verdicts": found["verdicts"],
    }
    from reproduce import audit

    audit.validate_reference(reference, str(reference_path))
    return json.dumps(reference, indent=2, ensure_ascii=False) + "\n"


def _import(args: argparse.Namespace) -> int:
    texts = import_reference(args.source, args.out)
    prov = json.loads(texts[PROVENANCE])["summary"]
    lines = [
        f"wrote {', '.join(texts)} in {args.out} from {args.source}",
        f"provenance of {prov['runs']} runs: {prov['identified']} identified, "
        f"{prov['ambiguous']} ambiguous, {prov['unidentified']} unidentified; recomputed "
        f"step-0 losses {prov['step0_recomputed']}",
    ]
    for line in lines:
        print("\n".join(terminal.wrap(line, terminal.width(), indent="  ", first="")))
    return 0


def _step0(args: argparse.Namespace) -> int:
    out = Path(args.out)
    raw_path = out / RAW
    if not raw_path.is_file():
        raise ValueError(f"{raw_path}: missing; run python -m reproduce reference import first")
    raw = importer.load(raw_path)
    store = step0.Store(out / step0.FILE)
    items = step0.needed(raw)
    if args.configs:
        unknown = sorted(set(args.configs) - {c["name"] for c in provenance.candidates(raw)})
        if unknown:
            raise ValueError(
                f"--configs: unknown {', '.join(unknown)}; the study's are "
                + ", ".join(c["name"] for c in provenance.candidates(raw))
            )
        items = [i for i in items if i["config"] in args.configs]
    planned = _store_elsewhere(args, items, store)
    todo = [
        i
        for i in items
        if store.lookup(i, i["activation"], i["seed"]) is None and step0.key(i) not in planned
    ]
    line = (
        f"{len(items)} step-0 evaluations can decide provenance; {len(items) - len(todo)} "
        f"stored in {store.path}"
    )
    if planned:
        line += f" ({len(planned)} {'to be' if args.dry_run else 'just'} stored by this command)"
    if not todo:
        _say(f"{line}; nothing to compute")
        return 0
    rate, basis = store.seconds_per_cost()
    _say(f"{line}, {len(todo)} to compute (cheapest first); {basis}:")
    for item in todo:
        guess = "" if rate is None else f", ~{step0.cost(item) * rate / 60:.0f} min"
        print(f"  {_name(item)}: {2 * item['eval_iters']} forward batches{guess}")
    if args.dry_run:
        return 0
    if args.parity or args.trials:  # storing never starts hours of evaluations
        flags = " and ".join(
            f for f, v in (("--parity", args.parity), ("--trials", args.trials)) if v
        )
        _say(f"with {flags} nothing is computed: run the command without it to compute these")
        return 0
    from charlm.data import Corpus, resolve_data_path
    from reproduce.parity import BatchProgress

    corpus = Corpus.load(resolve_data_path(args.data))
    started = time.monotonic()
    for done, item in enumerate(todo):
        if args.time_limit is not None and time.monotonic() - started > 60 * args.time_limit:
            _say(f"--time-limit reached: {len(todo) - done} left; run the command again")
            break
        progress = BatchProgress(_name(item), 2 * item["eval_iters"])
        try:
            entry = step0.compute(item, corpus, on_batch=progress)
        finally:
            progress.close()
        store.add(entry)
        print(
            f"{_name(item)}: train {entry['train_loss']:.6f}  val {entry['val_loss']:.6f}  "
            f"({entry['seconds']:.0f} s)"
        )
    _say("python -m reproduce reference import uses them in provenance.json")
    return 0


def _store_elsewhere(args: argparse.Namespace, items: list[dict], store: step0.Store) -> set:
    """Store the evaluations of ``items`` that ``--parity`` files and ``--trials`` directories
    hold and the store lacks (with ``--dry-run`` only list them), one line each and one line per
    source; returns their keys (:func:`step0.key`).

    Raises:
        ValueError: before anything is stored, when one of them disagrees with a stored
            evaluation or with another source's (:func:`step0.disagreement`), or a source
            cannot be read.
    """
    new: dict[tuple, tuple[dict, str]] = {}  # key -> (entry, its source)
    lines = []
    for entries, origin, note in _computed_elsewhere(args, items):
        fresh = agree = 0
        for entry in entries:
            key = step0.key(entry)
            earlier = store.entries.get(key) or new.get(key, (None,))[0]
            if earlier is None:
                new[key] = (entry, origin)
                fresh += 1
                continue
            problem = step0.disagreement(earlier, entry)
            if problem:
                raise ValueError(f"{origin}: {_name(entry)}: {problem}; nothing stored")
            agree += 1
        lines.append(f"{origin}: {note}; {fresh} new, {agree} already stored and agreeing")
    for entry, origin in new.values():
        if args.dry_run:
            print(f"would store {_name(entry)} from {origin}")
        else:
            store.add(entry)
            print(f"stored {_name(entry)} from {origin}")
    for line in lines:
        _say(line)
    return set(new)


def _computed_elsewhere(args: argparse.Namespace, items: list[dict]) -> list[tuple]:
    """``[(store entries, origin, note)]``: the evaluations of ``items`` that the ``--parity``
    files and the ``--trials`` directories hold (:func:`step0.from_parity`,
    :func:`step0.from_trials`), each source named as :func:`_source_name` gives it, with a
    note on what it held. Raises ValueError naming a source that cannot be read."""
    found = []
    for given in args.parity or []:
        name = _source_name(given)
        try:
            doc = json.loads(Path(given).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"--parity {name}: {exc}") from None
        entries = step0.from_parity(doc, name, items)
        held = len(doc["results"])  # from_parity has checked the shape
        found.append((entries, name, f"{held} results, {len(entries)} of them wanted here"))
    for given in args.trials or []:
        name = _source_name(given)
        doc = _trials_results(given, name)
        usable = sum(step0.trial_shape(t) is not None for t in doc["trials"])
        note = (
            f"{len(doc['trials'])} trials, {usable} of them the study's step-0 computation "
            "(study protocol, fp32, CPU)"
        )
        found.append((step0.from_trials(doc, name, items), f"{name}'s trials", note))
    return found


def _source_name(given: str) -> str:
    """A ``--parity``/``--trials`` path as stored in ``source``: relative to the repository
    when inside it, without a trailing slash, so the same file gives the same bytes."""
    path = Path(given).resolve()
    return path.relative_to(REPO).as_posix() if path.is_relative_to(REPO) else str(path)


def _trials_results(given: str, name: str) -> dict:
    """The results.json of a ``--trials`` directory; ValueError (one line, with the fix)."""
    path = Path(given)
    example = "e.g. artifacts/study-partial-cpu"
    if path.is_file():
        raise ValueError(
            f"--trials {name}: a file; give the directory that holds results.json ({example})"
        )
    if not (path / results.RESULTS_FILE).is_file():
        raise ValueError(
            f"--trials {name}: no results.json there; give a run or published directory of a "
            f"study-protocol sweep ({example})"
        )
    try:
        return results.load_results(path)
    except ValueError as exc:
        raise ValueError(f"--trials {name}: {exc}") from None


def _self_pd(args: argparse.Namespace) -> int:
    import datetime

    import torch

    from charlm import platforms
    from charlm.data import Corpus, resolve_data_path

    out = Path(args.out)
    if not out.is_dir():
        raise ValueError(f"{out}: no such directory (give --out)")
    corpus = Corpus.load(resolve_data_path(args.data))
    torch.set_num_threads(args.threads)
    doc = selfpd.measure(args.run, corpus, progress=lambda name: print(f"  {name}", flush=True))
    run = Path(args.run).resolve()
    doc["run"]["directory"] = str(run.relative_to(REPO) if run.is_relative_to(REPO) else run)
    env = platforms.record(torch.device("cpu"), "fp32", args.threads)
    doc = {
        "format": selfpd.FORMAT,
        "format_version": 1,
        **doc,
        "platform": platforms.describe(env),
        "date": datetime.date.today().isoformat(),
    }
    results.validate(doc, selfpd.SCHEMA)
    atomic_write_text(out / selfpd.FILE, importer.dumps(doc))
    s = doc["summary"]
    _say(
        f"wrote {out / selfpd.FILE}: one model against itself {s['self_pd_mean']:.3f} "
        f"({s['self_pd_min']:.3f}-{s['self_pd_max']:.3f}); two seeds on their own windows "
        f"{s['pair_own_windows_mean']:.3f}, on the same windows {s['pair_same_windows_mean']:.3f}"
    )
    return 0


def _say(line: str) -> None:
    print("\n".join(terminal.wrap(line, terminal.width(), indent="  ", first="")))


def _name(item: dict) -> str:
    return f"{item['config']} {item['activation']} seed {item['seed']}"


def _trials(args: argparse.Namespace) -> int:
    from reproduce import studytrials  # scipy: only for this action

    raw_path = Path(args.raw)
    raw = importer.load(raw_path)
    prov = json.loads(raw_path.with_name(PROVENANCE).read_text(encoding="utf-8"))
    ours = results.load_results(args.dir)
    nanogpt = results.load_results(args.nanogpt) if args.nanogpt else None
    comparison = studytrials.compare_trials(ours, raw, prov)
    rows = studytrials.three_columns(raw, prov, comparison["config"]["name"], ours, nanogpt)
    print(studytrials.markdown(comparison))
    print(studytrials.three_columns_markdown(rows, comparison["config"]), end="")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``reference import`` and ``reference trials``."""
    parser = subparsers.add_parser(
        "reference",
        help="import the study's raw data as reference data",
        description="Reference data from the study's own repository: `reference import` "
        "writes artifacts/reference/study-raw.json, provenance.json and audit.md; `reference "
        "step0` and `reference self-pd` measure what they use; `reference trials DIR` sets a "
        "study-protocol sweep beside the study's trials, seed by seed.",
    )
    sub = parser.add_subparsers(
        dest="reference_command",
        required=True,
        metavar="ACTION",
        help="import, step0, self-pd, trials",
    )
    p = sub.add_parser(
        "import",
        help="write study-raw.json and provenance.json",
        description="Read a copy of the study's repository (result files, summary tables, run "
        "log, configs) and write artifacts/reference/study-raw.json and provenance.json, "
        "deterministically.",
    )
    p.add_argument("--source", default=str(DEFAULT_SOURCE), help="the study's copy (%(default)s)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="directory to write (%(default)s)")
    p.set_defaults(func=_import)
    p = sub.add_parser(
        "step0",
        help="recompute the step-0 losses that decide provenance",
        description="For every candidate configuration left for a result file, recompute its "
        "trials' step-0 train and val losses under the study protocol (2 x eval_iters forward "
        "batches each, fp32 on the CPU: seconds to 35 minutes each) into "
        "artifacts/reference/step0-recomputed.json, storing each as soon as it is done; "
        "`reference import` then uses them. Resumable: stored ones are not recomputed. "
        "--parity and --trials store what was computed elsewhere instead.",
    )
    p.add_argument("--out", default=str(DEFAULT_OUT), help="reference directory (%(default)s)")
    p.add_argument("--configs", nargs="+", default=None, help="only these study configs")
    p.add_argument(
        "--parity",
        nargs="+",
        default=None,
        metavar="FILE",
        help="store the evaluations these `parity --out` files hold, and compute none",
    )
    p.add_argument(
        "--trials",
        nargs="+",
        default=None,
        metavar="DIR",
        help="store the step-0 evaluations of these study-protocol sweeps' fp32 CPU trials "
        "(run or published directories, e.g. artifacts/study-partial-cpu), and compute none",
    )
    p.add_argument(
        "--time-limit",
        type=float,
        default=None,
        metavar="MIN",
        help="start no evaluation after this many minutes",
    )
    p.add_argument("--dry-run", action="store_true", help="list what is missing and stop")
    add_data_option(p)
    p.set_defaults(func=_step0)
    p = sub.add_parser(
        "self-pd",
        help="the study's PD of one model against itself",
        description="The study's relative PD applied to two copies of one trained model, each "
        "on its own 1,000 random validation windows (as the study compared seeds), for every "
        "trial of RUN that ships weights, beside its seed pairs' PD on their own and on "
        "identical windows; writes artifacts/reference/self-pd.json. Minutes of CPU.",
    )
    p.add_argument("--run", default=str(REPO / "artifacts" / "cpu"), help="(%(default)s)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="reference directory (%(default)s)")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads (default 2)")
    add_data_option(p)
    p.set_defaults(func=_self_pd)
    p = sub.add_parser(
        "trials",
        help="a study-protocol sweep trial by trial beside the study's trials",
        description="Print, as Markdown, each trial of a study-protocol run or published "
        "directory beside the study's published trial of the same configuration, activation "
        "and seed (step-0 losses, final losses, val accuracy, differences), the paired t-test "
        "per activation (n = the seeds), the rankings, and the three-column table (the "
        "study's trials, ours under its procedure, ours under nanoGPT's recipe).",
    )
    p.add_argument("dir", help="a study-protocol run or published directory (results.json)")
    p.add_argument(
        "--nanogpt",
        default=None,
        metavar="DIR",
        help="the same scale under nanoGPT's recipe, e.g. artifacts/partial-cpu",
    )
    p.add_argument(
        "--raw",
        default=str(DEFAULT_OUT / RAW),
        help="study-raw.json, provenance.json beside it (%(default)s)",
    )
    p.set_defaults(func=_trials)
