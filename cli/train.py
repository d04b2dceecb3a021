"""`live3dpe train`: the distillation trainer, on one device or data-parallel under torchrun.

    live3dpe train --data DIR | --manifest FILE --out DIR [--weights live3d_lt.pt] [--steps N] [--amp]
    torchrun --standalone --nproc-per-node 8 -m cli train --data DIR --out DIR ...    (gradients synchronised)

Writes `iteration_<step>.pt` (official `3dpe.pt` key layout: usable as --weights), `train_log.jsonl` and
`loss.png` into --out; `--resume iteration_<step>.pt` continues a run.
"""
from __future__ import annotations

import argparse

from pipeline.errors import UserError
from training import options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument("--data", help="folder of NAME_input / NAME_target / NAME_prompt images (prompt optional)")
    data.add_argument("--manifest", help='JSON lines {"input", "target", "prompt", "camera"} (paths relative to it)')
    parser.add_argument("--out", required=True, help="folder for checkpoints, the log and the loss plot")
    parser.add_argument("--steps", type=int, default=60000, help="optimisation steps (default 60000)")
    parser.add_argument("--weight-decay", type=float, default=0.01, help="AdamW weight decay (official: 0.01)")
    parser.add_argument("--amp", action="store_true", help="CUDA float16 autocast with gradient scaling")
    parser.add_argument("--checkpoint-every", type=int, default=2000, help="steps between checkpoints (default 2000)")
    parser.add_argument("--resume", metavar="CKPT", help="continue from an iteration_<step>.pt of this trainer")
    parser.add_argument("--workers", type=int, default=0, help="data-loading processes per rank")
    parser.add_argument("--mae-weights", metavar="PATH",
                        help="MAE ViT-B/16 weights (mae_pretrain_vit_base.pth) to start the prompt encoder from; the "
                             "official trainer leaves it random when starting from Live3D-LT")
    parser.add_argument("--reproduce-unsynced-ddp", action="store_true",
                        help="call the DDP-wrapped module's forward directly, like the official trainer: ranks do "
                             "not synchronise gradients (for comparison only)")
    options.add_common_arguments(parser)


def main(args: argparse.Namespace) -> int:
    import torch.distributed as dist

    from pipeline.device import resolve_device
    from training.checkpoints import load_base, load_mae_weights
    from training.data import TripletDataset, find_pairs, read_manifest
    from training.trainer import TrainConfig, init_distributed, train

    device = resolve_device(args.device)
    if args.amp and not device.startswith("cuda"):
        raise UserError("--amp needs a CUDA device (CPU training runs float32)")
    config = TrainConfig(steps=args.steps, batch=TrainConfig.batch if args.batch is None else args.batch,
                         lr=TrainConfig.lr if args.lr is None else args.lr,
                         weight_decay=args.weight_decay, amp=args.amp, resolution=args.resolution,
                         render=options.render_options(args), views=args.views,
                         perceptual_layers=options.perceptual_layers(args), perceptual_weights=args.perceptual_weights,
                         lpips_heads=args.lpips_heads, checkpoint_every=args.checkpoint_every, seed=args.seed,
                         workers=args.workers, sync_gradients=not args.reproduce_unsynced_ddp).validated()
    files = read_manifest(args.manifest) if args.manifest else find_pairs(args.data)
    rank, world, torch_device = init_distributed(device)
    try:
        base = load_base(args.weights, 0 if args.random_weights else None, torch_device, args.trust_pickle)
        if args.mae_weights:
            base.model = base.model.with_tensors(load_mae_weights(args.mae_weights))
        if rank == 0:
            if base.model.label:
                print(f"WARNING: base weights are {base.model.label}")
            print(f"training on {world} rank(s), {len(files)} samples, batch {config.batch} per rank"
                  + ("; gradients NOT synchronised (--reproduce-unsynced-ddp)" if world > 1 and not config.sync_gradients else ""))
        dataset = TripletDataset(files, config.resolution, args.face_model)
        teacher = options.load_teacher(args, torch_device)
        summary = train(config, base, dataset, args.out, teacher, args.resume)
        dataset.aligner.close()
        if rank == 0:
            print(f"step {summary['step']}, loss {summary['loss']:.4f}; ranks in sync: {summary['ranks_in_sync']}; "
                  f"checkpoints and loss.png in {args.out}")
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0
