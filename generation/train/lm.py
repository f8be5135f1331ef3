"""Train the token LM on the codec-tokenised corpus.

    python -m generation.train lm --corpus var/corpus/full --out var/checkpoints/lm \\
        [--preset default] [--steps N] [--batch 16] [--device cuda] [--resume]

The first run tokenises the corpus with the codec (``--codec``, default: the shipped one) and
embeds every caption with MiniLM; later runs reuse that. Windows of ``context`` delay-pattern
steps run across clip boundaries with per-step conditions and condition dropout
(generation/lm/data.py). The loss is cross-entropy over every level of every step, PAD targets
(before a stream began) excluded.

The output folder holds ``last.pt`` (weights, optimiser, step, RNG: resume bit for bit),
``lm.pt`` (the fp16 inference file TokenLM.load reads) and ``lm-best.pt`` (the same, for the best
validation loss), and ``log.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from generation.codec import DEFAULT_CHECKPOINT
from generation.data.manifest import token_dir
from generation.lm.data import META_FILE, LMData, prepare
from generation.lm.model import LMConfig, TokenLM


@dataclass
class TrainConfig:
    preset: str = "default"
    n_codebooks: int = 8
    context: int | None = None
    steps: int = 20_000
    batch_size: int = 16
    lr: float = 1e-3
    min_lr_ratio: float = 0.05
    warmup_steps: int = 300
    weight_decay: float = 0.05
    grad_clip: float = 1.0
    log_every: int = 25
    eval_every: int = 500
    eval_batches: int = 8
    seed: int = 1234
    codec_version: str = "codec-small-v1"


def lr_at(cfg: TrainConfig, step: int) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    return cfg.lr * (
        cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    )


def lm_loss(model: TokenLM, tokens: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, list]:
    """Mean cross-entropy of steps 1..T given 0..T-1, and the per-level means."""
    logits = model(tokens[..., :-1], cond)  # [B, T, K, card]
    target = tokens[..., 1:].transpose(1, 2)  # [B, T, K]
    target = target.masked_fill(target == model.config.codebook_size, -100)
    per = F.cross_entropy(
        logits.flatten(0, 2), target.flatten(), ignore_index=-100, reduction="none"
    ).view(target.shape)
    valid = (target != -100).float()
    levels = (per * valid).sum((0, 1)) / valid.sum((0, 1)).clamp(min=1)
    return (per * valid).sum() / valid.sum().clamp(min=1), levels.tolist()


def train(
    cfg: TrainConfig, corpus: Path, out: Path, codec: Path, device: str, resume: bool
) -> None:
    torch.manual_seed(cfg.seed)
    out.mkdir(parents=True, exist_ok=True)
    if not (token_dir(corpus, cfg.codec_version) / META_FILE).exists():
        prepare(corpus, codec, cfg.codec_version)
    data = LMData(corpus, cfg.codec_version, "train", cfg.n_codebooks)
    valid = LMData(corpus, cfg.codec_version, "valid", cfg.n_codebooks)
    vocab = data.vocab()
    overrides = {
        "n_codebooks": cfg.n_codebooks,
        "sections": list(vocab.sections),
        "instruments": list(vocab.instruments),
        "codec": cfg.codec_version,
    }
    if cfg.context:
        overrides["context"] = cfg.context
    model = TokenLM(LMConfig.preset(cfg.preset, **overrides)).to(device)
    opt = torch.optim.AdamW(
        model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=cfg.weight_decay
    )
    rng = random.Random(cfg.seed)
    step, best = 0, math.inf
    if resume and (out / "last.pt").exists():
        # Our own resume file, written by this loop: its optimizer state needs full unpickling.
        state = torch.load(out / "last.pt", map_location=device, weights_only=False)  # nosec B614
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step, best = state["step"], state["best"]
        rng.setstate(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        print(f"resumed from {out / 'last.pt'} at step {step}")
    (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    steps = model.config.context
    print(
        f"token LM {model.n_params() / 1e6:.2f}M parameters ({cfg.preset}), "
        f"{len(data.ids)} train clips, {len(valid.ids)} valid clips, "
        f"windows of {steps} steps, device {device}"
    )
    styles = data.style_table()
    log = (out / "log.jsonl").open("a", encoding="utf-8")
    bar = tqdm(total=cfg.steps, initial=step, desc="lm", dynamic_ncols=True)
    started = time.time()
    while step < cfg.steps:
        model.train()
        lr = lr_at(cfg, step)
        for group in opt.param_groups:
            group["lr"] = lr
        tokens, cond = data.batch(
            cfg.batch_size, steps, rng, vocab, model.encode_condition, model.pattern
        )
        loss, levels = lm_loss(model, tokens.to(device), cond.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip))
        opt.step()
        step += 1
        bar.update(1)
        if step % cfg.log_every == 0 or step == 1:
            bar.set_postfix(loss=f"{loss.item():.3f}", l0=f"{levels[0]:.3f}")
            log.write(
                json.dumps(
                    {
                        "step": step,
                        "elapsed_s": round(time.time() - started, 1),
                        "loss": loss.item(),
                        "levels": levels,
                        "lr": lr,
                        "grad_norm": grad,
                    }
                )
                + "\n"
            )
            log.flush()
        if step % cfg.eval_every == 0 or step == cfg.steps:
            valid_loss = evaluate(model, valid, vocab, cfg, steps, device)
            log.write(json.dumps({"step": step, "valid_loss": valid_loss}) + "\n")
            log.flush()
            tqdm.write(f"step {step}: valid loss {valid_loss:.4f}")
            extra = {"step": step, "valid_loss": valid_loss, "train": asdict(cfg), "styles": styles}
            if valid_loss < best:
                best = valid_loss
                model.save(out / "lm-best.pt", extra)
            model.save(out / "lm.pt", extra)
            state = {
                "model": model.state_dict(),
                "opt": opt.state_dict(),
                "step": step,
                "best": best,
                "rng": rng.getstate(),
                "torch_rng": torch.get_rng_state(),
            }
            torch.save(state, out / "last.pt.tmp")
            (out / "last.pt.tmp").replace(out / "last.pt")
    bar.close()
    log.close()


@torch.no_grad()
def evaluate(model: TokenLM, data: LMData, vocab, cfg: TrainConfig, steps: int, device) -> float:
    """Validation loss on fixed windows (same seed every time), conditions fully given."""
    model.eval()
    rng = random.Random(0)
    losses = []
    for _ in range(cfg.eval_batches):
        tokens, cond = data.batch(
            cfg.batch_size, steps, rng, vocab, model.encode_condition, model.pattern, train=False
        )
        losses.append(lm_loss(model, tokens.to(device), cond.to(device))[0].item())
    return sum(losses) / len(losses)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    parser.add_argument("--corpus", type=Path, required=True, help="corpus folder (manifest)")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint folder")
    parser.add_argument("--codec", type=Path, default=DEFAULT_CHECKPOINT, help="codec checkpoint")
    parser.add_argument("--preset", default=d.preset, choices=["default", "small", "tiny"])
    parser.add_argument("--n-codebooks", type=int, default=d.n_codebooks)
    parser.add_argument("--context", type=int, default=None, help="override the preset's window")
    parser.add_argument("--steps", type=int, default=d.steps)
    parser.add_argument("--batch", type=int, default=d.batch_size)
    parser.add_argument("--lr", type=float, default=d.lr)
    parser.add_argument("--warmup-steps", type=int, default=d.warmup_steps)
    parser.add_argument("--eval-every", type=int, default=d.eval_every)
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")


def main(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = TrainConfig(
        preset=args.preset,
        n_codebooks=args.n_codebooks,
        context=args.context,
        steps=args.steps,
        batch_size=args.batch,
        lr=args.lr,
        warmup_steps=args.warmup_steps,
        eval_every=args.eval_every,
        seed=args.seed,
    )
    train(cfg, args.corpus, args.out, args.codec, args.device, args.resume)
