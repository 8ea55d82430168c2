"""DistributedDataParallel under ``torchrun`` (one process per device), or a single process.

``torchrun --nproc_per_node N -m pruning train ...`` sets ``WORLD_SIZE``/``RANK``/``LOCAL_RANK``;
each process trains on its share of every epoch, gradients are averaged by DDP, and only rank 0
writes checkpoints and the results store. NCCL on CUDA, Gloo on CPU.
"""

import os
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist

from facedet.detector import pick_device


@dataclass
class Distributed:
    rank: int
    world_size: int
    device: torch.device
    started: bool = False

    @classmethod
    def from_environment(cls, device="auto"):
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return cls(0, 1, pick_device(device))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        chosen = pick_device(device)
        if chosen.type == "cuda":
            chosen = torch.device("cuda", local_rank)
            torch.cuda.set_device(chosen)
        started = False
        if not torch_dist.is_initialized():
            torch_dist.init_process_group("nccl" if chosen.type == "cuda" else "gloo")
            started = True
        return cls(torch_dist.get_rank(), torch_dist.get_world_size(), chosen, started)

    @property
    def is_main(self):
        return self.rank == 0

    def wrap(self, model):
        if self.world_size <= 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def mean(self, value):
        """The mean of a float over all processes."""
        if self.world_size <= 1:
            return value
        tensor = torch.tensor([float(value)], device=self.device)
        torch_dist.all_reduce(tensor)
        return float(tensor) / self.world_size

    def from_main(self, value):
        """The main process's ``value`` (any picklable object), in every process."""
        if self.world_size <= 1:
            return value
        box = [value]
        torch_dist.broadcast_object_list(box, src=0, device=self.device if self.device.type == "cuda" else None)
        return box[0]

    def barrier(self):
        if self.world_size > 1:
            torch_dist.barrier()

    def close(self):
        if self.started and torch_dist.is_initialized():
            torch_dist.destroy_process_group()
