"""The PyTorch reference ``framegen bench --compare torch`` times beside framegen: the same train step, the same
matmuls and a stateful generation loop (torch is the optional extra ``framegen[bench]``, imported only here)."""

import statistics
import time

import numpy as np

from framegen.bench.timing import HIDDEN, LAYERS, threads


def torch_device() -> str:
    """Where torch runs: the GPU when there is one (cuDNN's GRU), as JAX does, else the CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


TORCH_MODES = {"fp32": ("fp32",), "bf16": ("autocast", "bf16-cast")}


class TorchStep:
    """The same step in PyTorch: nn.GRU(2 layers, batch_first) + nn.Linear, MSE, Adam (no clipping: conservative
    for the ratio), fresh random batches (two, alternated), ``torch.set_num_threads`` = ``threads()``; on the GPU
    when there is one. ``mode``: "fp32"; "autocast" (``torch.autocast(bfloat16)``, float32 weights); "bf16-cast"
    (model, Adam and data all bfloat16: what a PyTorch user gets by casting, fastest on CPU)."""

    impl = "torch"
    compile_s = 0.0

    def __init__(self, f: int, t: int, b: int, mode: str = "fp32"):
        import torch

        torch.set_num_threads(threads())
        torch.manual_seed(0)
        self.torch, self.mode, self.device = torch, mode, torch_device()
        self.precision = "fp32" if mode == "fp32" else "bf16"
        dtype = torch.bfloat16 if mode == "bf16-cast" else torch.float32
        self.gru = torch.nn.GRU(f, HIDDEN, num_layers=LAYERS, batch_first=True).to(self.device, dtype)
        self.head = torch.nn.Linear(HIDDEN, f).to(self.device, dtype)
        self.opt = torch.optim.Adam([*self.gru.parameters(), *self.head.parameters()], lr=1e-3)
        self.batches = [(torch.randn(b, t, f, device=self.device, dtype=dtype),
                         torch.randn(b, t, f, device=self.device, dtype=dtype)) for _ in range(2)]
        self.i = 0

    def __call__(self) -> float:
        torch = self.torch
        x, y = self.batches[self.i % 2]
        self.i += 1
        self.opt.zero_grad(set_to_none=True)
        with torch.autocast(self.device, torch.bfloat16, enabled=self.mode == "autocast"):
            out, _ = self.gru(x)
            pred = self.head(out)
        loss = torch.nn.functional.mse_loss(pred.float(), y.float())
        loss.backward()
        self.opt.step()
        return loss.item()  # blocks (GPU too): the step is done



def matmul_fns(h, w_h, x, w_i, t: int) -> dict:
    """{"recurrent": fn, "input": fn}: torch running ``timers.bench_matmul``'s two products on the same arrays."""
    import torch

    torch.set_num_threads(threads())
    th, tw_h, tx, tw_i = (torch.from_numpy(np.asarray(a)) for a in (h, w_h, x, w_i))

    def chain():
        hh = th
        for _ in range(t):
            hh = (hh @ tw_h)[:, :HIDDEN] * 0.5 + hh

    return {"recurrent": chain, "input": lambda: tx @ tw_i}


def generate_seconds(f: int, streams: int, n_frames: int, reps: int, budget_s: float = 5.0,
                    precision: str = "fp32") -> float:
    """Wall seconds a stateful PyTorch loop (one frame per GRU call, hidden state carried) needs for ``n_frames``:
    the median of ``reps`` runs, each stopped after ``budget_s`` and scaled to n_frames (the cost per frame is
    constant, and under CPU contention PyTorch's OpenMP loop can take milliseconds a frame). bf16: the model and
    prompt cast to bfloat16."""
    import torch

    torch.set_num_threads(threads())
    torch.manual_seed(0)
    device, dtype = torch_device(), torch.bfloat16 if precision == "bf16" else torch.float32
    gru = torch.nn.GRU(f, HIDDEN, num_layers=LAYERS, batch_first=True).to(device, dtype)
    head = torch.nn.Linear(HIDDEN, f).to(device, dtype)
    prompt = 0.3 * torch.randn(streams, 10, f, device=device, dtype=dtype)

    def run(frames_max):
        t0 = time.perf_counter()
        with torch.inference_mode():
            out, h = gru(prompt)
            frame = head(out[:, -1:])
            frames = []
            while len(frames) < frames_max and time.perf_counter() - t0 < budget_s:
                frames.append(frame)
                out, h = gru(frame, h)
                frame = head(out)
            torch.cat(frames, dim=1).sum().item()  # waits for the GPU
        return (time.perf_counter() - t0) * n_frames / len(frames)

    run(10)  # warm-up
    return statistics.median(run(n_frames) for _ in range(reps))

