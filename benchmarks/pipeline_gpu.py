"""Stock diffusers SDXL vs PersonalizedPipeline with each speed switch, on full-size SDXL.

Builds the published SDXL base 1.0 architecture (``sdxl_base_1.0.json`` beside
this file: UNet, VAE, CLIP-L and OpenCLIP-bigG text encoders) with random
weights directly on the GPU (timings do not depend on weight values), writes a
random 512-d FaceID adapter to a temporary file and attaches it through the
service's own loader (``imagine.models.loading.prepare_pipeline``). Then, in one run,
at 1024x1024 and 30 steps with guidance:

- the stock ``StableDiffusionXLPipeline`` call (bf16, SDPA, diffusers defaults);
- ``PersonalizedPipeline`` with no switch, each switch in turn (channels_last,
  fuse_qkv, xformers when it imports) and together;
- batches of 4 and 8, stock and ours;
- torch.compile of the transformer blocks and of the whole UNet (compile
  warm-up timed and reported apart), then CUDA graphs (compile mode
  ``reduce-overhead``).

For each: seconds per image, images per hour, speed-up over stock (same batch
size), and achieved TFLOP/s against the bf16 peak (790 TFLOP/s measured on an
H200). FLOPs are counted, not estimated: one UNet forward on the meta device
under ``torch.utils.flop_counter`` (a CFG pair at 1024^2 is 13.5 TFLOP; the
VAE decode 10.5), times steps, plus the decode; the FaceID tokens' share is
under 0.1% and left out.

A global deadline (``--budget-s``) is checked before each measurement, which is
skipped if its estimated cost does not fit; each measurement is isolated (a
failure is recorded and the rest go on); the JSON (``--out``) is rewritten after
every measurement, so a killed run still leaves its data. Exit status 1 when a
measurement failed, else 0.

Without CUDA (or with ``--cpu``) the same code runs on the smoke architecture
at 128x128, 4 steps, batches 1 and 2, without compile unless ``--compile``:

    python3 benchmarks/pipeline_gpu.py --budget-s 300 --out pipeline_gpu.json
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.environment import describe

T0 = time.monotonic()
HERE = Path(__file__).resolve().parent

PROMPT = "me as an astronaut on Mars, photorealistic, detailed"
GUIDANCE = 5.0
EMBEDDING_DIM = 512  # insightface ArcFace, what IP-Adapter FaceID SDXL takes
WARMUP_STEPS = 2  # a short first call: allocations, cuDNN/cuBLAS set-up, compile
# First-compile guesses in seconds, replaced by measured warm-ups as they come in.
COMPILE_GUESS = {"cuda": {"blocks": 60.0, "unet": 150.0}, "cpu": {"blocks": 150.0, "unet": 500.0}}


class Interrupted(BaseException):
    """SIGTERM (e.g. from ``timeout``): stop, keep what was measured.

    A BaseException, like KeyboardInterrupt, so no ``except Exception`` swallows it."""


@dataclasses.dataclass(frozen=True)
class Spec:
    runner: str  # "stock" | "ours"
    batch: int
    switches: Any = None  # imagine.models.config.SpeedSwitches; None for stock
    attention: str = "sdpa"

    @property
    def name(self) -> str:
        if self.runner == "stock":
            return f"stock x{self.batch}"
        label = self.switches.describe()
        if self.attention != "sdpa":
            label = (
                f"attention={self.attention}" if label == "none" else f"{label}+{self.attention}"
            )
        return f"ours[{label}] x{self.batch}"


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, _on_sigterm)
    harness = Harness(args)
    harness.setup()
    try:
        for spec in plan(harness.results, harness.batches, harness.cuda, harness.compile):
            harness.measure(spec)
        harness.report["finished"] = True
    except Interrupted:
        log("interrupted: keeping what was measured")
    return harness.finish()


class Harness:
    """One set of weights on the device, the stock and our pipeline over it, and the runs."""

    def __init__(self, args: argparse.Namespace):
        import torch

        self.torch, self.args, self.deadline = torch, args, T0 + args.budget_s
        self.cuda = torch.cuda.is_available() and not args.cpu
        self.device = "cuda" if self.cuda else "cpu"
        self.size = args.size or (1024 if self.cuda else 128)
        self.steps = args.steps or (30 if self.cuda else 4)
        self.batches = args.batches or ([1, 4, 8] if self.cuda else [1, 2])
        self.compile = args.compile if args.compile is not None else self.cuda
        self.repeats = args.repeats or (2 if self.cuda else 3)
        self.dtype = torch.bfloat16 if self.cuda else torch.float32
        self.report: dict[str, Any] = {
            "benchmark": "pipeline_gpu",
            "env": describe(torch, self.device),
            "settings": {
                "architecture": "sdxl-base-1.0" if self.cuda else "smoke",
                "device": self.device,
                "dtype": str(self.dtype).removeprefix("torch."),
                "size": self.size,
                "steps": self.steps,
                "guidance_scale": GUIDANCE,
                "batches": self.batches,
                "repeats": self.repeats,
                "batch_repeats": args.batch_repeats,
                "warmup_steps": WARMUP_STEPS,
                "budget_s": args.budget_s,
                "peak_tflops": args.peak_tflops,
                "compile": self.compile,
            },
            "setup_s": {},
            "results": [],
            "finished": False,
        }
        self.results = Results(self.report, self.save, self.device, self.steps, args.peak_tflops)
        # What the shared UNet/VAE are set to now; None: unknown, set it before the next run.
        self.switches: Any = None
        self.attention: str | None = "sdpa"
        where = self.report["env"].get("gpu") or self.report["env"]["cpu"]
        log(f"{where}: {self.size}x{self.size}, {self.steps} steps, budget {args.budget_s:.0f}s")
        self.save()

    def save(self) -> None:
        out = self.args.out
        if out is not None:
            tmp = out.with_name(out.name + ".tmp")
            tmp.write_text(json.dumps(self.report, indent=2, default=str))
            os.replace(tmp, out)

    def stage(self, name: str, fn: Callable[[], Any]) -> Any:
        start = time.monotonic()
        try:
            value = fn()
        except BaseException as exc:
            self.report["setup_error"] = f"{name}: {type(exc).__name__}: {exc}"[:2000]
            self.report["setup_traceback"] = traceback.format_exc()[-3000:]
            self.save()
            raise
        self.report["setup_s"][name] = round(time.monotonic() - start, 2)
        log(f"setup: {name} {self.report['setup_s'][name]:.1f}s")
        self.save()
        return value

    def setup(self) -> None:
        """Weights on the device, the adapter through the service's loader, both pipelines."""
        torch, cuda = self.torch, self.cuda

        def imports() -> None:
            import diffusers

            import imagine.models.loading
            import imagine.pipeline
            import imagine.smoke  # noqa: F401

            diffusers.utils.logging.set_verbosity_error()  # casting notices while building

        self.stage("import", imports)
        from diffusers import StableDiffusionXLPipeline

        from imagine.models.config import ModelConfig
        from imagine.models.loading import prepare_pipeline
        from imagine.pipeline import PersonalizedPipeline
        from imagine.request import GenerationLimits
        from imagine.smoke import SMOKE_CONFIGS

        configs = json.loads((HERE / "sdxl_base_1.0.json").read_text()) if cuda else SMOKE_CONFIGS
        pipe = self.stage("build_weights", lambda: build_on(self.device, configs, self.dtype))
        folder = Path(tempfile.mkdtemp(prefix="imagine-bench-"))
        adapter = self.stage(
            "write_adapter", lambda: write_adapter(folder, configs["unet"], self.device, self.dtype)
        )
        config = ModelConfig(
            profile="sdxl" if cuda else "smoke",
            embedding_dim=EMBEDDING_DIM,
            device=self.device,
            dtype=self.report["settings"]["dtype"],
            channels_last="off",
            fuse_qkv="off",
        )
        self.loaded = self.stage(
            "prepare_pipeline",
            lambda: prepare_pipeline(pipe, adapter, config, model_id="sdxl-architecture-random"),
        )
        flops = self.stage(
            "count_flops", lambda: flops_per_image(torch, configs, self.size, self.steps, cuda)
        )
        if flops["per_image"]:
            flops["floor_s_per_image"] = flops["per_image"] / (self.args.peak_tflops * 1e12)
        self.report["flops"] = self.results.flops = flops

        self.stock = StableDiffusionXLPipeline(**self.loaded.pipe.components, add_watermarker=False)
        self.stock.set_progress_bar_config(disable=True)
        self.ours = PersonalizedPipeline(
            self.loaded,
            max_batch=max(self.batches),
            limits=GenerationLimits(max_images=max(8, *self.batches)),
        )
        face = torch.randn(EMBEDDING_DIM, generator=torch.Generator().manual_seed(0))
        self.face = (face / face.norm()).numpy()  # [512] float32, unit length
        pair = torch.stack([torch.zeros(EMBEDDING_DIM), face / face.norm()])
        self.id_pair = pair.reshape(2, 1, EMBEDDING_DIM).to(
            self.device, self.dtype
        )  # [uncond, face]

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()

    def call(self, spec: Spec, steps: int) -> dict[str, float]:
        """One request; returns our stage timings (none for stock)."""
        torch = self.torch
        if spec.runner == "stock":
            self.stock(
                prompt=PROMPT,
                num_images_per_prompt=spec.batch,
                ip_adapter_image_embeds=[self.id_pair],
                num_inference_steps=steps,
                width=self.size,
                height=self.size,
                guidance_scale=GUIDANCE,
                generator=[torch.Generator().manual_seed(s) for s in range(spec.batch)],
                output_type="pil",
            )
            return {}
        result = self.ours(
            PROMPT,
            self.face,
            n=spec.batch,
            seed=0,
            steps=steps,
            width=self.size,
            height=self.size,
            guidance_scale=GUIDANCE,
        )
        return result.timings

    def set_state(self, spec: Spec) -> None:
        """Put the shared UNet/VAE into the spec's state (stock: no switch, diffusers' VAE)."""
        from imagine.models.config import SpeedSwitches
        from imagine.models.speed import apply_speed_switches

        pipe = self.loaded.pipe
        switches = spec.switches or SpeedSwitches()
        if self.attention != spec.attention:
            self.attention = self.switches = None  # unknown until both are applied
            if spec.attention == "xformers":
                pipe.enable_xformers_memory_efficient_attention()
            else:
                pipe.disable_xformers_memory_efficient_attention()
            self.attention = spec.attention
        if self.switches != switches:
            compiled = self.switches is None or self.switches.compile != "off"
            if compiled or switches.compile != "off":
                self.torch._dynamo.reset()  # drop the graphs compiled for the previous state
            self.switches = None
            apply_speed_switches(pipe, switches)
            self.switches = switches
        if spec.runner == "stock":
            pipe.vae.disable_slicing()  # diffusers' default
        else:
            pipe.vae.enable_slicing()  # ours (imagine.models.loading.prepare_pipeline)

    def measure(self, spec: Spec) -> None:
        """Warm up, then time ``runs`` requests; skipped if it cannot end before the deadline."""
        torch = self.torch
        runs = self.repeats if spec.batch == 1 else self.args.batch_repeats
        compiles = spec.switches is not None and spec.switches.compile != "off"
        row: dict[str, Any] = {"name": spec.name, "runner": spec.runner, "batch": spec.batch}
        if spec.switches is not None:
            row["switches"] = dataclasses.asdict(spec.switches)
        row["attention"] = spec.attention
        cost, left = self.results.estimate(spec, runs), self.deadline - time.monotonic()
        if cost > left:
            reason = f"needs ~{cost:.0f}s, {left:.0f}s left"
            self.results.record(row | {"status": "skipped", "reason": reason})
            return
        try:
            self.set_state(spec)
            if self.cuda:
                torch.cuda.reset_peak_memory_stats()
            self.sync()
            start = time.monotonic()
            self.call(spec, WARMUP_STEPS)
            self.sync()
            row["compile_warmup_s" if compiles else "warmup_s"] = round(time.monotonic() - start, 2)
            times, stages = [], {}
            for _ in range(runs):
                if times and time.monotonic() > self.deadline:
                    break
                self.sync()
                start = time.monotonic()
                stages = self.call(spec, self.steps)
                self.sync()
                times.append(time.monotonic() - start)
            row["times_s"] = [round(t, 4) for t in times]
            if stages:
                row["stages_s"] = {k: round(v, 4) for k, v in stages.items()}
            if self.cuda:
                row["peak_memory_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
            self.results.record(row | {"status": "ok"})
        except Interrupted:
            self.results.record(row | {"status": "interrupted"})
            raise
        except Exception as exc:  # one configuration failing must not stop the others
            row["error"] = f"{type(exc).__name__}: {exc}"[:2000]
            row["traceback"] = traceback.format_exc()[-3000:]
            self.results.record(row | {"status": "failed"})
            self.switches = self.attention = None  # re-applied before the next run
            with contextlib.suppress(Exception):
                torch._dynamo.reset()
                if self.cuda:
                    torch.cuda.empty_cache()

    def finish(self) -> int:
        self.report["summary"] = self.results.summary()
        self.report["total_s"] = round(time.monotonic() - T0, 1)
        self.save()
        self.results.print_table()
        failed = self.report["summary"]["failed"]
        if failed:
            log(f"FAILED: {', '.join(failed)}")
        return 1 if failed else 0


def plan(results: Results, batches: list[int], cuda: bool, compile_on: bool) -> Iterator[Spec]:
    """What to measure, most important first; later choices read earlier results."""
    from imagine.models.config import SpeedSwitches

    none, cl, fq = SpeedSwitches(), SpeedSwitches(channels_last=True), SpeedSwitches(fuse_qkv=True)
    both = SpeedSwitches(channels_last=True, fuse_qkv=True)
    yield Spec("stock", 1)
    yield Spec("ours", 1, none)
    yield Spec("ours", 1, cl)
    yield Spec("ours", 1, fq)
    yield Spec("ours", 1, both)
    if cuda:
        problem = xformers_problem()
        if problem is None:
            yield Spec("ours", 1, cl, attention="xformers")
        else:
            spec = Spec("ours", 1, cl, attention="xformers")
            row = {"name": spec.name, "runner": "ours", "batch": 1, "status": "skipped"}
            results.record(row | {"reason": f"xformers does not import: {problem}"})
    eager = results.fastest(batch=1, compiled=False) or both
    for n in batches[1:]:
        yield Spec("stock", n)
        yield Spec("ours", n, eager)
    if not compile_on:
        return
    # Regional compilation first: a fraction of the whole UNet's compile time.
    blocks = dataclasses.replace(both, compile="blocks")
    yield Spec("ours", 1, blocks)
    if max(batches) > 1 and results.ok(name=Spec("ours", 1, blocks).name):
        yield Spec("ours", max(batches), blocks)  # the throughput figure
    yield Spec("ours", 1, dataclasses.replace(both, compile="unet"))
    compiled = results.fastest(batch=1, compiled=True)
    if compiled is None:
        return
    if cuda:  # CUDA graphs: torch.compile's reduce-overhead mode
        yield Spec("ours", 1, dataclasses.replace(compiled, compile_mode="reduce-overhead"))
    best = results.fastest(batch=1, compiled=True)
    for n in sorted(batches[1:], reverse=True):
        if not results.ok(name=Spec("ours", n, best).name):
            yield Spec("ours", n, best)


class Results:
    """Results so far, the cost model for the deadline, and the figures derived from them."""

    def __init__(
        self, report: dict, save: Callable[[], None], device: str, steps: int, peak: float
    ):
        self.report, self.save = report, save
        self.device, self.steps, self.peak = device, steps, peak
        self.flops: dict[str, Any] = {}
        self.compile_s = dict(COMPILE_GUESS[device])  # seconds per compile scope, then measured

    @property
    def rows(self) -> list[dict]:
        return self.report["results"]

    def ok(self, **match: Any) -> list[dict]:
        return [
            r
            for r in self.rows
            if r["status"] == "ok" and all(r.get(k) == v for k, v in match.items())
        ]

    def estimate(self, spec: Spec, repeats: int) -> float:
        """Seconds the measurement should take, from what has been measured so far."""
        measured = [r["s_per_image"] / self.steps for r in self.ok()]  # the slowest: safe side
        per_image_step = max(measured) if measured else (0.06 if self.device == "cuda" else 0.5)
        runs = spec.batch * (WARMUP_STEPS + repeats * self.steps) * per_image_step * 1.3
        if spec.switches is not None and spec.switches.compile != "off":
            runs += self.compile_s[spec.switches.compile]
        return runs + 5.0

    def record(self, row: dict) -> None:
        if row["status"] == "ok":
            best = min(row["times_s"])
            row["s_per_image"] = round(best / row["batch"], 4)
            row["median_s_per_image"] = round(
                sorted(row["times_s"])[len(row["times_s"]) // 2] / row["batch"], 4
            )
            row["images_per_hour"] = round(3600 / row["s_per_image"], 1)
            stock = self.ok(runner="stock", batch=row["batch"])
            if stock and row["runner"] == "ours":
                row["speedup_vs_stock"] = round(stock[0]["s_per_image"] / row["s_per_image"], 3)
            stock1 = self.ok(runner="stock", batch=1)
            if stock1:
                row["speedup_vs_stock_x1"] = round(stock1[0]["s_per_image"] / row["s_per_image"], 3)
            if self.flops.get("per_image"):
                tflops = self.flops["per_image"] / row["s_per_image"] / 1e12
                row["tflops"] = float(f"{tflops:.4g}")
                row["share_of_peak"] = float(f"{tflops / self.peak:.4g}")
            if "compile_warmup_s" in row:
                self.compile_s[row["switches"]["compile"]] = row["compile_warmup_s"]
        self.rows.append(row)
        self.save()
        log(self.line(row))

    def fastest(self, batch: int, compiled: bool) -> Any:
        from imagine.models.config import SpeedSwitches

        rows = [
            r
            for r in self.ok(runner="ours", batch=batch, attention="sdpa")
            if (r["switches"]["compile"] != "off") == compiled
        ]
        if not rows:
            return None
        return SpeedSwitches(**min(rows, key=lambda r: r["s_per_image"])["switches"])

    def summary(self) -> dict[str, Any]:
        per_batch = {}
        for n in sorted({r["batch"] for r in self.ok()}):
            stock = self.ok(runner="stock", batch=n)
            ours = sorted(self.ok(runner="ours", batch=n), key=lambda r: r["s_per_image"])
            if ours:
                per_batch[str(n)] = {
                    "stock_s_per_image": stock[0]["s_per_image"] if stock else None,
                    "best_ours": ours[0]["name"],
                    "best_ours_s_per_image": ours[0]["s_per_image"],
                    "speedup_vs_stock": ours[0].get("speedup_vs_stock"),
                    "share_of_peak": ours[0].get("share_of_peak"),
                }
        best = min(self.ok(runner="ours"), key=lambda r: r["s_per_image"], default=None)
        return {
            "per_batch": per_batch,
            "best_ours": best and best["name"],
            "best_ours_speedup_vs_stock_x1": best and best.get("speedup_vs_stock_x1"),
            "best_ours_share_of_peak": best and best.get("share_of_peak"),
            "compute_floor_s_per_image": self.flops.get("floor_s_per_image"),
            "skipped": [r["name"] for r in self.rows if r["status"] == "skipped"],
            "failed": [r["name"] for r in self.rows if r["status"] == "failed"],
        }

    def line(self, r: dict) -> str:
        if r["status"] != "ok":
            return f"{r['name']:58s} {r['status']}: {r.get('reason') or r.get('error', '')}"
        text = f"{r['name']:58s} {r['s_per_image']:8.3f} s/img {r['images_per_hour']:9.0f} img/h"
        if "speedup_vs_stock" in r:
            text += f"  x{r['speedup_vs_stock']:.2f} vs stock"
        if "tflops" in r:
            text += f"  {r['tflops']:6.4g} TFLOP/s ({r['share_of_peak']:.1%} of {self.peak:.0f})"
        if "compile_warmup_s" in r:
            text += f"  compile warm-up {r['compile_warmup_s']:.0f}s"
        return text

    def print_table(self) -> None:
        print("\n" + "=" * 100)
        for r in self.rows:
            print(self.line(r))
        s = self.summary()
        if s["best_ours"]:
            print(
                f"best: {s['best_ours']}, x{s['best_ours_speedup_vs_stock_x1']} vs stock x1, "
                f"{(s['best_ours_share_of_peak'] or 0):.1%} of {self.peak:.0f} TFLOP/s "
                f"(compute floor {s['compute_floor_s_per_image'] or float('nan'):.3g} s/img)"
            )
        print(f"total {time.monotonic() - T0:.0f}s", flush=True)


def build_on(device: str, configs: dict, dtype: Any) -> Any:
    """Random weights made on the device itself; on the CPU first if that fails."""
    from imagine.smoke import build_pipeline

    try:
        return build_pipeline(configs, device=device, dtype=dtype)
    except Exception as exc:
        if device == "cpu":
            raise
        log(f"building on {device} failed ({type(exc).__name__}: {exc}); building on the CPU")
        return build_pipeline(configs, device="cpu", dtype=dtype).to(device)


def write_adapter(folder: Path, unet_config: dict, device: str, dtype: Any) -> Path:
    """A random FaceID adapter for ``EMBEDDING_DIM``-d embeddings, saved as safetensors."""
    from safetensors.torch import save_file

    from imagine.smoke import faceid_state_dict

    state = faceid_state_dict(unet_config, EMBEDDING_DIM, device=device)
    path = folder / f"ip-adapter-faceid-random-{EMBEDDING_DIM}d.safetensors"
    save_file({k: v.to(dtype).cpu().contiguous() for k, v in state.items()}, str(path))
    return path


def flops_per_image(torch: Any, configs: dict, size: int, steps: int, cuda: bool) -> dict:
    """Counted on the meta device; issue 10's figures for SDXL at 1024^2 if counting fails."""
    try:
        unet_pair, decode = count_flops(torch, configs, size)
        how = "torch.utils.flop_counter on the meta device (2 FLOP per multiply-add)"
    except Exception as exc:
        if not (cuda and size == 1024):
            log(f"FLOP count failed ({type(exc).__name__}: {exc}); no TFLOP/s figures")
            return {"per_image": None, "error": f"{type(exc).__name__}: {exc}"}
        unet_pair, decode = 13.5e12, 10.5e12
        how = f"issue 10's figures (counting failed: {type(exc).__name__}: {exc})"
    return {
        "unet_cfg_pair": unet_pair,
        "vae_decode": decode,
        "per_image": steps * unet_pair + decode,
        "how": how,
    }


def count_flops(torch: Any, configs: dict, size: int) -> tuple[int, int]:
    """FLOPs of one UNet forward on a CFG pair [2, 4, size/8, size/8] and of one VAE decode."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from torch.utils.flop_counter import FlopCounterMode

    latent = size // 8
    with torch.device("meta"), torch.no_grad():
        unet = UNet2DConditionModel.from_config(configs["unet"])
        vae = AutoencoderKL.from_config(configs["vae"])
        cfg = unet.config
        pooled = cfg.projection_class_embeddings_input_dim - 6 * cfg.addition_time_embed_dim
        sample = torch.empty(2, cfg.in_channels, latent, latent)  # unconditional + conditional
        added = {"text_embeds": torch.empty(2, pooled), "time_ids": torch.empty(2, 6)}
        text = torch.empty(2, 77, cfg.cross_attention_dim)
        with FlopCounterMode(display=False) as counter:
            unet(sample, torch.tensor(999.0), encoder_hidden_states=text, added_cond_kwargs=added)
        unet_pair = counter.get_total_flops()
        with FlopCounterMode(display=False) as counter:
            vae.decode(torch.empty(1, vae.config.latent_channels, latent, latent))
        return unet_pair, counter.get_total_flops()


def xformers_problem() -> str | None:
    try:
        import xformers.ops  # noqa: F401
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"[:300]
    return None


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Interrupted()


def log(message: str) -> None:
    print(f"[{time.monotonic() - T0:6.1f}s] {message}", flush=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--budget-s", type=float, default=300.0, help="global deadline")
    parser.add_argument("--out", type=Path, help="JSON written after every measurement")
    parser.add_argument("--size", type=int, help="image side (1024 on CUDA, 128 on CPU)")
    parser.add_argument("--steps", type=int, help="denoising steps (30 on CUDA, 4 on CPU)")
    parser.add_argument("--batches", type=int, nargs="+", help="(1 4 8 on CUDA, 1 2 on CPU)")
    parser.add_argument("--repeats", type=int, help="timed runs of one image (2 CUDA, 3 CPU)")
    parser.add_argument("--batch-repeats", type=int, default=1, help="timed runs of a batch")
    parser.add_argument("--peak-tflops", type=float, default=790.0, help="bf16 rate for shares")
    parser.add_argument("--cpu", action="store_true", help="the CPU fallback even with CUDA")
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="measure torch.compile (default: on with CUDA, off on CPU, where it takes minutes)",
    )
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main())
