"""Knowledge distillation (Hinton et al., 2015): a student learns from a teacher's soft targets.

loss = alpha * KL(teacher || student, both softened at temperature T) * T^2
       + (1 - alpha) * cross-entropy(student, labels)

The T^2 factor keeps the soft term's gradients on the scale of the hard term's as T changes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from training.data.text import Tokens
from training.models import feed


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                      labels: torch.Tensor, temperature: float, alpha: float) -> torch.Tensor:
    """The batch-mean distillation loss above."""
    soft_student = F.log_softmax(student_logits / temperature, dim=1)
    soft_teacher = F.log_softmax(teacher_logits / temperature, dim=1)
    kl = F.kl_div(soft_student, soft_teacher, reduction="batchmean", log_target=True)
    hard = F.cross_entropy(student_logits, labels)
    return alpha * kl * temperature**2 + (1.0 - alpha) * hard


def teacher_loss(teacher: nn.Module, temperature: float, alpha: float
                 ) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor | Tokens], torch.Tensor]:
    """A training-loop loss ``(student outputs, labels, inputs) -> loss`` that asks the frozen
    teacher about the very inputs the student saw (augmented ones too)."""
    teacher.eval()
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)

    def loss(out: torch.Tensor, labels: torch.Tensor, inputs: torch.Tensor | Tokens
             ) -> torch.Tensor:
        with torch.no_grad():
            teacher_logits = feed(teacher, inputs)
        return distillation_loss(out, teacher_logits, labels, temperature, alpha)

    return loss
