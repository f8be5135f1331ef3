"""Train the codec on the corpus manifest.

    python -m generation.train codec --manifest var/corpus/default/manifest.jsonl \\
        --out var/checkpoints/codec [--steps N] [--batch 16] [--device cuda] [--resume]

Losses: multi-scale mel L1 (weight 15) + multi-resolution STFT (1) + commitment (1); with
--adversarial, from --adv-start on, a multi-period + multi-resolution STFT discriminator adds a
hinge loss (1) and feature matching (2). Codebooks learn by EMA, not by the optimiser.

The output folder holds `last.pt` (everything needed to resume: weights, optimiser states, step,
RNG), `codec.pt` (the fp16 inference file Codec.load reads, rewritten at each save) and
`codec-best.pt` (the same, for the best validation mel distance), plus `log.jsonl` with one line
per logged step and per evaluation.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor
from tqdm import tqdm

from generation.codec.data import Clip, CropBatches, load_audio, read_manifest
from generation.codec.discriminators import Discriminator, discriminator_loss, generator_losses
from generation.codec.losses import clip_metrics, mel_distance, stft_distance
from generation.codec.model import Codec, CodecConfig
from generation.codec.quantizer import codebook_usage


@dataclass
class TrainConfig:
    preset: str = "default"  # CodecConfig.preset name
    n_codebooks: int | None = None  # overrides the preset (8: 2.0 kbps, 12: 3.0 kbps)
    steps: int = 200_000
    batch_size: int = 16
    crop_s: float = 1.6  # 40 codec frames; rounded down to whole frames
    lr: float = 5e-4
    min_lr_ratio: float = 0.1  # cosine decay to lr * this at the last step
    warmup_steps: int = 1000
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    mel_weight: float = 15.0
    stft_weight: float = 1.0
    commitment_weight: float = 1.0
    quantize_rate: float = 0.5  # share of clips decoded from quantised latents (Mimi: 0.5)
    adversarial: bool = False
    adv_start: int = 20_000  # generator-only warm-up before the discriminator joins
    adv_weight: float = 1.0
    feature_weight: float = 2.0
    log_every: int = 50
    eval_every: int = 2000
    save_every: int = 2000
    eval_clips: int = 16
    eval_seconds: float = 4.0
    seed: int = 1337
    workers: int = 0

    def codec_config(self) -> CodecConfig:
        config = CodecConfig.preset(self.preset)
        if self.n_codebooks is not None:
            config.n_codebooks = self.n_codebooks
        return config


class CodecTrainer:
    """The codec, its optional discriminator, their optimisers and the step counter."""

    def __init__(self, codec: Codec, config: TrainConfig, device: str | torch.device = "cpu"):
        self.config, self.device = config, torch.device(device)
        self.codec = codec.to(self.device)
        self.opt_g = torch.optim.AdamW(
            codec.parameters(), lr=config.lr, betas=(0.8, 0.99), weight_decay=config.weight_decay
        )
        self.disc = Discriminator().to(self.device) if config.adversarial else None
        self.opt_d = (
            torch.optim.AdamW(self.disc.parameters(), lr=config.lr, betas=(0.8, 0.99))
            if self.disc is not None
            else None
        )
        self.step = 0
        self.best_valid_mel = math.inf

    def lr_at(self, step: int) -> float:
        """Linear warm-up, then cosine decay to min_lr_ratio * lr."""
        cfg = self.config
        if step < cfg.warmup_steps:
            return cfg.lr * (step + 1) / cfg.warmup_steps
        progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
        cosine = 0.5 * (1 + math.cos(math.pi * progress))
        return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cosine)

    def train_step(self, wave: Tensor) -> dict[str, float]:
        """One optimisation step on a batch [B, T]; returns the losses as floats."""
        cfg, codec = self.config, self.codec
        codec.train()
        lr = self.lr_at(self.step)
        for opt in (self.opt_g, self.opt_d):
            for group in opt.param_groups if opt is not None else ():
                group["lr"] = lr
        wave = wave.to(self.device, non_blocking=True)
        out = codec(wave, self.config.quantize_rate)
        target = codec.pad(wave)
        mel = mel_distance(target, out.wave, codec.sample_rate).mean()
        stft = stft_distance(target, out.wave).mean()
        loss = (
            cfg.mel_weight * mel + cfg.stft_weight * stft + cfg.commitment_weight * out.commitment
        )
        logs = {"mel": mel.item(), "stft": stft.item(), "commit": out.commitment.item()}

        if self.disc is not None and self.step >= cfg.adv_start:
            d_loss = discriminator_loss(self.disc(target), self.disc(out.wave.detach()))
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            torch.nn.utils.clip_grad_norm_(self.disc.parameters(), cfg.grad_clip)
            self.opt_d.step()
            with torch.no_grad():
                real = self.disc(target)
            adversarial, matching = generator_losses(real, self.disc(out.wave))
            loss = loss + cfg.adv_weight * adversarial + cfg.feature_weight * matching
            logs.update(disc=d_loss.item(), adv=adversarial.item(), fm=matching.item())

        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        logs["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(codec.parameters(), cfg.grad_clip))
        self.opt_g.step()
        self.step += 1
        logs.update(loss=loss.item(), lr=lr)
        return logs

    @torch.no_grad()
    def evaluate(self, waves: list[Tensor]) -> dict[str, float]:
        """Mean clip metrics and codebook usage over whole clips [T], in eval mode."""
        self.codec.eval()
        rows, codes = [], []
        for wave in waves:
            clip_codes = self.codec.encode(wave)
            recon = self.codec.decode(clip_codes).cpu()
            rows.append(clip_metrics(wave, recon[: wave.shape[0]], self.codec.sample_rate))
            codes.append(clip_codes.cpu())
        usage = codebook_usage(torch.cat(codes, dim=-1), self.codec.codebook_size)
        result = {key: sum(r[key] for r in rows) / len(rows) for key in rows[0]}
        result["codebook_usage_min"] = min(usage["perplexity_share"])
        result["codebook_usage"] = usage["perplexity_share"]
        return result

    def state_dict(self) -> dict:
        return {
            "step": self.step,
            "codec": self.codec.state_dict(),
            "codec_config": asdict(self.codec.config),
            "opt_g": self.opt_g.state_dict(),
            "disc": self.disc.state_dict() if self.disc is not None else None,
            "opt_d": self.opt_d.state_dict() if self.opt_d is not None else None,
            "best_valid_mel": self.best_valid_mel,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        }

    def load_state_dict(self, state: dict) -> None:
        if state["codec_config"] != asdict(self.codec.config):
            raise ValueError("checkpoint was trained with another codec config; use a new --out")
        self.codec.load_state_dict(state["codec"])
        self.opt_g.load_state_dict(state["opt_g"])
        if self.disc is not None and state["disc"] is not None:
            self.disc.load_state_dict(state["disc"])
            self.opt_d.load_state_dict(state["opt_d"])
        self.step, self.best_valid_mel = state["step"], state["best_valid_mel"]
        torch.set_rng_state(state["torch_rng"].cpu())
        if state["cuda_rng"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])


def load_eval_waves(clips: list[Clip], seconds: float, sample_rate: int) -> list[Tensor]:
    """The first `seconds` of each clip, as float32 tensors [T]."""
    frames = int(seconds * sample_rate)
    return [torch.from_numpy(load_audio(c.path, sample_rate, 0, frames)) for c in clips]


def train(config: TrainConfig, manifest: Path, out: Path, device: str, resume: bool) -> None:
    """The training loop: batches, steps, logs, periodic evaluation and checkpoints."""
    torch.manual_seed(config.seed)
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    out.mkdir(parents=True, exist_ok=True)
    trainer = CodecTrainer(Codec(config.codec_config()), config, device)
    codec_cfg = trainer.codec.config
    checkpoint = None
    if resume and (out / "last.pt").exists():
        checkpoint = torch.load(out / "last.pt", map_location=device, weights_only=True)
    (out / "train_config.json").write_text(json.dumps(asdict(config), indent=2) + "\n")

    crop = int(config.crop_s * codec_cfg.frame_rate) * codec_cfg.hop_length
    train_clips = read_manifest(manifest, "train")
    batches = CropBatches(train_clips, config.batch_size, crop, codec_cfg.sample_rate, config.seed)
    loader = torch.utils.data.DataLoader(
        batches,
        batch_size=None,
        sampler=range(checkpoint["step"] if checkpoint else 0, config.steps),
        num_workers=config.workers,
        pin_memory=device.startswith("cuda"),
    )
    batch_iterator = iter(loader)  # draws a seed from torch's RNG: before the RNG is restored
    if checkpoint is not None:
        trainer.load_state_dict(checkpoint)  # so a resumed run continues bit for bit
        print(f"resumed from {out / 'last.pt'} at step {trainer.step}")
    valid = read_manifest(manifest, "valid")[: config.eval_clips]
    valid_waves = load_eval_waves(valid, config.eval_seconds, codec_cfg.sample_rate)
    n_params = sum(p.numel() for p in trainer.codec.parameters())
    print(
        f"codec {n_params / 1e6:.2f}M parameters, {codec_cfg.bitrate_bps / 1000:.2f} kbps; "
        f"{len(train_clips)} train clips, {len(valid)} valid clips; device {device}"
    )

    log = (out / "log.jsonl").open("a", encoding="utf-8")
    progress = tqdm(total=config.steps, initial=trainer.step, desc="codec", dynamic_ncols=True)
    started = time.time()
    for wave in batch_iterator:
        logs = trainer.train_step(wave)
        progress.update(1)
        step = trainer.step
        if step % config.log_every == 0 or step == 1:
            progress.set_postfix(loss=f"{logs['loss']:.3f}", mel=f"{logs['mel']:.3f}")
            row = {"step": step, "elapsed_s": round(time.time() - started, 1), **logs}
            log.write(json.dumps(row) + "\n")
            log.flush()
        is_last = step == config.steps
        if valid_waves and (step % config.eval_every == 0 or is_last):
            metrics = trainer.evaluate(valid_waves)
            log.write(json.dumps({"step": step, "valid": metrics}) + "\n")
            log.flush()
            tqdm.write(
                f"step {step}: valid mel {metrics['mel_distance']:.3f} "
                f"stft {metrics['stft_distance']:.3f} si-sdr {metrics['si_sdr']:.1f} dB "
                f"usage min {metrics['codebook_usage_min']:.2f}"
            )
            if metrics["mel_distance"] < trainer.best_valid_mel:
                trainer.best_valid_mel = metrics["mel_distance"]
                trainer.codec.save(out / "codec-best.pt")
        if step % config.save_every == 0 or is_last:
            save_checkpoint(trainer, out)
    progress.close()
    log.close()


def save_checkpoint(trainer: CodecTrainer, out: Path) -> None:
    """last.pt for resuming, written atomically, and the fp16 inference file codec.pt."""
    tmp = out / "last.pt.tmp"
    torch.save(trainer.state_dict(), tmp)
    tmp.replace(out / "last.pt")
    trainer.codec.save(out / "codec.pt")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = TrainConfig()
    parser.add_argument("--manifest", type=Path, required=True, help="corpus manifest.jsonl")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint folder")
    parser.add_argument(
        "--preset", default=defaults.preset, choices=["default", "hq", "small", "tiny"]
    )
    parser.add_argument("--n-codebooks", type=int, default=None, help="override the preset's K")
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--batch", type=int, default=defaults.batch_size, help="crops per step")
    parser.add_argument("--crop-s", type=float, default=defaults.crop_s)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--warmup-steps", type=int, default=defaults.warmup_steps)
    parser.add_argument("--quantize-rate", type=float, default=defaults.quantize_rate)
    parser.add_argument("--commitment-weight", type=float, default=defaults.commitment_weight)
    parser.add_argument("--adversarial", action="store_true", help="add the GAN losses")
    parser.add_argument("--adv-start", type=int, default=defaults.adv_start)
    parser.add_argument("--log-every", type=int, default=defaults.log_every)
    parser.add_argument("--eval-every", type=int, default=defaults.eval_every)
    parser.add_argument("--save-every", type=int, default=defaults.save_every)
    parser.add_argument("--eval-clips", type=int, default=defaults.eval_clips)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--workers", type=int, default=defaults.workers, help="loader processes")
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")


def main(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    config = TrainConfig(
        preset=args.preset,
        n_codebooks=args.n_codebooks,
        steps=args.steps,
        batch_size=args.batch,
        crop_s=args.crop_s,
        lr=args.lr,
        warmup_steps=args.warmup_steps,
        quantize_rate=args.quantize_rate,
        commitment_weight=args.commitment_weight,
        adversarial=args.adversarial,
        adv_start=args.adv_start,
        log_every=args.log_every,
        eval_every=args.eval_every,
        save_every=args.save_every,
        eval_clips=args.eval_clips,
        seed=args.seed,
        workers=args.workers,
    )
    train(config, args.manifest, args.out, args.device, args.resume)
