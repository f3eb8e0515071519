import hashlib
import http.server
import threading
from pathlib import Path

import pytest
import torch

from charlm import data
from charlm.data import (
    TINY_SHAKESPEARE_SHA256,
    Corpus,
    batch_seed,
    eval_windows,
    get_batch,
    resolve_data_path,
)


def test_vocabulary_and_split_sizes(corpus):
    assert corpus.vocab_size == 65
    assert corpus.chars[:3] == "\n !" and corpus.chars[-1] == "z"
    assert (len(corpus.train), len(corpus.val)) == (1_003_854, 111_540)
    assert corpus.sha256 == TINY_SHAKESPEARE_SHA256


def test_encode_decode_round_trip(corpus):
    text = corpus.text[:500]
    assert corpus.decode(corpus.encode(text).tolist()) == text
    with pytest.raises(ValueError, match="'é'"):
        corpus.encode("café")


def test_same_seed_same_batches_different_seed_different(corpus):
    a = get_batch(corpus.train, 32, 4, batch_seed(42, "train", 7))
    b = get_batch(corpus.train, 32, 4, batch_seed(42, "train", 7))
    c = get_batch(corpus.train, 32, 4, batch_seed(43, "train", 7))
    d = get_batch(corpus.train, 32, 4, batch_seed(42, "train", 8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0]) and not torch.equal(a[0], d[0])
    x, y = a
    assert x.shape == y.shape == (4, 32) and x.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])  # targets are the inputs shifted by one


def test_batches_do_not_depend_on_global_rng(corpus):
    torch.manual_seed(0)
    a = get_batch(corpus.train, 16, 2, batch_seed(1, "train", 0))
    torch.manual_seed(999)
    torch.rand(100)
    b = get_batch(corpus.train, 16, 2, batch_seed(1, "train", 0))
    assert torch.equal(a[0], b[0])


def test_eval_windows_cover_every_target_once():
    windows = eval_windows(111_540, 256)
    assert len(windows) == 436 and windows[-1] == (111_360, 179)
    assert sum(n for _, n in windows) == 111_539
    covered = [s + i for s, n in windows for i in range(n)]
    assert covered == list(range(111_539))


def test_changed_byte_is_refused_with_both_digests(tmp_path, data_path):
    raw = bytearray(Path(data_path).read_bytes())
    raw[1000] ^= 1
    bad = tmp_path / "input.txt"
    bad.write_bytes(raw)
    actual = hashlib.sha256(raw).hexdigest()
    with pytest.raises(ValueError) as info:
        resolve_data_path(bad)
    assert actual in str(info.value) and TINY_SHAKESPEARE_SHA256 in str(info.value)


def test_missing_explicit_path(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARLM_DATA", str(tmp_path / "nope.txt"))
    with pytest.raises(FileNotFoundError, match="CHARLM_DATA names .*nope.txt"):
        resolve_data_path()


@pytest.fixture
def local_server(data_path):
    payload = Path(data_path).read_bytes()
    served = {"count": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's API)
            served["count"] += 1
            body = payload if self.path == "/input.txt" else payload[:-1]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", served
    server.shutdown()


def test_download_into_cache_once_and_verify(tmp_path, monkeypatch, local_server):
    base, served = local_server
    monkeypatch.delenv("CHARLM_DATA", raising=False)
    monkeypatch.setenv("CHARLM_CACHE_DIR", str(tmp_path / "cache"))
    path = resolve_data_path(url=f"{base}/input.txt")
    assert path == tmp_path / "cache" / "tinyshakespeare.txt"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == TINY_SHAKESPEARE_SHA256
    assert resolve_data_path(url=f"{base}/input.txt") == path
    assert served["count"] == 1  # the second call used the cache
    assert [p.name for p in path.parent.iterdir()] == ["tinyshakespeare.txt"]


def test_download_with_wrong_digest_saves_nothing(tmp_path, monkeypatch, local_server):
    base, _ = local_server
    monkeypatch.delenv("CHARLM_DATA", raising=False)
    monkeypatch.setenv("CHARLM_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(ValueError, match="nothing saved"):
        resolve_data_path(url=f"{base}/truncated.txt")
    assert not (tmp_path / "cache" / "tinyshakespeare.txt").exists()


def test_other_corpus_gets_its_own_vocabulary(tmp_path):
    path = tmp_path / "other.txt"
    path.write_text("abcab" * 400, encoding="utf-8")
    other = Corpus.load(path)
    assert other.chars == "abc" and other.vocab_size == 3
    assert other.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (len(other.train), len(other.val)) == (1800, 200)


def test_too_short_or_empty_corpus_is_refused(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match="0 characters"):
        Corpus.load(path)


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CHARLM_CACHE_DIR", str(tmp_path))
    assert data.cache_dir() == tmp_path
    monkeypatch.delenv("CHARLM_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.cache_dir() == tmp_path / "xdg" / "charlm"
