"""The training schedule of soft filter pruning and fine-tuning (paper §3.3, §4.2).

Epochs ``0 .. epochs-1`` are SFP: the masks are recomputed and applied after epoch ``e`` when
``e % prune_every == 0`` and after the last SFP epoch (as the authors' script does); pruned
filters stay trainable in between and may regrow. The following ``finetune_epochs`` train with the
last masks frozen. Learning rates: ``lr`` during SFP, times ``lr_gamma`` at each milestone; the
fine-tuning restarts at ``finetune_lr`` and drops by ``lr_gamma`` half-way.

With ``ramp_epochs`` > 0 the pruning rate ramps up instead of applying in full at the first
pruning step (automated gradual pruning, Zhu & Gupta 2017): after SFP epoch ``e`` it is
``rate * (1 - (1 - (e + 1) / ramp_epochs) ** 3)``, the full rate from epoch ``ramp_epochs - 1`` on.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Schedule:
    epochs: int = 200  # SFP epochs; the fine-tuning ones follow
    finetune_epochs: int = 10
    prune_every: int = 5
    lr: float = 1e-3
    lr_milestones: tuple = (50, 100)
    lr_gamma: float = 0.1
    finetune_lr: float = 1e-3
    ramp_epochs: int = 0  # > 0: the rate ramps up over these SFP epochs (gradual pruning)

    @property
    def total_epochs(self):
        return self.epochs + self.finetune_epochs

    def phase(self, epoch):
        return "sfp" if epoch < self.epochs else "finetune"

    def learning_rate(self, epoch):
        if epoch < self.epochs:
            return self.lr * self.lr_gamma ** sum(epoch >= m for m in self.lr_milestones)
        into = epoch - self.epochs
        return self.finetune_lr * (self.lr_gamma if into >= -(-self.finetune_epochs // 2) else 1.0)

    def prunes_after(self, epoch):
        """Whether the masks are recomputed after (SFP) epoch ``epoch``."""
        if epoch >= self.epochs:
            return False
        return epoch % self.prune_every == 0 or epoch == self.epochs - 1

    def rate_after(self, epoch, rate):
        """The pruning rate applied after SFP epoch ``epoch`` (``rate`` is the target)."""
        ramp = min(int(self.ramp_epochs), self.epochs)
        if ramp <= 0 or epoch + 1 >= ramp:
            return rate
        return rate * (1.0 - (1.0 - (epoch + 1) / ramp) ** 3)
