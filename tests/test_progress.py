"""Long work shows progress as it goes: verify prints each row as it is decided, progress is a
tqdm bar on a terminal and plain lines otherwise, and what commands print fits 80 columns when
it is not a terminal (the files they write keep full lines)."""

import io
import shutil

from reproduce import terminal, verify
from reproduce.cli import main


def test_verify_prints_each_row_as_it_is_decided(tiny_sweep, monkeypatch):
    _, out = tiny_sweep
    seen = []
    real_analysis = verify.check_analysis

    def check_analysis(*args, **kwargs):
        # by the time the analysis starts, every earlier row has been printed
        assert [r.check for r in seen].count("metrics") == 4
        return real_analysis(*args, **kwargs)

    monkeypatch.setattr(verify, "check_analysis", check_analysis)
    rows = verify.verify(out, on_row=seen.append)
    assert seen == rows and rows[0].check == "manifest" and rows[-1].check == "report"
    metrics = [r.subject for r in rows if r.check == "metrics"]
    assert metrics == ["gelu-s0", "gelu-s1", "relu-s0", "relu-s1"]


def test_verify_output_fits_80_columns_when_not_a_terminal(tiny_sweep, tmp_path, capsys):
    _, out = tiny_sweep
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    (copy / "trials" / "relu-s1" / "weights.safetensors").write_bytes(b"not the weights")
    assert main(["verify", str(copy)]) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].split() == ["verdict", "check", "subject:", "detail"]
    assert max(map(len, lines)) <= 80
    failed = next(i for i, x in enumerate(lines) if x.startswith("FAIL "))
    assert lines[failed].split()[:3] == ["FAIL", "manifest", "trials/relu-s1/weights.safetensors:"]
    assert lines[-1] == "verification FAILED: relu-s1, trials/relu-s1/weights.safetensors"
    # not a terminal: the slow step is announced on stderr as a plain line, no bar
    assert "recomputing the statistics, prediction differences and report" in captured.err
    assert "\r" not in captured.err


def test_progress_is_plain_lines_without_a_terminal():
    lines = []
    with terminal.Progress(3, "work", lines.append, bar=False) as progress:
        progress.step("first")
        progress.step("quiet", plain=False)
        progress.step("third")
    assert lines == ["  [1/3] first", "  [3/3] third"]


def test_wrap_keeps_names_whole_and_fits():
    text = "relu-mean-val-loss does not follow from the trials of relu-s42 and relu-s43"
    lines = terminal.wrap(text, 30, indent="    ", first="")
    assert lines == [
        "relu-mean-val-loss does not",
        "    follow from the trials of",
        "    relu-s42 and relu-s43",
    ]
    assert terminal.width() == 80  # pytest's captured stdout is not a terminal


def test_a_line_is_one_write_so_ranks_sharing_a_pipe_cannot_split_it():
    """torchrun's ranks share stdout; under PYTHONUNBUFFERED ``print`` writes the text and the
    newline in two calls, and another rank's line could land between them."""

    class Calls(io.StringIO):
        def __init__(self):
            super().__init__()
            self.calls, self.flushed = [], 0

        def write(self, text):
            self.calls.append(text)
            return super().write(text)

        def flush(self):
            self.flushed += 1

    stream = Calls()
    terminal.line("rank 0: [1/2] gelu-s0 (resuming)", stream)
    assert stream.calls == ["rank 0: [1/2] gelu-s0 (resuming)\n"] and stream.flushed == 1
    print("rank 1: [1/2] gelu-s1 (resuming)", file=stream)
    assert stream.calls[1:] == ["rank 1: [1/2] gelu-s1 (resuming)", "\n"]  # what it avoids
