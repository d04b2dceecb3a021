"""The 3DPE encoder network (LT mode): modules named like the official `encoder_state_dict` keys."""
from threedpe.encoder.editing import TAPS, EditingEncoder, append_coordinates
from threedpe.encoder.heads import EncoderEhigh, EncoderF, EncoderFinal
from threedpe.encoder.reference import EncoderRef
from threedpe.encoder.resnet import unused_resnet_keys
from threedpe.encoder.vit import MAEEncoder

__all__ = ["TAPS", "EditingEncoder", "append_coordinates", "EncoderEhigh", "EncoderF", "EncoderFinal", "EncoderRef",
           "MAEEncoder", "unused_resnet_keys"]
