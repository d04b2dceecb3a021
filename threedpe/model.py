"""`ThreeDPE`: the whole network users load — encoder + renderer, weights, modes (deterministic/stochastic), precision."""
from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from pipeline.errors import UserError
from threedpe import checkpoint as ckpt
from threedpe.encoder import EditingEncoder, EncoderRef, unused_resnet_keys
from threedpe.fill_rule import fill_by_rule

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
RANDOM_LABEL = "RANDOM WEIGHTS — NOT AN EDIT"
UNTRAINED_PROMPT_LABEL = "UNTRAINED PROMPT ENCODER (Live3D-LT weights) — NOT AN EDIT"


def renderer_available() -> bool:
    return importlib.util.find_spec("threedpe.renderer") is not None


def _make_renderer() -> nn.Module | None:
    if not renderer_available():
        return None
    from threedpe.renderer import TriplaneRenderer
    return TriplaneRenderer()


def _empty_encoder() -> EditingEncoder:
    """The encoder without storage (meta device): every tensor is assigned from a state dict, so no init cost."""
    with torch.device("meta"):
        return EditingEncoder()


def unused_encoder_keys() -> dict[str, tuple[int, ...]]:
    return {f"encoder.{k}": v for k, v in unused_resnet_keys().items()}


class ThreeDPE(nn.Module):
    """3DPE (LT mode): `encode_prompt` once per style, `encode` per frame, `render` per camera.

    Deterministic eval mode by default (ASPP dropout off, the renderer's deterministic ray sampling: the
    conformance mode). `stochastic = True` gives the official script's behaviour (encoder in train mode,
    random ray sampling) for comparison, drawing random numbers in the official order (spec §5.6: dropout
    mask; then per view two camera randn, coarse jitter, importance u). `precision` fp16/bf16 autocasts the
    encoder and the neural render on the model's device (CUDA, or CPU where torch's CPU autocast has the
    op); rays, marching, importance sampling and the superresolution stay float32 (see the renderer).
    """

    def __init__(self, renderer: nn.Module | None | str = "default", *, encoder: EditingEncoder | None = None,
                 is_random: bool = False, prompt_trained: bool = True, source: str = ""):
        super().__init__()
        self.encoder = encoder if encoder is not None else EditingEncoder()
        self.renderer = _make_renderer() if renderer == "default" else renderer
        self.is_random = is_random
        self.prompt_trained = prompt_trained    # False: Live3D-LT weights, the cross-attention was never trained
        self.source = source
        self.stochastic = False
        self._precision = "fp32"
        self.eval()
        self.requires_grad_(False)

    # ---- construction -------------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike | None = None, device: str | torch.device = "cpu", trust_pickle: bool = False,
             allow_untrained_prompt: bool = False) -> "ThreeDPE":
        """Official `3dpe.pt`, a Live3D-LT checkpoint or our own save; strict (zero missing/unexpected keys).

        `path` None: $LIVE3DPE_WEIGHTS, then the cache folder (a missing file says where the weights are
        published). A Live3D-LT file has no prompt encoder: it is refused unless `allow_untrained_prompt`,
        and then its output is labelled as not an edit.
        """
        path = ckpt.resolve_weights(path)
        contents = ckpt.split_checkpoint(ckpt.read_checkpoint(path, trust_pickle), path)
        if not contents.prompt_trained and not allow_untrained_prompt:
            raise UserError(f"{path} is a Live3D-LT checkpoint: it has no trained prompt encoder (Ref_encoder.*), so "
                            "its 'edits' would come from an untrained cross-attention. Use the official 3dpe.pt; to "
                            "inspect it anyway pass --allow-untrained-prompt (output is labelled).")
        return cls.from_contents(contents, str(path)).to(device)

    @classmethod
    def from_contents(cls, contents: ckpt.CheckpointContents, source: str) -> "ThreeDPE":
        """A model from a checkpoint's parts (`checkpoint.split_checkpoint`)."""
        return cls.from_state_dicts(contents.encoder, contents.renderer, kind=contents.kind,
                                    is_random=bool(contents.meta.get("is_random", False)),
                                    prompt_trained=contents.prompt_trained, source=source)

    @classmethod
    def from_state_dicts(cls, encoder_sd: dict, renderer_sd: dict, kind: str = ckpt.KIND_3DPE,
                         is_random: bool = False, prompt_trained: bool = True, source: str = "") -> "ThreeDPE":
        """Strictly load official-layout (or our) state dicts; the Ref encoder stays at a seeded init for Live3D-LT."""
        encoder = _empty_encoder()
        expected = ckpt.shapes_of(encoder)
        if kind == ckpt.KIND_LIVE3D_LT:
            expected = {k: v for k, v in expected.items() if not k.startswith(ckpt.PROMPT_PREFIX)}
            with torch.random.fork_rng():
                torch.manual_seed(0)
                encoder.Ref_encoder = EncoderRef()
        official = kind != ckpt.KIND_OURS
        # layer3/4 exist in official files only (never executed): shape-checked, required there, then dropped
        enc = ckpt.check_state_dict(encoder_sd, expected, f"{source or kind}: encoder_state_dict",
                                    unused_encoder_keys() if official else None, require_unused=official)
        encoder.load_state_dict(enc, strict=kind != ckpt.KIND_LIVE3D_LT, assign=True)
        model = cls(encoder=encoder, is_random=is_random, prompt_trained=prompt_trained, source=source)
        if model.renderer is not None:
            expected_r = ckpt.shapes_of(model.renderer)
            aux = {k: v for k, v in ckpt.official_renderer_aux().items() if k not in expected_r}
            # FIR buffers our renderer does not hold must be the constant it assumes
            ckpt.check_fir_filters({k: v for k, v in renderer_sd.items() if k in aux},
                                   f"{source or kind}: renderer_state_dict")
            ren = ckpt.check_state_dict(renderer_sd, expected_r, f"{source or kind}: renderer_state_dict",
                                        aux, require_unused=official)
            model.renderer.load_state_dict(ren, strict=True)
        return model

    @classmethod
    def random(cls, seed: int = 0, device: str | torch.device = "cpu") -> "ThreeDPE":
        """Random weights for tests/benchmarks (the conformance fill rule with `seed`): `is_random` is True."""
        encoder = _empty_encoder()
        encoder.load_state_dict(fill_by_rule("encoder_state_dict", ckpt.shapes_of(encoder), seed), assign=True)
        model = cls(encoder=encoder, is_random=True, source=f"random:{seed}")
        if model.renderer is not None:
            model.renderer.load_state_dict(fill_by_rule("renderer_state_dict", ckpt.shapes_of(model.renderer), seed))
        return model.to(device)

    def with_tensors(self, replacements: Mapping[str, torch.Tensor]) -> "ThreeDPE":
        """A model using `replacements` (encoder state-dict keys, e.g. an adapter's tuned tensors) that shares
        every other tensor and the renderer with this one: no weights are copied and this model is left as it
        is, so both can run side by side (in other threads too). Unknown keys or wrong shapes raise."""
        state = self.encoder.state_dict()
        for key, value in replacements.items():
            if key not in state:
                raise ckpt.CheckpointError(f"'{key}' is not a tensor of the 3DPE encoder")
            if tuple(value.shape) != tuple(state[key].shape):
                raise ckpt.CheckpointError(f"'{key}' has shape {list(value.shape)}, "
                                           f"the encoder's is {list(state[key].shape)}")
            state[key] = value.to(state[key].device, state[key].dtype)
        encoder = _empty_encoder()
        encoder.load_state_dict(state, assign=True)
        model = type(self)(renderer=self.renderer, encoder=encoder, is_random=self.is_random,
                           prompt_trained=self.prompt_trained, source=self.source)
        model.stochastic, model._precision = self.stochastic, self._precision
        return model

    def save(self, path: str | os.PathLike) -> None:
        """Our format: tensors + plain metadata only, loadable with `torch.load(weights_only=True)`."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        torch.save({"format": ckpt.OUR_FORMAT,
                    "encoder_state_dict": {k: v.detach().cpu() for k, v in self.encoder.state_dict().items()},
                    "renderer_state_dict": ({k: v.detach().cpu() for k, v in self.renderer.state_dict().items()}
                                            if self.renderer is not None else {}),
                    "meta": {"is_random": self.is_random, "prompt_trained": self.prompt_trained,
                             "source": self.source}}, path)

    # ---- settings -----------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.encoder.parameters()).device

    @property
    def precision(self) -> str:
        return self._precision

    @precision.setter
    def precision(self, value: str) -> None:
        if value not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {value!r}")
        self._precision = value

    @property
    def can_render(self) -> bool:
        return self.renderer is not None

    @property
    def label(self) -> str:
        """Text to draw on outputs that are not real edits ('' for trained 3DPE weights)."""
        if self.is_random:
            return RANDOM_LABEL
        return "" if self.prompt_trained else UNTRAINED_PROMPT_LABEL

    def _autocast(self):
        if self._precision != "fp32":
            # no cast cache while a CUDA graph is captured: cached casts would be freed behind the graph's back
            capturing = self.device.type == "cuda" and torch.cuda.is_current_stream_capturing()
            return torch.autocast(self.device.type, dtype=PRECISIONS[self._precision], cache_enabled=not capturing)
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def _encoder_mode(self):
        """Train mode only switches the ASPP dropout on (there are no BatchNorms); back to eval afterwards."""
        self.encoder.train(self.stochastic)
        try:
            yield
        finally:
            self.encoder.eval()

    # ---- inference ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode_prompt(self, prompt: torch.Tensor) -> torch.Tensor:
        """[B,3,224,224] ImageNet-normalised → tokens [B,197,768] float32 (cache them per style)."""
        with self._encoder_mode(), self._autocast():
            return self.encoder.encode_prompt(prompt.to(self.device)).float()

    @torch.no_grad()
    def encode(self, image: torch.Tensor, tokens: torch.Tensor | None,
               taps: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """[B,3,512,512] in [-1,1] + tokens → triplane [B,96,256,256] float32 (tokens None: Live3D-LT, no prompt)."""
        tokens = None if tokens is None else tokens.to(self.device)
        with self._encoder_mode(), self._autocast():
            return self.encoder(image.to(self.device), tokens, taps=taps).float()

    @torch.no_grad()
    def render(self, triplane: torch.Tensor, cameras: torch.Tensor, opts=None) -> dict[str, torch.Tensor]:
        """Render [B,96,256,256] planes from [B,25] camera labels, or one triplane from [C,25] cameras
        (renderer output dict, float32)."""
        if self.renderer is None:
            raise RuntimeError("threedpe.renderer is not installed in this build; cannot render")
        if opts is None:
            from threedpe.renderer import RenderOptions
            opts = RenderOptions(deterministic=not self.stochastic)
        triplane, cameras = triplane.to(self.device), cameras.to(self.device, torch.float32)
        views = [(triplane, cameras)]
        if not opts.deterministic and triplane.shape[0] == 1 and cameras.ndim == 2 and cameras.shape[0] > 1:
            views = [(triplane, cameras[i:i + 1]) for i in range(cameras.shape[0])]   # official: one call per view
        outs = []
        for planes, cams in views:
            if not opts.deterministic:
                # The official `eural_to_camera` draws two randn [B,1] (yaw, pitch; times a zero std) before
                # every render: drawn here too, so a seeded run consumes the RNG exactly as the official one.
                for _ in range(2):
                    torch.randn(planes.shape[0], 1, device=self.device, generator=opts.generator)
            with self._autocast():
                outs.append(self.renderer(planes, cams, opts))
        out = {k: torch.cat([o[k] for o in outs]) for k in outs[0]} if len(outs) > 1 else outs[0]
        return {k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in out.items()}
