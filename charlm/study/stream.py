"""The study's one random stream: initialisation, batches, evaluation, accuracy and PD windows.

The study seeded PyTorch's default CPU generator once per trial (``torch.manual_seed(seed)`` in
its ``train.py``, ``set_seed``) and drew everything from it in program order: the model's
initialisation, then for each iteration an evaluation when due (``eval_iters`` training batches,
then ``eval_iters`` validation batches) and the training batch, then after training one more
evaluation, 1,000 single training windows and 1,000 single validation windows for accuracy; after
the last trial of an activation, 1,000 single validation windows per model and pair for PD. Every
draw is ``torch.randint(len(split) - block_size, (n,))``: window starts, uniform.

:class:`StudyStream` holds that generator explicitly (a CPU ``torch.Generator`` whose state starts
as the default generator's right after the seeded model build), so this package's draws never
depend on what else touches the default generator. Dropout is not part of the stream (on the
study's GPU it drew from the CUDA generator).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from charlm.data import Corpus

__all__ = ["ACCURACY_WINDOWS", "PD_WINDOWS", "StudyStream", "seeded_build"]

ACCURACY_WINDOWS = 1000  # the study's train.py, calculate_accuracy(num_samples=1000)
PD_WINDOWS = 1000  # the study's train.py, get_predictions(num_samples=1000)
FORWARD_CHUNK = 100  # single windows evaluated together (a speed setting)


def seeded_build(seed: int, build: Callable[[], torch.nn.Module]) -> tuple:
    """Build a model on the CPU the way the study did and return it with the stream after it.

    Seeds the default CPU generator with ``seed`` (as ``torch.manual_seed``), calls ``build``
    (whose default initialisation and N(0, 0.02) pass draw from it), and copies the generator's
    state into a new CPU generator: the study's stream at the point its training loop began.

    Returns:
        (model, generator).
    """
    torch.manual_seed(seed)
    model = build()
    generator = torch.Generator()
    generator.set_state(torch.get_rng_state())
    return model, generator


class StudyStream:
    """Draws from the study's stream and evaluates as the study's ``train.py`` did.

    Args:
        generator: the trial's stream (:func:`seeded_build`); advanced in place.
        corpus: the encoded text; its 90/10 character split is the study's (``prepare_data``).
        block_size: window length in characters.
        device: where windows are sent for the forward passes.
    """

    def __init__(self, generator: torch.Generator, corpus: Corpus, block_size: int, device) -> None:
        self.generator = generator
        self.corpus = corpus
        self.block_size = block_size
        self.device = torch.device(device)
        self._windows = {s: corpus.split(s).unfold(0, block_size + 1, 1) for s in ("train", "val")}

    def starts(self, split: str, n: int) -> torch.Tensor:
        """(n,) int64 window starts uniform on [0, len(split) - block_size), drawn as one
        ``torch.randint`` call of size ``n`` (the study's ``get_batch``)."""
        high = len(self.corpus.split(split)) - self.block_size
        return torch.randint(high, (n,), generator=self.generator)

    def windows(self, split: str, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets, each (len(starts), block_size) int64 on the stream's device."""
        w = self._windows[split][starts]
        return w[:, :-1].to(self.device), w[:, 1:].to(self.device)

    def batch(self, split: str, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch: ``batch_size`` windows and their targets, (batch_size, block_size)."""
        return self.windows(split, self.starts(split, batch_size))

    def single_starts(self, split: str, n: int) -> torch.Tensor:
        """(n,) starts drawn as ``n`` separate size-1 draws (the study's accuracy and PD loops
        call ``get_batch(data, 1, ...)`` once per window)."""
        return torch.cat([self.starts(split, 1) for _ in range(n)])

    @torch.no_grad()
    def estimate_loss(
        self,
        model: torch.nn.Module,
        eval_iters: int,
        batch_size: int,
        compute: bool | int = True,
        on_batch: Callable[[], None] | None = None,
    ) -> dict | None:
        """The study's ``estimate_loss``: for the train split and then the val split, the mean
        of ``eval_iters`` batch losses, each batch drawn from the stream.

        The per-batch losses are stored in a float32 tensor and averaged in float32, as the
        study's were. With ``compute`` False the batches are drawn (the stream advances exactly
        as it would) but no forward pass runs, and None is returned; an integer ``compute``
        computes the first that many batches of each split only (their losses, no means).
        ``on_batch``, when given, is called after each computed batch (for progress).

        Returns:
            ``{"train": nats, "val": nats, "batch_losses": {"train": [...], "val": [...]}}``
            or None. The model is left in training mode.
        """
        model.eval()
        n = eval_iters if compute is True else int(compute)
        out: dict = {"batch_losses": {}}
        for split in ("train", "val"):
            losses = torch.zeros(eval_iters)
            for k in range(eval_iters):
                starts = self.starts(split, batch_size)
                if k < n:
                    _, loss = model(*self.windows(split, starts))
                    losses[k] = loss.item()
                    if on_batch is not None:
                        on_batch()
            out["batch_losses"][split] = losses[:n].tolist()
            out[split] = losses.mean().item()
        model.train()
        if compute is False:
            return None
        return out if compute is True else {"batch_losses": out["batch_losses"]}

    @torch.no_grad()
    def last_position_logits(
        self, model: torch.nn.Module, split: str, n: int, compute: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Logits at the last position of ``n`` single windows drawn one by one.

        Returns:
            (logits (n, vocab) float32 on the CPU, targets (n,) int64), or None when
            ``compute`` is False (the windows are drawn all the same). The model is left in
            eval mode, as the study's accuracy and PD functions left it.
        """
        model.eval()
        starts = self.single_starts(split, n)
        if not compute:
            return None
        logits, targets = [], []
        for chunk in starts.split(FORWARD_CHUNK):
            x, y = self.windows(split, chunk)
            logits.append(model(x)[:, -1, :].float().cpu())
            targets.append(y[:, -1].cpu())
        return torch.cat(logits), torch.cat(targets)

    def accuracy(self, model: torch.nn.Module, split: str, compute: bool = True) -> float | None:
        """The study's ``calculate_accuracy``: percent of :data:`ACCURACY_WINDOWS` single
        windows whose most likely last-position character is the true next one."""
        got = self.last_position_logits(model, split, ACCURACY_WINDOWS, compute)
        if got is None:
            return None
        logits, targets = got
        return 100.0 * (logits.argmax(dim=-1) == targets).sum().item() / len(targets)

    def predictions(self, model: torch.nn.Module, n: int = PD_WINDOWS) -> torch.Tensor:
        """The study's ``get_predictions``: (n, vocab) float32 softmax at the last position of
        ``n`` single validation windows."""
        logits, _ = self.last_position_logits(model, "val", n)
        return F.softmax(logits, dim=-1)

    def state(self) -> torch.Tensor:
        """The generator's state (uint8 tensor), to save with a trial."""
        return self.generator.get_state()
